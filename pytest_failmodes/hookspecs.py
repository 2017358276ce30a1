"""Hooks that pytest-failmodes adds to pytest (``pytest_failmodes_*``).

Implement them in a ``conftest.py`` or a plugin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .detectors import RuleKind
    from .engine import ModeResult


@pytest.hookspec
def pytest_failmodes_rule_kinds() -> Sequence[RuleKind]:
    """Return extra rule kinds usable as ``rule: {<name>: ...}`` in definitions.

    A kind's ``build(value, **options)`` returns a detector (``trace ->
    Verdict | bool``); its keyword parameters are the options the rule
    accepts. A kind with the name of a built-in replaces it.

    Example::

        from pytest_failmodes import RuleKind, Verdict

        def pytest_failmodes_rule_kinds():
            def build(value, field="output"):
                limit = int(value)
                def detect(trace):
                    words = len(str(trace.get(field)).split())
                    return Verdict.fail(f"{words} words") if words > limit else Verdict.pass_()
                return detect
            return [RuleKind("max_words", build)]
    """
    raise NotImplementedError  # a hookspec: pluggy reads its signature, never runs it


@pytest.hookspec
def pytest_failmodes_mode_result(result: ModeResult) -> None:
    """Called on the controller with each failure mode's result, once it is final.

    Example::

        def pytest_failmodes_mode_result(result):
            if not result.passed:
                notify_slack(f"{result.name} breached its gate")
    """
