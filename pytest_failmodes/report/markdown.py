"""The Markdown summary for a CI job summary or a PR comment: a headline, the breached
and regressed rows, and every row in a collapsed ``<details>`` block, kept under
GitHub's limit for a comment by leaving whole rows out (with a note saying so)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..engine import ModeResult
from ..options import DEFAULT_SORT
from .safe import text
from .terminal import mode_rows, shorten, summary_head, table_rows

if TYPE_CHECKING:
    from ..baseline import BaselineComparison

__all__ = ["markdown_lines", "MAX_CHARS", "markdown_size"]

#: GitHub refuses a comment (and cuts a job summary's display) above this many characters
MAX_CHARS = 65_536
#: a mode name or cohort label longer than this is shortened in the middle (the JSON has it whole)
MAX_LABEL = 100
#: a note (a broken mode's reason, a baseline's missing modes) is shortened the same way
MAX_NOTE = 500


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


def _cell(value: str, limit: int | None = None) -> str:
    """One line of inert Markdown: control characters (``\\r`` and ``\\n`` would end the
    table row) shown as escapes, and the characters that format or end a cell escaped.
    ``limit``: shortened in the middle first, so no cut falls inside an escape."""
    safe = text(value, newlines=False)
    if limit is not None:
        safe = shorten(safe, limit)
    return safe.translate(_MARKDOWN)


def markdown_size(s: str) -> int:
    """Length as GitHub counts it (JavaScript string length: UTF-16 code units, so a
    character outside the BMP counts two)."""
    return len(s.encode("utf-16-le")) // 2


def _table(header: list[str], align: list[str], rows: list[list[str]]) -> tuple[list[str], list[str]]:
    """The header lines and one line per row, each cell at most :data:`MAX_LABEL` long."""
    head = [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|" + "|".join("---:" if a == "right" else ":---" for a in align) + "|",
    ]
    body = [
        "| " + " | ".join(_cell(c, MAX_LABEL) for c in row) + " |"
        for row in rows
    ]
    return head, body


class _Budget:
    """Characters left under the limit; lines are taken whole or not at all."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, line: str) -> bool:
        size = markdown_size(line) + 1  # its newline
        if size > self.left:
            return False
        self.left -= size
        return True


def _cut_note(left_out: int, total: int, full_report: str | None) -> str:
    where = f"the JSON report ({_cell(full_report)})" if full_report else "the JSON report (`--failmodes-report=PATH`)"
    return (
        f"_{left_out} of {total} rows left out to stay under GitHub's {MAX_CHARS:,}-character limit; "
        f"every row is in {where}._"
    )


def markdown_lines(
    results: Sequence[ModeResult],
    comparison: BaselineComparison | None = None,
    *,
    sort: str = DEFAULT_SORT,
    full_report: str | None = None,
    max_chars: int = MAX_CHARS,
) -> list[str]:
    """The summary as Markdown lines, at most ``max_chars`` (as GitHub counts) when
    joined with newlines. Rows are kept in this order while room remains: breached
    and regressed rows (in at most half the room), notes, one row per mode, every cohort row; a table that lost
    rows ends with a note naming how many and where they all are (``full_report``,
    the JSON report's path, when one was written)."""
    regressed = {c.mode for c in comparison.regressions} if comparison else set()
    failed = any(not r.passed or r.key in regressed for r in results)
    if comparison is None and sort == "delta":
        sort = "rate"  # nothing to sort by: the terminal says so
    all_rows, header, align = table_rows(results, comparison, table="all", sort=sort)
    breached_rows, _, _ = table_rows(results, comparison, table="breached", sort=sort)
    modes, mode_header, mode_align = mode_rows(results, comparison, sort=sort)

    notes = [
        f"- **{_cell(r.name, MAX_LABEL)}** could not be evaluated: {_cell(r.broken, MAX_NOTE)}" for r in results if r.broken
    ]
    notes += [f"- **{_cell(r.name, MAX_LABEL)}**: {_cell(n, MAX_NOTE)}" for r in results for n in r.notes]
    missing = comparison.missing_line() if comparison else None
    if missing:
        notes.append(f"- {_cell(missing, MAX_NOTE)}")

    headline = [f"### {'❌' if failed else '✅'} pytest-failmodes: {_cell(summary_head(results, comparison))}", ""]
    summary = f"<summary>Every mode and cohort ({len(modes)} modes, {len(all_rows)} cohort rows)</summary>"
    # blank lines around the block's HTML: GitHub reads Markdown inside it only then
    details_open = ["", "<details>", summary, ""]
    details_close = ["", "</details>"]
    # strictly under the limit, with room for the blank line the job summary adds
    budget = _Budget(max_chars - 2)
    # what is always written: the headline, the block's frame, and room for two cut notes
    worst_note = _cut_note(10**9, 10**9, full_report)
    more_notes = "- _{} more notes are in the JSON report._".format(10**9)
    for line in headline + details_open + details_close + ["", worst_note, "", worst_note, more_notes]:
        if not budget.take(line):
            raise ValueError(f"max_chars={max_chars} leaves no room for the summary's frame")

    def fill(head: list[str], body: list[str], keep: int = 0) -> tuple[list[str], int]:
        """As many rows as fit, leaving ``keep`` characters for what follows (none: not even the header)."""
        kept: list[str] = []
        for line in body:
            if not kept and not all(budget.take(h) for h in head):
                return [], len(body)
            if budget.left - markdown_size(line) - 1 < keep or not budget.take(line):
                break
            kept.append(line)
        return (head + kept if kept else []), len(body) - len(kept)

    out = list(headline)
    cut_above = 0
    if breached_rows:
        head, body = _table(header, align, breached_rows)
        # half the room at most: the block below keeps room for the one row per mode
        lines, cut_above = fill(head, body, keep=budget.left // 2)
        out += lines
    else:
        line = "No cohort breached its gate or regressed."
        if budget.take(line):
            out.append(line)
    if cut_above:
        out += ["", _cut_note(cut_above, len(breached_rows), full_report)]
    kept_notes, cut_notes = fill([""], notes)
    out += kept_notes
    if cut_notes:
        out.append(f"- _{cut_notes} more notes are in the JSON report._")
    out += details_open
    head, body = _table(mode_header, mode_align, modes)
    mode_lines, cut_modes = fill(head, body)
    out += mode_lines
    head, body = _table(header, align, all_rows)
    if mode_lines and budget.take(""):
        out.append("")
    row_lines, cut_rows = fill(head, body)
    out += row_lines
    cut = cut_modes + cut_rows
    if cut:
        out += ["", _cut_note(cut, len(modes) + len(all_rows), full_report)]
    out += details_close
    return out
