"""The terminal summary table and a breached mode's failure text."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..engine import CohortRow, ModeResult
from ..options import DEFAULT_SORT, DEFAULT_TABLE, SORT, TABLE
from .safe import text

if TYPE_CHECKING:
    from ..baseline import BaselineComparison
    from ..llm import ModelStats
    from ..regression import Comparison

__all__ = ["summary_lines", "mode_rows", "table_rows", "breach_text", "plural", "pct", "shorten", "display_width"]


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _line(value: object) -> str:
    # trace data reaches the terminal: an ESC sequence is shown, never obeyed
    return text(value, newlines=False)


def _char_width(char: str) -> int:
    # combining marks take no column, East Asian wide and fullwidth characters two
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(s: str) -> int:
    """Columns ``s`` takes in a terminal (wide characters count two)."""
    return sum(_char_width(c) for c in s)


def shorten(s: str, width: int) -> str:
    """``s`` cut in the middle to at most ``width`` columns, with "…" where the cut is:
    a cohort label's field names start it and its last values end it, and both say
    which cohort it is. Pass text that is already safe (:func:`_line`): the cut then
    falls between visible characters, never inside an escape sequence."""
    if display_width(s) <= width:
        return s
    room = max(width - 1, 0)
    head_room = (room + 1) // 2
    head: list[str] = []
    used = 0
    for c in s:
        w = _char_width(c)
        if used + w > head_room:
            break
        head.append(c)
        used += w
    tail: list[str] = []
    tail_room = room - used
    used = 0
    for c in reversed(s):
        w = _char_width(c)
        if used + w > tail_room:
            break
        tail.append(c)
        used += w
    return "".join(head) + "…" + "".join(reversed(tail))


def _gate_text(result: ModeResult, row: CohortRow) -> str:
    if result.empty and row.cohort == "all":
        return "empty (allowed)" if result.gate.allow_empty else "EMPTY"
    if row.breach:
        return f"FAIL ({row.breach})"
    if row.small:
        return f"small (n<{result.gate.min_cohort_size})"
    if row.limit is None:
        return "-"
    return "ok" if row.gated else "not gated"


class _Label(str):
    """A cell the table may shorten in the middle to fit the terminal (mode names,
    cohort labels); ``suffix`` (a rate after a label) is kept whole."""

    suffix: str = ""

    def __new__(cls, value: str, suffix: str = "") -> _Label:
        cell = super().__new__(cls, value + suffix)
        cell.suffix = suffix
        return cell


#: a label column is never shortened below this many columns, whatever the terminal's width
MIN_LABEL = 12


def _fit(rows: list[list[str]], header: list[str], width: int | None) -> list[list[str]]:
    """``rows`` with their label cells shortened so the table is at most ``width``
    columns wide. The widest label column gives way first; none goes below
    :data:`MIN_LABEL` (a table that still does not fit is wider than ``width``)."""
    if width is None or not rows:
        return rows
    ncols = len(header)
    widths = [max([display_width(header[i])] + [display_width(r[i]) for r in rows]) for i in range(ncols)]
    labels = [i for i in range(ncols) if any(isinstance(r[i], _Label) for r in rows)]
    floors = {
        i: max(MIN_LABEL + max(display_width(getattr(r[i], "suffix", "")) for r in rows), display_width(header[i]))
        for i in labels
    }
    excess = sum(widths) + len(_GAP) * (ncols - 1) - width
    while excess > 0:
        shrinkable = [j for j in labels if widths[j] > floors[j]]
        if not shrinkable:
            break
        widths[max(shrinkable, key=lambda j: widths[j])] -= 1
        excess -= 1
    out = []
    for r in rows:
        cells = list(r)
        for i in labels:
            cell = cells[i]
            if isinstance(cell, _Label) and display_width(cell) > widths[i]:
                keep = max(widths[i] - display_width(cell.suffix), 1)
                cells[i] = shorten(cell[: len(cell) - len(cell.suffix)], keep) + cell.suffix
        out.append(cells)
    return out


_GAP = "  "


def _pad(cell: str, width: int, align: str) -> str:
    # padded by display width (tabulate pads by code points without wcwidth, so a
    # wide character would push the rest of its row right)
    fill = " " * (width - display_width(cell))
    return fill + cell if align == "right" else cell + fill


def _render(rows: list[list[str]], header: list[str], align: list[str], width: int | None) -> list[str]:
    """A plain table (header, dashes, rows; two spaces between columns), shortened to ``width``."""
    fitted = _fit(rows, header, width)
    widths = [max([display_width(header[i])] + [display_width(r[i]) for r in fitted]) for i in range(len(header))]
    lines = [_GAP.join(_pad(h, w, a) for h, w, a in zip(header, widths, align)).rstrip()]
    lines.append(_GAP.join("-" * w for w in widths))
    lines.extend(_GAP.join(_pad(c, w, a) for c, w, a in zip(r, widths, align)).rstrip() for r in fitted)
    return lines


class _Entry:
    """One mode × cohort row of the table and what orders and selects it."""

    __slots__ = ("result", "row", "comparison", "failed", "cells")

    def __init__(self, result: ModeResult, row: CohortRow | None, comparison: Comparison | None, failed: bool, cells: list[str]) -> None:
        self.result = result
        self.row = row
        self.comparison = comparison
        self.failed = failed
        self.cells = cells


def _columns(results: Sequence[ModeResult], comparison: BaselineComparison | None) -> tuple[list[str], list[str], bool, bool]:
    with_errors = any(r.errors for r in results)
    corrected = any(row.corrected is not None for r in results for row in r.rows)
    header = ["mode", "cohort", "n", "fail", "rate", "95% CI"]
    align = ["left", "left", "right", "right", "right", "left"]
    if corrected:
        # observed and judge-error-corrected rates side by side, only when some mode has labels
        header += ["corrected", "corr. 95% CI"]
        align += ["right", "left"]
    header.append("limit")
    align.append("right")
    if comparison:
        header += ["base", "Δ", "p (adj.)"]
        align += ["right", "right", "right"]
    if with_errors:
        header.append("err")
        align.append("right")
    header.append("gate")
    align.append("left")
    return header, align, corrected, with_errors


def _entries(results: Sequence[ModeResult], comparison: BaselineComparison | None) -> tuple[list[_Entry], list[str], list[str]]:
    """Every cohort row of every mode (a broken mode: one row), in the results' order."""
    found = comparison.comparisons if comparison else {}
    header, align, corrected, with_errors = _columns(results, comparison)
    entries: list[_Entry] = []
    for result in results:
        if result.broken:
            cells = [_Label(_line(result.name)), "-"] + [""] * (len(header) - 3) + ["BROKEN"]
            entries.append(_Entry(result, None, None, True, cells))
            continue
        for row in result.rows:
            ci = row.ci
            reasons = [row.breach] if row.breach else []
            if row.cohort == "all" and result.error_breach:
                reasons.append(f"errors {row.errors} > {result.gate.max_errors}")
            if row.cohort == "all" and result.empty_breach:
                reasons.append(f"empty: all {result.skipped} traces skipped")
            cells = [
                _Label(_line(result.name)),
                _Label(_line(row.cohort)),
                str(row.n),
                str(row.fails),
                pct(row.rate),
                f"[{pct(ci[0])}, {pct(ci[1])}]" if ci else "-",
            ]
            if corrected:
                cr = row.corrected or {}
                cells += [
                    pct(cr.get("rate")),
                    f"[{pct(cr['ci_low'])}, {pct(cr['ci_high'])}]" if cr.get("ci_low") is not None else "-",
                ]
            cells.append(pct(row.limit) if row.limit is not None else "-")
            c = found.get((result.key, row.cohort))
            if comparison:
                if c is None:
                    cells += ["-", "-", "-"]
                else:
                    cells += [
                        pct(c.base_fails / c.base_n if c.base_n else None),
                        f"{100 * c.delta:+.1f}pp" if c.delta is not None else "-",
                        f"{c.p_adjusted:.3g}" if c.p_adjusted is not None else "-",
                    ]
                    if c.regression:
                        reasons.append(f"regression p={c.p_adjusted:.2g}")
            if with_errors:
                cells.append(str(row.errors))
            if reasons:
                gate = f"FAIL ({'; '.join(reasons)})"
            else:
                gate = _gate_text(result, row)
                if c is not None and c.improvement:
                    gate += " (improved)"
            cells.append(gate)
            entries.append(_Entry(result, row, c, bool(reasons), cells))
    return entries, header, align


def _descending(x: float | None) -> tuple[bool, float]:
    # highest first, rows without a figure last
    return (x is None, -(x or 0.0))


def _row_key(entry: _Entry, sort: str) -> tuple[Any, ...]:
    row, c = entry.row, entry.comparison
    rate = row.rate if row else None
    if sort == "name":
        return (row.cohort if row else "",)
    if sort == "delta":
        return (_descending(c.delta if c else None), _descending(rate))
    return (_descending(rate),)


def _mode_failed(entries: Sequence[_Entry]) -> bool:
    return any(e.failed for e in entries)


def _ordered(
    results: Sequence[ModeResult], comparison: BaselineComparison | None, sort: str
) -> tuple[list[tuple[ModeResult, list[_Entry]]], list[str], list[str]]:
    """Modes, breached ones first, then by ``sort`` of their overall row; within a mode
    its overall row, then its breached cohorts, then the rest, each by ``sort``."""
    entries, header, align = _entries(results, comparison)
    by_mode: dict[str, list[_Entry]] = {}
    for e in entries:
        by_mode.setdefault(e.result.key, []).append(e)
    groups = []
    for result in results:
        own = by_mode.get(result.key, [])
        overall = [e for e in own if e.row is None or e.row.cohort == "all"]
        cohorts = sorted((e for e in own if e not in overall), key=lambda e: (not e.failed, _row_key(e, sort)))
        groups.append((result, overall + cohorts))

    def mode_key(group: tuple[ModeResult, list[_Entry]]) -> tuple[Any, ...]:
        result, own = group
        first = own[0] if own else None
        key = (result.name,) if sort == "name" or first is None else _row_key(first, sort)
        return (not _mode_failed(own), key)

    # sorted is stable: modes that tie keep the run's order
    return sorted(groups, key=mode_key), header, align


def table_rows(
    results: Sequence[ModeResult],
    comparison: BaselineComparison | None = None,
    *,
    table: str = "all",
    sort: str = "rate",
) -> tuple[list[list[str]], list[str], list[str]]:
    """Cohort rows, header and alignment: every row (``table="all"``), the rows a gate
    checks (``"gated"``) or the breached and regressed rows only (``"breached"``).
    The err column only when there are errors, the baseline columns only when comparing."""
    groups, header, align = _ordered(results, comparison, sort)
    rows = []
    for _result, own in groups:
        for e in own:
            if table == "all" or e.failed or (table == "gated" and e.row is not None and e.row.gated):
                rows.append(e.cells)
    return rows, header, align


def _mode_gate(result: ModeResult, own: Sequence[_Entry]) -> str:
    if result.broken:
        return "BROKEN"
    if _mode_failed(own):
        # which limit or regression: the cohort rows under this table say
        return "FAIL"
    if result.empty:
        return "empty (allowed)"
    return "ok" if any(r.gated for r in result.rows) else "not gated"


def mode_rows(
    results: Sequence[ModeResult], comparison: BaselineComparison | None = None, *, sort: str = "rate"
) -> tuple[list[list[str]], list[str], list[str]]:
    """One row per mode: its overall rate and interval, its worst cohort (the highest
    rate among breached cohorts, else among those big enough to be gated), how many
    of its cohorts breached (a limit or a regression), and its gate."""
    groups, _header, _align = _ordered(results, comparison, sort)
    with_errors = any(r.errors for r in results)
    header = ["mode", "n", "rate", "95% CI", "worst cohort", "breached"]
    align = ["left", "right", "right", "left", "left", "right"]
    if comparison:
        header.append("Δ")
        align.append("right")
    if with_errors:
        header.append("err")
        align.append("right")
    header.append("gate")
    align.append("left")
    rows = []
    for result, own in groups:
        overall = next((e for e in own if e.row is not None and e.row.cohort == "all"), None)
        cohorts = [e for e in own if e.row is not None and e.row.cohort != "all"]
        candidates = [e for e in cohorts if e.failed or not e.row.small]  # type: ignore[union-attr]
        worst = max(candidates, key=lambda e: (e.failed, e.row.rate or 0.0), default=None)  # type: ignore[union-attr]
        cells: list[str] = [_Label(_line(result.name))]
        if overall is None or overall.row is None:
            cells += ["-", "-", "-"]
        else:
            ci = overall.row.ci
            cells += [str(overall.row.n), pct(overall.row.rate), f"[{pct(ci[0])}, {pct(ci[1])}]" if ci else "-"]
        # a worst cohort at 0% is no worse than the others: naming one would mislead
        if worst is not None and worst.row is not None and (worst.failed or worst.row.fails):
            cells.append(_Label(_line(worst.row.cohort), f" {pct(worst.row.rate)}"))
        else:
            cells.append("-")
        cells.append(f"{sum(e.failed for e in cohorts)}/{len(cohorts)}" if cohorts else "-")
        if comparison:
            c = overall.comparison if overall is not None else None
            cells.append(f"{100 * c.delta:+.1f}pp" if c is not None and c.delta is not None else "-")
        if with_errors:
            cells.append(str(result.errors))
        cells.append(_mode_gate(result, own))
        rows.append(cells)
    return rows, header, align


def summary_head(results: Sequence[ModeResult], comparison: BaselineComparison | None = None) -> str:
    """One line: how many modes and files, how many modes breached, detector errors,
    and regressed cohort rows (and the modes they are in)."""
    regressed = {c.mode for c in comparison.regressions} if comparison else set()
    failed = [r for r in results if not r.passed or r.key in regressed]
    errors = sum(r.errors for r in results)
    files = len({r.source for r in results})
    head = f"{plural(len(results), 'failure mode')} in {plural(files, 'file')}: "
    # modes and cohort rows are different units: a mode is breached when any of its
    # rows is, so the counts say which one they count
    head += f"{plural(len(failed), 'mode')} breached" if failed else "all gates passed"
    if errors:
        head += f", {plural(errors, 'detector error')}"
    if comparison:
        found = comparison.regressions
        head += f"; against {comparison.baseline}: {plural(len(found), 'regression')}"
        if found:
            head += f" in {plural(len({c.mode for c in found}), 'mode')}"
    return head


def sort_note(sort: str, comparison: BaselineComparison | None, sort_option: str = SORT) -> str | None:
    """Sorting by Δ without a baseline has nothing to sort by: say so, sort by rate."""
    if sort == "delta" and comparison is None:
        return f"{sort_option}=delta needs a baseline to compare with (no Δ without one); sorted by rate"
    return None


def _compact_lines(
    results: Sequence[ModeResult],
    comparison: BaselineComparison | None,
    *,
    table: str,
    sort: str,
    width: int | None,
    table_option: str,
) -> Iterator[str]:
    """One row per mode, then the cohort rows ``table`` selects, both fitted to ``width``."""
    rows, header, align = mode_rows(results, comparison, sort=sort)
    yield from _render(rows, header, align, width)
    selected, header, align = table_rows(results, comparison, table=table, sort=sort)
    total = len(table_rows(results, comparison, table="all", sort=sort)[0])
    if selected:
        yield ""
        yield from _render(selected, header, align, width)
    if len(selected) < total:
        what = "breached or regressed" if table == "breached" else "gated"
        yield _line(
            f"{len(selected)} of {total} cohort rows ({what}); {table_option}=all for all"
            if selected
            else f"no cohort row {what} ({total} rows; {table_option}=all for all)"
        )


def summary_lines(
    results: Sequence[ModeResult],
    comparison: BaselineComparison | None = None,
    *,
    table: str = DEFAULT_TABLE,
    sort: str = DEFAULT_SORT,
    width: int | None = None,
    table_option: str = TABLE,
    sort_option: str = SORT,
) -> Iterator[str]:
    """What the team reads: one row per mode, then the cohort rows ``table`` selects
    (breached and regressed ones by default, or the rows gates check), at most
    ``width`` columns wide where shortening labels can make it so; or, with
    ``table="all"``, every cohort row of every mode in one table with full labels.
    ``table_option`` / ``sort_option``: the names the user sets these by, for the
    lines that mention them."""
    note = sort_note(sort, comparison, sort_option)
    if note:
        sort = "rate"
    yield _line(summary_head(results, comparison))
    if table == "all":
        # the whole table, as the JSON report has it: full labels however wide, to read or grep
        rows, header, align = table_rows(results, comparison, table="all", sort=sort)
        yield from _render(rows, header, align, None)
    else:
        yield from _compact_lines(results, comparison, table=table, sort=sort, width=width, table_option=table_option)
    for r in results:
        if r.broken:
            yield _line(f"BROKEN {r.name}: {r.broken}")
        for n in r.notes:
            yield _line(f"note: {r.name}: {n}")
    missing = comparison.missing_line() if comparison else None
    if missing:
        yield _line(f"note: {missing}")
    if note:
        yield _line(f"note: {note}")


def detection_lines(results: Sequence[ModeResult], max_examples: int) -> Iterator[str]:
    """The failing traces (and errors) of each mode, with reasons."""
    for result in results:
        for status, title in (("fail", "detected"), ("error", "errors")):
            lines = list(_examples(result, status, f"{result.name}: {title}", max_examples))
            yield from lines


def breach_text(result: ModeResult, max_examples: int) -> str:
    """Why a mode failed its gate, and its first failing traces."""
    lines = []
    if result.broken:
        return _line(f"failure mode {result.name!r} could not be evaluated: {result.broken}")
    if result.empty_breach and not result.breached_rows and not result.error_breach:
        lines.append(_line(f"failure mode {result.name!r} is empty:"))
    else:
        lines.append(_line(f"failure mode {result.name!r} breached its gate (gate_on={result.gate.gate_on}):"))
    for row in result.breached_rows:
        ci = row.ci
        observed = f"{row.fails}/{row.n} = {pct(row.rate)} [{pct(ci[0]) if ci else '-'}, {pct(ci[1]) if ci else '-'}]"
        if row.breach == "corrected limit" and row.corrected:
            c = row.corrected
            figure = {"point": "corrected", "upper": "corrected upper bound", "lower": "corrected lower bound"}
            value = {"point": c["rate"], "upper": c["ci_high"], "lower": c["ci_low"]}[result.gate.gate_on]
            lines.append(
                f"  {_line(row.cohort)}: {figure[result.gate.gate_on]} {pct(value)} > limit {pct(row.limit)} "
                f"(corrected {pct(c['rate'])} [{pct(c['ci_low'])}, {pct(c['ci_high'])}]; observed {observed})"
            )
            continue
        lines.append(f"  {_line(row.cohort)}: {observed} > limit {pct(row.limit)}")
    if result.error_breach:
        lines.append(f"  errors: {result.errors} > max_errors {result.gate.max_errors}")
    if result.empty_breach:
        lines.append(
            f"  empty: all {plural(result.skipped, 'trace')} were skipped (where:, or no trace has the label), "
            "so nothing was checked; set allow_empty: true if that is expected"
        )
    lines.extend(_examples(result, "fail", "failing traces", max_examples))
    lines.extend(_examples(result, "error", "errors", max_examples))
    return "\n".join(lines)


def _examples(result: ModeResult, status: str, title: str, limit: int) -> Iterable[str]:
    picked = [(tid, reason) for tid, st, reason, _ in result.verdicts() if st == status]
    if not picked or limit == 0:
        return []
    shown = picked[:limit]
    out = [_line(f"{title} (first {len(shown)} of {len(picked)}):" if len(picked) > len(shown) else f"{title}:")]
    # the first line of a reason (an assertion's message, not pytest's explanation under
    # it); the whole reason is in the JSON report
    out.extend(_line(f"  {tid}: {reason.split(chr(10), 1)[0]}") for tid, reason in shown)
    return out


def _cost(s: ModelStats) -> str:
    if not s.calls or (not s.cost_known and s.cost == 0):
        return "-"  # no call, or no call with a known price (a local model, a target)
    return f"${s.cost:.4f}" if s.cost_known else f"${s.cost:.4f}+?"


def model_lines(stats: Mapping[str, ModelStats]) -> Iterator[str]:
    """Calls, cache hits, errors, tokens, cost and latency per model."""
    from tabulate import tabulate

    rows = []
    for model in sorted(stats):
        s = stats[model]
        p50, p95 = s.percentile(0.5), s.percentile(0.95)
        rows.append(
            [
                model,
                str(s.calls),
                str(s.cache_hits),
                str(s.errors),
                str(s.retries),
                f"{s.prompt_tokens:,}/{s.completion_tokens:,}",
                _cost(s),
                f"{p50 * 1000:.0f} ms" if p50 is not None else "-",
                f"{p95 * 1000:.0f} ms" if p95 is not None else "-",
            ]
        )
    header = ["model", "calls", "cached", "errors", "retries", "tokens in/out", "cost", "p50", "p95"]
    align = ["left"] + ["right"] * 8
    yield "model calls (cost from litellm's local price map; +? = some calls had no known price)"
    yield from tabulate(rows, headers=header, tablefmt="simple", disable_numparse=True, colalign=align).splitlines()
