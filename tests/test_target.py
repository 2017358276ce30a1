"""Targets: the application produces the traces the modes evaluate."""

from __future__ import annotations

import json

import pytest

DEFINITION = """
dataset: inputs.jsonl
target: support_bot
cohorts: [route]
gate: {max_fail_rate: 0.5, max_errors: 1}
failure_modes:
  - name: promises_refund
    rule: {regex: "(?i)refund approved"}
"""

APP = """
import asyncio
import pytest

CALLS = []

@pytest.fixture
def support_bot():
    %s
    return app
"""

SYNC_APP = '''def app(text):
        CALLS.append(text)
        if text == "boom":
            raise ValueError("app crashed")
        return "Refund approved!" if "refund" in text else "It shipped."'''

ASYNC_APP = '''async def app(text):
        await asyncio.sleep(0)
        if text == "boom":
            raise ValueError("app crashed")
        return {"output": "Refund approved!" if "refund" in text else "It shipped.", "metadata": {"model": "v9"}}'''


@pytest.fixture
def target_project(project):
    project.traces(
        [
            {"id": "q1", "input": "Can I get a refund?", "route": "billing"},
            {"id": "q2", "input": "Where is my order?", "route": "shipping"},
            {"id": "q3", "input": "boom", "route": "shipping"},
        ],
        "inputs.jsonl",
    )
    project.definitions(DEFINITION, "app.failmodes.yaml")
    return project


@pytest.mark.parametrize("body", [SYNC_APP, ASYNC_APP], ids=["sync", "async"])
def test_a_target_produces_the_traces_that_are_evaluated(target_project, body: str) -> None:
    target_project.file("conftest.py", APP % body)

    result = target_project.run("--failmodes-report", "r.json", "--failmodes-save-traces", "out/traces.jsonl")

    assert result.ret == 1  # route=billing: 1/1 promised a refund
    traces = {t["id"]: t for t in target_project.report("r.json")["modes"][0]["traces"]}
    assert traces["q1"]["verdict"] == "fail"
    assert traces["q2"]["verdict"] == "pass"
    # the app crashed on q3: an error, never a pass or a fail
    assert traces["q3"] == {"id": "q3", "verdict": "error", "reason": "target failed: ValueError: app crashed", "evidence": None}
    saved = [json.loads(line) for line in (target_project.path / "out/traces.jsonl").read_text().splitlines()]
    assert [t["id"] for t in saved] == ["q1", "q2"]  # what the app could not answer is not saved
    assert saved[0]["output"] == "Refund approved!"
    assert saved[0]["metadata"]["route"] == "billing"  # the dataset's metadata is kept
    result.stdout.fnmatch_lines(["target:support_bot *2 *0 *1 *"])


def test_target_rows_need_an_input(target_project) -> None:
    target_project.traces([{"id": "q1", "route": "billing"}], "inputs.jsonl")
    target_project.file("conftest.py", APP % SYNC_APP)

    result = target_project.run()

    assert result.ret == 1
    result.stdout.fnmatch_lines(["*inputs.jsonl:1: input: missing input: a target needs each row's input*"])


def test_a_missing_target_fixture_is_a_clear_error(target_project) -> None:
    result = target_project.run()

    assert result.ret == 1
    result.stdout.fnmatch_lines(["*app.failmodes.yaml: target: target fixture 'support_bot' not found*"])


def test_per_trace_mode_says_targets_are_not_supported(target_project) -> None:
    target_project.file("conftest.py", APP % SYNC_APP)

    result = target_project.run("--failmodes-per-trace")

    assert result.ret == 2
    result.stdout.fnmatch_lines(["*does not support target: yet*"])


def test_cached_target_outputs_are_reused(target_project) -> None:
    target_project.definitions(
        DEFINITION.replace("target: support_bot", "target: {fixture: support_bot, cache: true, version: v1}"),
        "app.failmodes.yaml",
    )
    target_project.file(
        "conftest.py",
        (APP % SYNC_APP).replace("CALLS = []", "import pathlib\nCALLS = []").replace(
            "CALLS.append(text)", "pathlib.Path('calls.log').open('a').write(text + '\\n')"
        ),
    )

    first = target_project.run_subprocess()
    second = target_project.run_subprocess()

    assert first.ret == second.ret == 1
    calls = (target_project.path / "calls.log").read_text().splitlines()
    # the first run asked all three (q3 failed, so it is asked again); the second only q3
    assert sorted(calls) == sorted(["Can I get a refund?", "Where is my order?", "boom", "boom"])


def test_target_timeouts_and_dropped_connections_are_retried(target_project) -> None:
    # an SDK-style timeout (no status code, named ...Timeout) and a dropped connection
    # are retried; the second attempt answers
    target_project.file(
        "conftest.py",
        '''
import pytest

class APITimeoutError(Exception):
    pass

@pytest.fixture
def support_bot():
    seen = {}
    def app(text):
        seen[text] = seen.get(text, 0) + 1
        if seen[text] == 1:
            raise APITimeoutError("slow") if "refund" in text else ConnectionError("reset")
        return "ok"
    return app
''',
    )

    result = target_project.run("--failmodes-report", "r.json")

    verdicts = {t["id"]: t["verdict"] for t in target_project.report("r.json")["modes"][0]["traces"]}
    assert verdicts == {"q1": "pass", "q2": "pass", "q3": "pass"}
    result.stdout.fnmatch_lines(["target:support_bot *3 *0 *0 *3 *"])
