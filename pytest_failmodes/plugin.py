"""pytest hooks only. Without ``--failmodes`` every hook returns at once and
nothing beyond this module and the option names is imported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import options as opt
from .api import SPEC_ATTR


def _baseline_path(value: str) -> str:
    """The path of --failmodes-save-baseline. Its value is optional, so in
    ``--failmodes-save-baseline tests/x.failmodes.yaml`` argparse takes the next
    word as the path: writing JSON over it would destroy a user's file."""
    if not value.endswith(".json"):
        raise pytest.UsageError(
            f"{opt.SAVE_BASELINE} writes a .json file, got {value!r}; "
            f"write {opt.SAVE_BASELINE}=PATH.json (with '='), or the option alone for {opt.DEFAULT_BASELINE}"
        )
    return value


def _number(option: str, minimum: float, kind: type = int, below: float | None = None) -> Any:
    """An argparse ``type=`` that names the option in its error; ``below``: an exclusive maximum."""

    def parse(value: str) -> Any:
        try:
            n = kind(value)
        except ValueError:
            n = None
        # `not >=` also turns away nan
        if n is None or not n >= minimum or (below is not None and not n < below):
            what = "a whole number" if kind is int else "a number"
            upper = f" and < {below}" if below is not None else ""
            raise pytest.UsageError(f"{option} takes {what} >= {minimum}{upper}, got {value!r}")
        return n

    return parse


def _choice(option: str, choices: tuple[str, ...]) -> Any:
    """An argparse ``type=`` for a word out of ``choices``: one usage error with the nearest choice."""

    def parse(value: str) -> str:
        return opt.choice(option, value, choices)

    return parse


def _workers(value: str) -> str:
    """``--failmodes-model-workers``: ``auto`` or a whole number >= 1 (kept as text: options travel to xdist workers)."""
    if value.strip().lower() == "auto":
        return "auto"
    return str(_number(opt.MODEL_WORKERS, 1)(value))


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("failmodes", "failure-mode regression testing (pytest-failmodes)")

    def flag(name: str, help: str) -> None:
        group.addoption(name, action="store_true", dest=opt.dest(name), default=False, help=help)

    def value(name: str, metavar: str, help: str, default: Any = None, **kwargs: Any) -> None:
        group.addoption(name, metavar=metavar, dest=opt.dest(name), default=default, help=help, **kwargs)

    flag(opt.FAILMODES, "Collect failure-mode definitions (*.failmodes.yaml, @failure_mode) and gate on their fail rates.")
    flag(opt.PER_TRACE, "One test item per failure mode and trace (mode[trace_id]) instead of one per mode.")
    value(opt.REPORT, "PATH", "Write the JSON report (per-cohort figures and per-trace verdicts) to PATH.")
    value(opt.DATASET, "PATH", "Evaluate every definition file over this dataset instead of the one it names.")
    value(opt.MAX_EXAMPLES, "N", "Failing traces listed in a breached mode's report (default: 10).",
          10, type=_number(opt.MAX_EXAMPLES, 0))  # fmt: skip
    value(opt.CACHE_DIR, "DIR", "Where model-call results are cached "
          "(default: .failmodes under the rootdir; ini failmodes_cache_dir).")  # fmt: skip
    flag(opt.NO_CACHE, "Neither read nor write cached model-call results.")
    flag(opt.REFRESH, "Make every model call again and overwrite the cached results.")
    value(opt.MAX_CONCURRENCY, "N", "Model calls in flight at once, per process (default: 8; ini failmodes_max_concurrency).",
          type=_number(opt.MAX_CONCURRENCY, 1))  # fmt: skip
    value(opt.TIMEOUT, "SECONDS", "Time limit of one model call (default: 60).", 60.0, type=_number(opt.TIMEOUT, 0.001, float))
    value(opt.MAX_RETRIES, "N", "Retries of a model call after 429, 5xx or a timeout before it counts as an error (default: 4).",
          4, type=_number(opt.MAX_RETRIES, 0))  # fmt: skip
    value(opt.MODEL_WORKERS, "N|auto", "Processes that make the model calls (default: auto, one per core once a run "
          "has many calls; 1 per xdist worker; ini failmodes_model_workers).", type=_workers)  # fmt: skip
    flag(opt.BATCH, "Send every judge call through the provider's batch API (as judge: {batch: true}).")
    value(opt.SAVE_TRACES, "PATH", "Write the traces that targets produced to PATH (JSONL).")
    value(opt.BASELINE, "PATH", "Compare with a saved baseline: a cohort whose fail rate rose significantly fails the run.")
    value(opt.SAVE_BASELINE, "PATH", f"Save this run as a baseline (default path: {opt.DEFAULT_BASELINE} under the rootdir).",
          nargs="?", const=opt.DEFAULT_BASELINE, type=_baseline_path)  # fmt: skip
    flag(opt.STRICT_BASELINE, "Fail the run when a mode of the baseline is not in this run (renamed or removed); "
         "without it such modes are listed in every report.")  # fmt: skip
    group.addoption(
        opt.CORRECTION,
        choices=opt.CORRECTION_CHOICES,
        dest=opt.dest(opt.CORRECTION),
        default=opt.DEFAULT_CORRECTION,
        help="Multiple-comparison correction across all mode x cohort comparisons "
        f"(default: {opt.DEFAULT_CORRECTION}; see docs/ci.md).",
    )
    value(opt.ALPHA, "P", "Significance level of a regression after correction (default: 0.05).",
          0.05, type=_number(opt.ALPHA, 1e-9, float, below=1.0))  # fmt: skip
    value(opt.MIN_INCREASE, "RATE", "Smallest absolute rise of a fail rate that counts as a regression, e.g. 0.02 "
          "(default: 0; gate.min_increase wins).", 0.0, type=_number(opt.MIN_INCREASE, 0.0, float, below=1.0))  # fmt: skip
    value(opt.MARKDOWN, "PATH", "Write the summary as Markdown to PATH, under GitHub's comment size limit "
          "(also appended to $GITHUB_STEP_SUMMARY when set).")  # fmt: skip
    value(opt.HTML, "PATH", "Write a self-contained HTML report (heat map, table, failing traces) to PATH.")
    flag(opt.CALIBRATE, "Only measure detectors against their human labels: run the modes that have labels, "
         "on the labelled traces, and print the judge report.")  # fmt: skip
    value(opt.HISTORY, "DIR", "Add this run's fail rates per mode and cohort to the run history in DIR, one file per run "
          "(ini failmodes_history; read it with `failmodes history DIR`).")  # fmt: skip
    value(opt.TABLE, "|".join(opt.TABLE_CHOICES), "Cohort rows listed under the one row per mode: breached and regressed "
          "ones (default), the gated ones too, or all (ini failmodes_table).",
          type=_choice(opt.TABLE, opt.TABLE_CHOICES))  # fmt: skip
    value(opt.SORT, "|".join(opt.SORT_CHOICES), "Order of modes and cohorts, breached first: highest fail rate (default), "
          "largest rise against the baseline, or name (ini failmodes_sort).",
          type=_choice(opt.SORT, opt.SORT_CHOICES))  # fmt: skip
    ini = parser.addini
    ini("failmodes_history", "failmodes: run history directory, relative to the ini file (the option wins).", default=None)
    ini("failmodes_cache_dir", "failmodes: directory of cached model-call results (the option wins).", default=None)
    ini("failmodes_model_workers", "failmodes: processes that make the model calls, N or auto (the option wins).", default="auto")
    ini("failmodes_max_concurrency", "failmodes: model calls in flight at once (the option wins).", default="8")
    ini("failmodes_table", f"failmodes: {'|'.join(opt.TABLE_CHOICES)} (the option wins).", default=opt.DEFAULT_TABLE)
    ini("failmodes_sort", f"failmodes: {'|'.join(opt.SORT_CHOICES)} (the option wins).", default=opt.DEFAULT_SORT)


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption(opt.dest(opt.FAILMODES)))


def pytest_configure(config: pytest.Config) -> None:
    if not _enabled(config):
        return
    from .session import FailmodesSession

    if config.getoption(opt.dest(opt.MODEL_WORKERS)) is None:
        try:
            _workers(str(config.getini("failmodes_model_workers") or "auto"))
        except pytest.UsageError as exc:
            raise pytest.UsageError(f"ini failmodes_model_workers: {exc}") from None
    config.pluginmanager.register(FailmodesSession(config), "failmodes-session")


def pytest_report_collectionfinish(config: pytest.Config) -> list[str] | None:
    if not _enabled(config):
        return None
    from .collect import outside_rootdir_lines

    return outside_rootdir_lines(config)


@pytest.hookimpl(trylast=True)
def pytest_failmodes_rule_kinds() -> Any:
    from .detectors.rules import BUILTIN_RULE_KINDS

    return BUILTIN_RULE_KINDS


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not _enabled(parent.config):
        return None
    from .definitions import is_definition_file

    if not is_definition_file(file_path):
        return None
    from .collect import DefinitionFile

    return DefinitionFile.from_parent(parent, path=file_path)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    if not _enabled(collector.config) or not callable(obj):
        return None
    spec = getattr(obj, SPEC_ATTR, None)
    if not isinstance(spec, dict):
        return None
    from .collect import python_mode_items

    return python_mode_items(collector, name, obj, spec)
