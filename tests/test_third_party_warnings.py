"""Warnings from the libraries under a model call never change a verdict.

litellm 1.110 imports modules on its first call, and pydantic warns while it
builds their schemas; under ``-W error`` or ``filterwarnings = error`` that
warning was raised inside the call, and every judge verdict became an error.
These sessions turn warnings into errors the two ways a user does and check
that the verdicts are the judge's, against the installed litellm (the locked
one under ``make test``, the newest under ``make test-latest``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fakellm import FakeLLM, fakellm_server

from pytest_failmodes.judge import ENV_MODEL

MODEL = "openai/fake-judge"
REFUNDS = {2, 5}

DEFINITIONS = """
    dataset: data/traces.jsonl
    gate: {max_fail_rate: 0.1}
    judge: {model: %(model)s, api_base: %(base)s, structured_output: false}
    failure_modes:
      - name: promised_refund
        description: FAIL when the assistant promises a refund.
        judge: {}
"""


def refund_judge(request: dict[str, Any]) -> str:
    block = request["messages"][1]["content"].split("<output>", 1)[1]
    verdict = "fail" if "refund" in block.split("</output>", 1)[0].lower() else "pass"
    return json.dumps({"critique": f"judged {verdict}", "verdict": verdict})


@pytest.fixture(scope="module", autouse=True)
def _litellm_loaded() -> None:
    # imported before pytester snapshots sys.modules, so in-process runs share it
    from pytest_failmodes.llm import load_litellm

    load_litellm()
    import pytest_failmodes.cache  # noqa: F401
    import pytest_failmodes.judge  # noqa: F401


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-warnings")
    for name in (ENV_MODEL, "OPENAI_API_BASE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with fakellm_server(responder=refund_judge) as srv:
        yield srv


@pytest.fixture
def judged(project: Any, server: FakeLLM) -> Any:
    rows = [
        project.row(f"t{i}", f"Sure, a refund for order {i}." if i in REFUNDS else f"Order {i} ships today.")
        for i in range(1, 9)
    ]
    project.traces(rows)
    project.definitions(DEFINITIONS % {"model": MODEL, "base": server.base_url})
    return project


def _assert_judge_verdicts(result: pytest.RunResult) -> None:
    """2 of 8 traces fail (25% > 10%): the gate breaches on fail verdicts, with no error."""
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*failure mode 'promised_refund' breached its gate*",
            "*all*8*2*25.0%*",
        ]
    )
    result.stdout.no_fnmatch_line("*Warning*")
    result.stdout.no_fnmatch_line("*errors: * > max_errors*")


def test_ini_filterwarnings_error_keeps_judge_verdicts(judged: Any, server: FakeLLM) -> None:
    judged.pytester.makeini("[pytest]\nfilterwarnings = error\n")

    result = judged.run("--failmodes-no-cache")

    _assert_judge_verdicts(result)
    assert server.call_count == 8


def test_dash_w_error_keeps_judge_verdicts_per_trace(judged: Any, server: FakeLLM) -> None:
    result = judged.run("-W", "error", "--failmodes-no-cache", "--failmodes-per-trace")

    assert result.ret == 1
    outcomes = result.parseoutcomes()
    assert (outcomes["passed"], outcomes["detected"]) == (6, 2)
    result.stdout.fnmatch_lines(["promised_refund: detected:", "  t2: judged fail", "  t5: judged fail"])
    result.stdout.no_fnmatch_line("*errors:*")


# A library's warning, made on purpose: the code below runs as a module of the
# httpx package would (warnings are attributed to the module whose code warns),
# so this does not depend on what the installed litellm happens to warn.
CONFTEST = '''
import warnings

import pytest

_library: dict = {"__name__": "httpx._failmodes_test"}
exec(compile("""
import warnings
def send(text):
    warnings.warn("a library's deprecation, raised during the call", DeprecationWarning)
    return text
""", "<httpx test module>", "exec"), _library)


def answer(question):
    if "own" in question:
        # the application's own warning is not ours to hide
        warnings.warn("the application's own warning", UserWarning)
    return _library["send"]("Refund approved!" if "refund" in question else "On its way.")


@pytest.fixture
def support_bot():
    return answer
'''

TARGET = """
    dataset: data/inputs.jsonl
    target: support_bot
    gate: {max_fail_rate: 0.5}
    failure_modes:
      - name: promises_refund
        rule: {regex: "(?i)refund approved"}
"""


@pytest.mark.parametrize("how", ["ini", "-W"])
def test_a_librarys_warning_in_a_target_call_is_ignored_but_the_apps_own_is_not(project: Any, how: str) -> None:
    project.file("conftest.py", CONFTEST)
    project.traces(
        [
            {"id": "q1", "input": "a refund please"},
            {"id": "q2", "input": "where is my parcel"},
            {"id": "q3", "input": "my own question"},
        ],
        path="data/inputs.jsonl",
    )
    project.definitions(TARGET)
    args: list[str] = ["--failmodes-no-cache"]
    if how == "ini":
        project.pytester.makeini("[pytest]\nfilterwarnings = error\n")
    else:
        args += ["-W", "error"]

    result = project.run(*args, "--failmodes-report", "report.json")

    assert result.ret == 1  # q3's warning, raised as an error, is an error verdict
    traces = {t["id"]: t for t in project.report("report.json")["modes"][0]["traces"]}
    assert traces["q1"]["verdict"] == "fail"
    assert traces["q2"]["verdict"] == "pass"
    assert traces["q3"]["verdict"] == "error"
    assert "the application's own warning" in traces["q3"]["reason"]
