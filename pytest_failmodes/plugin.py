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
    group.addoption(
        opt.FAILMODES,
        action="store_true",
        dest=opt.dest(opt.FAILMODES),
        default=False,
        help="Collect failure-mode definitions (*.failmodes.yaml, @failure_mode) and gate on their fail rates.",
    )
    group.addoption(
        opt.PER_TRACE,
        action="store_true",
        dest=opt.dest(opt.PER_TRACE),
        default=False,
        help="One test item per failure mode and trace (mode[trace_id]) instead of one per mode.",
    )
    group.addoption(
        opt.REPORT,
        metavar="PATH",
        dest=opt.dest(opt.REPORT),
        default=None,
        help="Write the JSON report (per-cohort figures and per-trace verdicts) to PATH.",
    )
    group.addoption(
        opt.DATASET,
        metavar="PATH",
        dest=opt.dest(opt.DATASET),
        default=None,
        help="Evaluate every definition file over this dataset instead of the one it names.",
    )
    group.addoption(
        opt.MAX_EXAMPLES,
        metavar="N",
        type=_number(opt.MAX_EXAMPLES, 0),
        dest=opt.dest(opt.MAX_EXAMPLES),
        default=10,
        help="Failing traces listed in a breached mode's report (default: 10).",
    )
    group.addoption(
        opt.CACHE_DIR,
        metavar="DIR",
        dest=opt.dest(opt.CACHE_DIR),
        default=None,
        help="Where model-call results are cached (default: .failmodes under the rootdir; ini failmodes_cache_dir).",
    )
    group.addoption(
        opt.NO_CACHE,
        action="store_true",
        dest=opt.dest(opt.NO_CACHE),
        default=False,
        help="Neither read nor write cached model-call results.",
    )
    group.addoption(
        opt.REFRESH,
        action="store_true",
        dest=opt.dest(opt.REFRESH),
        default=False,
        help="Make every model call again and overwrite the cached results.",
    )
    group.addoption(
        opt.MAX_CONCURRENCY,
        metavar="N",
        type=_number(opt.MAX_CONCURRENCY, 1),
        dest=opt.dest(opt.MAX_CONCURRENCY),
        default=None,
        help="Model calls in flight at once, per process (default: 8; ini failmodes_max_concurrency).",
    )
    group.addoption(
        opt.TIMEOUT,
        metavar="SECONDS",
        type=_number(opt.TIMEOUT, 0.001, float),
        dest=opt.dest(opt.TIMEOUT),
        default=60.0,
        help="Time limit of one model call (default: 60).",
    )
    group.addoption(
        opt.MAX_RETRIES,
        metavar="N",
        type=_number(opt.MAX_RETRIES, 0),
        dest=opt.dest(opt.MAX_RETRIES),
        default=4,
        help="Retries of a model call after 429, 5xx or a timeout before it counts as an error (default: 4).",
    )
    group.addoption(
        opt.MODEL_WORKERS,
        metavar="N|auto",
        type=_workers,
        dest=opt.dest(opt.MODEL_WORKERS),
        default=None,
        help="Processes that make the model calls (default: auto, one per core once a run has many calls; "
        "1 per xdist worker; ini failmodes_model_workers).",
    )
    group.addoption(
        opt.BATCH,
        action="store_true",
        dest=opt.dest(opt.BATCH),
        default=False,
        help="Send every judge call through the provider's batch API (as judge: {batch: true}).",
    )
    group.addoption(
        opt.SAVE_TRACES,
        metavar="PATH",
        dest=opt.dest(opt.SAVE_TRACES),
        default=None,
        help="Write the traces that targets produced to PATH (JSONL).",
    )
    group.addoption(
        opt.BASELINE,
        metavar="PATH",
        dest=opt.dest(opt.BASELINE),
        default=None,
        help="Compare with a saved baseline: a cohort whose fail rate rose significantly fails the run.",
    )
    group.addoption(
        opt.SAVE_BASELINE,
        metavar="PATH",
        nargs="?",
        const=opt.DEFAULT_BASELINE,
        type=_baseline_path,
        dest=opt.dest(opt.SAVE_BASELINE),
        default=None,
        help=f"Save this run as a baseline (default path: {opt.DEFAULT_BASELINE} under the rootdir).",
    )
    group.addoption(
        opt.STRICT_BASELINE,
        action="store_true",
        dest=opt.dest(opt.STRICT_BASELINE),
        default=False,
        help="Fail the run when a mode of the baseline is not in this run (renamed or removed); "
        "without it such modes are listed in every report.",
    )
    group.addoption(
        opt.CORRECTION,
        choices=opt.CORRECTION_CHOICES,
        dest=opt.dest(opt.CORRECTION),
        default=opt.DEFAULT_CORRECTION,
        help="Multiple-comparison correction across all mode x cohort comparisons "
        f"(default: {opt.DEFAULT_CORRECTION}; see docs/ci.md).",
    )
    group.addoption(
        opt.ALPHA,
        metavar="P",
        type=_number(opt.ALPHA, 1e-9, float, below=1.0),
        dest=opt.dest(opt.ALPHA),
        default=0.05,
        help="Significance level of a regression after correction (default: 0.05).",
    )
    group.addoption(
        opt.MIN_INCREASE,
        metavar="RATE",
        type=_number(opt.MIN_INCREASE, 0.0, float, below=1.0),
        dest=opt.dest(opt.MIN_INCREASE),
        default=0.0,
        help="Smallest absolute rise of a fail rate that counts as a regression, e.g. 0.02 (default: 0; gate.min_increase wins).",
    )
    group.addoption(
        opt.MARKDOWN,
        metavar="PATH",
        dest=opt.dest(opt.MARKDOWN),
        default=None,
        help="Write the summary as Markdown to PATH, under GitHub's comment size limit "
        "(also appended to $GITHUB_STEP_SUMMARY when set).",
    )
    group.addoption(
        opt.HTML,
        metavar="PATH",
        dest=opt.dest(opt.HTML),
        default=None,
        help="Write a self-contained HTML report (heat map, table, failing traces) to PATH.",
    )
    group.addoption(
        opt.CALIBRATE,
        action="store_true",
        dest=opt.dest(opt.CALIBRATE),
        default=False,
        help="Only measure detectors against their human labels: run the modes that have labels, on the labelled traces, and print the judge report.",
    )
    group.addoption(
        opt.HISTORY,
        metavar="DIR",
        dest=opt.dest(opt.HISTORY),
        default=None,
        help="Add this run's fail rates per mode and cohort to the run history in DIR, one file per run "
        "(ini failmodes_history; read it with `failmodes history DIR`).",
    )
    parser.addini("failmodes_history", "failmodes: run history directory, relative to the ini file (the option wins).", default=None)
    group.addoption(
        opt.TABLE,
        metavar="|".join(opt.TABLE_CHOICES),
        type=_choice(opt.TABLE, opt.TABLE_CHOICES),
        dest=opt.dest(opt.TABLE),
        default=None,
        help="Cohort rows listed under the one row per mode: breached and regressed ones (default), "
        "the gated ones too, or all (ini failmodes_table).",
    )
    group.addoption(
        opt.SORT,
        metavar="|".join(opt.SORT_CHOICES),
        type=_choice(opt.SORT, opt.SORT_CHOICES),
        dest=opt.dest(opt.SORT),
        default=None,
        help="Order of modes and cohorts, breached first: highest fail rate (default), "
        "largest rise against the baseline, or name (ini failmodes_sort).",
    )
    parser.addini("failmodes_cache_dir", "failmodes: directory of cached model-call results (the option wins).", default=None)
    parser.addini("failmodes_model_workers", "failmodes: processes that make the model calls, N or auto (the option wins).", default="auto")
    parser.addini("failmodes_max_concurrency", "failmodes: model calls in flight at once (the option wins).", default="8")
    parser.addini("failmodes_table", f"failmodes: {'|'.join(opt.TABLE_CHOICES)} (the option wins).", default=opt.DEFAULT_TABLE)
    parser.addini("failmodes_sort", f"failmodes: {'|'.join(opt.SORT_CHOICES)} (the option wins).", default=opt.DEFAULT_SORT)


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
