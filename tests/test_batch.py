"""Judge calls through the batch API (judge: {batch: true}, --failmodes-batch), against the
loopback server's /v1/files and /v1/batches (litellm's real HTTP path, no mock)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import judge_env
from fakellm import FakeLLM, fakellm_server

MODEL = "openai/fake-judge"
KEY = "sk-test-BATCH123"

DEFINITIONS = """
    dataset: data/traces.jsonl
    cohorts: [route]
    gate: {max_fail_rate: 0.5}
    judge: {model: %(model)s, api_base: %(base)s, structured_output: false%(batch)s}
    failure_modes:
      - name: promised_refund
        description: FAIL when the assistant promises a refund.
        judge: {}
"""


def verdict_for(request: dict[str, Any]) -> str:
    content: str = request["messages"][-1]["content"]
    output = content.split("<trace>", 1)[1].split("<output>", 1)[1]
    verdict = "fail" if "refund" in output.lower() else "pass"
    return json.dumps({"critique": f"the reply {'promises' if verdict == 'fail' else 'makes no'} refund", "verdict": verdict})


@pytest.fixture
def server() -> Iterator[FakeLLM]:
    with fakellm_server(responder=verdict_for) as srv:
        yield srv


# in-process runs share litellm and these instead of importing them again (conftest.litellm_loaded)
pytestmark = pytest.mark.usefixtures("litellm_loaded")
LITELLM_PRELOAD = ("pytest_failmodes.batch", "pytest_failmodes.cache", "pytest_failmodes.judge", "pytest_failmodes.workers")


_env = judge_env(KEY)


def write(project: Any, server: FakeLLM, n: int, *, batch: bool) -> None:
    project.traces(
        {"id": f"t{i:04d}", "input": f"question {i}", "output": f"I will refund order {i}" if i % 5 == 0 else f"Order {i} shipped",
         "metadata": {"route": "billing" if i % 2 else "shipping"}}
        for i in range(n)
    )
    project.definitions(DEFINITIONS % {"model": MODEL, "base": server.base_url, "batch": ", batch: true" if batch else ""})



def test_unanswered_batch_items_are_made_live_and_the_verdicts_match_live_calls(project: Any, server: FakeLLM) -> None:
    write(project, server, 12, batch=False)
    # in subprocesses: litellm's files and batches calls leave sockets for the garbage collector,
    # which an in-process run under this suite's filterwarnings = error would turn into a failure
    live = project.run_subprocess("--failmodes-no-cache")
    assert live.ret == 0 and server.call_count == 12

    server.reset()
    faults = {"question 3": "expire", "question 7": "error"}
    server.batches.item_fault = lambda body: next((f for q, f in faults.items() if f"{q}\n" in body["messages"][-1]["content"]), None)
    result = project.run_subprocess("--failmodes-batch")

    assert result.ret == 0
    assert server.batches.created == 1
    assert server.batches.paid == 10  # a failed or expired item is not billed
    assert server.call_count == 2  # the two the batch did not answer, made live
    assert project.gate_table(result) == project.gate_table(live)
    result.stdout.fnmatch_lines(
        [
            "10 of 12 calls answered through the provider's batch API",
            "judge batch batch_fake_*: submitted 12 calls",
            "WARNING pytest-failmodes: judge batch batch_fake_* ended expired without an answer for 2 of 12 calls; "
            "those are made live",
        ]
    )


@pytest.mark.slow
def test_a_run_killed_after_submission_resumes_its_batch_and_pays_each_call_once(project: Any, server: FakeLLM) -> None:
    n = 2000
    write(project, server, n, batch=True)
    server.batches.hold = True  # the provider takes its time: the run is killed while it waits
    log = project.path / "first-run.log"
    with log.open("wb") as out:
        first = project.pytester.popen(
            [sys.executable, "-m", "pytest", "--failmodes", "-p", "no:cacheprovider"], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=project.path,
        )
        try:
            submitted = server.batches.wait_for(lambda b: b.created == 1, timeout=900)
        finally:
            first.kill()  # SIGKILL: nothing of the run's own shutdown happens
            first.wait(60)
    assert submitted, log.read_text(errors="replace")[-2000:]
    server.batches.release()  # the batch completes while no run is waiting for it

    result = project.run_subprocess("-p", "no:cacheprovider", "--failmodes-report=report.json")

    assert result.ret == 0, result.stdout.str()[-3000:]
    assert server.batches.created == 1  # the rerun submitted nothing new
    assert server.batches.paid == n  # every call paid once
    assert server.call_count == 0  # and none made live
    result.stdout.fnmatch_lines(
        [
            f"{n:,} of {n:,} calls answered through the provider's batch API",
            f"judge batch batch_fake_*: resuming the batch an earlier run submitted ({n} calls)",
        ]
    )
    (all_row, *_), = (m["cohorts"] for m in project.report("report.json")["modes"])
    assert (all_row["n"], all_row["fails"], all_row["errors"]) == (n, n // 5, 0)  # every fifth reply promises a refund
