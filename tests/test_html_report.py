"""The HTML report: the page's markup, its escaping, and the page in a real headless Chromium."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import struct
from collections.abc import Callable, Mapping
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from browser import Node, dump_dom, find_chromium, parse_html, screenshot

from pytest_failmodes.dataset import DatasetSpec, iter_traces
from pytest_failmodes.engine import Gate, ModeResult, ModeSpec, Suite, evaluate
from pytest_failmodes.report.html import _heat_colour, iter_html, render_html, write_html
from pytest_failmodes.report.json_report import build_report, listed_members
from pytest_failmodes.report.terminal import pct
from pytest_failmodes.trace import Trace
from pytest_failmodes.values import cohort_part
from pytest_failmodes.verdict import Verdict

# Markup an attacker might get into a trace, a cohort value or a description. If
# any of it reached the page unescaped it would add an element, run a script or
# close ours; the payloads that run try to retitle the page and add #pwned.
PWN = "document.title='pwned';document.body.appendChild(document.createElement('div')).id='pwned'"
SCRIPT = "<script>alert(1)</script>"
CLOSE = f"</script><script>{PWN}</script>"
ATTR = '"><img src=x onerror=alert(1)>'
SVG = f'\'><svg onload="{PWN}">'
HOSTILE = (SCRIPT, CLOSE, ATTR, SVG)

HOSTILE_ID = ATTR
HOSTILE_ROUTE = '</script><b id="pwned">x</b>'
URL = "https://cdn.example.com/x.js"
TITLE = "Support bot: failure modes"

# id, route, persona, output. `leaks` fails on "instructions"; `crashes` raises on "parse"
ROWS: list[tuple[str, str, str, str]] = [
    ("t1", "billing", "new", f"My instructions say no. {SCRIPT} More at {URL}"),
    (HOSTILE_ID, "billing", "returning", f"My instructions say {CLOSE}"),
    ("t3", HOSTILE_ROUTE, "new", "Glad to help."),
    ("t4", "shipping", "new", "Track it online."),
    ("t5", "shipping", "returning", "Order 42 ships on Friday."),
    ("t6", "shipping", "returning", f"parse me {SVG}"),
    ("t7", "shipping", "new", "Your parcel is on its way."),
    ("t8", "billing", "new", "Refund issued."),
]
FAILING = {"t1", HOSTILE_ID}
ERRORS = {"t6"}


class Detector:
    """A plain function with a stable repr (a function's repr holds its address)."""

    def __init__(self, name: str, fn: Callable[[Trace], Any]) -> None:
        self.name, self.fn = name, fn

    def __call__(self, trace: Trace) -> Any:
        return self.fn(trace)

    def __repr__(self) -> str:
        return f"{self.name}()"


def _leaks(trace: Trace) -> Verdict | bool:
    if "instructions" in (trace.output or ""):
        return Verdict.fail(f"the reply quotes its instructions: {trace.output}", evidence={"reply": trace.output})
    return False


def _crashes(trace: Trace) -> bool:
    if "parse" in (trace.output or ""):
        raise ValueError(f"cannot parse {trace.output!r}")
    return False


def make_traces() -> list[Trace]:
    return [
        Trace(id=tid, input=f"question from {tid}", output=out, metadata={"route": route, "persona": persona})
        for tid, route, persona, out in ROWS
    ]


def make_report(tmp_path: Path) -> dict[str, Any]:
    """A real report: the engine's results over ROWS, through build_report()."""
    report: dict[str, Any] = json.loads(json.dumps(build_report(make_results(tmp_path))))
    return report  # exactly what the JSON file would hold


def make_results(tmp_path: Path) -> list[ModeResult]:
    """The engine's results over ROWS, in the modes' order."""
    modes = (
        ModeSpec(
            name="leaks",
            source="bot.failmodes.yaml",
            detector=Detector("leaks", _leaks),
            description=f"FAIL when the reply quotes its instructions {SCRIPT}",
            gate=Gate(max_fail_rate=0.25),
            order=0,
        ),
        ModeSpec(
            name="crashes",
            source="bot.failmodes.yaml",
            detector=Detector("crashes", _crashes),
            gate=Gate(max_fail_rate=0.25),
            order=1,
        ),
        ModeSpec(
            name="never",
            source="bot.failmodes.yaml",
            detector=Detector("never", lambda t: False),
            gate=Gate(max_fail_rate=0.25),
            order=2,
        ),
        ModeSpec(name="unbuilt", source="bot.failmodes.yaml", detector=Detector("unbuilt", _leaks), order=3),
    )
    suite = Suite(
        source="bot.failmodes.yaml",
        dataset=DatasetSpec(tmp_path / "unused.jsonl"),
        cohorts=(("route",), ("route", "persona")),
        modes=modes,
    )
    detectors: dict[str, Callable[[Trace], Any]] = {
        m.name: m.detector for m in modes if isinstance(m.detector, Detector) and m.name != "unbuilt"
    }
    result = evaluate(
        suite,
        detectors,
        traces=make_traces(),
        broken={"unbuilt": f"fixture {SCRIPT!r} not found"},
        track_members=True,  # as the plugin does for an HTML report: the cohort filter reads them
    )
    return sorted(result.modes.values(), key=lambda r: r.order)


def trace_content() -> dict[str, dict[str, Any]]:
    return {t.id: {"input": t.input, "output": t.output} for t in make_traces()}


@pytest.fixture
def report(tmp_path: Path) -> dict[str, Any]:
    return make_report(tmp_path)


def mode(report: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return next(m for m in report["modes"] if m["name"] == name)


def render(report: Mapping[str, Any], **kwargs: Any) -> str:
    kwargs.setdefault("traces", trace_content())
    kwargs.setdefault("title", TITLE)
    return render_html(report, **kwargs)


def section(page: Node, anchor_of: str) -> Node:
    """A mode's block in the trace lists, found through its link in the heat map."""
    link = next(a for a in page.find("table", cls="heat").find_all("a") if a.text == anchor_of)
    return page.find("section", id=link.attrs["href"][1:])


def page_data(html: str) -> dict[str, Any]:
    """The page's data blocks: what its script draws the failing traces from, and their contents."""
    tree = parse_html(html)
    data: dict[str, Any] = json.loads(tree.find("script", id="fm-data").text)
    data["traces"] = json.loads(tree.find("script", id="fm-traces").text)
    return data


def items(html: str, name: str, kind: str) -> list[list[Any]]:
    """A mode's listed traces of one verdict, as the page's data holds them: [id, reason, evidence, cohorts]."""
    data = page_data(html)
    (entry,) = [m for m in data["modes"] if m["label"] == name]
    return list(entry["groups"][kind])


def listed(html: str, name: str, kind: str) -> list[str]:
    return [item[0] for item in items(html, name, kind)]


def summary_rows(html: str) -> dict[tuple[str, str | None], list[str]]:
    """The summary table's rows as the page's data holds them (its script draws them a page at a
    time): (mode, cohort) -> the cells after the mode column; a broken mode's cohort is None."""
    out: dict[tuple[str, str | None], list[str]] = {}
    for m in page_data(html)["summary"]["modes"]:
        if "broken" in m:
            out[(m["label"], None)] = [m["broken"], "BROKEN"]
            continue
        for cells, gate_css, _delta_css, _rate in m["rows"]:
            assert gate_css in ("fail", "ok", "muted")
            out[(m["label"], cells[0])] = cells
    return out


# -- escaping -----------------------------------------------------------------------------


def test_hostile_values_reach_the_page_only_escaped(report: dict[str, Any]) -> None:
    html = render(report)
    lowered = html.lower()
    for payload in (*HOSTILE, HOSTILE_ROUTE):
        assert payload not in html
    assert escape(SCRIPT) in html  # the description, in the markup
    # in the data block, markup characters are JSON escapes: nothing there can close it
    data = parse_html(html).find("script", id="fm-traces").text
    assert not set("<>&") & set(data) and "\\u003c/script\\u003e" in data
    assert HOSTILE_ID in json.loads(data)  # the id that is markup, as data
    # two data blocks, the trace view and our script, each opened and closed once; no payload became markup
    assert lowered.count("</script") == 4
    markup = re.sub(r"<script[^>]*>.*?</script>", "", lowered, flags=re.S)  # the scripts are ours; data has no <
    for tag in ("<img", "<svg", "<b "):
        assert tag not in markup
    tree = parse_html(html)
    assert [n.tag for n in tree.iter() if n.tag in ("img", "svg", "b", "iframe", "object")] == []
    assert [(n.tag, a) for n in tree.iter() for a in n.attrs if a.startswith("on")] == []
    assert tree.find_all(id="pwned") == []
    assert [s.attrs for s in tree.find_all("script")] == [
        {"type": "application/json", "id": "fm-data"},
        {"type": "application/json", "id": "fm-traces"},
        {},
        {},
    ]


def test_hostile_values_read_back_as_the_same_text(report: dict[str, Any]) -> None:
    html = render(report)
    tree = parse_html(html)
    leaks = section(tree, "leaks")
    assert listed(html, "leaks", "fail") == ["t1", HOSTILE_ID]
    tid, reason, evidence, _cohorts = items(html, "leaks", "fail")[1]
    assert reason == f"the reply quotes its instructions: My instructions say {CLOSE}"
    content = page_data(html)["traces"][tid]
    assert [content["input"], content["output"]] == [f"question from {HOSTILE_ID}", f"My instructions say {CLOSE}"]
    assert json.loads(evidence) == {"reply": f"My instructions say {CLOSE}"}
    # a hostile cohort value survives as an attribute value and as a column heading
    cell = tree.find("td", data_mode="bot.failmodes.yaml::leaks", data_cohort=cohort_part("route", HOSTILE_ROUTE))  # quoted: it holds = and "
    assert cell.find(cls="r").text == "0.0%"
    assert HOSTILE_ROUTE in [th.text for th in tree.find("table", cls="heat").find_all("th", cls="value")]
    assert leaks.find("p", cls="desc").text == f"FAIL when the reply quotes its instructions {SCRIPT}"
    assert summary_rows(html)[("unbuilt", None)][0] == f"could not be evaluated: fixture {SCRIPT!r} not found"


def test_title_and_timestamp_are_escaped(report: dict[str, Any]) -> None:
    html = render(report, title=SCRIPT, generated_at=ATTR)
    assert SCRIPT not in html and ATTR not in html
    tree = parse_html(html)
    assert tree.find("title").text == SCRIPT
    assert ATTR in tree.find("p", cls="meta").text


def test_the_page_loads_nothing_from_anywhere(report: dict[str, Any]) -> None:
    html = render(report)
    tree = parse_html(html)
    assert URL in page_data(html)["traces"]["t1"]["output"]  # the URL is there, as data
    links = [(n.tag, k, v) for n in tree.iter() for k, v in n.attrs.items() if k in ("src", "href", "srcset", "action")]
    assert links and all(v.startswith("#") for _tag, _k, v in links)
    assert [n for n in tree.iter() if n.tag in ("link", "iframe", "img", "object", "embed", "base")] == []
    style = tree.find("style").text
    assert "url(" not in style and "@import" not in style and "//" not in style
    assert re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:|//)", html, re.I) is None
    assert "http://" not in html.replace(URL, "") and "https://" not in html.replace(URL, "")


def test_content_security_policy_allows_exactly_our_script(report: dict[str, Any]) -> None:
    tree = parse_html(render(report))
    csp = tree.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in csp
    scripts = [s.text for s in tree.find_all("script") if "type" not in s.attrs]  # the trace view, ours
    digests = [base64.b64encode(hashlib.sha256(s.encode("utf-8")).digest()).decode() for s in scripts]
    (script_src,) = [d for d in csp.split(";") if d.strip().startswith("script-src")]
    assert script_src.split()[1:] == [f"'sha256-{d}'" for d in digests]
    # the scripts never turn strings into markup or code
    for script in scripts:
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function("):
            assert sink not in script


# -- content ------------------------------------------------------------------------------


def test_heat_map_has_a_cell_for_every_mode_and_cohort(report: dict[str, Any]) -> None:
    tree = parse_html(render(report))
    heat = tree.find("table", cls="heat")
    cells = [td for td in heat.find_all("td") if "data-mode" in td.attrs]
    expected = {(m["key"], row["cohort"]): row for m in report["modes"] for row in m["cohorts"]}
    assert len(expected) == 3 * 9  # three evaluated modes x (all + 3 routes + 5 route & persona)
    assert len(cells) == len(expected)
    for (key, cohort), row in expected.items():
        cell = heat.find("td", data_mode=key, data_cohort=cohort)
        assert cell.find(cls="r").text == pct(row["rate"])
        assert cell.find(cls="k").text == f"{row['fails']}/{row['n']}"
    # cohorts are grouped by field under one heading each
    groups = [(th.text, th.attrs["colspan"]) for th in heat.find_all("th", cls="group")]
    assert groups == [("overall", "1"), ("route", "3"), ("route & persona", "5")]
    # the breached cell is marked; a broken mode gets one row saying why
    assert "breach" in heat.find("td", data_mode="bot.failmodes.yaml::leaks", data_cohort="route=billing").classes
    assert heat.find("td", cls="broken").text.startswith("broken: fixture")


def test_summary_table_is_data_in_the_reports_row_order(report: dict[str, Any]) -> None:
    html = render(report)
    table = parse_html(html).find("table", cls="summary")
    assert [th.text for th in table.find("thead").find_all("th")] == [
        "mode",
        "cohort",
        "n",
        "fails",
        "rate",
        "95% CI",
        "limit",
        "errors",
        "gate",
    ]
    assert table.find_all("tbody") == []  # the rows are drawn by the page's script
    rows = summary_rows(html)
    # every cohort row of every evaluated mode, in the report's order (the pipeline's)
    assert [c for (name, c) in rows if name == "leaks"] == [r["cohort"] for r in mode(report, "leaks")["cohorts"]]
    assert len(rows) == sum(len(m["cohorts"]) for m in report["modes"]) + 1  # and the broken mode's one row
    breached = {k: cells[-1] for k, cells in rows.items() if cells[-1].startswith(("FAIL", "BROKEN"))}
    assert breached == {
        ("leaks", "route=billing"): "FAIL (limit)",  # 2 of 3 > 25%
        ("leaks", "route=billing & persona=new"): "FAIL (limit)",  # 1 of 2
        ("leaks", "route=billing & persona=returning"): "FAIL (limit)",  # 1 of 1
        ("crashes", "all"): "FAIL (errors 1 > 0)",
        ("unbuilt", None): "BROKEN",
    }
    row = next(r for r in mode(report, "leaks")["cohorts"] if r["cohort"] == "route=billing")
    assert rows[("leaks", "route=billing")][1:-1] == [
        "3",
        "2",
        pct(row["rate"]),
        f"{pct(row['ci_low'])} – {pct(row['ci_high'])}",
        "25.0%",
        "0",
    ]


def test_header_names_the_breaches(report: dict[str, Any]) -> None:
    tree = parse_html(render(report))
    assert tree.find("p", cls="verdict").find("span", cls="badge").text == "FAILED"
    items = [li.text for li in tree.find("ul", cls="breaches").find_all("li")]
    assert "leaks route=billing: 2/3 = 66.7%, limit 25.0% · FAIL (limit)" in items
    assert any(i.startswith("unbuilt: could not be evaluated") for i in items)


def test_status_without_breaches(report: dict[str, Any]) -> None:
    passing = {**report, "passed": True, "modes": [mode(report, "never")]}
    tree = parse_html(render(passing))
    assert tree.find("p", cls="verdict").find("span", cls="badge").text == "PASSED"
    assert tree.find_all("ul", cls="breaches") == []
    interrupted = {**passing, "passed": False}
    assert parse_html(render(interrupted)).find("p", cls="verdict").find("span", cls="badge").text == "INCOMPLETE"
    empty = parse_html(render({**report, "modes": []}))
    assert empty.find("table", cls="heat").find_all("td") == []


def test_trace_lists_per_mode(report: dict[str, Any]) -> None:
    html = render(report)
    tree = parse_html(html)
    for name in ("leaks", "crashes", "never"):
        m = mode(report, name)
        block = section(tree, name)
        fails = [t["id"] for t in m["traces"] if t["verdict"] == "fail"]
        errors = [t["id"] for t in m["traces"] if t["verdict"] == "error"]
        assert listed(html, name, "fail") == fails
        assert listed(html, name, "error") == errors
        # a placeholder per list the script fills, with its count
        kinds = [(d.attrs["data-verdict"], d.find(cls="count").text) for d in block.find_all("div", cls="group-block")]
        assert kinds == [("fail", str(len(fails)))] + ([("error", str(len(errors)))] if errors else [])
    assert listed(html, "leaks", "fail") == ["t1", HOSTILE_ID]
    assert listed(html, "crashes", "error") == ["t6"]
    assert items(html, "crashes", "error")[0][1].startswith(f"ValueError: cannot parse {ROWS[5][3]!r}")
    # each listed trace names its cohorts (indices into the page's cohort list)
    data = page_data(html)
    (_tid, _reason, _ev, cohorts) = items(html, "leaks", "fail")[0]
    assert [data["cohorts"][i] for i in cohorts] == ["route=billing", "route=billing & persona=new"]
    assert "no failing traces" in section(tree, "never").text
    # the mode sections: breached and broken first
    order = [s.find("h3").text.split(" ", 1)[1] for s in tree.find_all("section", cls="mode")]
    assert order == ["leaks", "crashes", "unbuilt", "never"]


def test_trace_content_is_optional(report: dict[str, Any]) -> None:
    html = render(report, traces=None)
    assert page_data(html)["traces"] == {}
    assert listed(html, "leaks", "fail") == ["t1", HOSTILE_ID]
    # content is data for the trace view, as given; only listed traces' content is kept
    structured = {"t1": {"input": {"query": "hi", "n": 2}, "output": None}, "t4": {"input": "passing"}}
    assert page_data(render(report, traces=structured))["traces"] == {"t1": {"input": {"query": "hi", "n": 2}, "output": None}}


def test_a_failures_only_report_with_listed_members_gives_the_same_page(tmp_path: Path) -> None:
    """What the plugin renders (the failing traces and each cohort's failing members as positions
    in them) is the page of the whole report (every trace, every member) to the byte."""
    results = make_results(tmp_path)
    whole = render(json.loads(json.dumps(build_report(results))))
    failures = json.loads(json.dumps(build_report(results, verdicts=("fail", "error"), members=False)))
    assert all(t["verdict"] != "pass" for m in failures["modes"] for t in m["traces"])
    assert not any("members" in row for m in failures["modes"] for row in m["cohorts"])
    members = {r.key: listed_members(r) for r in results}
    # leaks fails t1 (billing, new) and the hostile id (billing, returning): positions 0 and 1
    assert {c: list(p) for c, p in members["bot.failmodes.yaml::leaks"].items()} == {
        "route=billing": [0, 1],
        "route=billing & persona=new": [0],
        "route=billing & persona=returning": [1],
    }
    assert render(failures, members=members) == whole
    # and so is the page of the first traces of each verdict only, which says how many there are
    first = json.loads(json.dumps(build_report(results, verdicts=("fail", "error"), members=False, limit=1)))
    assert [t["id"] for t in mode(first, "leaks")["traces"]] == ["t1"]
    members = {r.key: listed_members(r, limit=1) for r in results}
    assert {c: list(p) for c, p in members["bot.failmodes.yaml::leaks"].items()} == {
        "route=billing": [0],
        "route=billing & persona=new": [0],
    }
    assert render(first, members=members, max_traces=1) == render(json.loads(json.dumps(build_report(results))), max_traces=1)
    # without them, a failures-only report's traces have no cohorts to filter by
    assert items(render(failures), "leaks", "fail")[0][3] == []


def test_each_traces_content_is_found_by_its_offsets_in_the_block(report: dict[str, Any]) -> None:
    """Opening a trace parses its slice of the contents block: ``at`` gives it in UTF-16 units,
    as the page's script counts (an emoji is two), whatever the content holds."""
    content = {
        "t1": {"input": "🙂 e\u0301 \u202e", "output": CLOSE},
        HOSTILE_ID: {"input": {"q": "𝄞" * 3, "n": [1, None]}, "output": float("nan")},
    }
    html = render(report, traces=content)
    tree = parse_html(html)
    data = json.loads(tree.find("script", id="fm-data").text)
    block = tree.find("script", id="fm-traces").text
    units = block.encode("utf-16-le")
    whole = json.loads(block)
    assert set(data["at"]) == {"t1", HOSTILE_ID} == set(whole)
    for tid, (start, end) in data["at"].items():
        assert json.loads(units[2 * start : 2 * end].decode("utf-16-le")) == whole[tid]
    assert whole["t1"]["input"].startswith("🙂")


def test_max_traces_caps_each_list_and_says_so(report: dict[str, Any]) -> None:
    html = render(report, max_traces=1)
    leaks = section(parse_html(html), "leaks")
    assert listed(html, "leaks", "fail") == ["t1"]
    assert "only the first 1 of 2 are listed" in leaks.text
    assert leaks.find("div", cls="fail").find(cls="count").text == "2"


def test_comparisons_add_baseline_columns_and_arrows(report: dict[str, Any]) -> None:
    comparisons = [
        {
            "mode": "bot.failmodes.yaml::leaks",
            "cohort": "route=billing",
            "base_rate": 0.1,
            "delta": 0.5667,
            "p_adjusted": 0.0004,
            "regression": True,
            "improvement": False,
        },
        {
            "mode": "leaks",
            "cohort": "all",
            "base_rate": 0.5,
            "delta": -0.25,  # by name: unique
            "p_adjusted": 0.02,
            "regression": False,
            "improvement": True,
        },
        {
            "mode": "never",
            "cohort": "all",
            "base_rate": None,
            "delta": None,
            "p_adjusted": None,
            "regression": None,
            "improvement": None,
        },
        {
            "mode": "crashes",
            "cohort": "route=shipping",
            "base_rate": 0.0,
            "delta": 0.0,
            "p_adjusted": 1.0,
            "regression": False,
            "improvement": False,
        },
        {
            "mode": "no_such_mode",
            "cohort": "all",
            "base_rate": 0.1,
            "delta": 0.1,
            "p_adjusted": 0.5,
            "regression": True,
            "improvement": False,
        },
    ]
    html = render(report, comparisons=comparisons)
    tree = parse_html(html)
    table = tree.find("table", cls="summary")
    head = [th.text for th in table.find("thead").find_all("th")]
    assert head[-4:] == ["baseline", "Δ", "p (adj.)", "gate"]
    rows = summary_rows(html)

    def cells(name: str, cohort: str) -> list[str]:
        assert tree.find("table", cls="heat").find("td", data_mode=f"bot.failmodes.yaml::{name}", data_cohort=cohort)
        return rows[(name, cohort)][-4:]

    assert cells("leaks", "route=billing") == ["10.0%", "▲ +56.7 pp", "<0.001", "FAIL (limit, regression)"]
    assert cells("leaks", "all") == ["50.0%", "▼ -25.0 pp", "0.020", "ok"]
    assert cells("never", "all") == ["-", "-", "-", "ok"]
    assert cells("crashes", "route=shipping") == ["0.0%", "= 0.0 pp", "1.000", "ok"]
    assert cells("leaks", "route=shipping")[:3] == ["-", "-", "-"]  # no comparison for this row
    heat = tree.find("table", cls="heat")
    billing = heat.find("td", data_mode="bot.failmodes.yaml::leaks", data_cohort="route=billing")
    assert billing.find(cls="d").text == "▲ +56.7" and "worse" in billing.find(cls="d").classes
    assert "better" in heat.find("td", data_mode="bot.failmodes.yaml::leaks", data_cohort="all").find(cls="d").classes
    moves = [li.text for li in tree.find("section", id="baseline").find_all("li")]
    assert moves == [
        "▲ leaks route=billing: 10.0% → 66.7% +56.7 pp, p (adj.) = <0.001 regression",
        "▼ leaks all: 50.0% → 25.0% -25.0 pp, p (adj.) = 0.020 improvement",
    ]
    # without comparisons: no baseline section, columns or deltas
    plain = parse_html(render(report))
    assert plain.find_all("section", id="baseline") == [] and plain.find_all(cls="d") == []
    assert "baseline" not in [th.text for th in plain.find("table", cls="summary").find("thead").find_all("th")]


def test_comparisons_embedded_in_the_report_are_used(report: dict[str, Any]) -> None:
    embedded = json.loads(json.dumps(report))
    embedded["baseline"] = f".failmodes/{SCRIPT}.json"
    row = next(r for r in mode(embedded, "leaks")["cohorts"] if r["cohort"] == "route=billing")
    # the fields a run with --failmodes-baseline writes; base_rate derived when absent
    row["baseline"] = {
        "base_fails": 1,
        "base_n": 10,
        "delta": 0.5667,
        "p_value": 0.0001,
        "p_adjusted": 0.003,
        "regression": True,
        "improvement": False,
        "test": "fisher",
    }
    tree = parse_html(render(embedded))
    moves = [li.text for li in tree.find("section", id="baseline").find_all("li")]
    assert moves == ["▲ leaks route=billing: 10.0% → 66.7% +56.7 pp, p (adj.) = 0.003 regression"]
    assert f"compared with the baseline .failmodes/{SCRIPT}.json" in tree.find("p", cls="meta").text
    # explicit comparisons take precedence over the embedded ones
    explicit = [
        {
            "mode": "leaks",
            "cohort": "all",
            "base_rate": 0.25,
            "delta": 0.0,
            "p_adjusted": 1.0,
            "regression": False,
            "improvement": False,
        }
    ]
    tree = parse_html(render(embedded, comparisons=explicit))
    assert [td.find(cls="d").text for td in tree.find_all("td", cls="hm") if td.find_all(cls="d")] == ["= 0.0"]


def test_duplicate_mode_names_are_told_apart(report: dict[str, Any]) -> None:
    other = json.loads(json.dumps(mode(report, "never")))
    other["key"] = "other.failmodes.yaml::never"
    other["file"] = "other.failmodes.yaml"
    tree = parse_html(render({**report, "modes": [mode(report, "never"), other]}))
    labels = [a.text for a in tree.find("table", cls="heat").find_all("a")]
    assert labels == ["bot.failmodes.yaml::never", "other.failmodes.yaml::never"]


def test_output_is_deterministic(report: dict[str, Any], tmp_path: Path) -> None:
    first = render(report)
    again = render(make_report(tmp_path / "again"))
    assert first == again
    assert "2025-05-06" not in first
    assert "2025-05-06 10:00 UTC" in render(report, generated_at="2025-05-06 10:00 UTC")


def _luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_heat_colours_darken_with_the_rate_and_keep_text_readable() -> None:
    rates = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.8, 1.0]
    backgrounds = [_heat_colour(r)[0] for r in rates]
    lum = [_luminance(bg) for bg in backgrounds]
    assert all(a > b for a, b in zip(lum, lum[1:5]))  # strictly darker up to the cap
    assert all(a >= b for a, b in zip(lum, lum[1:]))
    assert _heat_colour(0.0)[0] not in backgrounds  # "never" differs from "rarely"
    for rate in [0.0, *rates]:
        bg, fg = _heat_colour(rate)
        hi, lo = sorted((_luminance(bg), _luminance(fg)), reverse=True)
        assert (hi + 0.05) / (lo + 0.05) >= 4.5, (rate, bg, fg)  # WCAG AA for text


# -- in a real browser --------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip(
            "no Chromium binary found (looked for $FAILMODES_CHROMIUM, chromium, chromium-browser, "
            "google-chrome, google-chrome-stable on PATH); on Debian: apt-get install -y chromium"
        )
    return binary


def write_page(tmp_path: Path, html: str) -> str:
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    return path.as_uri()


def test_browser_renders_the_page_and_runs_its_script(chromium: str, report: dict[str, Any], tmp_path: Path) -> None:
    dom = parse_html(dump_dom(chromium, write_page(tmp_path, render(report))))
    assert dom.find("title").text == TITLE
    cells = [td for td in dom.find("table", cls="heat").find_all("td") if "data-mode" in td.attrs]
    assert len(cells) == sum(len(m["cohorts"]) for m in report["modes"])
    # the script ran (under the page's CSP): it wrote the count and marked the body
    total = len(FAILING) + len(ERRORS)
    assert dom.find(id="filter-status").text == f"{total} traces listed"
    assert dom.find("body").attrs["data-filter-shown"] == str(total)
    assert [li for li in dom.find_all("li", cls="trace") if li.hidden] == []


def test_browser_keeps_a_script_in_a_trace_inert(chromium: str, report: dict[str, Any], tmp_path: Path) -> None:
    dom = parse_html(dump_dom(chromium, write_page(tmp_path, render(report))))
    # had any payload run, the title would read "pwned" and #pwned would exist
    assert dom.find("title").text == TITLE
    assert dom.find_all(id="pwned") == []
    assert len(dom.find_all("script")) == 4
    assert [n.tag for n in dom.iter() if n.tag in ("img", "svg", "b")] == []
    # the script drew the lists with the payloads as text
    reasons = [span.text for span in dom.find_all("span", cls="reason")]
    assert f"the reply quotes its instructions: My instructions say {CLOSE}" in reasons
    assert any(r.startswith(f"ValueError: cannot parse {f'parse me {SVG}'!r}") for r in reasons)
    assert HOSTILE_ID in [code.text for code in dom.find_all("code", cls="tid")]


@pytest.mark.parametrize(
    ("query", "visible"),
    [
        ("", ["t1", HOSTILE_ID, "t6"]),
        ("t1", ["t1"]),  # an id
        ("cannot PARSE", ["t6"]),  # words of a reason, in any case, all must match
        ("question from", ["t1", HOSTILE_ID, "t6"]),  # the input text
        ("</script><script>", [HOSTILE_ID]),  # markup is searchable text like any other
        ("instructions no.", ["t1"]),
        ("nothing-matches-this", []),
    ],
)
def test_browser_filter_from_the_url_fragment(
    chromium: str, report: dict[str, Any], tmp_path: Path, query: str, visible: list[str]
) -> None:
    url = write_page(tmp_path, render(report)) + "#filter=" + quote(query, safe="")
    dom = parse_html(dump_dom(chromium, url))
    # the lists draw only the matching traces
    shown = [li.find(cls="tid").text for li in dom.find_all("li", cls="trace")]
    assert shown == visible
    total = len(FAILING) + len(ERRORS)
    status = dom.find(id="filter-status").text
    assert status == (f"{len(visible)} of {total} listed traces match" if query else f"{total} traces listed")
    # mode blocks with no match are hidden while a filter is set
    open_sections = [s.find("h3").text.split(" ", 1)[1] for s in dom.find_all("section", cls="mode") if not s.hidden]
    if query:
        expected = []
        if {"t1", HOSTILE_ID} & set(visible):
            expected.append("leaks")
        if "t6" in visible:
            expected.append("crashes")
        assert open_sections == expected
    else:
        assert open_sections == ["leaks", "crashes", "unbuilt", "never"]


QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def quickstart_report(pytester: pytest.Pytester) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The JSON report of the quickstart's candidate prompt (v4), which breaches a gate, and its traces."""
    for name in ("conftest.py", "support_bot.failmodes.yaml", "test_python_modes.py", "data"):
        source = QUICKSTART / name
        if source.is_dir():
            shutil.copytree(source, pytester.path / name)
        else:
            shutil.copy(source, pytester.path / name)
    result = pytester.runpytest_subprocess(
        "--failmodes",
        "-p",
        "no:cacheprovider",
        "--failmodes-dataset",
        "data/candidate_traces.jsonl",
        "--failmodes-report",
        "report.json",
    )
    assert result.ret == 1
    report = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    spec = DatasetSpec(
        pytester.path / "data" / "candidate_traces.jsonl", {"id": "trace_id", "input": "query", "output": "response"}
    )
    traces = {t.id: {"input": t.input, "output": t.output} for _line, t in iter_traces(spec)}
    return report, traces


@pytest.mark.slow
def test_browser_shows_the_quickstart_report(chromium: str, pytester: pytest.Pytester, tmp_path: Path) -> None:
    report, traces = quickstart_report(pytester)
    url = write_page(tmp_path, render_html(report, traces=traces, title="Harbor Goods support bot, prompt v4"))
    png = screenshot(chromium, url, tmp_path / "quickstart.png", 1280, 2000)
    assert _png_size(png) == (1280, 2000)
    assert png.stat().st_size > 20_000  # a rendered page, not a blank one
    # the example's documented breach (its README): billing at 12 of 96 against its 3% limit
    refunds = mode(report, "refund_without_policy_check")
    first = next(t for t in refunds["traces"] if t["verdict"] == "fail")
    dom = parse_html(dump_dom(chromium, url + "#filter=" + quote(first["id"])))
    breaches = [li.text for li in dom.find("ul", cls="breaches").find_all("li")]
    assert breaches == ["refund_without_policy_check route=billing: 12/96 = 12.5%, limit 3.0% · FAIL (limit)"]
    shown = dom.find_all("li", cls="trace")
    assert {li.find(cls="tid").text for li in shown} == {first["id"]}  # in this mode, maybe in others too
    (item,) = section(dom, "refund_without_policy_check").find_all("li", cls="trace")
    assert item.find(cls="reason").text == first["reason"]
    content = json.loads(dom.find("script", id="fm-traces").text)[first["id"]]
    assert [content["input"], content["output"]] == [traces[first["id"]]["input"], traces[first["id"]]["output"]]
    heat = dom.find("table", cls="heat")
    assert len([td for td in heat.find_all("td") if "data-mode" in td.attrs]) == sum(
        len(m["cohorts"]) for m in report["modes"]
    )


@pytest.mark.parametrize(
    "args",
    [(), ("--failmodes-per-trace",), ("-n", "2")],
    ids=["per-mode", "per-trace", "xdist"],
)
def test_plugin_page_shows_input_and_output_of_failing_traces(project: Any, args: tuple[str, ...]) -> None:
    project.traces(
        [
            {"id": "t1", "input": "Where is my <b>order</b>?", "output": "It shipped.", "metadata": {"route": "a"}},
            {"id": "t2", "input": "Refund me", "output": "Refund approved <script>alert(1)</script>", "metadata": {"route": "a"}},
            {"id": "t3", "input": "Hi", "output": "Hello", "metadata": {"route": "b"}},
        ]
    )
    project.definitions(
        """
        dataset: {path: data/traces.jsonl}
        cohorts: [route]
        gate: {max_fail_rate: 0.9}
        failure_modes:
          - name: promises_refund
            rule: {contains: "Refund approved", field: output}
        """
    )

    result = project.run_subprocess("--failmodes-html=r.html", "-p", "no:cacheprovider", *args)

    assert result.ret == 0, result.stdout.str()
    page = (project.path / "r.html").read_text(encoding="utf-8")
    assert listed(page, "promises_refund", "fail") == ["t2"]
    # the whole trace, for the trace view; and the cohorts it is in, for the filter
    data = page_data(page)
    content = data["traces"]["t2"]
    assert [content["input"], content["output"]] == ["Refund me", "Refund approved <script>alert(1)</script>"]
    assert content["metadata"] == {"route": "a"}
    assert [data["cohorts"][i] for i in items(page, "promises_refund", "fail")[0][3]] == ["route=a"]
    assert "<script>alert(1)" not in page  # escaped, inert
    assert "Where is my" not in page  # passing traces keep no content


def test_a_judge_modes_reason_is_its_critique(report: dict[str, Any]) -> None:
    # the judge detector's repr, as the report records it (judge.py): the trace view labels its reason a critique
    judged = {**report, "modes": [{**mode(report, "leaks"), "detector": "judge(openai/gpt-4o-mini)"}, mode(report, "crashes")]}
    data = page_data(render(judged))
    assert [(m["label"], m["judge"]) for m in data["modes"]] == [("leaks", True), ("crashes", False)]
    from pytest_failmodes.report.html import _SCRIPT

    assert "the judge's critique" in _SCRIPT and "the detector's reason" in _SCRIPT


def test_the_page_written_to_a_file_is_the_rendered_page_or_nothing(tmp_path: Path) -> None:
    """write_html streams the page into the file in pieces: the same bytes as render_html, and a
    page that cannot be finished leaves the older file as it was."""
    results = make_results(tmp_path)
    report = json.loads(json.dumps(build_report(results, verdicts=("fail", "error"), members=False)))
    members = {r.key: listed_members(r) for r in results}
    path = tmp_path / "out" / "report.html"

    write_html(path, report, traces=trace_content(), title=TITLE, members=members)

    assert path.read_text(encoding="utf-8") == render(report, members=members)
    assert "".join(iter_html(report, traces=trace_content(), title=TITLE, members=members)) == render(report, members=members)
    before = path.read_bytes()
    with pytest.raises(TypeError):  # a trace's content json cannot write, found halfway through the page
        write_html(path, report, traces={"t1": {"input": object.__new__(_Unprintable)}}, title=TITLE)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


class _Unprintable:
    def __str__(self) -> str:
        raise TypeError("no text for this value")
