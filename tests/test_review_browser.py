"""The review page in a real headless Chromium, driven by the keyboard (selenium + chromium-driver)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_failmodes.analysis.notes import NotesFile, Note, latest_notes, read_notes
from pytest_failmodes.analysis.review import ReviewApp, ReviewServer
from pytest_failmodes.analysis.sampling import Outcome, load_reports

import review_data
from browser import selenium_chrome

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    yield from selenium_chrome(1300, page_load_timeout=30)


class Page:
    """One review session served in-process, and the browser pointed at it."""

    def __init__(self, drv: Any, app: ReviewApp) -> None:
        self.drv = drv
        self.app = app
        self.server = ReviewServer(app)
        self.server.start()

    def open(self) -> Page:
        self.drv.get(self.server.url)
        self.wait_q(self.app.state()["resume"])
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, cond: Any, what: str, timeout: float = 10) -> Any:
        try:
            return WebDriverWait(self.drv, timeout).until(lambda d: cond())
        except TimeoutException:
            status = self.drv.find_element(By.ID, "status").text
            raise AssertionError(f"timed out waiting for {what}; status: {status!r}") from None

    def q(self) -> int | None:
        value = self.drv.find_element(By.ID, "trace").get_attribute("data-q")
        return int(value) if value not in (None, "") else None

    def wait_q(self, q: int) -> None:
        self.wait(lambda: self.q() == q, f"trace position {q}")

    def status(self) -> str:
        return str(self.drv.find_element(By.ID, "status").text)

    def wait_saved(self) -> None:
        self.wait(lambda: self.status() == "saved", "'saved'")

    def keys(self, *keys: str) -> None:
        ActionChains(self.drv).send_keys(*keys).perform()

    def ctrl_enter(self) -> None:
        ActionChains(self.drv).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()

    def text(self, element_id: str) -> str:
        return str(self.drv.find_element(By.ID, element_id).text)

    def code(self, note: str, verdict_key: str, tags: str = "") -> None:
        """Write a note, tag it, give a verdict, save and go on: keyboard only."""
        q = self.q()
        assert q is not None
        self.keys("n")
        self.keys(note)
        if tags:
            self.keys(Keys.TAB, tags)
        self.keys(Keys.ESCAPE, verdict_key)
        self.wait_saved()
        self.ctrl_enter()
        if q + 1 < self.app.state()["queue"]:
            self.wait_q(q + 1)
        else:
            self.wait(lambda: "last trace" in self.status(), "the end of the queue")


@pytest.fixture
def session(driver: Any, tmp_path: Path) -> Iterator[Any]:
    pages: list[Page] = []

    def start(data: list[dict[str, Any]] | None = None, *, reviewer: str = "ana", **kwargs: Any) -> Page:
        traces = review_data.traces(data if data is not None else review_data.rows())
        app = ReviewApp.build(traces, tmp_path / "notes.jsonl", reviewer=reviewer, **kwargs)
        page = Page(driver, app)
        pages.append(page)
        return page

    yield start
    for page in pages:
        page.close()


def _latest(path: Path) -> dict[tuple[str, str], Note]:
    return latest_notes(read_notes(path))


def test_code_ten_traces_reload_resume_undo(session: Any, tmp_path: Path) -> None:
    page = session().open()
    assert page.text("progress").startswith("trace 1 of 12 · done 0 / 12")
    for i in range(10):
        page.code(f"note {i}: agent cancelled without asking", "2" if i % 2 else "1", tags=f"tag{i % 3}")
    notes = _latest(tmp_path / "notes.jsonl")
    assert len(notes) == 10
    assert notes[("t03", "ana")].verdict == "fail"
    assert notes[("t03", "ana")].note == "note 3: agent cancelled without asking"
    assert notes[("t03", "ana")].tags == ("tag0",)
    assert notes[("t04", "ana")].verdict == "pass"
    assert "done 10 / 12" in page.text("progress")
    # the saturation panel counts the ten notes: three tags, none seen once
    assert "notes with a verdict: 10" in page.text("saturation")

    page.drv.refresh()
    page.wait_q(10)  # resumed at the first trace not done
    assert page.drv.find_element(By.ID, "trace").get_attribute("data-trace-id") == "t10"

    page.keys("u")  # takes back the verdict given to t09 (its note stays)
    page.wait_q(9)
    page.wait(lambda: page.status() == "undone", "'undone'")
    t09 = _latest(tmp_path / "notes.jsonl")[("t09", "ana")]
    assert t09.verdict is None and t09.note.startswith("note 9")
    assert "done 9 / 12" in page.text("progress")
    assert not page.drv.find_element(By.ID, "v-fail").get_attribute("aria-pressed") == "true"

    # a new session over the same notes leaves the nine decided traces out
    again = session()
    assert [again.app.traces[i].id for i in again.app.queue] == ["t09", "t10", "t11"]
    # every save is a line, the undo one more: nothing was rewritten
    lines = [json.loads(line) for line in (tmp_path / "notes.jsonl").read_text().splitlines()]
    assert [r["trace_id"] for r in lines] == [f"t{i:02d}" for i in range(10)] + ["t09"]
    assert lines[9]["verdict"] == "fail" and lines[10]["verdict"] is None


def test_mark_a_step_as_the_first_failing_step(session: Any, tmp_path: Path) -> None:
    page = session().open()
    # t00 has steps: agent > llm, tool (error); messages are selectable too
    page.wait(lambda: page.drv.find_elements(By.CSS_SELECTOR, "details.fm-step"), "the step tree")
    tree = page.text("trace")
    assert "support_agent" in tree and "get_reservation" in tree and "error" in tree and "1.40 s" in tree
    page.keys("s")
    page.wait(lambda: "select a step" in page.status(), "the hint to select first")
    # walk the selection with ] to the tool step: 5 messages, then agent, llm, tool
    page.keys("]" * 8)
    selected = page.drv.find_element(By.CSS_SELECTOR, ".fm-selected")
    assert selected.get_attribute("data-step") == "s0-tool"
    page.keys("s")
    page.wait_saved()
    assert page.text("ffs") == "s0-tool"
    assert _latest(tmp_path / "notes.jsonl")[("t00", "ana")].first_failing_step == "s0-tool"
    # a click selects too (the tool-call message), and the button marks it
    page.drv.find_element(By.CSS_SELECTOR, '[data-step="message:2"] .fm-role').click()
    page.drv.find_element(By.ID, "mark-step").click()
    page.wait(lambda: page.text("ffs") == "message:2", "the message marked")
    page.wait_saved()
    assert _latest(tmp_path / "notes.jsonl")[("t00", "ana")].first_failing_step == "message:2"
    # the tool call's arguments are pretty-printed JSON
    assert '"reservation_id": "R0"' in page.text("trace")


def test_judge_hidden_until_own_note(session: Any, project: Any, tmp_path: Path) -> None:
    data = review_data.rows(4)
    project.traces(data)
    project.definitions(
        """
        dataset: data/traces.jsonl
        gate: {max_fail_rate: 0.5}
        failure_modes:
          - name: claims_cancelled
            rule: {regex: "(?i)cancelled"}
        """
    )
    result = project.run("--failmodes-report=r.json")
    assert result.ret == 1  # every trace says "cancelled": the mode fails
    reports = load_reports([project.pytester.path / "r.json"])
    page = session(data, reports=reports, outcome=Outcome("failed")).open()
    # the outcome label is hidden with the verdicts
    meta = page.drv.find_element(By.CSS_SELECTOR, ".fm-meta").text
    assert "route" in meta and "failed" not in meta
    page.keys("v")
    page.wait(lambda: "write your own note" in page.status(), "the refusal")
    assert not page.drv.find_element(By.ID, "judge").is_displayed()
    page.keys("n", "said cancelled but never called cancel_reservation", Keys.ESCAPE)
    page.wait_saved()
    page.keys("v")
    page.wait(lambda: page.drv.find_element(By.ID, "judge").is_displayed(), "the judge panel")
    judge = page.text("judge")
    assert "claims_cancelled: fail" in judge
    assert "matches" in judge  # the rule's reason
    assert "outcome failed = 1 → failed" in judge


def test_two_reviewers_agreement(session: Any, tmp_path: Path) -> None:
    data = review_data.rows(21)
    notes = NotesFile(tmp_path / "notes.jsonl")
    for i in range(21):
        notes.append(Note(f"t{i:02d}", "bo", "fail" if i % 3 == 0 else "pass", note="bo's note", tags=("x",)))
    for i in range(20):
        # ana agrees with bo except on t01 and t02
        verdict = "fail" if i % 3 == 0 or i in (1, 2) else "pass"
        notes.append(Note(f"t{i:02d}", "ana", verdict, note="ana's note"))
    page = session(data).open()
    assert page.q() == 0 and page.app.traces[page.app.queue[0]].id == "t20"

    def kappa(common: int, agree: int, bo_fails: int, ana_fails: int) -> float:
        po = agree / common
        pe = (bo_fails / common) * (ana_fails / common) + (1 - bo_fails / common) * (1 - ana_fails / common)
        return (po - pe) / (1 - pe)

    # 20 in common (t00-t19), 18 agree; bo fails 7 of them, ana 9
    assert f"with bo: Cohen's κ = {kappa(20, 18, 7, 9):.2f} on 20 traces (18 agree)" in page.text("agreement")
    page.code("agrees with bo", "1")  # t20: bo said pass
    page.wait(lambda: "21 traces" in page.text("agreement"), "kappa over 21 traces")
    assert f"with bo: Cohen's κ = {kappa(21, 19, 7, 9):.2f} on 21 traces (19 agree)" in page.text("agreement")


def test_hostile_trace_content_stays_inert(session: Any, tmp_path: Path) -> None:
    hostile = review_data.HOSTILE
    NotesFile(tmp_path / "notes.jsonl").append(Note("someone-else", "bo", "fail", note=hostile, tags=(hostile,)))
    page = session([review_data.hostile_row()]).open()
    trace = page.drv.find_element(By.ID, "trace")
    text = trace.text
    assert text.count("<script>window.__pwned = 1</script>") >= 8
    assert page.drv.execute_script("return window.__pwned === undefined")
    assert page.drv.find_elements(By.CSS_SELECTOR, "#trace img, #trace script, #panel img, #panel script") == []
    # the tag another reviewer typed is offered as text too
    assert hostile in page.text("known-tags")
    # open every fold and step, then check again
    for button in page.drv.find_elements(By.CSS_SELECTOR, "#trace .fm-more"):
        button.click()
    for details in page.drv.find_elements(By.CSS_SELECTOR, "#trace details:not([open]) > summary"):
        details.click()
    page.keys("n", hostile, Keys.ESCAPE, "2")
    page.wait_saved()
    page.drv.refresh()
    page.wait_q(0)
    assert page.drv.execute_script("return window.__pwned === undefined")
    assert page.drv.find_elements(By.CSS_SELECTOR, "img, script:not([src])") == []
    assert page.drv.find_element(By.ID, "note").get_attribute("value") == hostile
    assert "x" + hostile in page.drv.find_element(By.CSS_SELECTOR, ".fm-trace-id").text


def test_help_and_clickable_keys(session: Any, tmp_path: Path) -> None:
    page = session().open()
    page.keys("?")
    page.wait(lambda: page.drv.find_element(By.ID, "help").is_displayed(), "help")
    assert "first failing step" in page.text("help")
    page.keys(Keys.ESCAPE)
    page.wait(lambda: not page.drv.find_element(By.ID, "help").is_displayed(), "help closed")
    page.drv.find_element(By.ID, "next").click()
    page.wait_q(1)
    page.keys("k")
    page.wait_q(0)
    page.keys("j")
    page.wait_q(1)
    page.drv.find_element(By.ID, "v-defer").click()
    page.wait_saved()
    assert _latest(tmp_path / "notes.jsonl")[("t01", "ana")].verdict == "defer"
    page.drv.find_element(By.ID, "undo").click()
    page.wait(lambda: page.status() == "undone", "'undone'")
    assert ("t01", "ana") not in _latest(tmp_path / "notes.jsonl")
