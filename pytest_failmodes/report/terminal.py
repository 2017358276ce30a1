"""The terminal summary table and a breached mode's failure text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from ..engine import CohortRow, ModeResult
from .safe import text

if TYPE_CHECKING:
    from ..baseline import BaselineComparison
    from ..llm import ModelStats

__all__ = ["summary_lines", "breach_text", "plural", "pct"]


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _line(value: object) -> str:
    # trace data reaches the terminal: an ESC sequence is shown, never obeyed
    return text(value, newlines=False)


def _short(name: str, width: int = 32) -> str:
    name = _line(name)
    return name if len(name) <= width else name[: width - 1] + "…"


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


def table_rows(
    results: Sequence[ModeResult], comparison: BaselineComparison | None = None
) -> tuple[list[list[str]], list[str], list[str]]:
    """Rows, header and alignment; the err column only when there are errors, the
    baseline columns only when comparing."""
    found = comparison.comparisons if comparison else {}
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
    breached: list[list[str]] = []
    rest: list[list[str]] = []
    for result in results:
        if result.broken:
            breached.append([_short(result.name), "-"] + [""] * (len(header) - 3) + ["BROKEN"])
            continue
        for row in result.rows:
            ci = row.ci
            reasons = [row.breach] if row.breach else []
            if row.cohort == "all" and result.error_breach:
                reasons.append(f"errors {row.errors} > {result.gate.max_errors}")
            if row.cohort == "all" and result.empty_breach:
                reasons.append(f"empty: all {result.skipped} traces skipped")
            cells = [
                _short(result.name),
                _line(row.cohort),
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
            (breached if reasons else rest).append(cells)
    return breached + rest, header, align


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


def summary_lines(results: Sequence[ModeResult], comparison: BaselineComparison | None = None) -> Iterator[str]:
    """The table the team reads: breached rows first."""
    from tabulate import tabulate

    yield _line(summary_head(results, comparison))
    rows, header, align = table_rows(results, comparison)
    yield from tabulate(
        rows, headers=header, tablefmt="simple", disable_numparse=True, colalign=align
    ).splitlines()
    for r in results:
        if r.broken:
            yield _line(f"BROKEN {r.name}: {r.broken}")
        for note in r.notes:
            yield _line(f"note: {r.name}: {note}")
    missing = comparison.missing_line() if comparison else None
    if missing:
        yield _line(f"note: {missing}")


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
