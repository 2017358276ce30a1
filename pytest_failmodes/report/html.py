"""The HTML report: one self-contained page built from the JSON report.

The page needs no network: CSS and the scripts are inline, and a
Content-Security-Policy forbids every fetch and every script but ours (by
hash). Every value from the report is escaped once, here: with
``html.escape`` in the markup, and as JSON with ``<``, ``>`` and ``&`` escaped
in the data blocks. The heat map and legend are complete without JavaScript.
The summary table's rows (2,000 at 50 modes x 40 cohorts) and the failing
traces (up to tens of thousands) are data, not DOM: the script draws one page
of each at a time, searches and filters the data, and opens a trace in the
shared trace view (``trace_view.js``, the one ``failmodes review`` uses),
parsing only that trace's slice of the contents block, all with
``textContent``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from itertools import chain
from pathlib import Path
from html import escape
from typing import Any

from ..values import split_cohort
from .safe import BIDI_CONTROLS, pretty_json, text, write_text_atomically
from .terminal import pct, plural
from .trace_view import script_hash, trace_view_asset

__all__ = ["render_html", "write_html", "iter_html", "DEFAULT_MAX_TRACES"]

#: failing (and error) traces listed per mode; the JSON report has them all
DEFAULT_MAX_TRACES = 1000

_ALL = "all"

# Heat-map colours: viridis (perceptually uniform, readable with every common
# colour-vision deficiency, and in greyscale), reversed so that a higher rate is
# darker. The rate is mapped by its square root over the whole range to 100%,
# so the 1-10% rates that matter for gating get distinct shades and 55% and 100%
# still differ; between the anchors colours are mixed in OKLab, where equal
# steps look equal.
_VIRIDIS = ("#440154", "#472c7a", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725")
_ZERO_COLOUR = "#ffffff"  # a rate of exactly 0 reads apart from "rare" (the scale starts at yellow)
#: breached cohorts named per mode in the page's header (the worst first)
_BREACHES_PER_MODE = 3
#: the summary table's cell classes by column heading (any other: a number)
_SUMMARY_CSS = {
    "cohort": "cohort", "rate": "num rate", "95% CI": "num ci", "corrected": "num rate",
    "corr. 95% CI": "num ci", "Δ": "num delta", "gate": "gate",
}
_LEGEND_RATES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)


def render_html(
    report: Mapping[str, Any],
    comparisons: Sequence[Mapping[str, Any]] | None = None,
    traces: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    title: str | None = None,
    generated_at: str | None = None,
    max_traces: int | None = DEFAULT_MAX_TRACES,
    members: Mapping[str, Mapping[str, Sequence[int]]] | None = None,
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
    ``members``: per mode key, each cohort's members as positions in that mode's
    ``traces`` list as given, in place of the cohort rows' own ``members`` (which
    count every decided trace): with it, a report that lists only the failing
    traces (``build_report(verdicts=("fail", "error"), members=False)``, and
    ``json_report.listed_members`` per mode) filters them by cohort as well.

    :func:`write_html` writes the same page to a file without holding it whole.
    """
    return "".join(
        iter_html(
            report, comparisons, traces, title=title, generated_at=generated_at, max_traces=max_traces, members=members
        )
    )


def write_html(
    path: Path,
    report: Mapping[str, Any],
    comparisons: Sequence[Mapping[str, Any]] | None = None,
    traces: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    title: str | None = None,
    generated_at: str | None = None,
    max_traces: int | None = DEFAULT_MAX_TRACES,
    members: Mapping[str, Mapping[str, Sequence[int]]] | None = None,
) -> None:
    """:func:`render_html`'s page written to ``path`` whole or not at all, a block at a
    time: a page of tens of megabytes is never one string (nor its parts a list of them)."""
    write_text_atomically(
        path,
        iter_html(
            report, comparisons, traces, title=title, generated_at=generated_at, max_traces=max_traces, members=members
        ),
    )


def iter_html(
    report: Mapping[str, Any],
    comparisons: Sequence[Mapping[str, Any]] | None = None,
    traces: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    title: str | None = None,
    generated_at: str | None = None,
    max_traces: int | None = DEFAULT_MAX_TRACES,
    members: Mapping[str, Mapping[str, Sequence[int]]] | None = None,
) -> Iterator[str]:
    """:func:`render_html`'s page in pieces, in order (their concatenation is the page)."""
    page = _Page(report, comparisons or (), traces or {}, max_traces, members)
    view_js, view_css = trace_view_asset("trace_view.js"), trace_view_asset("trace_view.css")
    for inlined in (view_js, _SCRIPT):
        # inside <script>, these would end the element early or change how it ends
        if "</script" in inlined.lower() or "<!--" in inlined:
            raise ValueError("an inlined script holds '</script' or '<!--'")
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src {script_hash(view_js)} {script_hash(_SCRIPT)}; base-uri 'none'; form-action 'none'"
    )
    heading = title or "Failure-mode report"
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(heading)}</title>",
        f"<style>{_CSS}{view_css}</style>",
        "</head>",
        "<body>",
    ]
    # every line of the page ends with a newline; the sections yield lines
    for line in chain(
        lines,
        page.header(heading, generated_at),
        ["<main>"],
        page.baseline_section(),
        page.heatmap_section(),
        page.summary_section(),
        page.calibration_section(),
        page.traces_section(),
        ["</main>"],
    ):
        yield line + "\n"
    # data, not script: the browser never runs it; the escapes keep it from closing the block.
    # The traces' contents are a block of their own, parsed only when a trace is opened or searched
    yield from page.data_elements()
    yield f"<script>{view_js}</script>\n"
    yield f"<script>{_SCRIPT}</script>\n"
    yield "</body>\n"
    yield "</html>\n"


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


def _srgb_to_oklab(rgb: Sequence[float]) -> tuple[float, float, float]:
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb)
    l_ = (0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b) ** (1 / 3)
    m_ = (0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b) ** (1 / 3)
    s_ = (0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b) ** (1 / 3)
    return (
        0.2104542553 * l_ + 0.7936177850 * m_ - 0.0040720468 * s_,
        1.9779984951 * l_ - 2.4285922050 * m_ + 0.4505937099 * s_,
        0.0259040371 * l_ + 0.7827717662 * m_ - 0.8086757660 * s_,
    )


def _oklab_to_srgb(lab: Sequence[float]) -> tuple[float, float, float]:
    lightness, a, b = lab
    l_ = (lightness + 0.3963377774 * a + 0.2158037573 * b) ** 3
    m_ = (lightness - 0.1055613458 * a - 0.0638541728 * b) ** 3
    s_ = (lightness - 0.0894841775 * a - 1.2914855480 * b) ** 3
    linear = (
        4.0767416621 * l_ - 3.3077115913 * m_ + 0.2309699292 * s_,
        -1.2684380046 * l_ + 2.6097574011 * m_ - 0.3413193965 * s_,
        -0.0041960863 * l_ - 0.7034186147 * m_ + 1.7076147010 * s_,
    )
    out = (12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055 for c in linear)
    return tuple(min(1.0, max(0.0, c)) for c in out)  # type: ignore[return-value]


def _hex_rgb(colour: str) -> tuple[float, float, float]:
    return tuple(int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


_RAMP_LAB = [_srgb_to_oklab(_hex_rgb(c)) for c in reversed(_VIRIDIS)]


def _heat_colour(rate: float) -> tuple[str, str]:
    """(background, text colour) for a fail rate: reversed viridis on a square-root scale to 100%."""
    if rate <= 0:
        return _ZERO_COLOUR, "#1b1b1b"
    t = math.sqrt(min(rate, 1.0)) * (len(_RAMP_LAB) - 1)
    i = min(int(t), len(_RAMP_LAB) - 2)
    w = t - i
    lab = [a + (b - a) * w for a, b in zip(_RAMP_LAB[i], _RAMP_LAB[i + 1])]
    rgb = [round(255 * c) for c in _oklab_to_srgb(lab)]
    # pick the text colour with the higher contrast (WCAG relative luminance)
    lin = [(c / 255) / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    text = "#ffffff" if (1.05 / (lum + 0.05)) > ((lum + 0.05) / 0.05) else "#1b1b1b"
    return "#{:02x}{:02x}{:02x}".format(*rgb), text


def _rate_key(row: Mapping[str, Any]) -> float:
    rate = row.get("rate")
    return -1.0 if rate is None else float(rate)


def _content_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:  # on one line: json's fast encoder (the trace view lays JSON out when it shows it)
        return json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):
        return pretty_json(value, indent=2)  # no recursion: a value nested 1,000 deep still renders


class _Page:
    """The report's data, arranged for the page's sections."""

    def __init__(
        self,
        report: Mapping[str, Any],
        comparisons: Sequence[Mapping[str, Any]],
        traces: Mapping[str, Mapping[str, Any]],
        max_traces: int | None,
        members: Mapping[str, Mapping[str, Sequence[int]]] | None = None,
    ) -> None:
        self.report = report
        self.members = members
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
            failing = [(row, text) for row in mode.get("cohorts", []) for text, css in [self._gate(mode, row)] if css == "fail"]
            # a mode breached in 30 cohorts gets its worst few lines here; the summary has every row
            failing.sort(key=lambda rt: (rt[0]["cohort"] != _ALL, -_rate_key(rt[0])))
            for row, gate_text in failing[:_BREACHES_PER_MODE]:
                items.append(
                    f'{link} <span class="cohort">{_e(row["cohort"])}</span>: '
                    f"{_e(row.get('fails'))}/{_e(row.get('n'))} = {_e(pct(row.get('rate')))}, "
                    f"limit {_e(pct(row.get('limit')))} · {_e(gate_text)}"
                )
            if len(failing) > _BREACHES_PER_MODE:
                more = len(failing) - _BREACHES_PER_MODE
                items.append(f'{link}: {plural(more, "more breached cohort")} (<a href="#summary">summary table</a>)')
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

    def summary_head(self) -> list[str]:
        head = ["mode", "cohort", "n", "fails", "rate", "95% CI"]
        head += ["corrected", "corr. 95% CI"] if self.has_corrected else []
        head += ["limit"]
        head += ["errors"] if self.has_errors else []
        head += ["baseline", "Δ", "p (adj.)"] if self.has_comps else []
        return [*head, "gate"]

    def summary_section(self) -> Iterator[str]:
        """The table's frame: its rows (50 modes x 40 cohorts give 2,000) are data the page's
        script draws a page at a time, the breached rows and each mode's overall row first."""
        head = self.summary_head()
        yield '<section id="summary">'
        yield "<h2>Summary</h2>"
        yield (
            '<p class="hint">Every mode\'s fail rate overall and per cohort. n counts passes and fails '
            "(detector errors are not in n); cohorts under the mode's minimum size are shown but not gated. "
            "By default each mode shows its overall row and its breached cohorts; the other rows "
            "are a click away.</p>"
        )
        yield (
            '<div class="filterbar summarybar"><label for="summary-filter">Find</label>'
            '<input id="summary-filter" type="search" autocomplete="off" spellcheck="false" '
            'placeholder="mode or cohort; several words must all match">'
            '<label><input type="checkbox" id="summary-all"> every cohort row</label>'
            '<span id="summary-status" class="hint" aria-live="polite"></span></div>'
        )
        yield '<div class="panel"><table class="summary" id="summary-table">'
        yield "<thead><tr>" + "".join(f'<th scope="col">{_e(h)}</th>' for h in head) + "</tr></thead>"
        yield "</table></div>"
        yield '<div class="pager" id="summary-pager" hidden></div>'
        yield (
            '<noscript><p class="broken">The summary table is drawn by the page\'s script; with scripts '
            "off, the heat map above has every rate, and the JSON report every figure.</p></noscript>"
        )
        yield "</section>"

    def summary_data(self) -> dict[str, Any]:
        """The summary table's rows for the page's script. Per mode its label, anchor and either
        ``broken`` (why it could not be evaluated) or ``rows`` in the report's order (the
        pipeline order), each ``[cells, gate css, Δ css, rate or -1]``: the cells' text as the
        table shows it, so the script only places it (with ``textContent``)."""
        modes = []
        for mode in self.modes:
            key = mode["key"]
            entry: dict[str, Any] = {"label": self.label[key], "anchor": self.anchor[key]}
            if mode.get("status") == "broken" or mode.get("broken"):
                entry["broken"] = f"could not be evaluated: {text(mode.get('broken'))}"
            else:
                entry["rows"] = [self._summary_row(mode, row) for row in mode.get("cohorts", [])]
            modes.append(entry)
        return {"cls": [_SUMMARY_CSS.get(h, "num") for h in self.summary_head()[1:]], "modes": modes}

    def _summary_row(self, mode: Mapping[str, Any], row: Mapping[str, Any]) -> list[Any]:
        """A cohort row for :meth:`summary_data`: its cells after the mode column, the gate's
        css class, the Δ cell's css class and the rate the order control sorts by."""
        gate_text, gate_css = self._gate(mode, row)
        lo, hi = row.get("ci_low"), row.get("ci_high")
        cells = [
            row["cohort"],
            row.get("n"),
            row.get("fails"),
            pct(row.get("rate")),
            f"{pct(lo)} – {pct(hi)}" if lo is not None else "-",
        ]
        if self.has_corrected:
            c = row.get("corrected")
            if not isinstance(c, Mapping):
                c = {}
            clo, chi = c.get("ci_low"), c.get("ci_high")
            cells += [pct(c.get("rate")), f"{pct(clo)} – {pct(chi)}" if clo is not None else "-"]
        cells.append(pct(row.get("limit")))
        if self.has_errors:
            cells.append(row.get("errors", 0))
        delta_css = ""
        if self.has_comps:
            comp = self.comps.get((mode["key"], row["cohort"]))
            if comp is None:
                cells += ["-", "-", "-"]
                delta_css = "muted"
            else:
                arrow, delta_css = _arrow(comp)
                cells += [
                    pct(comp.get("base_rate")),
                    f"{arrow} {_pp(comp.get('delta'))}" if arrow else _pp(comp.get("delta")),
                    _p(comp.get("p_adjusted")),
                ]
        cells.append(gate_text)
        return [[text(c) for c in cells], gate_css, delta_css, _rate_key(row)]

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

    def cohort_columns(self) -> list[str]:
        """Every cohort of the run in pipeline order: ``all``, then the report's own row
        order (fields as the run orders them, numeric bins by their lower edge), first
        seen over the modes."""
        seen: dict[str, None] = {}
        for m in self.modes:
            for row in m.get("cohorts", []):
                seen.setdefault(row["cohort"], None)
        ordered = [c for c in seen if c == _ALL] + [c for c in seen if c != _ALL]
        # keep one field's columns together even when a mode lists only some of them
        fields = list(dict.fromkeys(_cohort_parts(c)[0] for c in ordered))
        return sorted(ordered, key=lambda c: fields.index(_cohort_parts(c)[0]))

    def order_control(self) -> Iterator[str]:
        yield (
            '<div class="orderbar" role="group" aria-label="cohort order">Cohorts in '
            '<label><input type="radio" name="order" value="pipeline" checked> pipeline order</label> '
            '<label><input type="radio" name="order" value="rate"> highest fail rate first</label>'
            '<span class="hint"> (within each field; the heat map and the summary table)</span></div>'
        )

    def heatmap_section(self) -> Iterator[str]:
        cohorts = self.cohort_columns()
        groups: list[tuple[str, list[str]]] = []
        for cohort in cohorts:
            field = _cohort_parts(cohort)[0]
            if groups and groups[-1][0] == field:
                groups[-1][1].append(cohort)
            else:
                groups.append((field, [cohort]))
        worst: dict[str, float] = {}
        for m in self.modes:
            for row in m.get("cohorts", []):
                if row.get("rate") is not None:
                    worst[row["cohort"]] = max(worst.get(row["cohort"], -1.0), float(row["rate"]))
        col = {c: j for j, c in enumerate(cohorts)}
        yield '<section id="heatmap">'
        yield "<h2>Fail rate by mode and cohort</h2>"
        yield from self._legend()
        yield from self.order_control()
        yield '<div class="panel"><table class="heat">'
        yield (
            '<thead><tr class="groups"><th rowspan="2" scope="col" class="corner">mode</th>'
            + "".join(
                f'<th colspan="{len(cs)}" scope="colgroup" class="group" title="{_e(field or "overall")}">'
                f"{_e(field or 'overall')}</th>"
                for field, cs in groups
            )
            + "</tr>"
        )
        yield (
            '<tr class="values">'
            + "".join(
                f'<th scope="col" class="value" data-col="{col[c]}" data-group="{g}" '
                f'data-worst="{worst.get(c, -1.0)!r}" title="{_e(c)}"><span>{_e(_cohort_parts(c)[1])}</span></th>'
                for g, (_f, cs) in enumerate(groups)
                for c in cs
            )
            + "</tr></thead>"
        )
        yield "<tbody>"
        for mode in self.modes:
            key = mode["key"]
            head = (
                f'<th scope="row" title="{_e(self.label[key])}">'
                f'<a href="#{self.anchor[key]}">{_e(self.label[key])}</a></th>'
            )
            if mode.get("status") == "broken" or mode.get("broken"):
                yield (
                    f'<tr>{head}<td colspan="{max(len(cohorts), 1)}" class="broken">broken: '
                    f"{_e(mode.get('broken'))}</td></tr>"
                )
                continue
            rows = {row["cohort"]: row for row in mode.get("cohorts", [])}
            cells = [self._heat_cell(mode, rows.get(c), c).replace("<td ", f'<td data-col="{col[c]}" ', 1) for c in cohorts]
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
            swatches.append(f'<span class="sw" style="background:{bg};color:{fg}">{100 * rate:g}%</span>')
        yield '<div class="legend" id="legend">'
        yield '<span class="legend-title">fail rate</span><span class="ramp">' + "".join(swatches) + "</span>"
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
            '<p class="hint">Each cell: fail rate, then fails/n. Colours run from yellow (rare) to dark violet '
            "(always) on a square-root scale to 100%; white is exactly 0. Hover a cell for the interval, "
            "the limit and the gate.</p>"
        )

    # -- failing traces ----------------------------------------------------------------

    def traces_section(self) -> Iterator[str]:
        yield '<section id="traces">'
        yield "<h2>Failing traces</h2>"
        yield (
            '<div class="filterbar"><label for="filter">Search</label>'
            '<input id="filter" type="search" autocomplete="off" spellcheck="false" '
            'placeholder="trace id, reason, input or output; several words must all match">'
            '<label for="cohort-filter">Cohort</label><select id="cohort-filter">'
            '<option value="">every cohort</option>'
            + "".join(
                f'<option value="{_e(c)}">{_e(c)}</option>' for c in self.cohort_columns() if c != _ALL
            )
            + '</select><span id="filter-status" class="hint" aria-live="polite"></span></div>'
        )
        yield (
            '<noscript><p class="broken">The failing traces are listed by the page\'s script; '
            "with scripts off, read them in the JSON report.</p></noscript>"
        )
        ordered = sorted(self.modes, key=lambda m: m.get("status") == "ok" or _allowed_empty(m))  # stable: breached first
        for mode in ordered:
            yield from self._mode_block(mode)
        yield "</section>"
        yield '<aside id="viewer" class="closed" aria-label="trace" tabindex="-1"><div class="viewer-bar">'
        yield '<button type="button" id="viewer-close" title="close (Esc)">✕ close</button></div>'
        yield '<div id="viewer-body"></div></aside>'

    def _mode_block(self, mode: Mapping[str, Any]) -> Iterator[str]:
        key = mode["key"]
        status = str(mode.get("status", ""))
        css = "ok" if status == "ok" or _allowed_empty(mode) else "fail"
        gate = mode.get("gate") or {}
        yield f'<section class="mode" id="{self.anchor[key]}">'
        yield f'<h3><span class="badge {css}">{_e(status.upper())}</span> <span class="s">{_e(self.label[key])}</span></h3>'
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
        overall: dict[str, Any] = next((row for row in mode.get("cohorts", []) if row.get("cohort") == _ALL), {})
        for verdict, title in (("fail", "failing traces"), ("error", "detector errors")):
            listed = sum(1 for t in verdicts if t.get("verdict") == verdict)
            # a report that lists only the first traces of each verdict: the overall row counts them all
            total = overall.get("fails" if verdict == "fail" else "errors")
            n = max(listed, total) if isinstance(total, int) else listed
            if not n and verdict == "error":
                continue
            shown = listed if self.max_traces is None else min(listed, self.max_traces)
            yield f'<div class="group-block {verdict}" data-mode="{self._mode_index(key) - 1}" data-verdict="{verdict}">'
            yield f'<h4>{_e(title)} <span class="count" data-all="{n}">{n}</span></h4>'
            if not n:
                yield f'<p class="hint">no {_e(title)}</p>'
            if shown < n:
                yield (
                    f'<p class="hint">only the first {shown} of {n} are listed, and the search '
                    "looks only at those; the JSON report has them all</p>"
                )
            if shown:
                yield '<ol class="tlist"></ol><p class="hint nomatch" hidden>no trace here matches</p>'
                yield '<div class="pager" hidden></div>'
            yield "</div>"
        yield "</section>"

    def data_elements(self) -> Iterator[str]:
        """The two JSON blocks as ``<script type="application/json">`` elements, in pieces.
        ``fm-data``: per mode and verdict ``[id, reason, evidence, [cohort index, ...]]``,
        the cohort labels once, the summary table's rows, and ``at``: where each trace's
        content is in the text of ``fm-traces`` (id -> [start, end) in UTF-16 code units, as a
        script's string counts them), so that opening a trace parses that slice, not the tens
        of megabytes of every trace. ``fm-traces``: one object, the contents once per id.
        Each piece is a whole JSON value's text: ``at`` comes from a first pass that encodes
        each trace and keeps only its length, and neither block is ever held whole."""
        cohorts = [c for c in self.cohort_columns() if c != _ALL]
        index = {c: i for i, c in enumerate(cohorts)}
        used: dict[str, Any] = {}
        for mode in self.modes:
            for tid in self._mode_data(mode, index)[1]:
                if tid in self.traces:
                    used[tid] = self.traces[tid]
        offset = 1
        at: dict[str, list[int]] = {}
        for i, (tid, content) in enumerate(used.items()):
            start = offset + _utf16_len(_trace_head(i, tid))
            offset = start + _utf16_len(_data_json(content))
            at[tid] = [start, offset]
        # the keys' order and separators as json.dumps writes {"cohorts", "modes", "summary", "at"}
        yield '<script type="application/json" id="fm-data">{"cohorts":'
        yield _data_json(cohorts, 1)
        yield ',"modes":['
        for i, mode in enumerate(self.modes):
            yield ("," if i else "") + _data_json(self._mode_data(mode, index)[0], 2)
        yield '],"summary":'
        yield _data_json(self.summary_data(), 1)
        yield ',"at":'
        yield _data_json(at, 1)
        yield '}</script>\n<script type="application/json" id="fm-traces">{'
        for i, (tid, content) in enumerate(used.items()):
            yield _trace_head(i, tid)
            yield _data_json(content)
        yield "}</script>\n"

    def _mode_data(self, mode: Mapping[str, Any], index: Mapping[str, int]) -> tuple[dict[str, Any], list[str]]:
        """A mode's entry of ``fm-data`` and the ids it lists, in order (built again when
        wanted, by :meth:`data_elements`: the entries of every mode are not held while the
        page is written)."""
        verdicts = mode.get("traces") or []
        of: dict[int, list[int]] = {}
        if self.members is not None:
            given = self.members.get(mode["key"]) or {}
        else:
            given = {row["cohort"]: row.get("members") or () for row in mode.get("cohorts", [])}
        for cohort, positions in given.items():
            if cohort in index:
                for pos in positions:
                    if isinstance(pos, int):
                        of.setdefault(pos, []).append(index[cohort])
        groups: dict[str, list[list[Any]]] = {"fail": [], "error": []}
        tids: list[str] = []
        for pos, t in enumerate(verdicts):
            group = groups.get(str(t.get("verdict")))
            if group is None or (self.max_traces is not None and len(group) >= self.max_traces):
                continue
            tid = str(t.get("id", ""))
            evidence = t.get("evidence")
            shown = _content_text(evidence)
            reason = str(t.get("reason") or "")
            group.append([tid, reason, None if shown is None or shown in reason else shown, of.get(pos, [])])
            tids.append(tid)
        detector = str(mode.get("detector") or "")
        entry = {
            "label": self.label[mode["key"]],
            "judge": detector.startswith("judge"),
            "detector": detector,
            "groups": groups,
        }
        return entry, tids


def _trace_head(i: int, tid: str) -> str:
    """What precedes a trace's content in ``fm-traces``: a comma after the first, its id and a colon."""
    return ("," if i else "") + _data_json(tid) + ":"


def _utf16_len(s: str) -> int:
    """The length of ``s`` as JavaScript counts it (a character past U+FFFF is two units)."""
    return len(s) if s.isascii() else len(s.encode("utf-16-le")) // 2


def _data_json(data: Any, depth: int = 0) -> str:
    """JSON for a ``<script type="application/json">`` block. Strings read as
    :func:`safe.text` shows them (control and bidi characters as visible escapes,
    lone surrogates as U+FFFD), and ``<``, ``>``, ``&`` are written as escapes, so no
    value can close the block or open a comment in it. Written by ``json.dumps`` and
    two passes over its output (a walk over every value in Python took most of the
    time of a 50 MB page); values it cannot write (NaN, very deep nesting, odd keys)
    take the walk (``depth``: how deep ``data`` sits in the block it is a piece of, so a
    piece's walk stops where the whole block's would)."""
    try:
        out = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    except (ValueError, TypeError, RecursionError):
        out = json.dumps(_clean(data, depth), ensure_ascii=False, separators=(",", ":"))
    out = _JSON_ESCAPE.sub(_visible_escape, _RAW_UNSAFE.sub(_visible_raw, out))
    return out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# raw characters json.dumps leaves in its output (with ensure_ascii=False) that
# safe.text shows as escapes; and json.dumps' own escapes, one whole escape per
# match (so the second backslash of an escaped backslash never starts one)
_RAW_UNSAFE = re.compile(f"[\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}\ud800-\udfff]")
_JSON_ESCAPE = re.compile(r"\\(\\|u00(?:0[0-8bcef]|1[0-9a-f])|[rbf])")


def _visible_raw(match: re.Match[str]) -> str:
    # the JSON for the text safe.text shows: its backslash escaped
    return text(match.group()).replace("\\", "\\\\")


def _visible_escape(match: re.Match[str]) -> str:
    body = match.group(1)
    if body == "\\":
        return match.group()
    char = {"r": "\r", "b": "\b", "f": "\f"}.get(body) or chr(int(body[1:], 16))
    return text(char).replace("\\", "\\\\")


def _clean(value: Any, depth: int) -> Any:
    """``value`` as JSON-able data: strings through :func:`safe.text`, non-finite floats
    as text, nesting below ``_DATA_DEPTH`` as JSON text."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth > _DATA_DEPTH:
        return pretty_json(value, indent=2)
    if isinstance(value, Mapping):
        return {text(k): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, depth + 1) for v in value]
    return text(value)


#: how deep the page's data follows nested values before showing the rest as JSON text
_DATA_DEPTH = 24


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
ul.breaches{margin:4px 0 8px;padding-left:22px;font-size:14px;max-height:13.5em;overflow:auto}
ul.breaches li{margin:1px 0}
.meta{margin:0 0 8px;color:var(--muted);font-size:13px}
nav a{margin-right:16px;font-size:14px}
main{padding:8px 32px 48px;max-width:1500px;min-width:0}
section{margin:20px 0 28px}
.hint{color:var(--muted);font-size:13px;margin:4px 0 10px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;
white-space:nowrap;border:1px solid transparent}
.badge.fail{background:var(--fail-bg);color:var(--fail);border-color:#f4b4ad}
.badge.ok{background:var(--ok-bg);color:var(--ok);border-color:#aedbb9}
.badge.muted{background:var(--soft);color:var(--muted);border-color:var(--line)}
.verdict .badge{font-size:14px;padding:2px 10px}
.scroll{overflow-x:auto}
.panel{max-width:100%;max-height:75vh;overflow:auto;border:1px solid var(--line);border-radius:6px}
.orderbar{font-size:13px;margin:6px 0 8px}.orderbar label{margin:0 6px}
ul.breaches li,p.desc,p.facts,p.note,p.broken,h3 .s,.meta{overflow-wrap:anywhere}
table{border-collapse:collapse;font-size:13.5px}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}
thead th{background:var(--soft);font-weight:600;position:sticky;top:0}
.num{text-align:right;white-space:nowrap}
td.cohort{white-space:nowrap}
table.summary tbody th{font-weight:500;vertical-align:top;background:var(--bg);max-width:260px;overflow-wrap:anywhere}
table.summary thead th{z-index:2}
table.summary td.cohort{white-space:normal;max-width:340px;overflow-wrap:anywhere}
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
table.heat{border-collapse:separate;border-spacing:2px}
table.heat th,table.heat td{border:0}
table.heat thead th{background:var(--bg);position:sticky;z-index:2;font-size:12.5px;text-align:center;padding:2px 4px}
table.heat thead tr.groups th{top:0;height:24px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:1px}
table.heat thead tr.values th{top:26px}
table.heat thead th.value span{display:block;max-width:84px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
table.heat thead th.group{border-bottom:2px solid var(--line);color:var(--ink)}
table.heat thead th.value{color:var(--muted);font-weight:500}
table.heat thead th.corner{text-align:left;vertical-align:bottom;left:0;top:0;z-index:3}
table.heat tbody th{font-weight:500;white-space:nowrap;padding-right:12px;position:sticky;left:0;z-index:1;background:var(--bg);
max-width:240px;overflow:hidden;text-overflow:ellipsis}
td.hm{min-width:60px;text-align:center;border-radius:4px;padding:5px 6px;line-height:1.2}
td.hm .r{display:block;font-weight:700;font-size:14px;font-variant-numeric:tabular-nums;white-space:nowrap}
td.hm .k{display:block;font-size:11px;opacity:.8;font-variant-numeric:tabular-nums}
td.hm .d{display:block;font-size:11px;font-weight:700;margin-top:2px;background:#fff;border-radius:3px;padding:0 3px}
td.hm.breach{box-shadow:inset 0 0 0 3px #111;}
td.hm.breach .r::after{content:" !"}
td.hm.small{font-style:italic;opacity:.72}
td.hm.empty,td.hm.nodata{background:repeating-linear-gradient(45deg,#f3f4f6,#f3f4f6 4px,#e5e7eb 4px,#e5e7eb 8px)}
.legend{display:flex;flex-wrap:wrap;gap:4px;align-items:center;font-size:12px;margin:4px 0 6px}
.legend-title{color:var(--muted);margin-right:6px}
.ramp{display:inline-flex;border:1px solid var(--line);border-radius:4px;overflow:hidden}.ramp .sw{border-radius:0}
.sw{display:inline-block;padding:3px 8px;border-radius:4px;min-width:44px;text-align:center}
.sw.breach-sample{box-shadow:inset 0 0 0 3px #111;margin-left:12px;background:#fff}
.sw.small-sample{font-style:italic;opacity:.72;background:#fde0a8}
.sw.empty-sample{background:repeating-linear-gradient(45deg,#f3f4f6,#f3f4f6 4px,#e5e7eb 4px,#e5e7eb 8px)}
.legend-note{margin-left:12px}
.filterbar{position:sticky;top:0;z-index:2;background:var(--bg);padding:10px 0;
border-bottom:1px solid var(--line);display:flex;gap:10px;align-items:center}
.filterbar label{font-weight:600}
.filterbar select{font:inherit;padding:5px 6px;max-width:320px}
.filterbar input{flex:0 1 460px;font:inherit;padding:6px 10px;border:1px solid #9aa4ae;border-radius:6px}
.filterbar .hint{margin:0}
section.mode{border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin:14px 0}
p.desc{margin:2px 0}
p.facts{margin:2px 0;color:var(--muted);font-size:13px}
p.note{margin:2px 0;font-size:13px}
.count{display:inline-block;min-width:1.6em;padding:0 6px;border-radius:9px;background:var(--soft);
color:var(--ink);text-align:center;font-size:12px;letter-spacing:0;text-transform:none;border:1px solid var(--line)}
ol.tlist{list-style:none;margin:0;padding:0}
li.trace{border-top:1px solid var(--line)}
li.trace:first-child{border-top:0}
button.open{display:flex;gap:12px;align-items:baseline;width:100%;text-align:left;font:inherit;color:inherit;
background:none;border:0;padding:6px 4px;cursor:pointer;border-radius:4px}
button.open:hover,button.open:focus-visible{background:var(--soft);outline:2px solid var(--accent)}
.tid{flex:0 1 auto;max-width:30%;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font-weight:600;color:var(--ink)}
.error .tid{color:#8a4b00}
.reason{flex:1 1 0;min-width:0;white-space:pre-wrap;overflow-wrap:anywhere;display:-webkit-box;-webkit-line-clamp:2;
-webkit-box-orient:vertical;overflow:hidden}
.tcohorts{flex:0 1 25%;min-width:0;font-size:12px;color:var(--muted);overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.filterbar.summarybar{position:static;border-bottom:0;padding:4px 0 8px}
button.summary-more{font:inherit;font-size:12.5px;color:var(--accent);background:none;border:0;padding:1px 0;cursor:pointer}
.pager{display:flex;gap:10px;align-items:center;margin-top:6px;font-size:13px}
#viewer{position:fixed;top:0;right:0;bottom:0;width:min(940px,72vw);background:var(--bg);z-index:10;overflow:auto;contain:strict;
border-left:1px solid var(--line);box-shadow:-8px 0 24px rgba(0,0,0,.18);padding:0 20px 40px;outline:none}
#viewer.closed{visibility:hidden}
.viewer-bar{position:sticky;top:0;z-index:1;background:var(--bg);padding:8px 0;display:flex;justify-content:flex-end}
.viewer-head{display:flex;gap:10px;align-items:center;margin:0 0 8px;overflow-wrap:anywhere}
.viewer-mode{font-weight:600;font-size:16px}
.why{border:1px solid var(--line);border-radius:6px;padding:6px 10px;background:var(--soft);margin-bottom:10px}
.why .fm-text{overflow-wrap:anywhere}
@media (max-width:800px){main,header{padding-left:12px;padding-right:12px}#viewer{width:100vw}}
"""

# The failing traces are data (the JSON block): each list draws one page of
# PAGE items, so a report with 100,000 failing traces builds a few hundred nodes.
# Search and the cohort filter run over the data; the `#filter=` fragment opens
# the page searched (a link, or a headless browser). A trace opens in the shared
# trace view, an aside shown and hidden by its visibility under `contain: strict`:
# that lays out the aside alone, where toggling its display laid out the whole page
# with its 2,000-cell heat map again (a quarter of a second on a big page). Every
# value reaches the DOM through textContent.
_SCRIPT = r"""
(function () {
  "use strict";
  var PAGE = 20;
  var data = JSON.parse(document.getElementById("fm-data").textContent);
  var contents = null;  // tens of megabytes in a big report: parsed on the first search, not at load
  var contentsText = null;
  function traces() {
    if (contents === null) { contents = JSON.parse(contentsBlock()); contentsText = null; }
    return contents;
  }
  function contentsBlock() {
    return contentsText !== null ? contentsText : document.getElementById("fm-traces").textContent;
  }
  // one trace's content: its slice of the block (data.at says where), until a search parsed them all
  function contentOf(id) {
    if (contents !== null) { return Object.prototype.hasOwnProperty.call(contents, id) ? contents[id] : undefined; }
    if (!Object.prototype.hasOwnProperty.call(data.at, id)) { return undefined; }
    if (contentsText === null) { contentsText = contentsBlock(); }
    var at = data.at[id];
    return JSON.parse(contentsText.slice(at[0], at[1]));
  }
  var box = document.getElementById("filter");
  var cohortBox = document.getElementById("cohort-filter");
  var status = document.getElementById("filter-status");
  var viewer = document.getElementById("viewer");
  var viewerBody = document.getElementById("viewer-body");
  var opener = null;
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  var groups = Array.prototype.map.call(document.querySelectorAll(".group-block"), function (block) {
    var mode = data.modes[Number(block.getAttribute("data-mode"))];
    var verdict = block.getAttribute("data-verdict");
    var items = (mode && mode.groups[verdict]) || [];
    return { block: block, mode: mode, verdict: verdict, items: items, shown: items, page: 0,
      list: block.querySelector("ol.tlist"), pager: block.querySelector(".pager"),
      none: block.querySelector(".nomatch"), count: block.querySelector(".count") };
  });
  var sections = Array.prototype.slice.call(document.querySelectorAll("section.mode"));
  var listed = groups.reduce(function (n, g) { return n + g.items.length; }, 0);
  var hays = new Map();  // built on the first search only
  function hay(item) {
    var h = hays.get(item);
    if (h === undefined) {
      var t = traces()[item[0]] || {};
      h = [item[0], item[1], item[2] || "", t.input || "", t.output || ""].join("\n").toLowerCase();
      hays.set(item, h);
    }
    return h;
  }
  function cohortsOf(item) {
    return item[3].map(function (i) { return data.cohorts[i]; }).join(" · ");
  }
  function itemNode(g, item) {
    var li = el("li", "trace " + g.verdict);
    var button = el("button", "open");
    button.type = "button";
    button.append(el("code", "tid", item[0]), el("span", "reason", item[1] || "(no reason given)"));
    if (item[3].length) { button.append(el("span", "tcohorts", cohortsOf(item))); }
    button.addEventListener("click", function () { openTrace(g, item, button); });
    li.append(button);
    return li;
  }
  function pagerButton(label, g, page, off) {
    var b = el("button", "page-" + label.toLowerCase(), label);
    b.type = "button";
    b.disabled = off;
    b.addEventListener("click", function () { g.page = page; draw(g); });
    return b;
  }
  function draw(g) {
    if (!g.list) { return; }
    var pages = Math.max(1, Math.ceil(g.shown.length / PAGE));
    g.page = Math.min(Math.max(g.page, 0), pages - 1);
    var frag = document.createDocumentFragment();
    g.shown.slice(g.page * PAGE, (g.page + 1) * PAGE).forEach(function (item) { frag.append(itemNode(g, item)); });
    g.list.replaceChildren(frag);
    g.pager.hidden = g.shown.length <= PAGE;
    g.pager.replaceChildren(
      pagerButton("Previous", g, g.page - 1, g.page === 0),
      el("span", "page-of", "page " + (g.page + 1) + " of " + pages + " (" + g.shown.length + " traces)"),
      pagerButton("Next", g, g.page + 1, g.page >= pages - 1));
    g.block.setAttribute("data-page", String(g.page + 1));
  }
  function apply() {
    var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    var ci = cohortBox.value ? data.cohorts.indexOf(cohortBox.value) : -1;
    var filtering = words.length > 0 || ci >= 0;
    var shown = 0;
    groups.forEach(function (g) {
      g.shown = !filtering ? g.items : g.items.filter(function (item) {
        if (ci >= 0 && item[3].indexOf(ci) === -1) { return false; }
        if (!words.length) { return true; }
        var h = hay(item);
        return words.every(function (w) { return h.indexOf(w) !== -1; });
      });
      g.page = 0;
      shown += g.shown.length;
      if (g.none) { g.none.hidden = !(filtering && g.items.length && !g.shown.length); }
      g.count.textContent = filtering ? g.shown.length + " of " + g.items.length : g.count.getAttribute("data-all");
      g.block.setAttribute("data-shown", String(g.shown.length));
      draw(g);
    });
    sections.forEach(function (sec) {
      var any = groups.some(function (g) { return g.shown.length > 0 && sec.contains(g.block); });
      sec.hidden = filtering && !any;
    });
    status.textContent = filtering ? shown + " of " + listed + " listed traces match" : listed + " traces listed";
    document.body.setAttribute("data-filter-shown", String(shown));
  }
  function labelled(label, value, cls) {
    var box = el("div", "why-part");
    box.append(el("div", "fm-label", label), el("div", "fm-text" + (cls ? " " + cls : ""), value));
    return box;
  }
  function openTrace(g, item, from) {
    opener = from;
    var content = contentOf(item[0]);
    var head = el("div", "viewer-head");
    head.append(el("span", "badge " + (g.verdict === "fail" ? "fail" : "muted"), g.verdict.toUpperCase()),
      el("span", "viewer-mode", g.mode.label), el("code", "fm-muted", g.mode.detector));
    var why = el("div", "why");
    why.append(labelled(g.verdict === "error" ? "detector error" : g.mode.judge ? "the judge's critique" : "the detector's reason",
      item[1] || "(no reason given)"));
    if (item[2] !== null) { why.append(labelled("evidence", window.FailmodesTraceView.pretty(item[2]), "fm-code")); }
    if (item[3].length) { why.append(labelled("cohorts", cohortsOf(item))); }
    var body;
    if (content) {
      body = window.FailmodesTraceView.render(Object.assign({}, content, { id: item[0] }), {});
      if (content.dropped) {
        why.append(labelled("not shown", Object.keys(content.dropped).map(function (k) {
          return content.dropped[k] + " more " + k; }).join(", ") + " (the report keeps the first ones)"));
      }
    } else {
      body = el("p", "fm-muted", "The report did not keep this trace's content (it keeps it for the first failing traces of each mode); the trace id finds it in the dataset.");
    }
    viewerBody.replaceChildren(head, why, body);
    viewer.classList.remove("closed");
    viewer.setAttribute("data-trace", item[0]);
    viewer.scrollTop = 0;
    viewer.focus();
  }
  function closeTrace() {
    if (viewer.classList.contains("closed")) { return; }
    viewer.classList.add("closed");
    if (opener) { opener.focus(); }
  }
  document.getElementById("viewer-close").addEventListener("click", closeTrace);
  // The summary table: data.summary drawn SUMMARY_PAGE rows at a time. Each mode shows its
  // overall row and its breached rows unless "every cohort row" is ticked or the mode was
  // opened; the rows of a mode keep the report's order (the pipeline's) or go by rate.
  var SUMMARY_PAGE = 100;
  var summary = { table: document.getElementById("summary-table"), pager: document.getElementById("summary-pager"),
    find: document.getElementById("summary-filter"), all: document.getElementById("summary-all"),
    status: document.getElementById("summary-status"), byRate: false, page: 0, opened: new Set(), entries: [] };
  function summaryEntries() {
    var s = data.summary, words = summary.find.value.toLowerCase().split(/\s+/).filter(Boolean);
    var out = [];
    s.modes.forEach(function (m, mi) {
      var label = m.label.toLowerCase();
      function matches(cohort) {
        var h = label + "\n" + cohort.toLowerCase();
        return words.every(function (w) { return h.indexOf(w) !== -1; });
      }
      if (m.broken !== undefined) {
        if (matches("")) { out.push({ mode: mi, broken: m.broken }); }
        return;
      }
      var rows = m.rows.map(function (r, i) { return { row: r, pos: i }; });
      if (summary.byRate) {
        rows.sort(function (a, b) {
          var pin = Number(b.row[0][0] === "all") - Number(a.row[0][0] === "all");
          return pin || b.row[3] - a.row[3] || a.pos - b.pos;
        });
      }
      var every = summary.all.checked || summary.opened.has(mi) || words.length > 0;
      var hidden = 0;
      rows.forEach(function (r) {
        if (!matches(r.row[0][0])) { return; }
        if (every || r.row[0][0] === "all" || r.row[1] === "fail") { out.push({ mode: mi, row: r.row }); }
        else { hidden += 1; }
      });
      if (hidden) { out.push({ mode: mi, more: hidden }); }
    });
    return out;
  }
  function summaryRow(e) {
    var tr = el("tr"), s = data.summary;
    if (e.broken !== undefined) {
      tr.className = "fail";
      var td = el("td", "broken", e.broken);
      td.colSpan = s.cls.length - 1;
      var gate = el("td");
      gate.append(el("span", "badge fail", "BROKEN"));
      tr.append(td, gate);
      return tr;
    }
    if (e.more !== undefined) {
      tr.className = "more";
      var cell = el("td");
      cell.colSpan = s.cls.length;
      var b = el("button", "summary-more", "show " + e.more + " more cohort row" + (e.more === 1 ? "" : "s") + " within limits");
      b.type = "button";
      b.addEventListener("click", function () { summary.opened.add(e.mode); drawSummary(); });
      cell.append(b);
      tr.append(cell);
      return tr;
    }
    var r = e.row;
    tr.className = r[1];
    tr.setAttribute("data-rate", String(r[3]));
    if (r[0][0] === "all") { tr.setAttribute("data-pin", ""); }
    r[0].forEach(function (value, i) {
      var cls = s.cls[i];
      if (cls === "gate") {
        var g = el("td");
        g.append(el("span", "badge " + r[1], value));
        tr.append(g);
        return;
      }
      if (r[2] === "muted" && cls.indexOf("num") === 0 && i >= s.cls.length - 4) { cls += " muted"; }
      else if (cls === "num delta" && r[2]) { cls += " " + r[2]; }
      tr.append(el("td", cls, value));
    });
    return tr;
  }
  function drawSummary() {
    if (!summary.table) { return; }
    var entries = summaryEntries(), pages = Math.max(1, Math.ceil(entries.length / SUMMARY_PAGE));
    summary.page = Math.min(Math.max(summary.page, 0), pages - 1);
    var slice = entries.slice(summary.page * SUMMARY_PAGE, (summary.page + 1) * SUMMARY_PAGE);
    var bodies = [], body = null, head = null, last = -1, spanned = 0;
    slice.forEach(function (e) {
      if (e.mode !== last) {  // a mode's rows are one group under its name, repeated on each page
        var m = data.summary.modes[e.mode];
        body = el("tbody", "mode-rows");
        head = el("th");
        head.scope = "rowgroup";
        var a = el("a", null, m.label);
        a.href = "#" + m.anchor;
        head.append(a);
        bodies.push(body);
        last = e.mode;
        spanned = 0;
      }
      var tr = summaryRow(e);
      if (spanned === 0) { tr.insertBefore(head, tr.firstChild); }
      spanned += 1;
      head.rowSpan = spanned;
      body.append(tr);
    });
    Array.prototype.slice.call(summary.table.tBodies).forEach(function (tb) { tb.remove(); });
    bodies.forEach(function (tb) { summary.table.append(tb); });
    summary.pager.hidden = pages <= 1;
    var rows = entries.filter(function (e) { return e.more === undefined; }).length;
    summary.pager.replaceChildren(
      summaryPagerButton("Previous", summary.page - 1, summary.page === 0),
      el("span", "page-of", "page " + (summary.page + 1) + " of " + pages),
      summaryPagerButton("Next", summary.page + 1, summary.page >= pages - 1));
    summary.status.textContent = rows + " row" + (rows === 1 ? "" : "s") + " shown";
    summary.table.setAttribute("data-page", String(summary.page + 1));
    summary.table.setAttribute("data-rows", String(rows));
  }
  function summaryPagerButton(label, page, off) {
    var b = el("button", "page-" + label.toLowerCase(), label);
    b.type = "button";
    b.disabled = off;
    b.addEventListener("click", function () { summary.page = page; drawSummary(); });
    return b;
  }
  if (summary.table) {
    summary.find.addEventListener("input", function () { summary.page = 0; drawSummary(); });
    summary.all.addEventListener("change", function () { summary.page = 0; drawSummary(); });
    drawSummary();
  }
  function order(byRate) {
    var heat = document.querySelector("table.heat");
    var heads = heat ? Array.prototype.slice.call(heat.querySelectorAll("thead th.value")) : [];
    if (heads.length) {
      var cols = heads.map(function (h) {
        return { el: h, col: Number(h.getAttribute("data-col")), group: Number(h.getAttribute("data-group")),
          worst: Number(h.getAttribute("data-worst")) };
      });
      cols.sort(function (a, b) { return a.group - b.group || (byRate ? b.worst - a.worst : 0) || a.col - b.col; });
      var row = heads[0].parentNode;
      cols.forEach(function (c) { row.appendChild(c.el); });
      Array.prototype.forEach.call(heat.tBodies[0].rows, function (tr) {
        var cells = {};
        Array.prototype.forEach.call(tr.querySelectorAll("td[data-col]"), function (td) { cells[td.getAttribute("data-col")] = td; });
        cols.forEach(function (c) { if (cells[c.col]) { tr.appendChild(cells[c.col]); } });
      });
    }
    summary.byRate = byRate;
    drawSummary();
    document.body.setAttribute("data-order", byRate ? "rate" : "pipeline");
  }
  Array.prototype.forEach.call(document.querySelectorAll('input[name="order"]'), function (radio) {
    radio.addEventListener("change", function () { if (radio.checked) { order(radio.value === "rate"); } });
  });
  box.addEventListener("input", apply);
  cohortBox.addEventListener("change", apply);
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { closeTrace(); return; }
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
  document.body.setAttribute("data-ready", "1");
})();
"""
