"""The base of pytest-failmodes' pytest items.

:mod:`collect` (mode and trace items) and :mod:`probes.item` build on it. The
session tells the item kinds apart by :attr:`_FailmodesItem.evaluates`, not by
their classes, so it needs neither of those modules and imports run one way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from .detectors.python import AssertionDetector, FixtureRef, PythonRef
from .errors import FailmodesError

if TYPE_CHECKING:
    from .engine import ModeSpec, Suite
    from .trace import Trace

__all__ = ["GateBreach", "Detected"]


class _FailmodesItem(pytest.Function):
    """Shared by both item kinds: fixtures, location and detector resolution."""

    #: what one item covers: ``"mode"`` (a mode over its traces), ``"trace"`` (a mode on one
    #: trace) or ``"probe"``; the session reads this rather than importing the item classes
    evaluates: ClassVar[str] = ""

    def __init__(self, *, suite: Suite, mode: ModeSpec, func: Callable[..., Any] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.mode = mode
        self.user_func = func
        self.failmodes_payload: dict[str, Any] | None = None

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.mode.line - 1, f"failure mode {self.mode.name}"

    def _detector(self, mode: ModeSpec) -> Callable[[Trace], Any]:
        """Resolve a mode's detector for this item; FailmodesError when it cannot be had."""
        det = mode.detector
        if isinstance(det, PythonRef):
            assert self.user_func is not None
            kwargs = {name: self.funcargs[name] for name in self._fixtureinfo.argnames}
            return AssertionDetector(self.user_func, kwargs)
        if not isinstance(det, FixtureRef):
            return det
        try:
            value = self._request.getfixturevalue(det.name)
        except pytest.FixtureLookupError:
            raise FailmodesError(
                f"detector fixture {det.name!r} not found; define it in a conftest.py that "
                f"this file can see (a fixture returning trace -> Verdict | bool)",
                file=mode.source,
                line=mode.line,
                key="detector",
            ) from None
        if not callable(value):
            raise FailmodesError(
                f"detector fixture {det.name!r} returned {type(value).__name__}; "
                f"it must return a callable trace -> Verdict | bool",
                file=mode.source,
                line=mode.line,
                key="detector",
            )
        return value  # type: ignore[no-any-return]

    def _target_app(self, name: str, *, file: str, line: int | None, key: str) -> Callable[[str], Any]:
        """The application a target fixture returns; FailmodesError when it cannot be had."""
        try:
            app = self._request.getfixturevalue(name)
        except pytest.FixtureLookupError:
            raise FailmodesError(
                f"target fixture {name!r} not found; define it in a conftest.py this file can see",
                file=file,
                line=line,
                key=key,
            ) from None
        if not callable(app):
            raise FailmodesError(
                f"target fixture {name!r} returned {type(app).__name__}; it must return "
                "a callable input -> output (str, Trace or mapping)",
                file=file,
                line=line,
                key=key,
            )
        return app  # type: ignore[no-any-return]

    # mirrors pytest.Function.repr_failure, which drops Node's style parameter (and ignores [override] itself)
    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        exc = excinfo.value
        if isinstance(exc, _Outcome):
            return exc.text
        if isinstance(exc, FailmodesError):
            return str(exc)
        # Function.repr_failure takes no style: passing one was an INTERNALERROR
        # whenever user code (a detector fixture, say) raised
        return super().repr_failure(excinfo)


class _Outcome(Exception):
    """A failure that is a result, not a crash: shown as text without a traceback."""

    def __init__(self, text: str) -> None:
        from .report.safe import text as shown

        text = shown(text)  # reasons and ids are trace data: shown on the terminal, never obeyed
        super().__init__(text)
        self.text = text


class GateBreach(_Outcome):
    pass


class Detected(_Outcome):
    pass
