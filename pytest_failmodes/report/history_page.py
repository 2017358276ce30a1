"""``failmodes history DIR``: the run history as a terminal table, a JSON file and an HTML page.

The table puts the latest run next to the one before it, with flags (a sustained
shift, a definition change, a breached limit, a regression against the run's
baseline). The page draws every mode x cohort as a small chart over the runs:
fail rate with its 95% interval as a band, the limit, the baseline's rate and
regressions against it, definition changes and shifted runs. Charts are inline
SVG drawn here: no script, no network, one file. Every name from the history is
escaped once, with :func:`_e`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator, Sequence
from html import escape
from pathlib import Path
from typing import Any

from ..history import DEFAULT_LAST, Run, Series, ShiftTest, build_series, find_shifts, load_history
from .safe import json_text, text, write_atomically

__all__ = ["add_history", "render_history", "history_lines", "history_json"]

#: the terminal shortens longer cohort and mode names in the middle (the JSON has them whole)
_MAX_NAME = 48


def add_history(sub: Any) -> None:
    """Register ``failmodes history`` on an argparse subparsers object."""
    p = sub.add_parser(
        "history",
        help="fail rates per mode x cohort over the runs in a --failmodes-history directory",
        description="Read the run history that pytest --failmodes --failmodes-history=DIR wrote: print the latest "
        "run against the one before, flag sustained shifts, and write an HTML page of every mode x cohort over time.",
    )
    p.add_argument("directory", metavar="DIR", help="the directory --failmodes-history wrote to")
    p.add_argument("--html", metavar="PATH", help="write the history page (self-contained HTML) to PATH")
    p.add_argument("--json", metavar="PATH", dest="json_out", help="write every series and its shift test as JSON to PATH")
    p.add_argument("--mode", action="append", metavar="NAME", help="only this mode, by name or key (repeatable)")
    p.add_argument("--cohort", action="append", metavar="LABEL", help="only this cohort, e.g. route=refunds (repeatable)")
    p.add_argument("--all-rows", action="store_true", help="list every mode x cohort (default: each mode's 'all' row and flagged rows)")
    p.add_argument("--last", type=int, default=DEFAULT_LAST, metavar="N", help=f"read the newest N run files (default {DEFAULT_LAST})")
    p.add_argument("--min-run", type=int, default=ShiftTest.min_run, metavar="N", help=f"latest runs a shift must last (default {ShiftTest.min_run}, at least 2)")
    p.add_argument("--window", type=int, default=ShiftTest.window, metavar="N", help=f"runs before them that make the reference (default {ShiftTest.window})")
    p.add_argument("--alpha", type=float, default=ShiftTest.alpha, metavar="P", help=f"chance of any false shift on the dashboard when nothing changed (default {ShiftTest.alpha})")

    def run(args: argparse.Namespace) -> int:
        if not args.min_run >= 2:
            p.error(f"--min-run takes a whole number >= 2 (one run is not a sustained shift), got {args.min_run}")
        if not args.last >= 1:
            p.error(f"--last takes a whole number >= 1, got {args.last}")
        if not args.window >= 2:
            p.error(f"--window takes a whole number >= 2, got {args.window}")
        if not 0.0 < args.alpha < 1.0:
            p.error(f"--alpha takes a number between 0 and 1, got {args.alpha}")
        return _run(args)

    p.set_defaults(func=run)


def _run(args: argparse.Namespace) -> int:
    skipped: list[str] = []

    def warn(line: str) -> None:
        skipped.append(line)
        print(f"failmodes history: warning: {text(line, newlines=False)}", file=sys.stderr)

    test = ShiftTest(min_run=args.min_run, window=args.window, alpha=args.alpha)
    runs = load_history(Path(args.directory), warn, last=args.last)
    series = build_series(runs, modes=args.mode or (), cohorts=args.cohort or (), source=args.directory)
    find_shifts(series, test)
    for line in history_lines(runs, series, test, directory=args.directory, all_rows=args.all_rows):
        print(line)
    if args.json_out:
        write_atomically(Path(args.json_out), json_text(history_json(runs, series, test, skipped)) + "\n")
    if args.html:
        write_atomically(Path(args.html), render_history(runs, series, test, title=f"Fail-rate history: {args.directory}"))
    return 0


# -- shared wording ----------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _flags(s: Series, runs: Sequence[Run]) -> list[str]:
    """What the latest run says about this series, most important first."""
    last = len(runs) - 1
    out = []
    if s.shift is not None and s.shift.flagged:
        out.append(f"SHIFT {s.shift.direction} since run {s.points[s.shift.since].run + 1}")
    if s.latest.run != last:
        out.append(f"not in the latest run (last in run {s.latest.run + 1})")
        return out
    if len(s.points) == 1 and last > 0:
        out.append("new")
    if s.definition_changes() and s.definition_changes()[-1] == len(s.points) - 1:
        out.append("definition changed")
    if s.latest.breach:
        out.append("breach")
    base = s.latest.baseline
    if base and base.get("regression"):
        out.append("regression")
    if s.latest.n == 0:
        out.append("no decided trace")
    return out


def _short(value: str, limit: int = _MAX_NAME) -> str:
    shown = text(value, newlines=False)
    if len(shown) <= limit:
        return shown
    half = (limit - 1) // 2
    return shown[:half] + "…" + shown[len(shown) - (limit - 1 - half) :]


# -- terminal ------------------------------------------------------------------------------------


def history_lines(
    runs: Sequence[Run], series: Sequence[Series], test: ShiftTest, *, directory: str, all_rows: bool = False
) -> Iterator[str]:
    """The terminal table: latest run against the one before, per mode x cohort."""
    from tabulate import tabulate

    first, last = runs[0], runs[-1]
    where = " ".join(x for x in (last.branch, last.commit[:12] if last.commit else None) if x)
    yield text(
        f"history {directory}: {len(runs)} run{'s' if len(runs) != 1 else ''}, {first.label} .. {last.label}"
        + (f" (latest: {where})" if where else ""),
        newlines=False,
    )
    flagged = [s for s in series if s.shift is not None and s.shift.flagged]
    rows = []
    for s in series:
        flags = _flags(s, runs)
        if not (all_rows or s.cohort == "all" or flags):
            continue
        # the two runs compared are the history's last two, whatever this series has
        at = {p.run: p for p in s.points[-2:]}
        prev, latest = at.get(len(runs) - 2), at.get(len(runs) - 1)
        delta = (
            f"{100 * (latest.rate - prev.rate):+.1f} pp"
            if prev is not None and latest is not None and latest.rate is not None and prev.rate is not None
            else "-"
        )
        rows.append(
            [
                _short(s.name),
                _short(s.cohort),
                f"{_pct(prev.rate)} ({prev.fails}/{prev.n})" if prev else "-",
                f"{_pct(latest.rate)} ({latest.fails}/{latest.n})" if latest else "-",
                delta,
                "; ".join(flags),
            ]
        )
    if rows:
        yield ""
        yield from tabulate(
            rows,
            headers=["mode", "cohort", "previous", "latest", "change", "flags"],
            tablefmt="simple",
            disable_numparse=True,
        ).splitlines()
    hidden = len(series) - len(rows)
    yield ""
    yield (
        f"{len(flagged)} of {len(series)} mode x cohort series with a sustained shift "
        f"(the last {test.min_run} runs against up to {test.window} before them; "
        f"{test.alpha:g} chance of any false shift on this dashboard)"
    )
    if hidden:
        yield f"{hidden} unflagged cohort rows not shown (--all-rows lists them; --html draws them all)"


# -- JSON ----------------------------------------------------------------------------------------------


def history_json(runs: Sequence[Run], series: Sequence[Series], test: ShiftTest, skipped: Sequence[str] = ()) -> dict[str, Any]:
    """Every run and series with its shift test, for other tools."""
    return {
        "runs": [
            {"index": i, "file": r.file, "timestamp": r.timestamp, "commit": r.commit, "branch": r.branch, "baseline": r.baseline}
            for i, r in enumerate(runs)
        ],
        "shift_test": {"min_run": test.min_run, "window": test.window, "alpha": test.alpha},
        "skipped": list(skipped),
        "series": [
            {
                "mode": s.mode,
                "name": s.name,
                "cohort": s.cohort,
                "flags": _flags(s, runs),
                "shift": s.shift.to_dict() if s.shift else None,
                "definition_changes": [s.points[i].run for i in s.definition_changes()],
                "points": [
                    {
                        "run": p.run,
                        "n": p.n,
                        "fails": p.fails,
                        "errors": p.errors,
                        "rate": p.rate,
                        "ci_low": p.ci_low,
                        "ci_high": p.ci_high,
                        "limit": p.limit,
                        "breach": p.breach,
                        "fingerprint": p.fingerprint,
                        "baseline": p.baseline,
                    }
                    for p in s.points
                ],
            }
            for s in series
        ],
    }


# -- HTML ----------------------------------------------------------------------------------------------

_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

# Okabe-Ito colours: told apart with any common colour-vision deficiency
_LINE = "#0072B2"
_BAND = "#56B4E9"
_UP = "#D55E00"
_DOWN = "#009E73"
_LIMIT = "#555555"
_BASE = "#CC79A7"

_CSS = f"""
body{{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}}
header{{padding:12px 20px;background:#fff;border-bottom:1px solid #ddd}}
h1{{font-size:20px;margin:0 0 4px}} h2{{font-size:16px;margin:18px 0 6px;overflow-wrap:anywhere}}
h2 small{{font-weight:normal;color:#666}}
main{{padding:0 20px 20px;max-width:1400px}}
.grid{{display:flex;flex-wrap:wrap;gap:8px}}
figure.panel{{margin:0;width:228px;background:#fff;border:1px solid #ddd;border-radius:4px;padding:4px;
content-visibility:auto;contain-intrinsic-size:238px 142px}}
figure.up{{border:2px solid {_UP}}} figure.down{{border:2px solid {_DOWN}}}
figcaption{{font-size:12px;overflow-wrap:anywhere;min-height:32px}}
figcaption .c{{font-weight:600}} figcaption .f{{color:{_UP}}} figure.down .f{{color:{_DOWN}}}
svg{{display:block}} svg text{{font-size:9px;fill:#555}}
.legend svg{{display:inline;vertical-align:middle}} .legend span{{margin-right:14px;white-space:nowrap}}
table{{border-collapse:collapse;font-size:12px}} td,th{{padding:2px 8px;border-bottom:1px solid #eee;text-align:left}}
.flagged li{{overflow-wrap:anywhere}}
"""

_W, _H = 220, 96
_L, _R, _T, _B = 30, 6, 6, 14  # plot margins inside the panel


def render_history(runs: Sequence[Run], series: Sequence[Series], test: ShiftTest, *, title: str = "Fail-rate history") -> str:
    """The history page: one small chart per mode x cohort, grouped by mode. Self-contained
    and without script; the same runs and series give the same bytes."""
    flagged = [(i, s) for i, s in enumerate(series) if s.shift is not None and s.shift.flagged]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{len(runs)} runs, {_e(runs[0].label)} .. {_e(runs[-1].label)}; '
        f"{len(series)} mode x cohort series; <strong>{len(flagged)}</strong> with a sustained shift "
        f"(the last {test.min_run} runs against up to {test.window} before them; {test.alpha:g} chance of any "
        "false shift on this page when nothing changed).</p>",
        _legend(),
        "</header>",
        "<main>",
    ]
    if flagged:
        parts.append('<section class="flagged"><h2>Sustained shifts</h2><ul>')
        for i, s in flagged:
            assert s.shift is not None
            parts.append(
                f'<li><a href="#p{i}">{_e(s.name)} · {_e(s.cohort)}</a>: {s.shift.direction}, '
                f"{_pct(s.shift.reference_rate)} → {_pct(s.shift.recent_rate)} since run {s.points[s.shift.since].run + 1}</li>"
            )
        parts.append("</ul></section>")
    by_mode: dict[str, list[tuple[int, Series]]] = {}
    for i, s in enumerate(series):
        by_mode.setdefault(s.mode, []).append((i, s))
    for key, members in by_mode.items():
        name = members[0][1].name
        parts.append(f'<section class="mode"><h2>{_e(name)} <small>{_e(key)}</small></h2><div class="grid">')
        parts.extend(_panel(i, s, len(runs)) for i, s in members)
        parts.append("</div></section>")
    parts.append('<section><h2>Runs</h2><table><thead><tr><th>run</th><th>time (UTC)</th><th>branch</th><th>commit</th><th>baseline</th><th>file</th></tr></thead><tbody>')
    for i, r in enumerate(runs):
        parts.append(
            f"<tr><td>{i + 1}</td><td>{_e(r.timestamp)}</td><td>{_e(r.branch or '')}</td><td>{_e(r.commit or '')}</td>"
            f"<td>{_e(r.baseline or '')}</td><td>{_e(r.file)}</td></tr>"
        )
    parts += ["</tbody></table></section>", "</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _e(value: Any) -> str:
    """Escaped for HTML text or a double-quoted attribute, control and bidi characters shown."""
    return escape(text(value), quote=True)


def _legend() -> str:
    def sample(body: str) -> str:
        return f'<svg width="26" height="12" aria-hidden="true">{body}</svg>'

    items = [
        (sample(f'<path d="M1 9L12 4L25 6" stroke="{_LINE}" fill="none" stroke-width="1.5"/>'), "fail rate"),
        (sample(f'<rect x="1" y="2" width="24" height="8" fill="{_BAND}" opacity=".35"/>'), "95% interval"),
        (sample(f'<path d="M1 6H25" stroke="{_LIMIT}" stroke-dasharray="3 2"/>'), "limit"),
        (sample(f'<path d="M13 2l4 4l-4 4l-4 -4z" fill="{_BASE}"/>'), "baseline's rate"),
        (sample(f'<circle cx="13" cy="6" r="4.5" fill="none" stroke="{_UP}" stroke-width="1.5"/>'), "regression vs baseline, or limit breached"),
        (sample('<path d="M13 0V12" stroke="#888" stroke-dasharray="2 2"/>'), "definition changed"),
        (sample(f'<rect x="1" y="0" width="24" height="12" fill="{_UP}" opacity=".15"/>'), "shifted runs (up)"),
        (sample(f'<rect x="1" y="0" width="24" height="12" fill="{_DOWN}" opacity=".15"/>'), "shifted runs (down)"),
    ]
    return '<p class="legend">' + "".join(f"<span>{svg} {label}</span>" for svg, label in items) + "</p>"


def _f(x: float) -> str:
    # whole pixels: a chart 220 px wide gains nothing from tenths, and a 2,000-chart page
    # is a third smaller without them
    return str(round(x))


def _nice_top(value: float) -> float:
    """The y axis' top: the next of 5%, 10%, 20%, 25%, 50%, 100% above ``value``."""
    for top in (0.05, 0.1, 0.2, 0.25, 0.5, 1.0):
        if value <= top + 1e-12:
            return top
    return 1.0


def _panel(index: int, s: Series, total_runs: int) -> str:
    points = [p for p in s.points if p.rate is not None]
    top = _nice_top(
        max(
            [p.ci_high if p.ci_high is not None else p.rate for p in points]  # type: ignore[misc]
            + [p.limit for p in points if p.limit is not None and p.limit < 1.0]
            + [p.baseline["base_rate"] for p in points if p.baseline and _finite(p.baseline.get("base_rate"))]
            + [0.0]
        )
    )
    span = max(total_runs - 1, 1)

    def x(run: int) -> float:
        return _L + (_W - _L - _R) * (run / span if total_runs > 1 else 0.5)

    def y(rate: float) -> float:
        return _T + (_H - _T - _B) * (1.0 - min(max(rate, 0.0), top) / top)

    body: list[str] = []
    shift = s.shift if s.shift is not None and s.shift.flagged else None
    if shift is not None:
        colour = _UP if shift.direction == "up" else _DOWN
        x0 = x(s.points[shift.since].run) - 3
        body.append(f'<rect x="{_f(x0)}" y="{_T}" width="{_f(_W - _R - x0)}" height="{_H - _T - _B}" fill="{colour}" opacity=".15"/>')
        body.append(
            f'<path d="M{_f(_L)} {_f(y(shift.reference_rate))}H{_f(x0)}" stroke="{colour}" stroke-width="1" stroke-dasharray="1 2"/>'
        )
    # the axes: zero line and the top, labelled
    body.append(f'<path d="M{_L} {_H - _B}H{_W - _R}M{_L} {_T}V{_H - _B}" stroke="#bbb" fill="none"/>')
    body.append(f'<text x="{_L - 3}" y="{_T + 7}" text-anchor="end">{_f(100 * top)}%</text>')
    body.append(f'<text x="{_L - 3}" y="{_H - _B}" text-anchor="end">0</text>')
    body.append(f'<text x="{_L}" y="{_H - 3}">run 1</text><text x="{_W - _R}" y="{_H - 3}" text-anchor="end">run {total_runs}</text>')
    changes = [s.points[i].run for i in s.definition_changes()]
    if changes:
        d = "".join(f"M{_f((x(r) + x(r - 1)) / 2)} {_T}V{_H - _B}" for r in changes)
        body.append(f'<path d="{d}" stroke="#888" stroke-dasharray="2 2"/>')
    # consecutive runs join; a run without the cohort (or without a decided trace) breaks the line
    segments: list[list[Any]] = []
    for p in points:
        if segments and segments[-1][-1].run == p.run - 1:
            segments[-1].append(p)
        else:
            segments.append([p])
    band = ""
    line = ""
    for seg in segments:
        with_ci = [p for p in seg if p.ci_low is not None and p.ci_high is not None]
        if len(with_ci) == len(seg) and len(seg) > 1:
            upper = "L".join(f"{_f(x(p.run))} {_f(y(p.ci_high))}" for p in seg)
            lower = "L".join(f"{_f(x(p.run))} {_f(y(p.ci_low))}" for p in reversed(seg))
            band += f"M{upper}L{lower}Z"
        elif with_ci:  # a lone run: its interval as a bar
            band += "".join(f"M{_f(x(p.run) - 1.5)} {_f(y(p.ci_high))}H{_f(x(p.run) + 1.5)}V{_f(y(p.ci_low))}H{_f(x(p.run) - 1.5)}Z" for p in with_ci)
        line += "M" + "L".join(f"{_f(x(p.run))} {_f(y(p.rate))}" for p in seg)
    if band:
        body.append(f'<path d="{band}" fill="{_BAND}" opacity=".35"/>')
    limit = _limit_path(points, top, x, y, _span_half(total_runs))
    if limit:
        body.append(f'<path d="{limit}" stroke="{_LIMIT}" fill="none" stroke-dasharray="3 2"/>')
    if line:
        body.append(f'<path d="{line}" stroke="{_LINE}" fill="none" stroke-width="1.5"/>')
        if total_runs <= _MAX_DOTS:  # beyond, the dots merge into the line and only cost bytes
            dots = "".join(f"M{_f(x(p.run))} {_f(y(p.rate))}h0" for p in points)
            body.append(f'<path d="{dots}" stroke="{_LINE}" stroke-width="3.5" stroke-linecap="round"/>')
    bases = [p for p in points if p.baseline and _finite(p.baseline.get("base_rate"))]
    if bases:
        d = "".join(f"M{_f(x(p.run))} {_f(y(p.baseline['base_rate']) - 3)}l3 3l-3 3l-3 -3z" for p in bases)  # type: ignore[index]
        body.append(f'<path d="{d}" fill="{_BASE}"/>')
    alarms = [p for p in points if p.breach or (p.baseline and p.baseline.get("regression"))]
    if alarms:
        d = "".join(f"M{_f(x(p.run) - 4.5)} {_f(y(p.rate))}a4.5 4.5 0 1 0 9 0a4.5 4.5 0 1 0 -9 0" for p in alarms)  # type: ignore[arg-type]
        body.append(f'<path d="{d}" fill="none" stroke="{_UP}" stroke-width="1.5"/>')
    latest = s.latest
    summary = (
        f"{s.name} · {s.cohort}: latest {_pct(latest.rate)} ({latest.fails}/{latest.n}) in run {latest.run + 1}"
        + (f", 95% interval {_pct(latest.ci_low)} – {_pct(latest.ci_high)}" if latest.ci_low is not None else "")
    )
    flag = ""
    cls = "panel"
    if shift is not None:
        cls += f" {shift.direction}"
        flag = (
            f'<br><span class="f">shift {shift.direction}: {_pct(shift.reference_rate)} → {_pct(shift.recent_rate)} '
            f"since run {s.points[shift.since].run + 1}</span>"
        )
    return (
        f'<figure class="{cls}" id="p{index}"><figcaption><span class="c">{_e(s.cohort)}</span> '
        f"{_pct(latest.rate)} <small>({latest.fails}/{latest.n})</small>{flag}</figcaption>"
        f'<svg width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" role="img" aria-label="{_e(summary)}">'
        f"<title>{_e(summary)}</title>{''.join(body)}</svg></figure>"
    )


#: runs up to which each run's rate is also drawn as a dot
_MAX_DOTS = 40


def _limit_path(points: Sequence[Any], top: float, x: Any, y: Any, half: float) -> str:
    """The limit as dashed steps: one horizontal stretch per run of equal limits (a limit
    usually never changes, so this is one segment, not one per run)."""
    d = []
    stretch: list[Any] = []
    for p in [*points, None]:
        if p is not None and p.limit is not None and p.limit <= top and stretch and stretch[-1].limit == p.limit and stretch[-1].run == p.run - 1:
            stretch.append(p)
            continue
        if stretch:
            d.append(f"M{_f(x(stretch[0].run) - half)} {_f(y(stretch[0].limit))}H{_f(x(stretch[-1].run) + half)}")
        stretch = [p] if p is not None and p.limit is not None and p.limit <= top else []
    return "".join(d)


def _span_half(total_runs: int) -> float:
    """Half the distance between two runs on the x axis, at most 6 px (the limit's tick)."""
    return min(6.0, (_W - _L - _R) / max(total_runs - 1, 1) / 2)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
