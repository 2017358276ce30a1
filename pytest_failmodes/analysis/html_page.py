"""One self-contained HTML page with every analysis (``failmodes analyze --html``).

No script and no fetch: a Content-Security-Policy forbids both. Every value
is escaped here with ``html.escape``. The heat map uses the report page's
colour scale, so a rate reads the same on both pages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from html import escape
from typing import Any

__all__ = ["render_analysis_page"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1b1b1b;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}th,td{padding:3px 8px;border:1px solid #e2e2e2;text-align:left;vertical-align:top}
th{background:#f6f6f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
.warn{color:#8a4b00}.muted{color:#666}.hm{text-align:center;min-width:64px}.scroll{overflow-x:auto}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = (), cls: str = "") -> Iterator[str]:
    yield f'<div class="scroll"><table{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}><thead><tr>'
    yield "".join(f'<th scope="col">{_e(h)}</th>' for h in headers) + "</tr></thead><tbody>"
    for row in rows:
        yield "<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{_e(v)}</td>' for i, v in enumerate(row)) + "</tr>"
    yield "</tbody></table></div>"


def _heatmap(report: dict[str, Any]) -> Iterator[str]:
    from ..report.html import _heat_colour

    modes = report.get("modes", [])
    cohorts = sorted({row["cohort"] for m in modes for row in m.get("cohorts", [])}, key=lambda c: (c != "all", c))
    yield '<section id="heatmap"><h2>Fail rate by mode and cohort</h2>'
    if not cohorts:
        yield '<p class="muted">The report has no cohort rows.</p></section>'
        return
    yield '<div class="scroll"><table class="heat"><thead><tr><th scope="col">mode</th>'
    yield "".join(f'<th scope="col">{_e(c)}</th>' for c in cohorts) + "</tr></thead><tbody>"
    for m in modes:
        rows = {r["cohort"]: r for r in m.get("cohorts", [])}
        cells = []
        for c in cohorts:
            r = rows.get(c)
            if r is None or r.get("rate") is None:
                cells.append('<td class="hm empty"></td>')
                continue
            bg, fg = _heat_colour(r["rate"])
            tip = f"{m.get('name')} · {c}: {r['fails']}/{r['n']}, 95% CI {_pct(r.get('ci_low'))} – {_pct(r.get('ci_high'))}"
            cells.append(f'<td class="hm" style="background:{bg};color:{fg}" title="{_e(tip)}" data-cohort="{_e(c)}">{_e(_pct(r["rate"]))}<br><small>{_e(r["fails"])}/{_e(r["n"])}</small></td>')
        yield f'<tr><th scope="row">{_e(m.get("name"))}</th>{"".join(cells)}</tr>'
    yield "</tbody></table></div></section>"


def _slices(results: Sequence[Any]) -> Iterator[str]:
    yield '<section id="slices"><h2>Slices that fail more than the rest</h2>'
    for r in results:
        yield f'<h3>{_e(r.mode)}</h3><p>{_e(r.fails)}/{_e(r.n)} fail; {_e(r.tested)} slices tested (support ≥ {_e(r.min_support)}, Benjamini–Hochberg q = {_e(r.q)}).</p>'
        for w in r.warnings:
            yield f'<p class="warn">warning: {_e(w)}</p>'
        shown = r.found or r.closest
        if not r.found and r.tested:
            yield '<p class="muted">No slice is significant. The closest (not significant):</p>'
        if shown:
            yield from _table(
                ["slice", "n", "fail", "rate", "rest", "diff", "95% CI", "p", "q"],
                [[s.label, s.n, s.fails, _pct(s.rate), _pct(s.rest_rate), f"{s.diff:+.1%}", f"[{s.diff_low:+.1%}, {s.diff_high:+.1%}]", f"{s.p_value:.2g}", f"{s.q_value:.2g}"] for s in shown[:30]],
                numeric=(1, 2, 3, 4, 5, 7, 8), cls="slices",
            )
    yield "</section>"


def _cooccur(res: Any) -> Iterator[str]:
    yield '<section id="cooccur"><h2>Modes that fail together</h2>'
    for w in res.warnings:
        yield f'<p class="warn">warning: {_e(w)}</p>'
    if res.pairs:
        yield from _table(
            ["mode A", "mode B", "n", "both", "A only", "B only", "Jaccard", "lift", "p", "q", "together"],
            [[p.a, p.b, p.n, p.both, p.a_only, p.b_only, f"{p.jaccard:.2f}", "-" if p.lift is None else f"{p.lift:.2f}", f"{p.p_value:.2g}", f"{p.q_value:.2g}", "yes" if p.significant else ""] for p in res.pairs],
            numeric=(2, 3, 4, 5, 6, 7, 8, 9), cls="cooccur",
        )
    order = res.order_rows()
    if order:
        yield "<p>Which comes first, in the traces that fail both at known steps (two-sided sign test, ties left out, Benjamini–Hochberg):</p>"
        yield from _table(
            ["mode A", "mode B", "traces", "A first", "B first", "same step", "p", "q", "first"],
            [[p.a, p.b, p.ordered, p.a_first, p.b_first, p.same_step, "-" if p.order_p is None else f"{p.order_p:.2g}",
              "-" if p.order_q is None else f"{p.order_q:.2g}", p.first or ""] for p in order],
            numeric=(2, 3, 4, 5, 6, 7), cls="order",
        )
    elif len(res.with_steps) < 2:
        yield '<p class="muted">Which mode comes first is not known: fewer than two modes name the step their fails happened at (judges name none).</p>'
    yield "</section>"


def _reasons(results: Sequence[Any]) -> Iterator[str]:
    yield '<section id="reasons"><h2>Reasons, clustered within each mode</h2>'
    for r in results:
        yield f"<h3>{_e(r.mode)}</h3><p>{_e(r.reasons)} {_e(r.verdict)} reasons; {_e(r.detail)}</p>"
        for w in r.warnings:
            yield f'<p class="warn">warning: {_e(w)}</p>'
        if r.clusters:
            yield from _table(
                ["id", "size", "share", "terms", "example"],
                [[c.id, c.size, f"{c.share:.0%}", ", ".join(c.terms[:4]), c.examples[0][1] if c.examples else ""] for c in r.clusters],
                numeric=(0, 1, 2), cls="reasons",
            )
    yield "</section>"


def _steps(a: Any) -> Iterator[str]:
    yield '<section id="steps"><h2>Agent steps: where failing traces first break</h2>'
    yield f"<p>{_e(a.traces)} traces, {_e(a.fails)} failing; first failing step known for {_e(a.localised)}.</p>"
    if a.sources:
        told = sorted({"a mode's step" if v.startswith("mode ") else ("a note" if v == "note" else "an error status") for v in a.sources.values()})
        yield f'<p class="muted">First failing step told by {_e(", ".join(told))}.</p>'

    for w in a.warnings:
        yield f'<p class="warn">warning: {_e(w)}</p>'
    rows, cols, cells = a.matrix()
    if cells:
        yield "<p>Last success → first failure: failures / traces that reached the row's state.</p>"
        table_rows = []
        for r in rows:
            line: list[Any] = [r]
            for c in cols:
                t = cells.get((r, c))
                line.append(f"{t.count}/{t.exposure} ({t.rate:.0%}, CI {t.ci[0]:.0%}–{t.ci[1]:.0%})" if t else "")
            table_rows.append(line)
        yield from _table(["last success \\ first failure", *cols], table_rows, cls="matrix")
    if a.suspicion:
        yield "<p>Suspiciousness (Ochiai):</p>"
        yield from _table(["step", "in failing", "in passing", "Ochiai"], [[s.name, s.ef, s.ep, f"{s.score:.3f}"] for s in a.suspicion[:20]], numeric=(1, 2, 3), cls="ochiai")
    yield "</section>"


def render_analysis_page(
    *,
    title: str,
    report: dict[str, Any] | None = None,
    slices: Sequence[Any] = (),
    cooccur: Any = None,
    reasons: Sequence[Any] = (),
    steps: Any = None,
) -> str:
    """The page: a heat map (with a report), then each analysis given."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        '<nav><a href="#heatmap">heat map</a> · <a href="#slices">slices</a> · <a href="#cooccur">co-occurrence</a> · <a href="#reasons">reasons</a> · <a href="#steps">steps</a></nav>',
    ]
    if report is not None:
        parts.extend(_heatmap(report))
    if slices:
        parts.extend(_slices(slices))
    if cooccur is not None:
        parts.extend(_cooccur(cooccur))
    if reasons:
        parts.extend(_reasons(reasons))
    if steps is not None:
        parts.extend(_steps(steps))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
