"""The run's state and its session-level hooks, registered only under ``--failmodes``.

Per-mode results travel on test reports (``report.failmodes``: as plain data
from an xdist worker, by name when the item ran in this process), so the
controller builds the same summary whether items ran here or on xdist
workers.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from . import options as opt
from .engine import CODE_OF_STATUS, Aggregator, Gate, ModeResult, ModeSpec, finish_mode
from .errors import FailmodesError
from .llm import ModelStats

if TYPE_CHECKING:
    from .cache import ResultCache
    from .engine import Suite
    from .detectors import RuleKind
    from .baseline import Baseline, BaselineComparison
    from .judge import ModelContext
    from .llm import Runner
    from .verdict import Verdict

__all__ = ["FailmodesSession", "SESSION_KEY", "session_of"]

SESSION_KEY = pytest.StashKey["FailmodesSession"]()


def session_of(config: pytest.Config) -> FailmodesSession:
    """The run's :class:`FailmodesSession` (registered in ``pytest_configure``)."""
    return config.stash[SESSION_KEY]


class _ModeItem(Protocol):
    """What :meth:`FailmodesSession.mode_result` reads of a mode item (``collect.ModeItem``)."""

    suite: Suite
    mode: ModeSpec
    session: pytest.Session

    def evaluate_suite(self, selected: set[str]) -> dict[str, ModeResult]: ...


class FailmodesSession:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        config.stash[SESSION_KEY] = self
        self.is_worker = hasattr(config, "workerinput")
        #: mode results of this process's items, until their reports are logged (see mode_payload)
        self._local_results: dict[str, ModeResult] = {}
        self._rule_kinds: dict[str, RuleKind] | None = None
        self._rule_kinds_plugins = -1
        # suite source -> results of its selected modes (evaluated once per process),
        # or the dataset error that stopped the pass (every mode of the suite reports it)
        self._evaluated: dict[str, dict[str, ModeResult] | FailmodesError] = {}
        self._specs_sent: set[str] = set()
        # controller side
        self.results: dict[str, ModeResult] = {}
        self._trace_specs: dict[str, dict[str, Any]] = {}
        self._trace_rows: dict[str, list[dict[str, Any]]] = {}
        self._ours_failed = 0
        # model calls (judges, targets): made lazily, closed at the end of the session
        self._ctx: ModelContext | None = None
        self.model_stats: dict[str, ModelStats] = {}
        self._prefetched: dict[tuple[str, int], Future[Verdict]] = {}
        self._warmed = False
        self._warm_thread: Any = None
        # baselines (controller side)
        self.baseline: Baseline | None = None
        self.comparison: BaselineComparison | None = None
        self._regressed = False
        # reports that could not be written, one line each for the terminal summary
        self.write_errors: list[str] = []
        # why the cache was not (fully) used, from every process; one warning line each
        self.cache_problems: list[str] = []
        # why model worker processes (or a batch) could not be used; the calls were made anyway
        self.model_problems: list[str] = []
        # the batches this process submitted or resumed, for the terminal summary
        self.batch_notes: list[str] = []
        # xdist workers share the controller's start time, so --failmodes-refresh
        # re-pays each call once per run, not once per worker
        self.started = float(config.workerinput.get("failmodes_started", time.time())) if self.is_worker else time.time()  # type: ignore[attr-defined]
        # under xdist without a usable cache (--failmodes-no-cache, or one that can't be opened):
        # the directory (made by the controller, removed at its end) where the workers share
        # this run's answers and claims, so none pays twice
        self._run_store: str | None = config.workerinput.get("failmodes_run_store") if self.is_worker else None  # type: ignore[attr-defined]
        # checked here, at configure time: a bad ini value stops the run before any work
        self.table = self._setting(opt.TABLE, "failmodes_table", opt.TABLE_CHOICES)
        self.sort = self._setting(opt.SORT, "failmodes_sort", opt.SORT_CHOICES)

    def _setting(self, option: str, ini: str, choices: tuple[str, ...]) -> str:
        """The option's value, else the ini value (checked like the option's)."""
        from .options import choice

        value = self.config.getoption(opt.dest(option))
        if value is not None:
            return str(value)
        where = f"{self.config.inipath.name}: " if self.config.inipath else ""
        return choice(f"{where}ini {ini}", str(self.config.getini(ini)).strip(), choices)

    # -- model calls -------------------------------------------------------------------
    def model_context(self) -> ModelContext:
        """The process's runner and cache, made on first use (litellm is imported on the first call)."""
        if self._ctx is None:
            from .judge import ModelContext

            config = self.config
            runner = self.make_runner()
            # the option is relative to where pytest runs, the ini value to the rootdir (as pytest's cache_dir)
            option_dir = config.getoption(opt.dest(opt.CACHE_DIR))
            ini_dir = config.getini("failmodes_cache_dir")
            if option_dir:
                directory = Path(config.invocation_params.dir, option_dir)
            else:
                directory = config.rootpath / (ini_dir or ".failmodes")
            no_cache = config.getoption(opt.dest(opt.NO_CACHE))
            if not no_cache:
                _ignore_in_git(directory)
            cache = None
            if not (no_cache and self._run_store):
                cache = self._open_cache(
                    directory,
                    enabled=not no_cache,
                    refresh=config.getoption(opt.dest(opt.REFRESH)),
                    refresh_since=self.started,
                    run_started=self.started,
                    # a file that turns out read-only: the workers share their new answers there
                    shared=Path(self._run_store) if self._run_store else None,
                )
            if self._run_store and (cache is None or cache.unusable):
                # under xdist without a cache (--failmodes-no-cache, or one that can't be opened) the
                # workers share this run's answers and claims: each submits the calls of every
                # per-trace item, and would pay for all of them
                unusable = cache.unusable if cache is not None else None
                cache = self._open_cache(Path(self._run_store), run_started=self.started)
                if unusable and cache.problem is None:
                    cache.problem = f"{unusable}; running without a cache: nothing is stored, the xdist workers share this run's answers"
            self._ctx = ModelContext(runner, cache, batch_all=bool(config.getoption(opt.dest(opt.BATCH))))
            self._ctx.batch_progress = self._batch_line
        return self._ctx

    def _batch_line(self, line: str) -> None:
        """A batch API progress line (submitted, status changes), on the terminal as it happens.

        Which batches were submitted or resumed is repeated in the terminal summary: a line
        written while an item runs is pytest's captured output, which a passing item drops."""
        if line.endswith(("calls)", "calls")) and (": submitted " in line or ": resuming " in line):
            self.batch_notes.append(line)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and not self.is_worker and self.config.get_verbosity() >= 0:
            reporter.write_line(line)

    def make_runner(self) -> Runner:
        """A runner with the run's concurrency, timeout and retry settings."""
        from .llm import Runner

        config = self.config
        limit = config.getoption(opt.dest(opt.MAX_CONCURRENCY)) or int(config.getini("failmodes_max_concurrency"))
        return Runner(
            max_concurrency=limit,
            timeout=config.getoption(opt.dest(opt.TIMEOUT)),
            max_retries=config.getoption(opt.dest(opt.MAX_RETRIES)),
            **self.model_workers(),
        )

    def warm_models(self) -> None:
        """A judge mode was collected: overlap what its first call would wait for with the rest
        of collection and the dataset's reading. Explicit model workers start now (each
        imports litellm); otherwise this process imports litellm in a thread."""
        if self._warmed:
            return
        self._warmed = True
        workers = self.model_workers()
        if workers["workers"] > 1 and workers["workers_after"] == 0:
            self.model_context().runner.start_workers()
            return
        import threading

        from .llm import load_litellm

        def load() -> None:
            try:
                load_litellm()
            except BaseException:  # noqa: BLE001 - the first call imports it again and reports what fails
                pass

        self._warm_thread = threading.Thread(target=load, name="failmodes-import-litellm", daemon=True)
        self._warm_thread.start()

    def model_workers(self) -> dict[str, int]:
        """The runner's ``workers``/``workers_after`` from --failmodes-model-workers (or its ini)."""
        from .llm import resolve_workers

        value = self.config.getoption(opt.dest(opt.MODEL_WORKERS)) or str(self.config.getini("failmodes_model_workers") or "auto")
        workers, after = resolve_workers(value.strip().lower(), xdist_worker=self.is_worker)
        return {"workers": workers, "workers_after": after}

    def _note_cache_problem(self, problem: str | None) -> None:
        # every worker meets the same unusable cache: the user reads about it once
        if problem and problem not in self.cache_problems:
            self.cache_problems.append(problem)

    def merge_model_stats(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """Add a runner's per-model figures to the run's "model calls" table."""
        for model, figures in stats.items():
            self.model_stats.setdefault(model, ModelStats()).merge(figures)

    def _open_cache(self, directory: Path, **kwargs: Any) -> ResultCache:
        """Open the cache; its CacheWarning (a damaged file set aside) never fails the run.

        The warning goes through the user's filters (``ignore`` silences it); when they
        make it an error, the cache has already been replaced and results are unaffected,
        so it is recorded for the warnings summary instead of raised in the middle of an
        item (which would fail that item, and with it the mode, for a cache problem).
        """
        import warnings

        from .cache import CacheWarning, ResultCache

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CacheWarning)
            cache = ResultCache(directory, **kwargs)
        for record in caught:
            try:
                warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)
            except CacheWarning:
                self.config.hook.pytest_warning_recorded.call_historic(
                    kwargs={"warning_message": record, "when": "runtest", "nodeid": "", "location": None}
                )
        return cache

    def progress(self, what: str) -> Callable[[int, int], None] | None:
        """A progress callback for a long model phase, quiet under -q and on workers: a
        line rewritten in place on a terminal, else (CI logs) a line now and then."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.is_worker or reporter is None or self.config.get_verbosity() < 0:
            return None
        if reporter.isatty():
            return _Progress(reporter, what)
        return _LogProgress(reporter, what, self._failed_calls)

    def _failed_calls(self) -> int:
        return self._ctx.runner.error_count() if self._ctx is not None else 0

    def prefetch(self, item: Any) -> Future[Verdict]:
        """Per-trace items of a judge mode: submit every selected item's call at once."""
        key = (item.mode.key, item.index)
        if key not in self._prefetched:
            ctx = self.model_context()
            for other in item.session.items:
                if getattr(other, "evaluates", None) == "trace" and other.mode.key == item.mode.key:
                    det = other.mode.detector
                    self._prefetched[(other.mode.key, other.index)] = ctx.runner.submit(det.ajudge(other.trace, ctx))  # type: ignore[union-attr]
        return self._prefetched.pop(key)

    def save_traces(self, traces: list[Any], failed: Mapping[str, str]) -> None:
        """Append a target's traces to --failmodes-save-traces (the controller truncated it)."""
        path = self.config.getoption(opt.dest(opt.SAVE_TRACES))
        if not path:
            return
        from .target import TraceWriter

        TraceWriter(Path(self.config.invocation_params.dir, path)).write(traces, failed)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._load_baseline()
        path = self.config.getoption(opt.dest(opt.SAVE_TRACES))
        if path and not self.is_worker:
            from .target import TraceWriter

            TraceWriter(Path(self.config.invocation_params.dir, path)).truncate()

    def _close_models(self, *, drain: bool = False) -> None:
        if self._ctx is None:
            return
        ctx, self._ctx = self._ctx, None
        try:
            if drain:
                # the calls this worker claimed for other workers' items: they wait for them
                # (drain's own timeout ends it; past that, closing cancels them as before)
                budget = ctx.runner.call_budget()
                try:
                    left = ctx.runner.submit(ctx.drain(budget)).result(budget + 10.0)
                except FutureTimeout:  # the runner's loop itself is stuck (3.10: not the builtin TimeoutError)
                    left = -1
                if left:
                    self.model_problems.append(
                        f"model calls this xdist worker made for other workers' items did not end within {budget:.0f} s "
                        "after its last item; cancelled (another worker makes them again)"
                    )
        finally:
            self._close_runner(ctx)

    def _close_runner(self, ctx: ModelContext) -> None:
        try:
            ctx.runner.close()
        finally:
            if ctx.cache is not None:
                ctx.cache.close()
                self._note_cache_problem(ctx.cache.problem)
        for problem in [ctx.runner.worker_problem, *ctx.batch_problems]:
            if problem and problem not in self.model_problems:
                self.model_problems.append(problem)
        self.merge_model_stats(ctx.runner.stats_dict())

    # -- collection-time services ------------------------------------------------------
    def rule_kinds(self) -> dict[str, RuleKind]:
        # a conftest.py in a subdirectory registers when pytest enters it, after
        # earlier definition files were collected: ask again when plugins change
        plugins = len(self.config.pluginmanager.get_plugins())
        if self._rule_kinds is None or plugins != self._rule_kinds_plugins:
            from .detectors import merge_rule_kinds

            self._rule_kinds = merge_rule_kinds(self.config.hook.pytest_failmodes_rule_kinds())
            self._rule_kinds_plugins = plugins
        return self._rule_kinds

    def mode_result(self, item: _ModeItem) -> ModeResult:
        """The item's mode result; the first item of a suite evaluates all its selected modes."""
        source = item.suite.source
        if source not in self._evaluated:
            selected = {
                i.mode.name  # type: ignore[attr-defined]
                for i in item.session.items
                if getattr(i, "evaluates", None) == "mode" and i.suite.source == source  # type: ignore[attr-defined]
            }
            selected.add(item.mode.name)
            try:
                self._evaluated[source] = item.evaluate_suite(selected)
            except FailmodesError as exc:
                self._evaluated[source] = exc
        results = self._evaluated[source]
        if isinstance(results, FailmodesError):
            raise results
        if item.mode.name not in results:  # selected after the suite was evaluated (rare)
            results.update(item.evaluate_suite({item.mode.name}))
        return results[item.mode.name]

    def spec_once(
        self, mode: ModeSpec, where_skipped: int, applicable: int, notes: list[str] | None = None
    ) -> dict[str, Any] | None:
        """Mode metadata for the first per-trace report of a mode sent from this process."""
        if mode.key in self._specs_sent:
            return None
        self._specs_sent.add(mode.key)
        return {
            "key": mode.key,
            "name": mode.name,
            "source": mode.source,
            "line": mode.line,
            "order": mode.order,
            "description": mode.description,
            "detector": repr(mode.detector),
            "gate": mode.gate.to_dict(),
            "fingerprint": mode.fingerprint,
            "where_skipped": where_skipped,
            "applicable": applicable,
            "labels": mode.labels.to_dict() if mode.labels is not None else None,
            "notes": list(notes or ()),
        }

    # -- hooks --------------------------------------------------------------------------
    def mode_payload(self, result: ModeResult) -> dict[str, Any]:
        """What a mode item's test report carries to :meth:`pytest_runtest_logreport`.

        An xdist worker sends the result to the controller as plain data. In one process
        the report names the result, kept here until it is logged: as plain data it
        would hold every trace's id as a string of its own (hundreds of bytes a trace,
        for as long as pytest keeps its reports) and undo the engine's compact columns."""
        if self.is_worker:
            return {"kind": "mode", "result": result.to_dict()}
        self._local_results[result.key] = result
        return {"kind": "mode", "local": result.key}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
        outcome = yield
        payload = getattr(item, "failmodes_payload", None)
        if call.when == "call" and payload is not None:
            outcome.get_result().failmodes = payload

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "failmodes", None)
        if payload is None or self.is_worker:
            return
        if payload["kind"] == "mode":
            if "local" in payload:
                result = self._local_results.pop(payload["local"])
            else:  # from an xdist worker
                result = ModeResult.from_dict(payload.pop("result"))
            self.results[result.key] = result
            self.config.hook.pytest_failmodes_mode_result(result=result)
            return
        if payload.get("spec"):
            self._trace_specs.setdefault(payload["mode"], payload["spec"])
        self._trace_rows.setdefault(payload["mode"], []).append(payload)
        if report.failed:
            self._ours_failed += 1

    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        payload = getattr(report, "failmodes", None)
        if payload and payload["kind"] == "trace" and report.when == "call" and payload["status"] == "fail":
            return "detected", "D", "DETECTED"
        return None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["failmodes_started"] = self.started
        # for --failmodes-no-cache, or a cache that can't be opened: without a store the workers
        # share, each would pay for the per-trace calls of every worker
        if self._run_store is None:
            import tempfile

            self._run_store = tempfile.mkdtemp(prefix="failmodes-run-")
        node.workerinput["failmodes_run_store"] = self._run_store

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        output = getattr(node, "workeroutput", {})
        for model, stats in output.get("failmodes_models", {}).items():
            self.model_stats.setdefault(model, ModelStats()).merge(stats)
        for problem in output.get("failmodes_cache_problems", ()):
            self._note_cache_problem(problem)
        for problem in output.get("failmodes_model_problems", ()):
            if problem not in self.model_problems:
                self.model_problems.append(problem)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self._warm_thread is not None:
            # an import still running when the session ends would straddle into whatever runs
            # next in this process (pytester's in-process runs restore sys.modules in between)
            self._warm_thread.join(120)
        # an xdist worker that ran its items to the end lets the calls it claimed for other
        # workers' items finish; one of a run that stops early (-x, --maxfail, Ctrl-C) cancels them
        ended = session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
        whole = not (session.shouldstop or session.shouldfail or self.config.getoption("maxfail", 0))
        self._close_models(drain=self.is_worker and ended and whole)
        if self.is_worker:
            self.config.workeroutput["failmodes_models"] = {  # type: ignore[attr-defined]
                m: s.to_dict() for m, s in self.model_stats.items()
            }
            self.config.workeroutput["failmodes_cache_problems"] = self.cache_problems  # type: ignore[attr-defined]
            self.config.workeroutput["failmodes_model_problems"] = self.model_problems  # type: ignore[attr-defined]
            return
        if self._run_store is not None:  # every worker is down
            import shutil

            shutil.rmtree(self._run_store, ignore_errors=True)
            self._run_store = None
        self._finish_per_trace()
        self._compare_with_baseline(session)
        if self._trace_rows:
            # per-trace items fail on detections (so --lf works); the gates decide the exit
            others = session.testsfailed - self._ours_failed
            gate_failed = any(not r.passed for r in self.results.values()) or self._regressed
            if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
                failed = others > 0 or gate_failed
                session.exitstatus = pytest.ExitCode.TESTS_FAILED if failed else pytest.ExitCode.OK
        interrupted = session.exitstatus == pytest.ExitCode.INTERRUPTED
        path = self.config.getoption(opt.dest(opt.REPORT))
        if path:
            from .report.json_report import write_report

            # streamed into its file: the per-trace lists are never held whole
            self._write_report(
                "JSON report",
                Path(self.config.invocation_params.dir, path),
                writer=lambda to: write_report(
                    to, self.ordered_results(), interrupted=interrupted, comparison=self.comparison
                ),
            )
        self._write_ci_reports(session)
        save = self.config.getoption(opt.dest(opt.SAVE_BASELINE))
        if save and not interrupted:
            from .report.json_report import write_report

            base = self.config.rootpath if save == opt.DEFAULT_BASELINE else self.config.invocation_params.dir
            self._write_report("baseline", Path(base, save), writer=lambda to: write_report(to, self.ordered_results()))
        if not interrupted:
            self._write_history()
        if self.write_errors and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            # CI reads these files: a run whose reports are missing is not a green run
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def _write_history(self) -> None:
        """One file per run in the history directory (an interrupted run is not a run)."""
        directory = self.config.getoption(opt.dest(opt.HISTORY))
        base = self.config.invocation_params.dir
        if not directory:
            directory = self.config.getini("failmodes_history")
            base = self.config.inipath.parent if self.config.inipath else self.config.rootpath
        results = self.ordered_results()
        if not directory or not results:
            return
        from .history import git_info, run_summary, write_run

        where = Path(base, directory)
        try:
            summary = run_summary(
                results, comparison=self.comparison, started=self.started, git=git_info(self.config.rootpath)
            )
            write_run(where, summary)
        except Exception as exc:  # noqa: BLE001 - reported like any report that could not be written
            detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            self.write_errors.append(f"could not add this run to the history in {where} ({detail}); no file was written")

    def _write_report(
        self,
        what: str,
        path: Path,
        produce: Callable[[], str] | None = None,
        *,
        append: bool = False,
        writer: Callable[[Path], None] | None = None,
    ) -> None:
        """Write one report whole or not at all; on failure remove the stale one it would
        have replaced (never leave an older run's report looking like this run's) and
        record one line for the terminal summary. ``writer(path)`` writes a report that
        streams itself (atomically too); otherwise ``produce()`` gives its text."""
        import os

        from .report.safe import append_whole, write_atomically

        try:
            if writer is not None:
                writer(path)
            else:
                assert produce is not None
                content = produce()
                (append_whole if append else write_atomically)(path, content)
        except Exception as exc:  # noqa: BLE001 - any failure is reported, none loses the other reports
            detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            if append:
                outcome = "nothing was appended"
            elif not os.path.lexists(path):
                outcome = "no file was written"
            else:
                try:
                    path.unlink()
                    outcome = "the older file there was removed"
                except OSError as gone:
                    outcome = f"the older file there could not be removed ({gone.strerror}): it is NOT from this run"
            self.write_errors.append(f"could not write the {what} {path} ({detail}); {outcome}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        for line in self.write_errors:
            terminalreporter.write_line(f"ERROR pytest-failmodes: {line}", red=True, bold=True)
        for line in self.cache_problems:
            terminalreporter.write_line(f"WARNING pytest-failmodes: cache {line}; results are unaffected", yellow=True)
        if not self.results and self.config.getoption(opt.dest(opt.CALIBRATE)):
            terminalreporter.section("failure modes")
            terminalreporter.write_line(
                f"{opt.CALIBRATE}: no failure mode has human labels to measure its detector against; "
                "add labels: to a mode or a labels file (docs/calibration.md)"
            )
            return
        if not self.results:
            return
        self._count_breaches(terminalreporter)
        from .report.terminal import detection_lines, summary_lines

        terminalreporter.section("failure modes")
        results = self.ordered_results()
        # pytest's own width (COLUMNS, else the terminal's): the table is shortened to it
        width = terminalreporter._tw.fullwidth
        for line in summary_lines(results, self.comparison, table=self.table, sort=self.sort, width=width):
            terminalreporter.write_line(line)
        if self._trace_rows:
            # per-trace detections are results, not crashes: pytest lists them nowhere else
            limit = self.config.getoption(opt.dest(opt.MAX_EXAMPLES))
            for line in detection_lines([r for r in results if r.key in self._trace_rows], limit):
                terminalreporter.write_line(line)
        if any(r.calibration is not None for r in results):
            from .report.calibration import calibration_lines

            terminalreporter.write_line("")
            for line in calibration_lines(results, self.config.getoption(opt.dest(opt.MAX_EXAMPLES))):
                terminalreporter.write_line(line)
        if self.model_stats:
            from .report.terminal import model_lines

            terminalreporter.write_line("")
            for line in model_lines(self.model_stats):
                terminalreporter.write_line(line)
            calls = sum(s.calls for s in self.model_stats.values())
            by_workers = sum(s.worker_calls for s in self.model_stats.values())
            batched = sum(s.batch_calls for s in self.model_stats.values())
            if by_workers:
                terminalreporter.write_line(f"{by_workers:,} of {calls:,} calls made by model worker processes ({opt.MODEL_WORKERS})")
            if batched:
                terminalreporter.write_line(f"{batched:,} of {calls:,} calls answered through the provider's batch API")
            for line in self.batch_notes:
                terminalreporter.write_line(line)
        for line in self.model_problems:
            terminalreporter.write_line(f"WARNING pytest-failmodes: {line}", yellow=True)

    def _count_breaches(self, terminalreporter: Any) -> None:
        """Put "N gates breached" on pytest's last line. Per-trace items end as passed or
        detected, and a regression fails no item, so "303 passed, 97 detected" alone
        reads as green in a CI log although the run fails."""
        regressed: set[str] = set()
        if self.comparison is not None:
            regressed = {key for (key, _cohort), c in self.comparison.comparisons.items() if c.regression}
        breached = sum(
            1 for r in self.results.values() if r.broken is None and (not r.passed or r.key in regressed)
        )
        if breached:
            # the line counts the entries of each stats key; ours are no test reports
            terminalreporter.stats.setdefault("gate breached" if breached == 1 else "gates breached", []).extend(
                [_GateCount()] * breached
            )

    # -- baselines ----------------------------------------------------------------------
    def _load_baseline(self) -> None:
        # a bad baseline fails the run before any work, not after it
        path = self.config.getoption(opt.dest(opt.BASELINE))
        if path and not self.is_worker and self.baseline is None:
            from .baseline import load_baseline

            try:
                self.baseline = load_baseline(Path(self.config.invocation_params.dir, path), shown=path)
            except FailmodesError as exc:
                raise pytest.UsageError(str(exc)) from None

    def _compare_with_baseline(self, session: pytest.Session) -> None:
        if self.baseline is None or not self.results:
            return
        from .baseline import compare_with_baseline

        config = self.config
        self.comparison = compare_with_baseline(
            self.ordered_results(),
            self.baseline,
            alpha=config.getoption(opt.dest(opt.ALPHA)),
            correction=config.getoption(opt.dest(opt.CORRECTION)),
            min_increase=config.getoption(opt.dest(opt.MIN_INCREASE)),
        )
        self.comparison.annotate(list(self.results.values()))
        self._regressed = bool(self.comparison.regressions)
        if self.comparison.missing and config.getoption(opt.dest(opt.STRICT_BASELINE)):
            self._regressed = True  # fails the run like a regression, and is reported beside them
        # the correction spans every mode and cohort, so regressions are decided here,
        # once all modes have run: they fail the run (and their gate in JUnit), not an item
        if self._regressed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _write_ci_reports(self, session: pytest.Session) -> None:
        """Markdown (and the GitHub job summary) and the gates in JUnit XML."""
        import os

        results = self.ordered_results()
        if not results:
            return
        config = self.config
        md_path = config.getoption(opt.dest(opt.MARKDOWN))
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if md_path or step_summary:
            from .report.markdown import markdown_lines

            def markdown() -> str:
                lines = markdown_lines(
                    results, self.comparison, sort=self.sort, full_report=config.getoption(opt.dest(opt.REPORT))
                )
                return "\n".join(lines) + "\n"

            if md_path:
                self._write_report("Markdown summary", Path(config.invocation_params.dir, md_path), markdown)
            if step_summary:
                self._write_report(
                    "GitHub job summary", Path(step_summary), lambda: markdown() + "\n", append=True
                )
        html_path = config.getoption(opt.dest(opt.HTML))
        if html_path:
            from .report.html import DEFAULT_MAX_TRACES, write_html
            from .report.json_report import build_report, listed_members

            def html(to: Path) -> None:
                # the failing traces the page lists (the first of each verdict) and each cohort's
                # members among them as positions: not every trace's entry and every cohort's members
                listing, limit = ("fail", "error"), DEFAULT_MAX_TRACES
                report = build_report(
                    results,
                    interrupted=session.exitstatus == pytest.ExitCode.INTERRUPTED,
                    comparison=self.comparison,
                    verdicts=listing,
                    members=False,
                    limit=limit,
                )
                members = {r.key: listed_members(r, listing, limit) for r in results}
                write_html(to, report, traces=_failing_trace_content(results), members=members, max_traces=limit)

            self._write_report("HTML report", Path(config.invocation_params.dir, html_path), writer=html)
        xml = config.getoption("xmlpath", None)
        if xml:
            from .report.junit import add_gates

            path = Path(config.invocation_params.dir, xml)
            if path.exists():
                try:
                    add_gates(path, results, self.comparison)
                except Exception as exc:  # noqa: BLE001 - pytest's own part of the file stays
                    detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                    self.write_errors.append(
                        f"could not add the gates to the JUnit XML {path} ({detail}); it holds pytest's items only"
                    )

    # -- helpers ------------------------------------------------------------------------
    def ordered_results(self) -> list[ModeResult]:
        return sorted(self.results.values(), key=lambda r: (r.source, r.order))

    @functools.cached_property
    def tracks_members(self) -> bool:
        """Whether results record which traces make each cohort: the paired test against
        a baseline needs it, JSON reports and baselines record it for `failmodes compare`,
        and the HTML report filters its failing traces by cohort with it."""
        names = (opt.BASELINE, opt.SAVE_BASELINE, opt.REPORT, opt.HTML)
        return any(self.config.getoption(opt.dest(name)) for name in names)

    @functools.cached_property
    def samples(self) -> int:
        """How many failing traces per mode keep their input and output: the HTML
        report shows them; nothing else needs them. (Read per trace item and per
        row, so computed once.)"""
        if not self.config.getoption(opt.dest(opt.HTML)):
            return 0
        from .report.html import DEFAULT_MAX_TRACES

        return DEFAULT_MAX_TRACES

    def _finish_per_trace(self) -> None:
        for key, rows in self._trace_rows.items():
            spec = self._trace_specs[key]
            rows.sort(key=lambda r: r["index"])
            agg = Aggregator()
            agg.skipped = spec["where_skipped"]
            details: dict[int, list[Any]] = {}
            codes = []
            members: dict[str, list[int]] = {}
            samples: dict[str, dict[str, Any]] = {}
            labelled = []
            for i, row in enumerate(rows):
                if row.get("sample") and len(samples) < self.samples:
                    samples[row["id"]] = row["sample"]
                agg.add(row["cohorts"], row["status"], row.get("cluster"))
                codes.append(CODE_OF_STATUS[row["status"]])
                if row.get("human"):
                    human, note, role = row["human"]
                    labelled.append((i, human, note, role, row["cohorts"]))
                if row["status"] != "pass" or row.get("human"):
                    details[i] = [row["reason"], row["evidence"]]
                if row["status"] in ("pass", "fail"):
                    for cohort in row["cohorts"]:
                        members.setdefault(cohort, []).append(i)
            mode = _SpecView(spec)
            applicable = spec["applicable"]
            partial = (len(rows), applicable) if len(rows) < applicable else None
            result = finish_mode(
                mode, agg, [r["id"] for r in rows], "".join(codes), details, partial=partial,
                members=members if self.tracks_members else None,
                samples=samples if self.samples else None,
                labelled=labelled, calibrate_only=bool(self.config.getoption(opt.dest(opt.CALIBRATE))),
                clusters=[r["cluster"] for r in rows] if rows and rows[0].get("cluster") is not None else None,
                pairs=[r["pair"] for r in rows] if rows and rows[0].get("pair") is not None else None,
            )
            # a definition's value or name that matches no trace (decided at collection, over every trace)
            result.notes.extend(spec.get("notes") or ())
            self.results[key] = result
            self.config.hook.pytest_failmodes_mode_result(result=result)




def _ignore_in_git(directory: Path) -> None:
    """Like .pytest_cache: the cache directory keeps itself out of version control."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        marker = directory / ".gitignore"
        if not marker.exists():
            # only the cache: a baseline saved here may well be committed
            marker.write_text(
                "# created by pytest-failmodes: cached model calls\ncache.sqlite3*\n*.lock\n", encoding="utf-8"
            )
    except OSError:
        pass  # a read-only checkout still runs; the cache reports its own problems


class _Progress:
    """done/total, rate and ETA of a model phase, rewritten in place at most every 0.5 s."""

    def __init__(self, reporter: Any, what: str) -> None:
        self.reporter = reporter
        self.what = what
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < 0.5:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else 0.0
        line = f"failmodes: {self.what} {done}/{total} ({rate:.1f}/s, ETA {eta:.0f}s)"
        self.reporter.rewrite(line, bold=True)
        if done >= total:
            self.reporter.write_line("")


#: the least time between two progress lines in a log (tests set it to 0)
LOG_PROGRESS_SECONDS = 30.0


class _LogProgress:
    """Progress of a model phase where output is not a terminal (CI logs): one line at each
    10% step, at most one per :data:`LOG_PROGRESS_SECONDS`, so a long phase shows it is
    alive without flooding the log; the last line when a phase that printed one ends."""

    def __init__(self, reporter: Any, what: str, failed_calls: Callable[[], int]) -> None:
        self.reporter = reporter
        self.what = what
        self.failed_calls = failed_calls
        self.errors_before = failed_calls()
        self.start = time.monotonic()
        self.last = self.start
        self.step = 0  # the 10% step of the last line
        self.printed = False

    def __call__(self, done: int, total: int) -> None:
        if total <= 0:
            return
        now = time.monotonic()
        step = done * 10 // total
        finished = done >= total
        if finished:
            # a phase that ended before its first line stays silent
            if not self.printed and now - self.start < LOG_PROGRESS_SECONDS:
                return
        elif step <= self.step or now - self.last < LOG_PROGRESS_SECONDS:
            return
        self.step = step
        self.last = now
        self.printed = True
        errors = self.failed_calls() - self.errors_before
        self.reporter.write_line(
            f"failmodes: {self.what} {done}/{total} ({done * 100 // total}%), "
            f"{errors} error{'' if errors == 1 else 's'}, {now - self.start:.1f} s"
        )


class _GateCount:
    """An entry of pytest's stats that counts on the last line and nowhere else."""

    count_towards_summary = True


class _SpecView:
    """The fields of a ModeSpec that finish_mode reads, rebuilt from a report."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.key = spec["key"]
        self.name = spec["name"]
        self.source = spec["source"]
        self.line = spec["line"]
        self.order = spec["order"]
        self.description = spec["description"]
        self.detector = _Repr(spec["detector"])
        self.gate = Gate.from_dict(spec["gate"])
        self.fingerprint = spec.get("fingerprint", "")
        labels = spec.get("labels")
        if labels is not None:
            from .labels import HumanLabels

            self.labels: Any = HumanLabels.from_dict(labels)
        else:
            self.labels = None


class _Repr:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _failing_trace_content(results: Sequence[ModeResult]) -> dict[str, dict[str, Any]]:
    """What the HTML report shows of each failing trace (trace id -> the trace's JSON,
    cut as :func:`engine.trace_excerpt` cuts it). The one place the report reads trace
    content: the engine keeps it per mode for up to ``FailmodesSession.samples`` traces."""
    # trace ids are unique within a dataset; across files the first one wins
    content: dict[str, dict[str, Any]] = {}
    for result in results:
        for tid, sample in (result.samples or {}).items():
            content.setdefault(tid, sample)
    return content
