"""Screenshots of the real review page for docs/error-analysis.md.

    .venv/bin/python docs/img/review_screenshots.py [TAU_BENCH_JSONL]

Writes review-steps.png and review-judge.png from a small example dataset,
and review-tau-bench.png from tau-bench's airline traces when their JSONL is
given (it is not part of this repository). Needs chromium, chromedriver and selenium.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from pytest_failmodes.analysis.notes import Note, NotesFile  # noqa: E402
from pytest_failmodes.analysis.review import ReviewApp, ReviewServer, load_source  # noqa: E402
from pytest_failmodes.analysis.sampling import Outcome  # noqa: E402

HERE = Path(__file__).resolve().parent


def example_rows() -> list[dict[str, Any]]:
    args = json.dumps({"reservation_id": "ZFA04Y", "reason": "change of plan"})
    return [
        {
            "id": "airline/task7/trial2",
            "messages": [
                {"role": "system", "content": "You are an airline agent. Before any change to a booking, list the action and get an explicit yes."},
                {"role": "user", "content": "Hi, cancel my reservation ZFA04Y please, my plans changed."},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_reservation_details", "arguments": json.dumps({"reservation_id": "ZFA04Y"})}}]},
                {"role": "tool", "tool_call_id": "c1", "content": json.dumps({"reservation_id": "ZFA04Y", "cabin": "basic_economy", "insurance": "no", "created_at": "2024-05-01"})},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c2", "type": "function", "function": {"name": "cancel_reservation", "arguments": args}}]},
                {"role": "tool", "tool_call_id": "c2", "content": json.dumps({"status": "cancelled", "refund": 0})},
                {"role": "assistant", "content": "Your reservation **ZFA04Y** is cancelled. A refund of $0 goes back to your card."},
            ],
            "steps": [
                {"id": "agent", "kind": "agent", "name": "airline_agent", "status": "ok", "start_ms": 0, "end_ms": 6200},
                {"id": "llm-1", "parent_id": "agent", "kind": "llm", "name": "gpt-4o", "status": "ok", "start_ms": 0, "end_ms": 1400, "tokens": {"total": 1843}},
                {"id": "tool-1", "parent_id": "agent", "kind": "tool", "name": "get_reservation_details", "status": "ok", "start_ms": 1400, "end_ms": 1650,
                 "input": {"reservation_id": "ZFA04Y"}, "output": {"cabin": "basic_economy", "insurance": "no"}},
                {"id": "llm-2", "parent_id": "agent", "kind": "llm", "name": "gpt-4o", "status": "ok", "start_ms": 1650, "end_ms": 3100, "tokens": {"total": 1990}},
                {"id": "tool-2", "parent_id": "agent", "kind": "tool", "name": "cancel_reservation", "status": "ok", "start_ms": 3100, "end_ms": 3500,
                 "input": {"reservation_id": "ZFA04Y"}, "output": {"status": "cancelled"}},
                {"id": "llm-3", "parent_id": "agent", "kind": "llm", "name": "gpt-4o", "status": "ok", "start_ms": 3500, "end_ms": 6200, "tokens": {"total": 2051}},
            ],
            "metadata": {"task_kind": "cancel_reservation", "user_id": "mei_brown_7075", "failed": 1},
        }
    ]


def browser() -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,900", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")), options=options)


def wait_q(drv: Any, q: int) -> None:
    WebDriverWait(drv, 20).until(lambda d: d.find_element(By.ID, "trace").get_attribute("data-q") == str(q))


def saved(drv: Any) -> None:
    WebDriverWait(drv, 20).until(lambda d: d.find_element(By.ID, "status").text in ("saved", "undone"))


def keys(drv: Any, *k: str) -> None:
    ActionChains(drv).send_keys(*k).perform()


def serve(traces: Any, tmp: Path, **kwargs: Any) -> ReviewServer:
    app = ReviewApp.build(traces, tmp / "notes.jsonl", reviewer="ana", **kwargs)
    server = ReviewServer(app)
    server.start()
    return server


def main() -> int:
    drv = browser()
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            data = tmp / "example.jsonl"
            data.write_text("".join(json.dumps(r) + "\n" for r in example_rows()))
            notes = NotesFile(tmp / "notes.jsonl")
            earlier = ["no confirmation before a write", "no confirmation before a write", "refund promised without policy check",
                       "wrong cabin rules", "no confirmation before a write", "transferred too early"]
            for i, tag in enumerate(earlier):
                notes.append(Note(f"earlier-{i}", "ana", "fail", note="...", tags=(tag,), ts=1 + i))
            traces, _m, _s = load_source(data)
            server = serve(traces, tmp, outcome=Outcome("failed"), dataset="example.jsonl")
            drv.get(server.url)
            wait_q(drv, 0)
            keys(drv, "]" * 12)
            keys(drv, "s")
            saved(drv)
            keys(drv, "n", "Cancelled ZFA04Y without listing the action and asking for a yes first.", Keys.TAB, "no confirmation before a write")
            keys(drv, Keys.ESCAPE, "2")
            saved(drv)
            time.sleep(0.3)
            drv.save_screenshot(str(HERE / "review-steps.png"))
            keys(drv, "v")
            WebDriverWait(drv, 20).until(lambda d: d.find_element(By.ID, "judge").is_displayed())
            drv.save_screenshot(str(HERE / "review-judge.png"))
            server.shutdown()
            server.server_close()
            if len(sys.argv) > 1:
                (tmp / "notes.jsonl").unlink()
                traces, _m, _s = load_source(Path(sys.argv[1]))
                server = serve(traces, tmp, outcome=Outcome("failed"), method="failures", seed=1, dataset="tau_bench_airline.jsonl")
                drv.set_window_size(1400, 1100)
                drv.get(server.url)
                wait_q(drv, 0)
                keys(drv, "n", "(screenshot: a note is typed here)", Keys.ESCAPE)
                saved(drv)
                # the user's first message, then the first tool calls
                drv.execute_script("document.querySelector('[data-step=\"message:1\"]').scrollIntoView()")
                time.sleep(0.3)
                drv.save_screenshot(str(HERE / "review-tau-bench.png"))
                server.shutdown()
                server.server_close()
    finally:
        drv.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
