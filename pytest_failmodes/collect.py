"""pytest collection: definition files and ``@failure_mode`` functions become items.

Items are a view on the engine's results. By default one item per failure
mode (its gate); with ``--failmodes-per-trace`` one item per mode and trace.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import options as opt
from .definitions import load_suite, python_mode_definition, suite_from_mapping
from .detectors.python import PythonRef
from .engine import (
    Aggregator,
    ModeResult,
    ModeSpec,
    Suite,
    cluster_of,
    cohort_keys,
    detect_one,
    evaluate,
    finish_mode,
    pair_of,
    trace_excerpt,
)
from .errors import FailmodesError
from .items import Detected, GateBreach, _FailmodesItem
from .session import session_of
from .verdict import ERROR, FAIL, SKIP, Verdict

if TYPE_CHECKING:
    from .session import FailmodesSession  # noqa: F401
    from .trace import Trace

__all__ = ["DefinitionFile", "ModeItem", "TraceItem", "python_mode_items"]


def _display(config: pytest.Config, path: Path) -> str:
    try:
        return path.relative_to(config.rootpath).as_posix()
    except ValueError:
        return str(path)


def _dataset_override(config: pytest.Config) -> Path | None:
    value = config.getoption(opt.dest(opt.DATASET))
    return Path(config.invocation_params.dir, value) if value else None


#: dataset path -> the definition file naming it, for datasets outside the rootdir
_OUTSIDE_KEY = pytest.StashKey[dict[str, str]]()


def _note_outside_rootdir(config: pytest.Config, suite: Suite) -> None:
    """Remember a dataset that a definition file reaches outside the rootdir for.

    Reading it is allowed (a monorepo keeps data beside the code), but a
    definition file from elsewhere ("../../../etc/...") should not read files
    unnoticed: the run says so after collection.
    """
    if suite.dataset is None or _dataset_override(config) is not None:
        return  # a --failmodes-dataset path was typed by the user
    path = suite.dataset.path.resolve()
    if not path.is_relative_to(config.rootpath.resolve()):
        config.stash.setdefault(_OUTSIDE_KEY, {}).setdefault(str(path), suite.source)


def outside_rootdir_lines(config: pytest.Config) -> list[str]:
    """One line per dataset read from outside the rootdir (see :func:`_note_outside_rootdir`)."""
    notes = config.stash.get(_OUTSIDE_KEY, {})
    return [f"failmodes: dataset {path} (named in {source}) is outside the rootdir {config.rootpath}" for path, source in sorted(notes.items())]


class DefinitionFile(pytest.File):
    """A ``*.failmodes.yaml`` file."""

    def collect(self) -> Iterator[pytest.Item]:
        state = session_of(self.config)
        try:
            suite = load_suite(
                self.path,
                state.rule_kinds(),
                dataset_override=_dataset_override(self.config),
                display=_display(self.config, self.path),
            )
        except FailmodesError as exc:
            raise self.CollectError(str(exc)) from None
        _note_outside_rootdir(self.config, suite)
        if any(_needs_model(m) and m.detector.spec.resolved_model for m in suite.modes):  # type: ignore[union-attr]
            state.warm_models()
        yield from _items(self, suite, func=None)
        # a calibration run measures detectors against labels: a probe has none
        if suite.probes and not self.config.getoption(opt.dest(opt.CALIBRATE)):
            from .probes.item import ProbeItem

            for probe in suite.probes:
                yield ProbeItem.from_parent(
                    self,
                    name=probe.name,
                    callobj=_fixture_signature(None),
                    suite=suite,
                    mode=probe.mode(),
                    func=None,
                    probe=probe,
                )


def python_mode_items(
    collector: pytest.Collector, name: str, func: Callable[..., Any], spec: Mapping[str, Any]
) -> list[pytest.Item]:
    """Items for a ``@failure_mode`` test function."""
    state = session_of(collector.config)
    path = Path(inspect.getsourcefile(func) or collector.path)
    data = python_mode_definition(name, spec)
    try:
        suite = suite_from_mapping(
            data,
            path,
            state.rule_kinds(),
            dataset_override=_dataset_override(collector.config),
            display=_display(collector.config, path),
            first_line=inspect.getsourcelines(func)[1],
        )
    except FailmodesError as exc:
        raise collector.CollectError(str(exc)) from None
    _note_outside_rootdir(collector.config, suite)
    ref = PythonRef(func.__qualname__)
    suite = dataclasses.replace(suite, modes=tuple(dataclasses.replace(m, detector=ref) for m in suite.modes))
    return list(_items(collector, suite, func=func))


def _fixture_signature(func: Callable[..., Any] | None) -> Callable[..., None]:
    """A callable whose signature lists the fixtures the item needs (all but ``trace``)."""

    def fixtures(**kwargs: Any) -> None:  # pragma: no cover - never called
        raise AssertionError("runtest is overridden")

    if func is None:
        fixtures.__signature__ = inspect.Signature()  # type: ignore[attr-defined]
        return fixtures
    sig = inspect.signature(func)
    if "trace" not in sig.parameters:
        raise pytest.UsageError(
            f"@failure_mode function {func.__qualname__} must take a 'trace' argument"
        )
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for n, p in sig.parameters.items() if n != "trace"]
    fixtures.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    if hasattr(func, "pytestmark"):
        fixtures.pytestmark = func.pytestmark  # type: ignore[attr-defined]
    return fixtures


def _items(parent: pytest.Collector, suite: Suite, func: Callable[..., Any] | None) -> Iterator[pytest.Item]:
    callobj = _fixture_signature(func)
    calibrate = parent.config.getoption(opt.dest(opt.CALIBRATE))
    if calibrate:
        # a calibration run measures detectors against labels: modes without labels have nothing to measure
        suite = dataclasses.replace(suite, modes=tuple(m for m in suite.modes if m.labels is not None))
    if not suite.modes:
        return  # a file of probes alone
    if not parent.config.getoption(opt.dest(opt.PER_TRACE)):
        for mode in suite.modes:
            yield ModeItem.from_parent(parent, name=mode.name, callobj=callobj, suite=suite, mode=mode, func=func)
        return
    if suite.target is not None:
        raise parent.CollectError(
            f"{suite.source}: {opt.PER_TRACE} does not support target: yet (the traces do not "
            f"exist until the target runs); run per mode, or save them with {opt.SAVE_TRACES} "
            "and point a definition file at that dataset"
        )
    from .dataset import iter_traces

    try:
        traces = [trace for _line, trace in iter_traces(suite.dataset)]
    except FailmodesError as exc:
        raise parent.CollectError(str(exc)) from None
    # a name no trace has, or a mode with no trace to run, gets one item per mode: it
    # reports the mode as broken or empty, decided over every trace (the same on every xdist worker)
    checked = suite.check_names(traces)
    for mode in suite.modes:
        selected = [(i, t) for i, t in enumerate(traces) if mode.where is None or mode.where(t)]
        if checked[mode.name][0] is not None or not selected:
            yield ModeItem.from_parent(parent, name=mode.name, callobj=callobj, suite=suite, mode=mode, func=func)
            continue
        if calibrate:
            selected = [(i, t) for i, t in selected if mode.labels.human(t)[0] is not None]  # type: ignore[union-attr]
        where_skipped = len(traces) - len(selected)
        for index, trace in selected:
            yield TraceItem.from_parent(
                parent,
                name=f"{mode.name}[{_id_text(trace.id)}]",
                callobj=callobj,
                suite=suite,
                mode=mode,
                func=func,
                trace=trace,
                index=index,
                where_skipped=where_skipped,
                applicable=len(selected),
                notes=checked[mode.name][1],
            )


def _id_text(tid: str) -> str:
    return tid.encode("unicode_escape").decode("ascii").replace("::", ":\\:")


def _needs_model(mode: ModeSpec) -> bool:
    return bool(getattr(mode.detector, "is_async", False))


def _skip_without_model(mode: ModeSpec) -> None:
    if _needs_model(mode) and not mode.detector.spec.resolved_model:  # type: ignore[union-attr]
        from .judge import ENV_MODEL

        # reported at the definition's location, not at this line
        raise pytest.skip.Exception(
            f"judge mode {mode.name!r} needs a model: set {ENV_MODEL}=openai/gpt-4o-mini "
            f"(any litellm model) or judge.model in {mode.source}",
            _use_item_location=True,
        )


class ModeItem(_FailmodesItem):
    """One failure mode over all its traces: the mode's gate."""

    evaluates = "mode"

    def runtest(self) -> None:
        _skip_without_model(self.mode)
        state = session_of(self.config)
        try:
            result = state.mode_result(self)
        except FailmodesError as exc:
            # the report must show the mode as broken, not leave it out (and say "passed")
            broken = finish_mode(self.mode, Aggregator(), [], "", {}, broken=str(exc))
            self.failmodes_payload = state.mode_payload(broken)
            raise
        self.failmodes_payload = state.mode_payload(result)
        if not result.passed:
            from .report.terminal import breach_text

            raise GateBreach(breach_text(result, self.config.getoption(opt.dest(opt.MAX_EXAMPLES))))

    def evaluate_suite(self, selected: set[str]) -> dict[str, ModeResult]:
        """Evaluate the selected modes of this item's suite (one pass over the dataset)."""
        detectors: dict[str, Callable[[Trace], Any]] = {}
        broken: dict[str, str] = {}
        later: set[str] = set()
        for mode in self.suite.modes:
            if mode.name not in selected:
                continue
            if _needs_model(mode) and not mode.detector.spec.resolved_model:  # type: ignore[union-attr]
                later.add(mode.name)  # its own item reports the skip
                continue
            try:
                detectors[mode.name] = self._detector(mode)
            except FailmodesError as exc:
                broken[mode.name] = str(exc)
            except (Exception, pytest.skip.Exception, pytest.fail.Exception):
                if mode.name == self.mode.name:
                    raise
                # another mode's fixture raised (or skipped): leave that mode to its
                # own item, which shows the outcome, instead of failing this one
                later.add(mode.name)
        session = session_of(self.config)
        models = [n for n, d in detectors.items() if getattr(d, "is_async", False)]
        traces, failed = self._run_target(session) if self.suite.target else (None, None)
        return evaluate(
            self.suite,
            detectors,
            only=selected - later,
            broken=broken,
            ctx=session.model_context() if models else None,
            traces=traces,
            failed=failed,
            progress=session.progress(f"judging {', '.join(models)}") if models else None,
            track_members=session.tracks_members,
            samples=session.samples,
            calibrate_only=bool(self.config.getoption(opt.dest(opt.CALIBRATE))),
        ).modes

    def _run_target(self, session: FailmodesSession) -> tuple[list[Trace], dict[str, str]]:
        """Produce the suite's traces with its target fixture (any failure: FailmodesError)."""
        from .dataset import iter_traces
        from .target import produce

        spec = self.suite.target
        assert spec is not None
        app = self._target_app(spec.fixture, file=self.suite.source, line=None, key="target")
        inputs = (trace for _line, trace in iter_traces(self.suite.dataset))
        traces, failed = produce(
            spec, app, inputs, session.model_context(), progress=session.progress(f"running {spec.fixture}")
        )
        session.save_traces(traces, failed)
        return traces, failed


class TraceItem(_FailmodesItem):
    """One failure mode on one trace (``--failmodes-per-trace``)."""

    evaluates = "trace"

    def __init__(
        self, *, trace: Trace, index: int, where_skipped: int, applicable: int, notes: list[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.notes = notes or []
        self.trace = trace
        #: what the mode's run should say whatever the verdicts (a rule naming a tool no trace has)
        self.notes = notes or []
        self.index = index
        self.where_skipped = where_skipped
        self.applicable = applicable
        node_id = getattr(self, "_id", None)
        if hasattr(node_id, "with_params"):
            # pytest >= 9 keeps structured ids: the trace id is the parameter, as in
            # parametrize, so --lf and -k match ids read back from the cache
            assert self.parent is not None  # made by from_parent: a trace item always has its file
            self._id = self.parent.id.child(self.mode.name).with_params(_id_text(trace.id))

    def runtest(self) -> None:
        _skip_without_model(self.mode)
        if _needs_model(self.mode):
            try:
                verdict = session_of(self.config).prefetch(self).result()
            except Exception as exc:  # noqa: BLE001 - a call that died is an error verdict
                verdict = Verdict.error(f"{type(exc).__name__}: {exc}")
        else:
            verdict = detect_one(self._detector(self.mode), self.trace)
        self.failmodes_payload = {
            "kind": "trace",
            "mode": self.mode.key,
            "index": self.index,
            "id": self.trace.id,
            "status": verdict.status,
            "reason": verdict.reason,
            "evidence": verdict.evidence,
            "cohorts": cohort_keys(self.trace, self.suite.cohorts),
            "cluster": cluster_of(self.trace, self.suite.cluster_by),
            "pair": pair_of(self.trace, self.suite.pair_by),
            "spec": session_of(self.config).spec_once(self.mode, self.where_skipped, self.applicable, self.notes),
            "sample": trace_excerpt(self.trace)
            if verdict.status in (FAIL, ERROR) and session_of(self.config).samples
            else None,
        }
        if self.mode.labels is not None:
            human, note = self.mode.labels.human(self.trace)
            if human is not None:
                self.failmodes_payload["human"] = [human, note, self.mode.labels.role(self.trace)]
        if verdict.status == FAIL:
            raise Detected(f"DETECTED {self.mode.name} in {self.trace.id}: {verdict.reason}")
        if verdict.status == ERROR:
            raise Detected(f"ERROR evaluating {self.mode.name} on {self.trace.id}: {verdict.reason}")
        if verdict.status == SKIP:
            pytest.skip(verdict.reason or "mode does not apply")


__all__ += ["GateBreach", "Detected", "Verdict"]
