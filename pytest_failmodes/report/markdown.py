"""The Markdown summary: a GitHub-flavoured table for a CI job summary or a PR comment."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ..engine import ModeResult
from .safe import text
from .terminal import summary_head, table_rows

if TYPE_CHECKING:
    from ..baseline import BaselineComparison

__all__ = ["markdown_lines"]


_MARKDOWN = str.maketrans(
    {
        "\\": "\\\\",
        "|": "\\|",  # would end the cell
        "`": "\\`",  # would open a code span that swallows the cells after it
        "<": "&lt;",  # HTML: GitHub renders tags in a table cell
        ">": "&gt;",
        "&": "&amp;",
    }
)


def _cell(value: str) -> str:
    """One line of inert Markdown: control characters (``\\r`` and ``\\n`` would end the
    table row) shown as escapes, and the characters that format or end a cell escaped."""
    return text(value, newlines=False).translate(_MARKDOWN)


def markdown_lines(results: Sequence[ModeResult], comparison: BaselineComparison | None = None) -> Iterator[str]:
    """The same rows as the terminal table, breached first, as a Markdown table."""
    regressed = {c.mode for c in comparison.regressions} if comparison else set()
    failed = any(not r.passed or r.key in regressed for r in results)
    yield f"### {'❌' if failed else '✅'} pytest-failmodes: {_cell(summary_head(results, comparison))}"
    yield ""
    rows, header, align = table_rows(results, comparison)
    yield "| " + " | ".join(_cell(h) for h in header) + " |"
    yield "|" + "|".join("---:" if a == "right" else ":---" for a in align) + "|"
    for row in rows:
        yield "| " + " | ".join(_cell(c) for c in row) + " |"
    notes = [f"- **{_cell(r.name)}**: {_cell(n)}" for r in results for n in r.notes]
    broken = [f"- **{_cell(r.name)}** could not be evaluated: {_cell(r.broken)}" for r in results if r.broken]
    missing = comparison.missing_line() if comparison else None
    if missing:
        notes.append(f"- {_cell(missing)}")
    if notes or broken:
        yield ""
        yield from broken
        yield from notes
