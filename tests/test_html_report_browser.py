"""The HTML report at 50 modes x 40 cohorts in a real headless Chromium, driven by selenium:
layout at 1,400 px, the legend, the cohort order, paging, search and the cohort filter, the
trace view, and hostile content in every field. Screenshots go to ``$FAILMODES_SHOTS`` when
it is set (the pull request's note), else to the test's temporary directory."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from browser import selenium_chrome
from pytest_failmodes.dataset import DatasetSpec
from pytest_failmodes.engine import Gate, ModeSpec, Suite, evaluate
from pytest_failmodes.report.html import render_html
from pytest_failmodes.report.json_report import build_report
from pytest_failmodes.trace import Step, Trace
from pytest_failmodes.verdict import Verdict

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

WIDTH = 1400
FIELDS = ("route", "model", "prompt_version", "persona")
PWN = "document.title='pwned';document.body.appendChild(document.createElement('div')).id='pwned'"
# markup, a closing script tag, an attribute break-out, an event handler, a bidi override,
# emoji and combining marks, and a 20,000-character word: each must stay text and keep the layout
HOSTILE = [
    "<script>alert(1)</script>",
    f"</script><script>{PWN}</script>",
    '"><img src=x onerror=alert(1)>',
    f"'><svg onload=\"{PWN}\">",
    "<!-- <b id=pwned>",
    "\u202eevil\u202c ünïcödé 🙂 e\u0301",
    "W" * 20_000,
]
TITLE = "Wide report"


class Detector:
    """A detector with a stable repr (the report prints it)."""

    def __init__(self, name: str, fn: Callable[[Trace], Any]) -> None:
        self.name, self.fn = name, fn

    def __call__(self, trace: Trace) -> Any:
        return self.fn(trace)

    def __repr__(self) -> str:
        return f"{self.name}()"


def agent_trace(i: int, tid: str, meta: dict[str, Any], text: str = "") -> Trace:
    """A conversation with a tool call and its result, and a two-level tree of steps."""
    args = json.dumps({"order_id": i, "note": text})
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": f"where is order {i}? {text}"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call{i}", "type": "function", "function": {"name": f"lookup_order{text[:40]}", "arguments": args}}]},
        {"role": "tool", "tool_call_id": f"call{i}", "content": json.dumps({"status": "lost", "note": text})},
        {"role": "assistant", "content": f"Order {i} arrives tomorrow. {text}"},
    ]
    steps = [
        Step(id=f"a{i}", kind="agent", name=f"support_agent{text[:40]}", status="ok", start_ms=0, end_ms=900,
             attributes={"agent.note": text}),
        Step(id=f"t{i}", parent_id=f"a{i}", kind="tool", name="lookup_order", input={"order_id": i, "note": text},
             output=text or "lost", status="error", error=f"timeout {text}", start_ms=100, end_ms=600),
    ]
    return Trace(id=tid, messages=messages, steps=steps, metadata=meta)  # type: ignore[arg-type]


def wide_report(tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """50 modes x 40 cohorts (4 fields x 10 values) over 400 traces, through the engine and
    the JSON report; mode_00 fails 45 traces (three pages), the rest fail at rates from 0 to 100%."""
    rng = random.Random(7)
    traces = [
        agent_trace(i, f"trace-{i:03d}", {f: f"{f}-{rng.randrange(10)}" for f in FIELDS}) for i in range(400)
    ]

    def rate(k: int) -> Detector:
        def detect(trace: Trace) -> Verdict | bool:
            i = int(trace.id.rsplit("-", 1)[1])
            if k == 0:
                hit = i < 45
            else:
                hit = random.Random(f"{k}/{i}").random() < (k - 1) / 48
            return Verdict.fail(f"mode {k}: promised delivery without a tracking lookup", evidence={"turn": 3}) if hit else False

        return Detector(f"rate{k}", detect)

    modes = tuple(
        ModeSpec(name=f"mode_{k:02d}", source="wide.failmodes.yaml", detector=rate(k), gate=Gate(max_fail_rate=0.2), order=k)
        for k in range(50)
    )
    return _run(tmp, modes, traces, tuple((f,) for f in FIELDS))


def _run(tmp: Path, modes: tuple[ModeSpec, ...], traces: list[Trace], cohorts: tuple[tuple[str, ...], ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    suite = Suite(source=modes[0].source, dataset=DatasetSpec(tmp / "unused.jsonl"), cohorts=cohorts, modes=modes)
    result = evaluate(suite, {m.name: m.detector for m in modes}, traces=traces, track_members=True, samples=1000)  # type: ignore[misc]
    ordered = sorted(result.modes.values(), key=lambda r: r.order)
    content: dict[str, Any] = {}
    for r in ordered:
        content.update(r.samples or {})
    report: dict[str, Any] = json.loads(json.dumps(build_report(ordered)))
    return report, content


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    yield from selenium_chrome(WIDTH, extra_flags=("--hide-scrollbars",), browser_log=True)


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("wide")
    report, content = wide_report(tmp)
    page = tmp / "wide.html"
    page.write_text(render_html(report, traces=content, title=TITLE), encoding="utf-8")
    return report, page


def shots_dir(tmp_path: Path) -> Path:
    target = Path(os.environ.get("FAILMODES_SHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def open_page(drv: Any, page: Path) -> None:
    drv.get("about:blank")
    drv.get_log("browser")  # drop what earlier pages logged
    drv.get(page.as_uri())
    WebDriverWait(drv, 20).until(lambda d: d.execute_script("return document.body.getAttribute('data-ready')") == "1")


def console_errors(drv: Any) -> list[str]:
    """What the page logged as an error: a script exception, a CSP refusal."""
    return [entry["message"] for entry in drv.get_log("browser") if entry["level"] == "SEVERE"]


def page_scroll_width(drv: Any) -> int:
    return int(drv.execute_script("return document.documentElement.scrollWidth"))


def mode_block(drv: Any, report: dict[str, Any], name: str) -> Any:
    index = [m["name"] for m in report["modes"]].index(name)
    return drv.find_element(By.ID, f"mode-{index + 1}")


def test_layout_at_1400_px_legend_and_sticky_headers(driver: Any, wide: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    report, page = wide
    open_page(driver, page)
    assert driver.title == TITLE and console_errors(driver) == []
    assert page_scroll_width(driver) <= WIDTH  # no horizontal page scroll
    panel = driver.find_element(By.CSS_SELECTOR, "#heatmap .panel")
    inner = driver.execute_script("return [arguments[0].scrollWidth, arguments[0].clientWidth, arguments[0].scrollHeight, arguments[0].clientHeight]", panel)
    assert inner[0] > inner[1] and inner[2] > inner[3]  # 41 columns and 50 rows scroll inside the panel
    cells = driver.find_elements(By.CSS_SELECTOR, "table.heat td[data-mode]")
    assert len(cells) == sum(len(m["cohorts"]) for m in report["modes"]) == 50 * 41
    # the legend: the scale to 100%, each step its own colour
    swatches = driver.find_elements(By.CSS_SELECTOR, "#legend .ramp .sw")
    assert [s.text for s in swatches] == ["0%", "1%", "2%", "5%", "10%", "20%", "35%", "50%", "75%", "100%"]
    colours = [s.value_of_css_property("background-color") for s in swatches]
    assert len(set(colours)) == len(colours)
    driver.save_screenshot(str(shots_dir(tmp_path) / "html-report-heatmap-1400.png"))
    # scrolled inside the panel, the column headings and the mode names stay in view
    driver.execute_script("arguments[0].scrollTop = 600; arguments[0].scrollLeft = 900;", panel)
    top, left = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.top, r.left];", panel)
    head = driver.find_element(By.CSS_SELECTOR, "table.heat tr.groups th.group")
    row_head = driver.find_element(By.CSS_SELECTOR, "table.heat tbody tr:nth-child(30) th")
    assert abs(driver.execute_script("return arguments[0].getBoundingClientRect().top", head) - top) <= 4
    assert abs(driver.execute_script("return arguments[0].getBoundingClientRect().left", row_head) - left) <= 4
    summary = driver.find_element(By.CSS_SELECTOR, "#summary .panel")
    driver.execute_script("arguments[0].scrollIntoView(); arguments[0].scrollTop = 2000;", summary)
    th = driver.find_element(By.CSS_SELECTOR, "#summary-table thead th")
    s_top = driver.execute_script("return arguments[0].getBoundingClientRect().top", summary)
    assert abs(driver.execute_script("return arguments[0].getBoundingClientRect().top", th) - s_top) <= 4
    assert page_scroll_width(driver) <= WIDTH


def test_cohorts_in_pipeline_order_or_by_rate(driver: Any, wide: tuple[dict[str, Any], Path]) -> None:
    _report, page = wide
    open_page(driver, page)

    def columns() -> list[tuple[int, int, float]]:
        return [
            (int(th.get_attribute("data-col")), int(th.get_attribute("data-group")), float(th.get_attribute("data-worst")))
            for th in driver.find_elements(By.CSS_SELECTOR, "table.heat th.value")
        ]

    def first_row_cols() -> list[int]:
        row = driver.find_element(By.CSS_SELECTOR, "table.heat tbody tr")
        return [int(td.get_attribute("data-col")) for td in row.find_elements(By.CSS_SELECTOR, "td[data-col]")]

    pipeline = columns()
    assert [c for c, _g, _w in pipeline] == list(range(41))
    labels = [th.get_attribute("title") for th in driver.find_elements(By.CSS_SELECTOR, "table.heat th.value")]
    # the report's own row order (the engine's: fields by name, values in order, numeric bins by their edge)
    assert labels[:3] == ["all", "model=model-0", "model=model-1"]
    driver.find_element(By.CSS_SELECTOR, 'input[name="order"][value="rate"]').click()
    by_rate = columns()
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-order") == "rate"
    assert [g for _c, g, _w in by_rate] == [g for _c, g, _w in pipeline]  # each field keeps its columns
    for group in {g for _c, g, _w in by_rate}:
        worst = [w for _c, g, w in by_rate if g == group]
        assert worst == sorted(worst, reverse=True)
    assert first_row_cols() == [c for c, _g, _w in by_rate]  # the cells moved with their headings
    # the summary: within a mode, `all` first, then the highest rate
    driver.find_element(By.ID, "summary-all").click()  # every row, not only the breached ones
    body = driver.find_elements(By.CSS_SELECTOR, "#summary-table tbody.mode-rows")[1]
    rates = [float(tr.get_attribute("data-rate")) for tr in body.find_elements(By.CSS_SELECTOR, "tr[data-rate]")]
    assert len(rates) == 41 and rates[1:] == sorted(rates[1:], reverse=True)
    assert body.find_elements(By.CSS_SELECTOR, "tr")[0].get_attribute("data-pin") is not None
    assert len(body.find_elements(By.CSS_SELECTOR, "tr:first-child th[scope=rowgroup]")) == 1
    driver.find_element(By.CSS_SELECTOR, 'input[name="order"][value="pipeline"]').click()
    assert columns() == pipeline and first_row_cols() == list(range(41))
    # in pipeline order a mode's rows are the report's rows in the report's order
    body = driver.find_elements(By.CSS_SELECTOR, "#summary-table tbody.mode-rows")[1]
    cohorts = [td.text for td in body.find_elements(By.CSS_SELECTOR, "td.cohort")]
    assert cohorts == [row["cohort"] for row in _report["modes"][1]["cohorts"]]


def summary_cohorts(drv: Any) -> list[tuple[str, str]]:
    """(mode, cohort) of each drawn summary row, the mode read from its group's heading."""
    out = []
    for body in drv.find_elements(By.CSS_SELECTOR, "#summary-table tbody.mode-rows"):
        name = body.find_element(By.CSS_SELECTOR, "th[scope=rowgroup]").text
        out += [(name, td.text) for td in body.find_elements(By.CSS_SELECTOR, "td.cohort")]
    return out


def find_in_summary(drv: Any, words: str) -> None:
    """Type into the summary's search box (as a reader would: the input event)."""
    drv.execute_script(
        "const box = document.getElementById('summary-filter'); box.value = arguments[0];"
        "box.dispatchEvent(new Event('input'));", words)


def test_summary_table_rows_are_drawn_a_page_at_a_time(driver: Any, wide: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    report, page = wide
    open_page(driver, page)
    table = driver.find_element(By.ID, "summary-table")
    # by default each mode's overall row and its breached cohorts, in the report's order
    expected = [
        (m["name"], row["cohort"]) for m in report["modes"] for row in m["cohorts"]
        if row["cohort"] == "all" or row.get("breach")
    ]
    assert 100 < len(expected) < 50 * 41
    assert table.get_attribute("data-rows") == str(len(expected))
    drawn = summary_cohorts(driver)
    assert drawn == expected[: len(drawn)] and 50 <= len(drawn) <= 100
    assert len(driver.find_elements(By.CSS_SELECTOR, "#summary-table tr")) <= 101 + 50  # a page, not 2,050 rows
    pager = driver.find_element(By.ID, "summary-pager")
    pages = -(-(len(expected) + sum(1 for m in report["modes"] if len(m["cohorts"]) > sum(1 for r in m["cohorts"] if r["cohort"] == "all" or r.get("breach")))) // 100)
    assert pager.is_displayed() and pager.find_element(By.CLASS_NAME, "page-of").text == f"page 1 of {pages}"
    pager.find_element(By.CLASS_NAME, "page-next").click()
    second = summary_cohorts(driver)
    assert table.get_attribute("data-page") == "2" and second and second[0] != drawn[0]
    assert set(second) <= set(expected)
    # the mode of a group continued from the previous page is named again at the top
    assert driver.find_elements(By.CSS_SELECTOR, "#summary-table tbody.mode-rows th[scope=rowgroup]")
    driver.save_screenshot(str(shots_dir(tmp_path) / "html-report-summary.png"))
    assert page_scroll_width(driver) <= WIDTH
    # filtering by a cohort: its row in every mode (a search shows every matching row)
    find_in_summary(driver, "route=route-3")
    assert summary_cohorts(driver) == [(m["name"], "route=route-3") for m in report["modes"]]
    assert driver.find_element(By.ID, "summary-status").text == "50 rows shown"
    assert not pager.is_displayed()
    find_in_summary(driver, "mode_07 model=")
    assert summary_cohorts(driver) == [("mode_07", r["cohort"]) for r in report["modes"][7]["cohorts"] if r["cohort"].startswith("model=")]
    # a mode's rows within limits are a click away
    find_in_summary(driver, "")
    buttons = driver.find_elements(By.CSS_SELECTOR, "#summary-table button.summary-more")
    assert buttons, "no mode with rows within limits on the first page"
    name = buttons[0].find_element(By.XPATH, "ancestor::tbody").find_element(By.CSS_SELECTOR, "th[scope=rowgroup]").text
    hidden = int(buttons[0].text.split()[1])
    before = sum(1 for n, _c in summary_cohorts(driver) if n == name)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", buttons[0])
    buttons[0].click()
    assert sum(1 for n, _c in summary_cohorts(driver) if n == name) == 41 == before + hidden
    # every row of every mode
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", driver.find_element(By.ID, "summary-all"))
    driver.find_element(By.ID, "summary-all").click()
    assert table.get_attribute("data-rows") == str(50 * 41)
    assert driver.find_element(By.CSS_SELECTOR, "#summary-pager .page-of").text == "page 1 of 21"
    assert console_errors(driver) == []


def test_failing_traces_are_paged(driver: Any, wide: tuple[dict[str, Any], Path]) -> None:
    report, page = wide
    open_page(driver, page)
    block = mode_block(driver, report, "mode_00").find_element(By.CSS_SELECTOR, ".group-block.fail")

    def ids() -> list[str]:
        return [c.text for c in block.find_elements(By.CSS_SELECTOR, "li.trace code.tid")]

    assert ids() == [f"trace-{i:03d}" for i in range(20)]
    pager = block.find_element(By.CLASS_NAME, "pager")
    assert pager.find_element(By.CLASS_NAME, "page-of").text == "page 1 of 3 (45 traces)"
    assert not pager.find_element(By.CLASS_NAME, "page-previous").is_enabled()
    pager.find_element(By.CLASS_NAME, "page-next").click()
    assert ids() == [f"trace-{i:03d}" for i in range(20, 40)]
    block.find_element(By.CLASS_NAME, "page-next").click()
    assert ids() == [f"trace-{i:03d}" for i in range(40, 45)]
    assert not block.find_element(By.CLASS_NAME, "page-next").is_enabled()
    block.find_element(By.CLASS_NAME, "page-previous").click()
    assert block.get_attribute("data-page") == "2"
    # thousands of failing traces, a page of each list in the DOM
    listed = sum(len(m["traces"]) and sum(t["verdict"] == "fail" for t in m["traces"]) for m in report["modes"])
    drawn = len(driver.find_elements(By.CSS_SELECTOR, "li.trace"))
    assert listed > 4000 and drawn <= 20 * 50


def test_search_and_cohort_filter(driver: Any, wide: tuple[dict[str, Any], Path]) -> None:
    report, page = wide
    open_page(driver, page)
    Select(driver.find_element(By.ID, "cohort-filter")).select_by_value("route=route-3")
    # expected: every failing trace of a mode that the report counts in route=route-3
    expected = 0
    for m in report["modes"]:
        row = next(r for r in m["cohorts"] if r["cohort"] == "route=route-3")
        expected += sum(m["traces"][p]["verdict"] == "fail" for p in row["members"])
    status = driver.find_element(By.ID, "filter-status").text
    assert status.startswith(f"{expected} of ") and status.endswith("listed traces match")
    for cohorts in driver.find_elements(By.CSS_SELECTOR, "li.trace .tcohorts"):
        assert "route=route-3" in cohorts.get_attribute("textContent").split(" · ")
    # and a search within it: an id, in any case
    tid = driver.find_element(By.CSS_SELECTOR, "li.trace code.tid").text
    box = driver.find_element(By.ID, "filter")
    box.send_keys(tid.upper())
    shown = {c.text for c in driver.find_elements(By.CSS_SELECTOR, "li.trace code.tid")}
    assert shown == {tid}
    assert all(not s.is_displayed() for s in driver.find_elements(By.CSS_SELECTOR, "section.mode") if not s.find_elements(By.CSS_SELECTOR, "li.trace"))
    box.clear()
    box.send_keys("nothing-matches-this")
    assert driver.find_element(By.ID, "filter-status").text == f"0 of {sum(sum(t['verdict'] == 'fail' for t in m['traces']) for m in report['modes'])} listed traces match"
    assert driver.find_elements(By.CSS_SELECTOR, "li.trace") == []


def test_a_trace_opens_in_the_trace_view(driver: Any, wide: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    report, page = wide
    open_page(driver, page)
    block = mode_block(driver, report, "mode_00")
    button = block.find_element(By.CSS_SELECTOR, "li.trace button.open")
    button.click()
    viewer = driver.find_element(By.ID, "viewer")
    assert viewer.is_displayed() and viewer.get_attribute("data-trace") == "trace-000"
    why = viewer.find_element(By.CLASS_NAME, "why").text
    assert "the detector's reason" in why and "mode 0: promised delivery without a tracking lookup" in why
    assert '"turn": 3' in why  # the evidence, laid out as JSON
    assert "route=route-" in why  # its cohorts
    # the conversation with the tool call and its result, and the steps (the shared trace view)
    assert [e.text for e in viewer.find_elements(By.CSS_SELECTOR, ".fm-toolcall .fm-toolname")] == ["lookup_order"]
    assert len(viewer.find_elements(By.CSS_SELECTOR, ".fm-msg")) == 4
    steps = viewer.find_element(By.CSS_SELECTOR, ".fm-steps")
    assert steps.find_element(By.TAG_NAME, "h3").text.lower() == "steps (2)"
    assert "timeout" in steps.text
    driver.save_screenshot(str(shots_dir(tmp_path) / "html-report-trace-view.png"))
    assert page_scroll_width(driver) <= WIDTH
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    assert not viewer.is_displayed()
    assert driver.switch_to.active_element == button  # back where the reader was
    # after a search (which parses every trace's content) a trace opens from that
    driver.find_element(By.ID, "filter").send_keys("trace-001")
    block.find_element(By.CSS_SELECTOR, "li.trace button.open").click()
    assert viewer.get_attribute("data-trace") == "trace-001" and len(viewer.find_elements(By.CSS_SELECTOR, ".fm-msg")) == 4
    assert console_errors(driver) == []


def hostile_page(tmp: Path) -> Path:
    """Every field of the report and of a trace holds each hostile string."""
    payload = " ".join(HOSTILE)
    traces = [
        agent_trace(i, f"{HOSTILE[i % len(HOSTILE)][:60]}#{i}", {"route": HOSTILE[i % 3], HOSTILE[0]: HOSTILE[i % len(HOSTILE)][:80]}, payload)
        for i in range(8)
    ]

    def detect(trace: Trace) -> Verdict:
        return Verdict.fail(f"reason {payload}", evidence={HOSTILE[2]: payload, "n": [1, {"deep": HOSTILE[1]}]})

    def crash(trace: Trace) -> bool:
        raise ValueError(payload)

    modes = (
        ModeSpec(name=HOSTILE[1], source=f"{HOSTILE[3]}.failmodes.yaml", detector=Detector(HOSTILE[0], detect),
                 description=payload, gate=Gate(max_fail_rate=0.1), order=0),
        ModeSpec(name="crash" + HOSTILE[4], source=f"{HOSTILE[3]}.failmodes.yaml", detector=Detector("crash", crash),
                 gate=Gate(max_fail_rate=0.1), order=1),
    )
    report, content = _run(tmp, modes, traces, (("route",), (HOSTILE[0],)))
    page = tmp / "hostile.html"
    page.write_text(render_html(report, traces=content, title=TITLE, generated_at=HOSTILE[2]), encoding="utf-8")
    return page


def no_payload_ran(drv: Any) -> None:
    assert drv.title == TITLE
    assert drv.find_elements(By.ID, "pwned") == []
    found = drv.execute_script("return document.querySelectorAll('img, svg, iframe, object, embed, b').length")
    assert found == 0


def test_hostile_content_in_every_field_stays_text(driver: Any, tmp_path: Path) -> None:
    page = hostile_page(tmp_path)
    open_page(driver, page)
    no_payload_ran(driver)
    assert page_scroll_width(driver) <= WIDTH
    items = driver.find_elements(By.CSS_SELECTOR, "li.trace button.open")
    assert len(items) == 16  # 8 failing traces, 8 detector errors
    for button in (items[0], items[1], items[-1]):
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()
        viewer = driver.find_element(By.ID, "viewer")
        assert viewer.is_displayed()
        no_payload_ran(driver)
        text = viewer.get_attribute("textContent")
        for hostile in HOSTILE[:5]:
            assert hostile in text  # shown as written, as text
        assert "\\u202eevil\\u202c" in text  # a bidi override is shown as an escape, never applied
        names = [e.get_attribute("textContent") for e in viewer.find_elements(By.CSS_SELECTOR, ".fm-toolname")]
        assert names == ["lookup_order" + " ".join(HOSTILE)[:40]]
        assert page_scroll_width(driver) <= WIDTH
        driver.find_element(By.ID, "viewer-close").click()
    # searching for markup finds it as text
    driver.find_element(By.ID, "filter").send_keys("</script><script>")
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-filter-shown") == "16"
    options = Select(driver.find_element(By.ID, "cohort-filter")).options
    assert len(options) > 3
    for i in range(1, len(options)):
        Select(driver.find_element(By.ID, "cohort-filter")).select_by_index(i)
        no_payload_ran(driver)
    driver.save_screenshot(str(shots_dir(tmp_path) / "html-report-hostile.png"))
    assert console_errors(driver) == []
