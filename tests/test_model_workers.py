"""Model calls across worker processes (--failmodes-model-workers), against the loopback server.

Workers make the attempts; the limit, retries, cache and statistics stay in the
runner's process, so a run's verdicts and figures are the same with 1 or N
workers. Each worker imports litellm (seconds), so these tests are few.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import judge_env
from fakellm import FakeLLM, fakellm_server, rate_limited

from pytest_failmodes.llm import AUTO_WORKERS_AFTER, ModelError, Runner, resolve_workers

MODEL = "openai/fake-judge"
KEY = "sk-test-WORKERS123"
N = 24


def verdict_for(request: dict[str, Any]) -> str:
    """Fail when the trace's output mentions a refund; reads nothing but the request."""
    content: str = request["messages"][-1]["content"]
    output = content.split("<output>", 1)[1] if "<output>" in content else content
    verdict = "fail" if "refund" in output.lower() else "pass"
    return json.dumps({"critique": f"{verdict}: {len(content)} chars", "verdict": verdict})


@pytest.fixture
def server() -> Iterator[FakeLLM]:
    with fakellm_server(responder=verdict_for) as srv:
        yield srv


# in-process runs share litellm and these instead of importing them again (conftest.litellm_loaded)
pytestmark = pytest.mark.usefixtures("litellm_loaded")
LITELLM_PRELOAD = ("pytest_failmodes.batch", "pytest_failmodes.cache", "pytest_failmodes.judge", "pytest_failmodes.workers")


_env = judge_env(KEY)


def test_auto_is_one_in_an_xdist_worker_and_on_one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert resolve_workers("auto") == (2, AUTO_WORKERS_AFTER)
    assert resolve_workers("auto", xdist_worker=True) == (1, 0)
    assert resolve_workers("3", xdist_worker=True) == (3, 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert resolve_workers("auto") == (1, 0)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        Runner(workers=0)


def _ask_all(runner: Runner, server: FakeLLM, texts: list[str]) -> list[str]:
    async def one(text: str) -> str:
        reply = await runner.complete(MODEL, [{"role": "user", "content": text}], api_base=server.base_url)
        return reply.content

    return [f.result(timeout=600) for f in [runner.submit(one(t)) for t in texts]]


def test_workers_answer_what_one_process_answers_and_share_the_limit(server: FakeLLM) -> None:
    texts = [f"<output>{'a refund' if i % 3 == 0 else 'shipped'} {i}</output>" for i in range(N)]
    with Runner(max_concurrency=4, workers=1) as alone:
        expected = _ask_all(alone, server, texts)
        alone_stats = alone.stats_dict()[MODEL]
    server.script(rate_limited(retry_after=0))  # one 429 on the workers' side: retried by the runner
    with Runner(max_concurrency=4, workers=2) as runner:
        got = _ask_all(runner, server, texts)
        stats = runner.stats_dict()[MODEL]
        pids = [w.pid for w in runner._pool.workers]
        handovers = runner._pool.handovers
        assert runner.worker_problem is None
    assert got == expected
    # calls were sent ahead, and a worker that ended one started the next on its slot
    # (not during the back-off after the 429: the limit must first grow back to 4)
    assert 0 < handovers < N
    assert stats["calls"] == stats["worker_calls"] == N and alone_stats["worker_calls"] == 0
    assert stats["retries"] == 1 and stats["errors"] == 0
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == (alone_stats["prompt_tokens"], alone_stats["completion_tokens"])
    assert server.call_count == 2 * N + 1
    assert server.max_in_flight <= 4  # one limit for every worker
    assert len(set(pids)) == 2 and os.getpid() not in pids
    for pid in pids:  # closed with the runner: none left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_auto_sends_the_calls_waiting_here_to_the_workers_once_they_are_ready(server: FakeLLM) -> None:
    """auto starts the workers after a number of attempts; the calls then waiting for a slot in
    this process move to the pool (and are sent ahead there), not one by one as slots free."""
    gate = threading.Event()

    def responder(request: dict[str, Any]) -> str:
        if "first" in request["messages"][-1]["content"]:
            gate.wait(60)  # the calls made here wait until the workers are ready
        return verdict_for(request)

    server.responder = responder
    texts = ["<output>first refund</output>", "<output>first shipped</output>"]
    texts += [f"<output>{'a refund' if i % 3 == 0 else 'shipped'} {i}</output>" for i in range(N)]
    with Runner(max_concurrency=2, workers=2, workers_after=2) as runner:
        futures = [runner.submit(runner.complete(MODEL, [{"role": "user", "content": t}], api_base=server.base_url)) for t in texts]
        deadline = time.monotonic() + 120
        while not (runner._pool is not None and runner._pool.ready) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runner._pool is not None and runner._pool.ready, "the workers never became ready"
        assert server.in_flight == 2 and not any(f.done() for f in futures)
        gate.set()
        got = [json.loads(f.result(timeout=120).content)["verdict"] for f in futures]
        stats = runner.stats_dict()[MODEL]
        handovers = runner._pool.handovers
    assert got == ["fail", "pass"] + ["fail" if i % 3 == 0 else "pass" for i in range(N)]
    assert stats["calls"] == N + 2 and stats["worker_calls"] == N and stats["errors"] == 0
    assert handovers > 0
    assert server.max_in_flight <= 2


def test_a_killed_worker_costs_a_retry_not_a_verdict(server: FakeLLM) -> None:
    with Runner(max_concurrency=4, workers=2, backoff=0.01) as runner:
        runner.start_workers()
        _ask_all(runner, server, ["<output>warm up</output>"])  # both ready (the pool waits for one)
        victim = runner._pool.workers[0]
        os.kill(victim.pid, signal.SIGKILL)
        got = _ask_all(runner, server, [f"<output>refund {i}</output>" for i in range(8)])
        stats = runner.stats_dict()[MODEL]
    assert all(json.loads(g)["verdict"] == "fail" for g in got)
    assert stats["errors"] == 0 and stats["calls"] == 9


def test_when_every_worker_is_gone_calls_are_made_here_and_the_run_says_so(server: FakeLLM) -> None:
    with Runner(max_concurrency=2, workers=2, max_retries=1, backoff=0.01) as runner:
        runner.start_workers()
        deadline = time.monotonic() + 60
        while len(runner._pool.workers) < 2 and time.monotonic() < deadline:  # spawned on the runner's loop
            time.sleep(0.05)
        for worker in runner._pool.workers:
            os.kill(worker.pid, signal.SIGKILL)
        got = _ask_all(runner, server, ["<output>refund</output>", "<output>shipped</output>"])
        problem = runner.worker_problem
    assert [json.loads(g)["verdict"] for g in got] == ["fail", "pass"]
    assert problem is not None and "exited with status -9" in problem and "made in the main process" in problem


# --------------------------------------------------------------------------- whole sessions

DEFINITIONS = """
    dataset: data/traces.jsonl
    cohorts: [route]
    gate: {max_fail_rate: 0.5}
    judge: {model: %(model)s, api_base: %(base)s, structured_output: false}
    failure_modes:
      - name: promised_refund
        description: FAIL when the assistant promises a refund.
        judge: {}
"""


def write(project: Any, server: FakeLLM) -> None:
    project.traces(
        {"id": f"t{i:02d}", "input": f"q{i}", "output": "I will refund you" if i % 4 == 0 else "On its way",
         "metadata": {"route": "billing" if i % 2 else "shipping"}}
        for i in range(N)
    )
    project.definitions(DEFINITIONS % {"model": MODEL, "base": server.base_url})



@pytest.mark.slow
def test_a_session_with_two_workers_reports_what_one_process_reports(project: Any, server: FakeLLM) -> None:
    write(project, server)
    alone = project.run_subprocess("--failmodes-no-cache", "--failmodes-model-workers=1")
    two = project.run_subprocess("--failmodes-no-cache", "--failmodes-model-workers", "2")

    assert alone.ret == two.ret == 0
    assert project.gate_table(two) == project.gate_table(alone)
    two.stdout.fnmatch_lines([f"{N} of {N} calls made by model worker processes (--failmodes-model-workers)"])
    assert "model worker processes" not in alone.stdout.str()
    assert server.call_count == 2 * N


@pytest.mark.slow
def test_under_xdist_auto_keeps_calls_in_each_xdist_worker_and_a_number_is_per_worker(project: Any, server: FakeLLM) -> None:
    write(project, server)
    auto = project.run_subprocess("-n", "2", "--failmodes-per-trace", "--failmodes-no-cache")
    two = project.run_subprocess("-n", "2", "--failmodes-per-trace", "--failmodes-model-workers=2", "--failmodes-refresh")

    assert auto.ret == two.ret == 0
    assert "model worker processes" not in auto.stdout.str()
    two.stdout.fnmatch_lines([f"{N} of {N} calls made by model worker processes (--failmodes-model-workers)"])
    assert project.gate_table(two) == project.gate_table(auto)


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--failmodes-model-workers=0"], None, "*--failmodes-model-workers takes a whole number >= 1, got '0'*"),
        (["--failmodes-model-workers=many"], None, "*--failmodes-model-workers takes a whole number >= 1, got 'many'*"),
        ([], "many", "*ini failmodes_model_workers: --failmodes-model-workers takes a whole number >= 1, got 'many'*"),
    ],
)
def test_a_bad_worker_count_is_a_usage_error(
    project: Any, server: FakeLLM, args: list[str], ini: str | None, message: str
) -> None:
    write(project, server)
    if ini is not None:
        project.file("pytest.ini", f"[pytest]\nfailmodes_model_workers = {ini}\n")
    result = project.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert server.call_count == 0


def test_model_error_is_still_an_error_through_workers(server: FakeLLM) -> None:
    server.script(*[rate_limited(retry_after=0)] * 3)
    with Runner(max_concurrency=1, workers=2, max_retries=2, backoff=0.01) as runner:
        with pytest.raises(ModelError, match=r"rate limited \(429\).*after 3 attempts"):
            _ask_all(runner, server, ["<output>x</output>"])
        assert runner.stats_dict()[MODEL]["errors"] == 1
