"""Detectors written in Python: fixture detectors and ``@failure_mode`` functions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..trace import Trace
from ..verdict import Verdict

__all__ = ["AssertionDetector", "FixtureRef", "PythonRef"]


@dataclass(frozen=True)
class FixtureRef:
    """A detector named in YAML (``detector: pii_detector``), resolved by pytest at run time."""

    name: str

    def __repr__(self) -> str:
        return f"fixture({self.name})"


@dataclass(frozen=True)
class PythonRef:
    """The ``@failure_mode`` function of a mode, bound to its fixtures at run time."""

    qualname: str

    def __repr__(self) -> str:
        return f"python({self.qualname})"


@dataclass(frozen=True)
class AssertionDetector:
    """Wraps a ``@failure_mode`` test function: an AssertionError means the mode is present."""

    func: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, trace: Trace) -> Verdict | bool:
        try:
            result = self.func(trace=trace, **self.kwargs)
        except AssertionError as exc:
            reason = str(exc).strip() or "assertion failed"
            return Verdict.fail(reason.splitlines()[0] if len(reason) > 500 else reason)
        if isinstance(result, (Verdict, bool)):
            return result
        return Verdict.pass_()

    def __repr__(self) -> str:
        return f"python({getattr(self.func, '__qualname__', self.func)!s})"
