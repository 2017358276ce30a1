"""pytest hooks only. Without ``--failmodes`` every hook returns at once and
nothing beyond this module and the option names is imported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import options as opt
from .api import SPEC_ATTR


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise pytest.UsageError(f"{opt.MAX_EXAMPLES} takes a whole number >= 0, got {value!r}")
    return n


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
        type=_positive_int,
        dest=opt.dest(opt.MAX_EXAMPLES),
        default=10,
        help="Failing traces listed in a breached mode's report (default: 10).",
    )


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption(opt.dest(opt.FAILMODES)))


def pytest_configure(config: pytest.Config) -> None:
    if not _enabled(config):
        return
    from .session import FailmodesSession

    config.pluginmanager.register(FailmodesSession(config), "failmodes-session")


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
