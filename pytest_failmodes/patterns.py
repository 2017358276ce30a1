"""Regular expressions written by users, matched with a time limit.

A pattern such as ``(a+)+$`` backtracks exponentially in Python's ``re`` on a
string like ``aaaa…b``, and ``re`` cannot be interrupted: one unlucky output
would hang the whole run. The ``regex`` package has ``re``'s syntax and
semantics (``VERSION0``: inline flags such as ``(?i)``, lookarounds,
backreferences, named groups) and stops a match after a time limit, which we
turn into :class:`PatternTimeout`; callers make that the trace's ERROR, never
a pass or a fail.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["UserPattern", "PatternTimeout", "compile_pattern", "cached_pattern", "MATCH_TIMEOUT_S", "ENV_TIMEOUT"]

#: seconds one search may take before it counts as an error (FAILMODES_REGEX_TIMEOUT sets it)
MATCH_TIMEOUT_S = 2.0
ENV_TIMEOUT = "FAILMODES_REGEX_TIMEOUT"


def match_timeout() -> float:
    """The time limit in force: ``FAILMODES_REGEX_TIMEOUT`` seconds, else :data:`MATCH_TIMEOUT_S`."""
    raw = os.environ.get(ENV_TIMEOUT, "").strip()
    if not raw:
        return MATCH_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        # a typo here must not quietly mean "no limit"
        raise ValueError(f"{ENV_TIMEOUT}={raw!r}: expected a number of seconds greater than 0")
    return value


class PatternTimeout(Exception):
    """A search ran past :data:`MATCH_TIMEOUT_S` (catastrophic backtracking)."""

    def __init__(self, pattern: str, seconds: float) -> None:
        self.pattern = pattern
        super().__init__(
            f"regex /{pattern}/ took longer than {seconds:g}s on this text "
            "(catastrophic backtracking?); simplify it, e.g. (a+)+ -> a+"
        )


class UserPattern:
    """A compiled user pattern whose searches are bounded in time."""

    __slots__ = ("_compiled", "pattern", "timeout")

    def __init__(self, pattern: str) -> None:
        import regex

        self.pattern = pattern
        # VERSION0 is the mode that behaves like ``re``; stated in case a user's
        # environment sets regex.DEFAULT_VERSION to VERSION1
        self._compiled = regex.compile(pattern, regex.VERSION0)
        self.timeout = match_timeout()

    @property
    def groups(self) -> int:
        return int(self._compiled.groups)

    def search(self, text: str) -> Any:
        """The first match or None; :class:`PatternTimeout` past the time limit."""
        try:
            return self._compiled.search(text, timeout=self.timeout)
        except TimeoutError:
            raise PatternTimeout(self.pattern, self.timeout) from None

    def finditer(self, text: str) -> Iterator[Any]:
        """Every match; the time limit applies to the whole scan."""
        try:
            yield from self._compiled.finditer(text, timeout=self.timeout)
        except TimeoutError:
            raise PatternTimeout(self.pattern, self.timeout) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UserPattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"UserPattern({self.pattern!r})"


def compile_pattern(pattern: str) -> UserPattern:
    """Compile a user's pattern; ``ValueError("invalid regular expression: …")`` when it is not one."""
    import re

    import regex

    try:
        # re first: its checks and messages are the ones users know, and a
        # pattern re rejects (a repeated group name) must not pass here either
        re.compile(pattern)
        return UserPattern(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    except (regex.error, OverflowError, RecursionError) as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None


def cached_pattern(pattern: str) -> UserPattern:
    """:func:`compile_pattern`, remembered: for patterns inside JSON schemas, matched per trace."""
    return _cached(pattern, match_timeout())


@functools.lru_cache(maxsize=512)
def _cached(pattern: str, _timeout: float) -> UserPattern:
    # keyed on the limit too: a changed FAILMODES_REGEX_TIMEOUT takes effect
    return compile_pattern(pattern)
