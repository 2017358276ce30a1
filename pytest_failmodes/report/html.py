"""The HTML report: one self-contained page built from the JSON report.

The page needs no network: CSS and the one script are inline, and a
Content-Security-Policy forbids every fetch and every script but ours (by
hash). Every value from the report is escaped once, here, with
``html.escape``; the page is complete without JavaScript, and the script only
hides and shows list items and writes counts with ``textContent``.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from html import escape
from typing import Any

from ..values import split_cohort
from .safe import pretty_json, text
from .terminal import pct, plural

__all__ = ["render_html", "DEFAULT_MAX_TRACES"]

#: failing (and error) traces listed per mode; the JSON report has them all
DEFAULT_MAX_TRACES = 1000

_ALL = "all"

# heat-map colour ramp (rate -> colour): a square-root scale that saturates at
# _RATE_CAP, so the 1-10% rates that matter in practice get distinct shades
_RATE_CAP = 0.5
_RAMP = (
    (0.00, (255, 248, 225)),
    (0.25, (252, 214, 132)),
    (0.50, (243, 150, 64)),
    (0.75, (211, 71, 45)),
    (1.00, (124, 18, 38)),
)
_ZERO_COLOUR = "#eaf3ec"  # a rate of exactly 0 reads apart from "rare"
_LEGEND_RATES = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def render_html(
    report: Mapping[str, Any],
    comparisons: Sequence[Mapping[str, Any]] | None = None,
    traces: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    title: str | None = None,
    generated_at: str | None = None,
    max_traces: int | None = DEFAULT_MAX_TRACES,
) -> str:
    """Render a JSON report (``build_report()``'s dict) as one HTML page.

    ``comparisons``: one dict per mode x cohort compared against a baseline,
    with ``mode`` (the mode's key, or its name when that is unique),
    ``cohort``, ``base_rate``, ``delta``, ``p_adjusted``, ``regression`` and
    ``improvement``; any of the figures may be ``None``. Without it, the
    ``baseline`` entries of the report's cohort rows are used, when there are
    any (a run with ``--failmodes-baseline``). ``traces`` maps a
    trace id to its ``input`` and ``output``, shown with the failing traces.
    ``generated_at`` is printed as given: the page holds no clock reading of
    its own, so the same arguments give the same bytes. ``max_traces`` caps
    each mode's list of failing traces (and of errors); ``None`` lists all.
    """
    page = _Page(report, comparisons or (), traces or {}, max_traces)
    digest = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode("ascii")
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )
    heading = title or "Failure-mode report"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(heading)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        *page.header(heading, generated_at),
        "<main>",
        *page.baseline_section(),
        *page.heatmap_section(),
        *page.summary_section(),
        *page.calibration_section(),
        *page.traces_section(),
        "</main>",
        f"<script>{_SCRIPT}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _ci_text(ci: Sequence[float] | None) -> str:
    return f"{pct(ci[0])} – {pct(ci[1])}" if ci else "-"


def _e(value: Any) -> str:
    """Escape any value for HTML text or a double-quoted attribute. Control and bidi
    characters are shown as escapes (an unterminated U+202E would reverse the rest of
    the line, in text and in attribute values alike), lone surrogates as U+FFFD."""
    return escape(text(value), quote=True)


def _allowed_empty(mode: Mapping[str, Any]) -> bool:
    """An empty mode whose definition says ``allow_empty: true``: not a failure."""
    return mode.get("status") == "empty" and "empty" not in (mode.get("breaches") or [])


def _cohort_parts(cohort: str) -> tuple[str, str]:
    """``"route=billing"`` -> ``("route", "billing")``; combinations join with `` & ``."""
    if cohort == _ALL:
        return "", _ALL
    pairs = split_cohort(cohort)
    return " & ".join(p[0] for p in pairs), " & ".join(p[1] for p in pairs)


def _cohort_order(cohort: str) -> tuple[int, str, str]:
    # the engine's row order: `all`, then by field, then by label
    return (0, "", "") if cohort == _ALL else (1, _cohort_parts(cohort)[0], cohort)


def _pp(delta: float | None, unit: str = " pp") -> str:
    if delta is None:
        return "-"
    text = f"{100 * delta:+.1f}"
    return ("0.0" if text in ("+0.0", "-0.0") else text) + unit


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _arrow(comp: Mapping[str, Any] | None) -> tuple[str, str]:
    """(arrow, css class) for a comparison: red only for a regression, green for an improvement."""
    if comp is None or comp.get("delta") is None:
        return "", ""
    delta = round(100 * comp["delta"], 1)  # the arrow agrees with the shown figure
    arrow = "▲" if delta > 0 else ("▼" if delta < 0 else "=")
    if comp.get("regression"):
        return arrow, "worse"
    if comp.get("improvement"):
        return arrow, "better"
    return arrow, "same"


def _with_base_rate(comp: Mapping[str, Any]) -> Mapping[str, Any]:
    """``base_rate`` from ``base_fails``/``base_n`` when a comparison gives only those."""
    if comp.get("base_rate") is not None or not comp.get("base_n"):
        return comp
    return {**comp, "base_rate": comp.get("base_fails", 0) / comp["base_n"]}


def _heat_colour(rate: float) -> tuple[str, str]:
    """(background, text colour) for a fail rate."""
    if rate <= 0:
        return _ZERO_COLOUR, "#1d2a22"
    t = math.sqrt(min(rate, _RATE_CAP) / _RATE_CAP)
    for (t0, c0), (t1, c1) in zip(_RAMP, _RAMP[1:]):
        if t <= t1:
            w = (t - t0) / (t1 - t0)
            rgb = tuple(round(a + (b - a) * w) for a, b in zip(c0, c1))
            break
    else:  # pragma: no cover - t is at most 1
        rgb = _RAMP[-1][1]
    # pick the text colour with the higher contrast (WCAG relative luminance)
    lin = [(c / 255) / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    text = "#ffffff" if (1.05 / (lum + 0.05)) > ((lum + 0.05) / 0.05) else "#1b1b1b"
    return "#{:02x}{:02x}{:02x}".format(*rgb), text


def _content_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return pretty_json(value, indent=2)  # no recursion: a value nested 1,000 deep still renders


class _Page:
    """The report's data, arranged for the page's sections."""

    def __init__(
        self,
        report: Mapping[str, Any],
        comparisons: Sequence[Mapping[str, Any]],
        traces: Mapping[str, Mapping[str, Any]],
        max_traces: int | None,
    ) -> None:
        self.report = report
        self.modes: list[Mapping[str, Any]] = list(report.get("modes") or [])
        self.traces = traces
        self.max_traces = max_traces
        names = [m["name"] for m in self.modes]
        # a name shared by two files is shown with its file
        self.label = {m["key"]: m["name"] if names.count(m["name"]) == 1 else m["key"] for m in self.modes}
        self.anchor = {m["key"]: f"mode-{i + 1}" for i, m in enumerate(self.modes)}
        by_name = {m["name"]: m["key"] for m in self.modes if names.count(m["name"]) == 1}
        if not comparisons:  # a report written with --failmodes-baseline carries its own
            comparisons = [
                {"mode": m["key"], "cohort": row["cohort"], **row["baseline"]}
                for m in self.modes
                for row in m.get("cohorts", [])
                if isinstance(row.get("baseline"), Mapping)
            ]
        self.comps: dict[tuple[str, str], Mapping[str, Any]] = {}
        for comp in comparisons:
            key = comp.get("mode")
            key = key if key in self.anchor else by_name.get(str(key))
            if key is not None:
                self.comps[(key, str(comp.get("cohort")))] = _with_base_rate(comp)
        self.has_comps = bool(self.comps)
        self.has_errors = any(row.get("errors") for m in self.modes for row in m.get("cohorts", []))
        self.calibrated = [m for m in self.modes if isinstance(m.get("calibration"), Mapping)]
        self.has_corrected = any(isinstance(row.get("corrected"), Mapping) for m in self.modes for row in m.get("cohorts", []))

    # -- header ------------------------------------------------------------------------

    def header(self, heading: str, generated_at: str | None) -> Iterator[str]:
        failing = [m for m in self.modes if m.get("status") != "ok" and not _allowed_empty(m)]
        if failing:
            verdict, css = "FAILED", "fail"
            what = f"{plural(len(failing), 'failure mode')} of {len(self.modes)} breached, broken or empty"
        elif not self.report.get("passed", True):
            verdict, css = "INCOMPLETE", "fail"
            what = "the run was interrupted; some modes may be missing"
        else:
            verdict, css = "PASSED", "ok"
            what = f"all {plural(len(self.modes), 'failure mode')} within their limits"
        regressions = sum(1 for c in self.comps.values() if c.get("regression"))
        if regressions:
            what += f"; {plural(regressions, 'regression')} against the baseline"
        yield "<header>"
        yield f"<h1>{_e(heading)}</h1>"
        yield f'<p class="verdict"><span class="badge {css}">{verdict}</span> {_e(what)}</p>'
        yield from self._breach_list()
        meta = [str(self.report.get("generator") or "")]
        if isinstance(self.report.get("baseline"), str):
            meta.append(f"compared with the baseline {self.report['baseline']}")
        if generated_at:
            meta.append(generated_at)
        yield f'<p class="meta">{" · ".join(_e(m) for m in meta if m)}</p>'
        links = [("heatmap", "Heat map"), ("summary", "Summary table"), ("traces", "Failing traces")]
        if self.has_comps:
            links.insert(0, ("baseline", "Baseline"))
        if self.calibrated:
            links.insert(-1, ("calibration", "Judge calibration"))
        yield "<nav>" + " ".join(f'<a href="#{a}">{t}</a>' for a, t in links) + "</nav>"
        yield "</header>"

    def _breach_list(self) -> Iterator[str]:
        items = []
        for mode in self.modes:
            link = f'<a href="#{self.anchor[mode["key"]]}">{_e(self.label[mode["key"]])}</a>'
            if mode.get("status") == "broken" or mode.get("broken"):
                items.append(f"{link}: could not be evaluated: {_e(mode.get('broken'))}")
                continue
            for row in mode.get("cohorts", []):
                gate_text, gate_css = self._gate(mode, row)
                if gate_css == "fail":
                    items.append(
                        f'{link} <span class="cohort">{_e(row["cohort"])}</span>: '
                        f"{_e(row.get('fails'))}/{_e(row.get('n'))} = {_e(pct(row.get('rate')))}, "
                        f"limit {_e(pct(row.get('limit')))} · {_e(gate_text)}"
                    )
        if items:
            yield '<ul class="breaches">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"

    # -- baseline ----------------------------------------------------------------------

    def baseline_section(self) -> Iterator[str]:
        if not self.has_comps:
            return
        moved = [
            (key, cohort, comp)
            for (key, cohort), comp in self.comps.items()
            if comp.get("regression") or comp.get("improvement")
        ]
        yield '<section id="baseline">'
        yield "<h2>Against the baseline</h2>"
        regressions = sum(1 for _k, _c, comp in moved if comp.get("regression"))
        yield (
            f"<p>{plural(len(self.comps), 'comparison')}: {plural(regressions, 'regression')}, "
            f"{plural(len(moved) - regressions, 'improvement')}. A change is a regression only when "
            "it is significant after the correction for all comparisons; improvements are "
            "reported, never gated.</p>"
        )
        if moved:
            moved.sort(key=lambda kc: (not kc[2].get("regression"), self._mode_index(kc[0]), _cohort_order(kc[1])))
            yield '<ul class="moves">'
            for key, cohort, comp in moved:
                arrow, css = _arrow(comp)
                row = self._row(key, cohort)
                now = pct(row.get("rate")) if row else "-"
                yield (
                    f'<li><span class="arrow {css}">{arrow}</span> '
                    f'<a href="#{self.anchor[key]}">{_e(self.label[key])}</a> '
                    f'<span class="cohort">{_e(cohort)}</span>: {_e(pct(comp.get("base_rate")))} → '
                    f'{_e(now)} <span class="{css}">{_e(_pp(comp.get("delta")))}</span>, '
                    f"p (adj.) = {_e(_p(comp.get('p_adjusted')))}"
                    f' <span class="badge {"fail" if css == "worse" else "ok"}">'
                    f"{'regression' if css == 'worse' else 'improvement'}</span></li>"
                )
            yield "</ul>"
        yield "</section>"

    def _mode_index(self, key: str) -> int:
        return int(self.anchor[key].rsplit("-", 1)[1])

    def _row(self, key: str, cohort: str) -> Mapping[str, Any] | None:
        for m in self.modes:
            if m["key"] == key:
                return next((r for r in m.get("cohorts", []) if r["cohort"] == cohort), None)
        return None

    # -- summary table -----------------------------------------------------------------

    def _gate(self, mode: Mapping[str, Any], row: Mapping[str, Any]) -> tuple[str, str]:
        """The gate column's text and css class; the same wording as the terminal table."""
        gate = mode.get("gate") or {}
        reasons = [str(row["breach"])] if row.get("breach") else []
        comp = self.comps.get((mode["key"], row["cohort"]))
        if comp is not None and comp.get("regression") and "regression" not in reasons:
            reasons.append("regression")
        if row["cohort"] == _ALL and "errors" in (mode.get("breaches") or []):
            reasons.append(f"errors {row.get('errors', 0)} > {gate.get('max_errors', 0)}")
        if row["cohort"] == _ALL and mode.get("status") == "empty":
            if "empty" in (mode.get("breaches") or []):
                reasons.append(f"empty: all {mode.get('skipped', 0)} traces skipped")
            else:
                return "empty (allowed)", "muted"
        if reasons:
            return f"FAIL ({', '.join(reasons)})", "fail"
        if row.get("small"):
            return f"small (n<{gate.get('min_cohort_size', 0)})", "muted"
        if row.get("limit") is None:
            return "no limit", "muted"
        return ("ok", "ok") if row.get("gated") else ("not gated", "muted")

    def summary_section(self) -> Iterator[str]:
        head = ["mode", "cohort", "n", "fails", "rate", "95% CI"]
        head += ["corrected", "corr. 95% CI"] if self.has_corrected else []
        head += ["limit"]
        head += ["errors"] if self.has_errors else []
        head += ["baseline", "Δ", "p (adj.)"] if self.has_comps else []
        head += ["gate"]
        failing: list[str] = []
        per_mode: list[list[tuple[str, str]]] = []  # (css, cells after the mode column)
        for mode in self.modes:
            link = f'<a href="#{self.anchor[mode["key"]]}">{_e(self.label[mode["key"]])}</a>'
            if mode.get("status") == "broken" or mode.get("broken"):
                failing.append(
                    f'<tr class="fail"><th scope="row">{link}</th>'
                    f'<td colspan="{len(head) - 2}" class="broken">could not be evaluated: '
                    f'{_e(mode.get("broken"))}</td><td><span class="badge fail">BROKEN</span></td></tr>'
                )
                continue
            rest: list[tuple[str, str]] = []
            for row in mode.get("cohorts", []):
                css, cells = self._summary_cells(mode, row)
                if css == "fail":
                    failing.append(f'<tr class="fail"><th scope="row">{link}</th>{cells}</tr>')
                else:
                    rest.append((css, cells))
            if rest:
                per_mode.append([(css, cells) for css, cells in rest])
                per_mode[-1].insert(0, ("", link))
        yield '<section id="summary">'
        yield "<h2>Summary</h2>"
        yield (
            '<p class="hint">Every mode\'s fail rate overall and per cohort, breached gates first. '
            "n counts passes and fails (detector errors are not in n); cohorts under the mode's "
            "minimum size are shown but not gated.</p>"
        )
        yield '<div class="scroll"><table class="summary">'
        yield "<thead><tr>" + "".join(f'<th scope="col">{_e(h)}</th>' for h in head) + "</tr></thead>"
        if failing:
            yield '<tbody class="breached">'
            yield f'<tr class="divider"><td colspan="{len(head)}">breached</td></tr>'
            yield from failing
            yield "</tbody>"
        if failing and per_mode:
            yield f'<tbody><tr class="divider"><td colspan="{len(head)}">within limits</td></tr></tbody>'
        for block in per_mode:
            (_, link), *rows = block
            yield '<tbody class="mode-rows">'
            for i, (css, cells) in enumerate(rows):
                th = f'<th scope="rowgroup" rowspan="{len(rows)}">{link}</th>' if i == 0 else ""
                yield f'<tr class="{css}">{th}{cells}</tr>'
            yield "</tbody>"
        yield "</table></div>"
        yield "</section>"

    def _summary_cells(self, mode: Mapping[str, Any], row: Mapping[str, Any]) -> tuple[str, str]:
        """The gate's css class and a cohort row's cells after the mode column."""
        gate_text, gate_css = self._gate(mode, row)
        lo, hi = row.get("ci_low"), row.get("ci_high")
        cells = [
            f'<td class="cohort">{_e(row["cohort"])}</td>',
            f'<td class="num">{_e(row.get("n"))}</td>',
            f'<td class="num">{_e(row.get("fails"))}</td>',
            f'<td class="num rate">{_e(pct(row.get("rate")))}</td>',
            f'<td class="num ci">{_e(f"{pct(lo)} – {pct(hi)}" if lo is not None else "-")}</td>',
        ]
        if self.has_corrected:
            c = row.get("corrected")
            if not isinstance(c, Mapping):
                c = {}
            clo, chi = c.get("ci_low"), c.get("ci_high")
            cells += [
                f'<td class="num rate">{_e(pct(c.get("rate")))}</td>',
                f'<td class="num ci">{_e(f"{pct(clo)} – {pct(chi)}" if clo is not None else "-")}</td>',
            ]
        cells.append(f'<td class="num">{_e(pct(row.get("limit")))}</td>')
        if self.has_errors:
            cells.append(f'<td class="num">{_e(row.get("errors", 0))}</td>')
        if self.has_comps:
            cells.extend(self._comp_cells(self.comps.get((mode["key"], row["cohort"]))))
        cells.append(f'<td><span class="badge {gate_css}">{_e(gate_text)}</span></td>')
        return gate_css, "".join(cells)

    def _comp_cells(self, comp: Mapping[str, Any] | None) -> list[str]:
        if comp is None:
            return ['<td class="num muted">-</td>'] * 3
        arrow, css = _arrow(comp)
        return [
            f'<td class="num">{_e(pct(comp.get("base_rate")))}</td>',
            f'<td class="num delta {css}">{f"{arrow} " if arrow else ""}{_e(_pp(comp.get("delta")))}</td>',
            f'<td class="num">{_e(_p(comp.get("p_adjusted")))}</td>',
        ]

    # -- judge calibration -------------------------------------------------------------

    def calibration_section(self) -> Iterator[str]:
        """Each labelled mode's detector against the human labels: counts, TPR, TNR, disagreements."""
        if not self.calibrated:
            return
        yield '<section id="calibration">'
        yield "<h2>Judge calibration</h2>"
        yield (
            '<p class="hint">Detector verdicts against human labels. TPR: the share of traces a person '
            "labelled FAIL that the detector calls FAIL; TNR: the share labelled PASS that it calls PASS "
            "(95% Wilson intervals). The corrected fail rate undoes the detector's errors "
            "(Rogan-Gladen), with a bootstrap interval over labelled and unlabelled traces.</p>"
        )
        head = ["cohort", "labels", "human FAIL", "human PASS", "TP", "FN", "FP", "TN", "TPR", "95% CI", "TNR", "95% CI"]
        for mode in self.calibrated:
            c = mode["calibration"]
            yield f'<section class="calibration" id="calibration-{self._mode_index(mode["key"])}">'
            yield (
                f"<h3>{_e(self.label[mode['key']])}</h3>"
                f'<p class="hint">{_e(mode.get("detector"))} against {_e(c.get("labelled"))} labels from '
                f"{_e(c.get('source'))}</p>"
            )
            yield '<div class="scroll"><table class="summary">'
            yield "<thead><tr>" + "".join(f'<th scope="col">{_e(h)}</th>' for h in head) + "</tr></thead><tbody>"
            for cohort, part in [(_ALL, c), *[(k.get("cohort"), k) for k in c.get("cohorts") or []]]:
                m = part.get("confusion") or {}
                counts = [m.get(k, 0) for k in ("tp", "fn", "fp", "tn")]
                cells = [cohort, sum(counts), m.get("tp", 0) + m.get("fn", 0), m.get("tn", 0) + m.get("fp", 0), *counts]
                yield (
                    "<tr>" + f'<td class="cohort">{_e(cells[0])}</td>'
                    + "".join(f'<td class="num">{_e(v)}</td>' for v in cells[1:])
                    + f'<td class="num rate">{_e(pct(part.get("tpr")))}</td><td class="num ci">{_e(_ci_text(part.get("tpr_ci")))}</td>'
                    + f'<td class="num rate">{_e(pct(part.get("tnr")))}</td><td class="num ci">{_e(_ci_text(part.get("tnr_ci")))}</td>'
                    + "</tr>"
                )
            yield "</tbody></table></div>"
            notes = [f"warning: {w}" for w in c.get("warnings") or []]
            excluded = c.get("excluded") or {}
            if excluded:
                notes.append("not measured: " + ", ".join(f"{n} {k}" for k, n in excluded.items()))
            entry = (c.get("corrected") or {}).get(_ALL)
            if isinstance(entry, Mapping) and entry.get("rate") is not None:
                ci = [entry["ci_low"], entry["ci_high"]] if entry.get("ci_low") is not None else None
                notes.append(f"corrected fail rate (all): {pct(entry['rate'])} {_ci_text(ci)}")
            elif isinstance(entry, Mapping):
                notes.append(f"corrected fail rate (all): none: {entry.get('reason')}")
            if notes:
                yield "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"
            dis = c.get("disagreements") or []
            if dis:
                shown = dis if self.max_traces is None else dis[: self.max_traces]
                more = f" (first {len(shown)} of {len(dis)})" if len(shown) < len(dis) else ""
                yield f"<h4>Disagreements{_e(more)}</h4>"
                yield '<div class="scroll"><table class="summary"><thead><tr>' + "".join(
                    f'<th scope="col">{h}</th>' for h in ("trace", "human", "detector", "detector's reason", "note")
                ) + "</tr></thead><tbody>"
                for d in shown:
                    yield (
                        "<tr>" + "".join(
                            f"<td>{_e(d.get(k))}</td>" for k in ("id", "human", "judge", "reason", "note")
                        ) + "</tr>"
                    )
                yield "</tbody></table></div>"
            yield "</section>"
        yield "</section>"

    # -- heat map ----------------------------------------------------------------------

    def heatmap_section(self) -> Iterator[str]:
        cohorts = sorted({row["cohort"] for m in self.modes for row in m.get("cohorts", [])}, key=_cohort_order)
        groups: list[tuple[str, list[str]]] = []
        for cohort in cohorts:
            field = _cohort_parts(cohort)[0]
            if groups and groups[-1][0] == field:
                groups[-1][1].append(cohort)
            else:
                groups.append((field, [cohort]))
        yield '<section id="heatmap">'
        yield "<h2>Fail rate by mode and cohort</h2>"
        yield from self._legend()
        yield '<div class="scroll"><table class="heat">'
        yield (
            '<thead><tr><th rowspan="2" scope="col" class="corner">mode</th>'
            + "".join(
                f'<th colspan="{len(cs)}" scope="colgroup" class="group">{_e(field or "overall")}</th>'
                for field, cs in groups
            )
            + "</tr>"
        )
        yield (
            "<tr>"
            + "".join(f'<th scope="col" class="value">{_e(_cohort_parts(c)[1])}</th>' for _f, cs in groups for c in cs)
            + "</tr></thead>"
        )
        yield "<tbody>"
        for mode in self.modes:
            key = mode["key"]
            head = f'<th scope="row"><a href="#{self.anchor[key]}">{_e(self.label[key])}</a></th>'
            if mode.get("status") == "broken" or mode.get("broken"):
                yield (
                    f'<tr>{head}<td colspan="{max(len(cohorts), 1)}" class="broken">broken: '
                    f"{_e(mode.get('broken'))}</td></tr>"
                )
                continue
            rows = {row["cohort"]: row for row in mode.get("cohorts", [])}
            cells = [self._heat_cell(mode, rows.get(c), c) for c in cohorts]
            yield f"<tr>{head}{''.join(cells)}</tr>"
        yield "</tbody></table></div>"
        yield "</section>"

    def _heat_cell(self, mode: Mapping[str, Any], row: Mapping[str, Any] | None, cohort: str) -> str:
        if row is None:
            return '<td class="hm empty" title="no traces of this mode in this cohort"></td>'
        key = mode["key"]
        attrs = f'data-mode="{_e(key)}" data-cohort="{_e(cohort)}"'
        comp = self.comps.get((key, cohort))
        rate = row.get("rate")
        classes = ["hm"]
        tip = [f"{self.label[key]} · {cohort}"]
        if rate is None:
            classes.append("nodata")
            style = ""
            tip.append(f"no pass or fail verdicts ({plural(row.get('errors', 0), 'error')})")
            body = '<span class="r">-</span>'
        else:
            bg, fg = _heat_colour(rate)
            style = f' style="background:{bg};color:{fg}"'
            lo, hi = row.get("ci_low"), row.get("ci_high")
            tip.append(f"{row['fails']}/{row['n']} = {pct(rate)}, 95% CI {pct(lo)} – {pct(hi)}")
            tip.append(f"limit {pct(row.get('limit'))}")
            body = f'<span class="r">{_e(pct(rate))}</span><span class="k">{_e(row["fails"])}/{_e(row["n"])}</span>'
        if row.get("errors"):
            tip.append(plural(row["errors"], "detector error"))
        gate_text, gate_css = self._gate(mode, row)
        if gate_css == "fail":
            classes.append("breach")
        elif row.get("small"):
            classes.append("small")
        tip.append(gate_text)
        if comp is not None:
            arrow, css = _arrow(comp)
            if arrow:
                body += f'<span class="d {css}">{arrow} {_e(_pp(comp.get("delta"), ""))}</span>'
            base, delta, p = comp.get("base_rate"), comp.get("delta"), comp.get("p_adjusted")
            tip.append(f"baseline {pct(base)}, {_pp(delta)}, p (adj.) {_p(p)}")
        return f'<td class="{" ".join(classes)}" {attrs}{style} title="{_e(chr(10).join(tip))}">{body}</td>'

    def _legend(self) -> Iterator[str]:
        swatches = []
        for rate in _LEGEND_RATES:
            bg, fg = _heat_colour(rate)
            label = ("≥ " if rate >= _RATE_CAP else "") + (f"{100 * rate:g}%")
            swatches.append(f'<span class="sw" style="background:{bg};color:{fg}">{label}</span>')
        yield '<div class="legend">'
        yield '<span class="legend-title">fail rate</span>' + "".join(swatches)
        yield '<span class="sw breach-sample">over limit</span>'
        yield '<span class="sw small-sample">small, not gated</span>'
        yield '<span class="sw empty-sample">no traces</span>'
        if self.has_comps:
            yield (
                '<span class="legend-note"><span class="worse">▲ regression</span> '
                '<span class="better">▼ improvement</span> <span class="same">▲▼ not significant</span> '
                "(Δ in percentage points against the baseline)</span>"
            )
        yield "</div>"
        yield (
            '<p class="hint">Each cell: fail rate, then fails/n. Hover a cell for the interval, '
            "the limit and the gate.</p>"
        )

    # -- failing traces ----------------------------------------------------------------

    def traces_section(self) -> Iterator[str]:
        yield '<section id="traces">'
        yield "<h2>Failing traces</h2>"
        yield (
            '<div class="filterbar"><label for="filter">Filter</label>'
            '<input id="filter" type="search" autocomplete="off" spellcheck="false" '
            'placeholder="trace id, reason or text; several words must all match">'
            '<span id="filter-status" class="hint" aria-live="polite"></span></div>'
        )
        ordered = sorted(self.modes, key=lambda m: m.get("status") == "ok" or _allowed_empty(m))  # stable: breached first
        for mode in ordered:
            yield from self._mode_block(mode)
        yield "</section>"

    def _mode_block(self, mode: Mapping[str, Any]) -> Iterator[str]:
        key = mode["key"]
        status = str(mode.get("status", ""))
        css = "ok" if status == "ok" or _allowed_empty(mode) else "fail"
        gate = mode.get("gate") or {}
        yield f'<section class="mode" id="{self.anchor[key]}">'
        yield f'<h3><span class="badge {css}">{_e(status.upper())}</span> {_e(self.label[key])}</h3>'
        if mode.get("description"):
            yield f'<p class="desc">{_e(mode["description"])}</p>'
        facts = [
            f"<code>{_e(mode.get('file'))}:{_e(mode.get('line'))}</code>",
            f"detector <code>{_e(mode.get('detector'))}</code>",
            f"limit {_e(pct(gate.get('max_fail_rate')))} (gate_on {_e(gate.get('gate_on'))})",
        ]
        if gate.get("cohort_limits"):
            facts.append(
                "cohort limits " + ", ".join(f"{_e(c)}: {_e(pct(v))}" for c, v in gate["cohort_limits"].items())
            )
        if mode.get("skipped"):
            facts.append(f"{_e(mode['skipped'])} traces skipped (not applicable)")
        yield f'<p class="facts">{" · ".join(facts)}</p>'
        if mode.get("broken"):
            yield f'<p class="broken">could not be evaluated: {_e(mode["broken"])}</p>'
        for note in mode.get("notes") or []:
            yield f'<p class="note">note: {_e(note)}</p>'
        verdicts = mode.get("traces") or []
        for verdict, title in (("fail", "failing traces"), ("error", "detector errors")):
            picked = [t for t in verdicts if t.get("verdict") == verdict]
            if not picked and verdict == "error":
                continue
            yield from self._trace_group(picked, verdict, title)
        yield "</section>"

    def _trace_group(self, picked: list[Mapping[str, Any]], verdict: str, title: str) -> Iterator[str]:
        shown = picked if self.max_traces is None else picked[: self.max_traces]
        yield f'<div class="group-block {verdict}" data-total="{len(shown)}">'
        yield f'<h4>{_e(title)} <span class="count" data-all="{len(picked)}">{len(picked)}</span></h4>'
        if not picked:
            yield f'<p class="hint">no {_e(title)}</p>'
        if len(shown) < len(picked):
            yield (
                f'<p class="hint">only the first {len(shown)} of {len(picked)} are listed, and the filter '
                "searches only those; the JSON report has them all</p>"
            )
        if shown:
            yield '<ol class="tlist">'
            for t in shown:
                yield self._trace_item(t, verdict)
            yield "</ol>"
            yield '<p class="hint nomatch" hidden>no trace here matches the filter</p>'
        yield "</div>"

    def _trace_item(self, t: Mapping[str, Any], verdict: str) -> str:
        tid = str(t.get("id", ""))
        reason = str(t.get("reason") or "")
        parts = [
            f'<li class="trace {verdict}">',
            f'<div class="thead"><code class="tid s">{_e(tid)}</code>'
            f'<span class="reason s">{_e(reason) or "(no reason given)"}</span></div>',
        ]
        evidence = t.get("evidence")
        if evidence is not None:
            text = _content_text(evidence) or ""
            if text not in reason:  # the reason usually quotes it already
                parts.append(f'<div class="evidence">evidence: <code class="s">{_e(text)}</code></div>')
        content = self.traces.get(tid)
        if content:
            io = [(name, _content_text(content.get(name))) for name in ("input", "output")]
            blocks = [
                f'<div class="io"><div class="io-label">{name}</div><pre class="s">{_e(text)}</pre></div>'
                for name, text in io
                if text is not None
            ]
            if blocks:
                parts.append(f'<div class="content">{"".join(blocks)}</div>')
        parts.append("</li>")
        return "".join(parts)


_CSS = """
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#ffffff;--soft:#f6f8fa;
--fail:#b42318;--fail-bg:#fdecea;--ok:#1a7f37;--ok-bg:#e6f4ea;--accent:#0b57d0}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;color:var(--ink);background:var(--bg);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
code,pre,td,th,.s,p.note,p.desc,p.broken,li{unicode-bidi:isolate}
code,pre,.num,.tid{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace}
code{font-size:.9em}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
header{padding:20px 32px 12px;border-bottom:1px solid var(--line);background:var(--soft)}
h1{margin:0 0 6px;font-size:24px}
h2{font-size:19px;margin:0 0 10px;padding-top:8px}
h3{font-size:16px;margin:0 0 4px;display:flex;gap:8px;align-items:center}
h4{font-size:14px;margin:12px 0 6px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.verdict{margin:0 0 4px;font-size:16px}
ul.breaches{margin:4px 0 8px;padding-left:22px;font-size:14px}
ul.breaches li{margin:1px 0}
.meta{margin:0 0 8px;color:var(--muted);font-size:13px}
nav a{margin-right:16px;font-size:14px}
main{padding:8px 32px 48px;max-width:1500px}
section{margin:20px 0 28px}
.hint{color:var(--muted);font-size:13px;margin:4px 0 10px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;
white-space:nowrap;border:1px solid transparent}
.badge.fail{background:var(--fail-bg);color:var(--fail);border-color:#f4b4ad}
.badge.ok{background:var(--ok-bg);color:var(--ok);border-color:#aedbb9}
.badge.muted{background:var(--soft);color:var(--muted);border-color:var(--line)}
.verdict .badge{font-size:14px;padding:2px 10px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13.5px}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}
thead th{background:var(--soft);font-weight:600;position:sticky;top:0}
.num{text-align:right;white-space:nowrap}
td.cohort{white-space:nowrap}
table.summary tbody th{font-weight:500;white-space:nowrap;vertical-align:top;background:var(--bg)}
table.summary tbody.mode-rows{border-top:2px solid #aab4bf}
table.summary td,table.summary th{padding:3px 10px}
table.summary tr.fail td,table.summary tr.fail th{background:#fff5f4}
table.summary tr.muted td{color:var(--muted)}
table.summary .rate{font-weight:600}
tr.divider td{background:var(--soft);color:var(--muted);font-size:12px;text-transform:uppercase;
letter-spacing:.05em;padding:3px 10px}
td.broken,p.broken{color:var(--fail)}
.delta.worse,.worse{color:var(--fail);font-weight:700}
.delta.better,.better{color:var(--ok);font-weight:700}
.delta.same,.same{color:var(--muted)}
ul.moves{margin:0;padding-left:0;list-style:none}
ul.moves li{padding:2px 0}
ul.moves .arrow{display:inline-block;width:1.2em}
.cohort{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}
table.heat{border-collapse:separate;border-spacing:3px}
table.heat th,table.heat td{border:0}
table.heat thead th{background:none;position:static;font-size:12.5px;text-align:center;padding:2px 4px}
table.heat thead th.group{border-bottom:2px solid var(--line);color:var(--ink)}
table.heat thead th.value{color:var(--muted);font-weight:500}
table.heat thead th.corner{text-align:left;vertical-align:bottom}
table.heat tbody th{font-weight:500;white-space:nowrap;padding-right:12px}
td.hm{min-width:78px;text-align:center;border-radius:4px;padding:5px 6px;line-height:1.2}
td.hm .r{display:block;font-weight:700;font-size:14px;font-variant-numeric:tabular-nums}
td.hm .k{display:block;font-size:11px;opacity:.8;font-variant-numeric:tabular-nums}
td.hm .d{display:block;font-size:11px;font-weight:700;margin-top:2px;background:#fff;border-radius:3px;padding:0 3px}
td.hm.breach{box-shadow:inset 0 0 0 3px #111;}
td.hm.breach .r::after{content:" !"}
td.hm.small{font-style:italic;opacity:.72}
td.hm.empty,td.hm.nodata{background:repeating-linear-gradient(45deg,#f3f4f6,#f3f4f6 4px,#e5e7eb 4px,#e5e7eb 8px)}
.legend{display:flex;flex-wrap:wrap;gap:4px;align-items:center;font-size:12px;margin:4px 0 6px}
.legend-title{color:var(--muted);margin-right:6px}
.sw{display:inline-block;padding:3px 8px;border-radius:4px;min-width:44px;text-align:center}
.sw.breach-sample{box-shadow:inset 0 0 0 3px #111;margin-left:12px;background:#fff}
.sw.small-sample{font-style:italic;opacity:.72;background:#fde0a8}
.sw.empty-sample{background:repeating-linear-gradient(45deg,#f3f4f6,#f3f4f6 4px,#e5e7eb 4px,#e5e7eb 8px)}
.legend-note{margin-left:12px}
.filterbar{position:sticky;top:0;z-index:2;background:var(--bg);padding:10px 0;
border-bottom:1px solid var(--line);display:flex;gap:10px;align-items:center}
.filterbar label{font-weight:600}
.filterbar input{flex:0 1 520px;font:inherit;padding:6px 10px;border:1px solid #9aa4ae;border-radius:6px}
.filterbar .hint{margin:0}
section.mode{border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin:14px 0}
p.desc{margin:2px 0}
p.facts{margin:2px 0;color:var(--muted);font-size:13px}
p.note{margin:2px 0;font-size:13px}
.count{display:inline-block;min-width:1.6em;padding:0 6px;border-radius:9px;background:var(--soft);
color:var(--ink);text-align:center;font-size:12px;letter-spacing:0;text-transform:none;border:1px solid var(--line)}
ol.tlist{list-style:none;margin:0;padding:0}
li.trace{border-top:1px solid var(--line);padding:7px 0}
li.trace:first-child{border-top:0}
.thead{display:flex;gap:12px;align-items:baseline}
.tid{flex:0 0 auto;font-weight:600;color:var(--ink)}
.error .tid{color:#8a4b00}
.reason{white-space:pre-wrap;overflow-wrap:anywhere}
.evidence{font-size:13px;color:var(--muted);margin:2px 0 0}
.content{display:grid;grid-template-columns:1fr 1fr;gap:10px;margin-top:6px}
.io{min-width:0}
.io-label{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
.io pre{margin:2px 0 0;padding:6px 8px;background:var(--soft);border:1px solid var(--line);
border-radius:6px;white-space:pre-wrap;overflow-wrap:anywhere;max-height:14em;overflow:auto;font-size:12.5px}
@media (max-width:800px){.content{grid-template-columns:1fr}main,header{padding-left:12px;padding-right:12px}}
"""

# Reads only: textContent of the searchable parts of each item, the box and the
# `#filter=` fragment (so a link, or a headless browser, can open the page filtered).
_SCRIPT = """
(function () {
  "use strict";
  var box = document.getElementById("filter");
  var status = document.getElementById("filter-status");
  var groups = Array.prototype.slice.call(document.querySelectorAll(".group-block"));
  var sections = Array.prototype.slice.call(document.querySelectorAll("section.mode"));
  var entries = [];
  groups.forEach(function (group) {
    Array.prototype.forEach.call(group.querySelectorAll("li.trace"), function (li) {
      var text = Array.prototype.map.call(li.querySelectorAll(".s"), function (el) {
        return el.textContent;
      }).join("\\n").toLowerCase();
      entries.push({ li: li, text: text, group: group });
    });
  });
  function apply() {
    var words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var shown = 0;
    groups.forEach(function (g) { g.shownCount = 0; });
    entries.forEach(function (e) {
      var hit = words.every(function (w) { return e.text.indexOf(w) !== -1; });
      e.li.hidden = !hit;
      if (hit) { shown += 1; e.group.shownCount += 1; }
    });
    groups.forEach(function (g) {
      var total = Number(g.getAttribute("data-total"));
      var none = g.querySelector(".nomatch");
      var count = g.querySelector(".count");
      if (none) { none.hidden = !(words.length && total && g.shownCount === 0); }
      if (words.length) { count.textContent = g.shownCount + " of " + total; }
      else { count.textContent = count.getAttribute("data-all"); }
      g.setAttribute("data-shown", String(g.shownCount));
    });
    sections.forEach(function (sec) {
      var any = Array.prototype.some.call(sec.querySelectorAll(".group-block"), function (g) {
        return g.shownCount > 0;
      });
      sec.hidden = words.length > 0 && !any;
    });
    status.textContent = words.length
      ? shown + " of " + entries.length + " listed traces match"
      : entries.length + " traces listed";
    document.body.setAttribute("data-filter-shown", String(shown));
  }
  box.addEventListener("input", apply);
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "/" && document.activeElement !== box) { ev.preventDefault(); box.focus(); }
  });
  function fromHash() {
    var m = /^#filter=(.*)$/.exec(window.location.hash);
    if (!m) { return false; }
    try { box.value = decodeURIComponent(m[1]); } catch (err) { box.value = m[1]; }
    box.dispatchEvent(new Event("input"));  // the same path as typing
    return true;
  }
  window.addEventListener("hashchange", fromHash);
  if (!fromHash()) { apply(); }
})();
"""
