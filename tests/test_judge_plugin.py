"""LLM judges in whole pytest sessions (pytester), against the loopback server.

Rule and judge modes side by side, the "model calls" table, skipping when no
model is configured, the cache options, secrets, progress output,
per-trace and xdist runs, and that litellm is imported only when a judge runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import judge_env
from fakellm import FakeLLM, Reply, fakellm_server, hang, server_error

from pytest_failmodes.judge import ENV_MODEL

MODEL = "openai/fake-judge"
#: distinctive, so a leak anywhere is found by a plain substring search
KEY = "sk-test-SECRET123"
REFUNDS = {2, 5, 8}  # traces whose reply promises a refund
N = 10

DEFINITIONS = """
    dataset: data/traces.jsonl
    cohorts: [route]
    gate: {max_fail_rate: 0.5}
    judge:
      %(model)s
      api_base: %(base)s
      structured_output: false
    failure_modes:
      - name: leaks
        description: FAIL when the reply quotes its instructions.
        rule: {regex: "(?i)my instructions say"}
      - name: promised_refund
        description: %(description)s
        judge:
          examples:
            - {input: "Money back?", output: "Refund done, no questions asked!", verdict: fail, why: "promises a refund"}
            - {input: "Money back?", output: "Let me check the policy.", verdict: pass, why: "checks first"}
"""
DESCRIPTION = "FAIL when the assistant promises a refund without checking the policy."


def reply(verdict: str, critique: str) -> str:
    return json.dumps({"critique": critique, "verdict": verdict})


def trace_block(request: dict[str, Any]) -> str:
    content: str = request["messages"][1]["content"]
    return content.split("<trace>", 1)[1].split("</trace>", 1)[0]


def refund_judge(request: dict[str, Any]) -> str:
    """Reads only the trace: fail when its reply mentions a refund."""
    block = trace_block(request)
    if "refund" in block.split("<output>", 1)[1].lower():
        return reply("fail", "the reply promises a refund")
    return reply("pass", "no refund is promised")


# in-process runs share litellm and these instead of importing them again (conftest.litellm_loaded);
# the lazy-import tests use subprocesses
pytestmark = pytest.mark.usefixtures("litellm_loaded")
LITELLM_PRELOAD = ("pytest_failmodes.cache", "pytest_failmodes.judge")


_env = judge_env(KEY)


@pytest.fixture
def server() -> Iterator[FakeLLM]:
    with fakellm_server(responder=refund_judge) as srv:
        yield srv


def rows() -> list[dict[str, Any]]:
    out = []
    for i in range(1, N + 1):
        if i in REFUNDS:
            output = f"Sure, I will refund order {i} today."
        elif i == 1:
            output = "My instructions say: be nice."
        else:
            output = f"Your order {i} is on its way."
        out.append({"id": f"t{i:02d}", "input": f"question {i:02d}", "output": output,
                    "metadata": {"route": "billing" if i <= 5 else "shipping"}})
    return out


def write(project: Any, server: FakeLLM, *, model: bool = True, description: str = DESCRIPTION) -> None:
    project.traces(rows())
    project.definitions(DEFINITIONS % {
        "model": f"model: {MODEL}" if model else "temperature: 0",
        "base": server.base_url,
        "description": description,
    })


@pytest.fixture
def judged(project: Any, server: FakeLLM) -> Any:
    write(project, server)
    return project


def table(project: Any, result: pytest.RunResult) -> list[str]:
    """The failure-mode table, without the model-calls table that follows it."""
    lines = project.summary(result)
    end = next((i for i, line in enumerate(lines) if line.startswith("model calls")), len(lines))
    lines = lines[:end]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def model_row(result: pytest.RunResult) -> dict[str, Any]:
    """The fake judge's row of the "model calls" table."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if line.startswith("model calls (cost from litellm"))
    header = lines[start + 1].split()
    assert header[:6] == ["model", "calls", "cached", "errors", "retries", "tokens"], header
    row = next(line for line in lines[start + 2 :] if line.startswith(MODEL)).split()
    tokens_in, tokens_out = (int(x.replace(",", "")) for x in row[5].split("/"))
    return {"calls": int(row[1]), "cached": int(row[2]), "errors": int(row[3]), "retries": int(row[4]),
            "tokens": (tokens_in, tokens_out)}


def words(text: str | None) -> int:
    return len((text or "").split())


def expected_tokens(server: FakeLLM) -> tuple[int, int]:
    """What the fake server counted (whitespace words), recomputed from what it recorded."""
    prompt = completion = 0
    for request in server.chat_requests:
        assert request.json is not None
        prompt += sum(words(m.get("content")) for m in request.messages)
        completion += words(refund_judge(request.json))
    return prompt, completion


def mode_row(lines: list[str], mode: str, cohort: str) -> list[str]:
    row = next(line for line in lines if line.split()[:2] == [mode, cohort])
    return row.split()


# --------------------------------------------------------------------------- rule and judge modes together


def test_judge_mode_runs_next_to_rule_modes(judged: Any, server: FakeLLM) -> None:
    result = judged.run("-rs")

    assert result.ret == 0
    result.assert_outcomes(passed=2)
    assert server.call_count == N  # one call per trace, all modes' calls made up front
    lines = table(judged, result)
    assert lines[0] == "2 failure modes in 1 file: all gates passed"
    assert mode_row(lines, "promised_refund", "all")[2:5] == ["10", "3", "30.0%"]
    assert mode_row(lines, "promised_refund", "route=billing")[2:4] == ["5", "2"]
    assert mode_row(lines, "promised_refund", "route=shipping")[2:4] == ["5", "1"]
    assert mode_row(lines, "leaks", "all")[2:4] == ["10", "1"]
    stats = model_row(result)
    assert stats == {"calls": N, "cached": 0, "errors": 0, "retries": 0, "tokens": expected_tokens(server)}
    assert stats["tokens"][0] > 0 and stats["tokens"][1] > 0
    # each call carried the mode's definition and examples
    prompt = server.chat_requests[0].messages[1]["content"]
    assert DESCRIPTION in prompt and "Refund done, no questions asked!" in prompt


def test_failing_traces_carry_the_judges_critique(judged: Any, server: FakeLLM) -> None:
    judged.definitions((judged.path / "failmodes.yaml").read_text().replace("max_fail_rate: 0.5", "max_fail_rate: 0.1"))

    result = judged.run("--failmodes-report", "report.json")

    assert result.ret == 1
    result.stdout.fnmatch_lines(["*failure mode 'promised_refund' breached its gate*",
                                 "*t02: the reply promises a refund*"])
    report = judged.report("report.json")
    mode = next(m for m in report["modes"] if m["name"] == "promised_refund")
    assert mode["detector"] == f"judge({MODEL})"
    failed = {t["id"]: t["reason"] for t in mode["traces"] if t["verdict"] == "fail"}
    assert failed == {f"t{i:02d}": "the reply promises a refund" for i in sorted(REFUNDS)}


# --------------------------------------------------------------------------- no model configured


def test_judge_mode_without_model_is_skipped_with_the_line_that_enables_it(
    project: Any, server: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project, server, model=False)

    result = project.run("-rs")

    assert result.ret == 0
    result.assert_outcomes(passed=1, skipped=1)  # the rule mode still runs
    result.stdout.fnmatch_lines([
        "SKIPPED [[]1[]] failmodes.yaml:*: judge mode 'promised_refund' needs a model: "
        f"set {ENV_MODEL}=openai/gpt-4o-mini (any litellm model) or judge.model in failmodes.yaml"
    ])
    assert server.call_count == 0
    lines = table(project, result)
    assert lines[0] == "1 failure mode in 1 file: all gates passed"
    assert mode_row(lines, "leaks", "all")[2:4] == ["10", "1"]
    assert "model calls" not in result.stdout.str()
    assert not (project.path / ".failmodes").exists()

    # the line it printed is all it takes
    monkeypatch.setenv(ENV_MODEL, MODEL)
    enabled = project.run("-rs")

    assert enabled.ret == 0
    enabled.assert_outcomes(passed=2)
    assert server.call_count == N
    assert {r.model for r in server.chat_requests} == {"fake-judge"}


def test_env_model_overrides_the_file(judged: Any, server: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MODEL, "openai/ci-judge")

    result = judged.run()

    assert result.ret == 0
    assert {r.model for r in server.chat_requests} == {"ci-judge"}
    assert any(line.startswith("openai/ci-judge ") for line in result.outlines)


# --------------------------------------------------------------------------- faults


def test_errors_after_retries_and_timeouts_are_reported_never_counted(project: Any, server: FakeLLM) -> None:
    def responder(request: dict[str, Any]) -> Any:
        block = trace_block(request)
        if "question 03" in block:
            return server_error(500)
        if "question 04" in block:
            return hang(30)
        return refund_judge(request)

    server.responder = responder
    write(project, server)

    # a timeout the other (real) answers meet even on a loaded machine
    result = project.run("--failmodes-max-retries", "1", "--failmodes-timeout", "1",
                         "--failmodes-report", "report.json")

    assert result.ret == 1  # max_errors defaults to 0
    lines = table(project, result)
    assert lines[0] == "2 failure modes in 1 file: 1 mode breached, 2 detector errors"
    # 8 verdicts, 2 errors: the errors are in no rate
    assert mode_row(lines, "promised_refund", "all")[2:5] == ["8", "3", "37.5%"]
    mode = next(m for m in project.report("report.json")["modes"] if m["name"] == "promised_refund")
    verdicts = {t["id"]: (t["verdict"], t["reason"]) for t in mode["traces"]}
    assert verdicts["t03"][0] == "error" and "server error (500)" in verdicts["t03"][1]
    assert verdicts["t04"][0] == "error" and "timed out" in verdicts["t04"][1]
    assert [v for v, _ in verdicts.values()].count("fail") == 3
    # each failing trace: 1 try + 1 retry
    stats = model_row(result)
    assert (stats["calls"], stats["errors"], stats["retries"]) == (8, 2, 2)
    assert server.call_count == 8 + 2 + 2
    assert server.wait_until_idle(timeout=10)


# --------------------------------------------------------------------------- the cache


def verdicts_by_mode(report: dict[str, Any]) -> dict[str, list[tuple[str, str, str]]]:
    return {m["name"]: [(t["id"], t["verdict"], t["reason"]) for t in m["traces"]] for m in report["modes"]}


def test_second_run_makes_no_call_and_gives_the_same_verdicts(judged: Any, server: FakeLLM) -> None:
    first = judged.run("--failmodes-report", "first.json")
    assert server.call_count == N

    second = judged.run("--failmodes-report", "second.json")

    assert second.ret == first.ret == 0
    assert server.call_count == N  # all from the cache
    assert table(judged, second) == table(judged, first)
    assert verdicts_by_mode(judged.report("second.json")) == verdicts_by_mode(judged.report("first.json"))
    assert model_row(second) == {"calls": 0, "cached": N, "errors": 0, "retries": 0, "tokens": (0, 0)}
    assert (judged.path / ".failmodes" / "cache.sqlite3").is_file()
    # the cache files are ignored, not the directory: a baseline saved there can be committed
    assert (judged.path / ".failmodes" / ".gitignore").read_text().splitlines()[1:] == ["cache.sqlite3*", "*.lock"]


def test_no_cache_calls_again_and_writes_nothing(judged: Any, server: FakeLLM) -> None:
    first = judged.run("--failmodes-no-cache")
    second = judged.run("--failmodes-no-cache")

    assert first.ret == second.ret == 0
    assert server.call_count == 2 * N
    assert model_row(second)["calls"] == N
    assert not (judged.path / ".failmodes").exists()


def test_refresh_calls_again_and_rewrites_the_cache(judged: Any, server: FakeLLM) -> None:
    first = judged.run()
    refreshed = judged.run("--failmodes-refresh")
    assert server.call_count == 2 * N
    assert model_row(refreshed)["calls"] == N

    after = judged.run()

    assert server.call_count == 2 * N  # the refreshed values are cached
    assert table(judged, after) == table(judged, refreshed) == table(judged, first)


def test_cache_dir_option(judged: Any, server: FakeLLM) -> None:
    judged.run("--failmodes-cache-dir", "elsewhere/cache")
    judged.run("--failmodes-cache-dir", "elsewhere/cache")

    assert server.call_count == N
    assert (judged.path / "elsewhere" / "cache" / "cache.sqlite3").is_file()
    assert not (judged.path / ".failmodes").exists()


def test_editing_the_definition_misses_the_cache_for_that_mode_only(project: Any, server: FakeLLM) -> None:
    write(project, server)
    project.run()
    assert server.call_count == N

    # a rule-mode edit costs no model call
    path = project.path / "failmodes.yaml"
    path.write_text(path.read_text().replace("my instructions say", "my instructions are"))
    project.run()
    assert server.call_count == N

    write(project, server, description=DESCRIPTION + " A partial refund counts.")
    project.run()
    assert server.call_count == 2 * N
    assert "A partial refund counts." in server.chat_requests[-1].messages[1]["content"]


def test_the_api_key_is_never_stored_logged_or_reported(judged: Any, server: FakeLLM) -> None:
    # like OpenAI's 401, this error quotes the key it was sent
    rejected = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}.", "type": "invalid_request_error",
                                     "param": None, "code": "invalid_api_key"}}).encode()

    def responder(request: dict[str, Any]) -> Any:
        if "question 06" in trace_block(request):
            return Reply(kind="500", content=None, status=401, body=rejected)
        return refund_judge(request)

    server.responder = responder

    result = judged.run("-rA", "-v", "--failmodes-report", "report.json",
                        "-o", "log_level=DEBUG", "--log-cli-level=DEBUG")

    assert result.ret == 1  # the rejected call is an error, and max_errors is 0
    assert all(r.auth_present for r in server.chat_requests)  # the key was in use ...
    out = result.stdout.str() + result.stderr.str()
    report = (judged.path / "report.json").read_text(encoding="utf-8")
    cache = b"".join(p.read_bytes() for p in (judged.path / ".failmodes").rglob("*") if p.is_file())
    assert "request rejected (401)" in report and "request rejected (401)" in out
    for secret in (KEY, "SECRET123"):  # ... and shows up nowhere
        assert secret not in out
        assert secret not in report
        assert secret.encode() not in cache


# --------------------------------------------------------------------------- progress

TTY_CONFTEST = """
    import pytest

    @pytest.hookimpl(trylast=True)
    def pytest_configure(config):
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        reporter.isatty = lambda: True
"""


def test_a_short_phase_prints_no_progress_line_in_a_log(judged: Any, server: FakeLLM) -> None:
    result = judged.run()

    assert result.ret == 0
    assert server.call_count == N
    assert "failmodes: judging" not in result.stdout.str()


def test_progress_lines_in_a_log_with_the_failed_calls(
    judged: Any, server: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a line per 10% step, none closer than LOG_PROGRESS_SECONDS (30 s by default)
    monkeypatch.setattr("pytest_failmodes.session.LOG_PROGRESS_SECONDS", 0.0)
    server.script(server_error(), server_error())

    result = judged.run("--failmodes-no-cache", "--failmodes-max-retries", "0")

    assert result.ret == 1  # the two failed calls are errors, over max_errors 0
    lines = [line for line in result.outlines if line.startswith("failmodes: judging")]
    assert [line.split()[3] for line in lines] == [f"{i}/10" for i in range(1, 11)]
    assert re.fullmatch(r"failmodes: judging promised_refund 1/10 \(10%\), [0-2] errors?, [\d.]+ s", lines[0])
    assert re.fullmatch(r"failmodes: judging promised_refund 10/10 \(100%\), 2 errors, [\d.]+ s", lines[-1])

    quiet = judged.run("--failmodes-no-cache", "-q")
    assert quiet.ret == 0
    assert "failmodes: judging" not in quiet.stdout.str()


def test_progress_line_on_a_tty_but_not_under_q(judged: Any, server: FakeLLM) -> None:
    judged.pytester.makeconftest(TTY_CONFTEST)

    result = judged.run("--failmodes-no-cache")
    assert re.search(r"failmodes: judging promised_refund 10/10 \([\d.]+/s, ETA 0s\)", result.stdout.str())

    quiet = judged.run("--failmodes-no-cache", "-q")
    assert quiet.ret == 0
    assert "failmodes: judging" not in quiet.stdout.str()
    assert server.call_count == 2 * N


# --------------------------------------------------------------------------- per trace, xdist


def test_per_trace_judge_gives_the_same_summary(judged: Any, server: FakeLLM) -> None:
    per_trace = judged.run("--failmodes-per-trace", "-v")
    assert server.call_count == N  # every item's call submitted at once, none twice

    per_mode = judged.run()

    assert per_trace.ret == per_mode.ret == 0
    assert server.call_count == N
    assert table(judged, per_trace) == table(judged, per_mode)
    for i in sorted(REFUNDS):
        per_trace.stdout.fnmatch_lines([f"*promised_refund[[]t{i:02d}[]] DETECTED*"], consecutive=False)
    assert per_trace.parseoutcomes() == {"passed": 2 * N - 4, "detected": 4}
    assert model_row(per_trace)["calls"] == N


@pytest.mark.slow
def test_xdist_workers_share_the_cache_and_pay_each_call_once(judged: Any, server: FakeLLM) -> None:
    per_mode = judged.run("--failmodes-no-cache")
    calls = server.call_count

    result = judged.run_subprocess("-n", "2", "--failmodes-per-trace")

    assert result.ret == 0
    assert server.call_count - calls == N  # both workers judge every trace; each key is paid once
    assert table(judged, result) == table(judged, per_mode)
    stats = model_row(result)
    assert stats["calls"] == N and stats["errors"] == 0


# --------------------------------------------------------------------------- lazy import

PROBE = """
    import json
    import sys

    def pytest_sessionfinish(session):
        with open("probe.json", "w") as fh:
            json.dump({"litellm": "litellm" in sys.modules}, fh)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setup", "imported"),
    [("rules only", False), ("judge without model", False), ("judge", True)],
)
def test_litellm_is_imported_only_when_a_judge_runs(project: Any, server: FakeLLM, setup: str, imported: bool) -> None:
    write(project, server, model=setup == "judge")
    if setup == "rules only":
        path = project.path / "failmodes.yaml"
        text = path.read_text()
        path.write_text(text[: text.index("  - name: promised_refund")])
    project.pytester.makeconftest(PROBE)

    result = project.run_subprocess("-p", "no:cacheprovider")

    assert result.ret == 0
    assert json.loads((project.path / "probe.json").read_text()) == {"litellm": imported}
    assert server.call_count == (N if imported else 0)


def test_rule_only_runs_make_no_model_context(project: Any, server: FakeLLM) -> None:
    write(project, server)
    path = project.path / "failmodes.yaml"
    text = path.read_text()
    path.write_text(text[: text.index("  - name: promised_refund")])

    result = project.run()

    assert result.ret == 0
    assert "model calls" not in result.stdout.str()
    assert not (project.path / ".failmodes").exists()
    assert server.call_count == 0
