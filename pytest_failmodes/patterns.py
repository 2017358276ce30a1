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

    __slots__ = ("_compiled", "pattern", "timeout", "literals", "ignore_case")

    def __init__(self, pattern: str) -> None:
        import regex

        self.pattern = pattern
        # VERSION0 is the mode that behaves like ``re``; stated in case a user's
        # environment sets regex.DEFAULT_VERSION to VERSION1
        self._compiled = regex.compile(pattern, regex.VERSION0)
        self.timeout = match_timeout()
        #: texts one of which every match contains (lowered under ``ignore_case``), or None
        self.literals, self.ignore_case = required_literals(pattern)

    def cannot_match(self, text: str, lowered: str | None = None) -> bool:
        """True when no match is possible because ``text`` holds none of :attr:`literals`
        (``lowered``: ``text.lower()``, if the caller has it). False means: search.

        A case-blind pattern is prefiltered only on ASCII text: there, and only there,
        ``str.lower`` finds every spelling the search would (``K``, the Kelvin sign,
        matches ``k`` under ``(?i)``, and lowers to it, but ``ſ`` matches ``s`` and does not)."""
        literals = self.literals
        if literals is None:
            return False
        if self.ignore_case:
            if not text.isascii():
                return False
            hay = text.lower() if lowered is None else lowered
        else:
            hay = text
        for literal in literals:
            if literal in hay:
                return False
        return True

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


#: patterns prefiltered by their literals: no escape, set, brace, comment or named group
#: (whose parses by ``re`` and by ``regex`` could differ), ASCII only
_PLAIN_SYNTAX = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _'-,.:;!|()?*+")
_MIN_LITERAL = 3


def required_literals(pattern: str) -> tuple[tuple[str, ...] | None, bool]:
    """``(literals, ignore_case)``: texts one of which every match of ``pattern`` contains
    (lowered when the whole pattern ignores case), or None when the pattern's syntax is
    outside the plain subset read here or no literal of ``_MIN_LITERAL`` characters is
    required. A search over text holding none of them would find nothing, so rules skip it.

    Read from ``re``'s parse of the pattern: a run of literal characters in a sequence
    is required; a group, an alternation whose every branch requires something, and a
    repeat of at least once pass their requirement up; anything else (a class, a
    lookaround, an optional part, a group with its own flags) requires nothing."""
    import re

    try:
        from re import _constants as c  # type: ignore[attr-defined]
        from re import _parser  # type: ignore[attr-defined]
    except ImportError:  # Python 3.10: the same parser under its old names
        import sre_constants as c  # type: ignore[no-redef]
        import sre_parse as _parser  # type: ignore[no-redef]

    body = pattern[4:] if pattern.startswith("(?i)") else pattern
    if not pattern or not set(body) <= _PLAIN_SYNTAX or "(?" in body.replace("(?:", ""):
        return None, False
    try:
        parsed = _parser.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None, False
    ignore_case = bool(parsed.state.flags & re.IGNORECASE)
    if parsed.state.flags & ~(re.IGNORECASE | re.UNICODE):
        return None, False
    repeats = (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT))

    def required(items: Any) -> frozenset[str] | None:
        options: list[frozenset[str]] = []
        run: list[str] = []
        for op, av in items:
            if op is c.LITERAL:
                run.append(chr(av))
                continue
            if run:
                options.append(frozenset(("".join(run),)))
                run = []
            found: frozenset[str] | None = None
            if op is c.SUBPATTERN:
                _group, add, remove, sub = av
                found = required(sub) if not (add or remove) else None
            elif op is c.BRANCH:
                parts = [required(branch) for branch in av[1]]
                found = frozenset().union(*parts) if parts and all(parts) else None  # type: ignore[arg-type]
            elif op in repeats and av[0] >= 1:
                found = required(av[2])
            if found:
                options.append(found)
        if run:
            options.append(frozenset(("".join(run),)))
        # the option whose shortest text is longest: the fewest texts found by chance
        best = max(options, key=lambda o: (min(map(len, o)), -len(o)), default=None)
        return best

    best = required(parsed.data)
    if not best or min(map(len, best)) < _MIN_LITERAL:
        return None, False
    literals = sorted({t.lower() for t in best} if ignore_case else best)
    return tuple(literals), ignore_case


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
