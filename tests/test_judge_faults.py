"""Robustness of LLM judges, end to end: faults, interrupts, xdist and a damaged cache.

Every run here is a real ``pytest --failmodes`` process whose judges go through
litellm's HTTP stack to the loopback server (``fakellm``). The server's
responder is the oracle: it decides each verdict from the trace alone (a mode
fails when its word is in the trace's output) and names the mode and trace in
its critique, so a verdict can be checked against the request it came from.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from fakellm import FakeLLM, FaultRate, RecordedRequest, fakellm_server
from pytest_failmodes.cache import ResultCache

pytestmark = pytest.mark.slow

#: a judge mode fails a trace when this word is in the trace's output
WORDS = {"promises_refund": "refund", "mentions_manager": "manager", "blames_courier": "courier"}
DESCRIPTIONS = {
    "promises_refund": "FAIL when the reply promises a refund.",
    "mentions_manager": "FAIL when the reply brings in a manager.",
    "blames_courier": "FAIL when the reply blames the courier.",
}
#: mentions_manager only applies to billing traces: its skips must be counted too
WHERE = {"mentions_manager": "{route: billing}"}

_NAME = re.compile(r"<name>(.*?)</name>")
_TRACE_ID = re.compile(r"question about (t\d+)")
_OUTPUT = re.compile(r"<output>\n(.*?)\n</output>", re.DOTALL)


def rows(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        tid = f"t{i:02d}"
        said = [w for w, hit in (("refund", i % 3 == 0), ("manager", i % 4 == 1), ("courier", i % 5 == 2)) if hit]
        output = f"Reply {i}: " + (", ".join(f"the {w}" for w in said) if said else "your order has shipped") + "."
        out.append(
            {
                "id": tid,
                "input": f"question about {tid}",
                "output": output,
                "metadata": {"route": "billing" if i % 2 else "shipping"},
            }
        )
    return out


def expected(row: Mapping[str, Any], mode: str) -> str:
    return "fail" if WORDS[mode] in row["output"] else "pass"


def all_pairs(data: Iterable[Mapping[str, Any]], modes: Iterable[str]) -> set[tuple[str, str]]:
    """Every (mode, trace id) the run must judge."""
    data = list(data)
    return {
        (mode, row["id"])
        for mode in modes
        for row in data
        if mode not in WHERE or row["metadata"]["route"] == "billing"
    }


def judged(body: Mapping[str, Any]) -> tuple[str, str]:
    """(mode, trace id) that a judge request asks about."""
    prompt = body["messages"][1]["content"]
    name = _NAME.search(prompt)
    tid = _TRACE_ID.search(prompt)
    assert name and tid, f"not a judge prompt: {prompt[:200]!r}"
    return name.group(1), tid.group(1)


def responder(body: dict[str, Any]) -> str:
    mode, tid = judged(body)
    output = _OUTPUT.search(body["messages"][1]["content"])
    assert output is not None
    verdict = "fail" if WORDS[mode] in output.group(1) else "pass"
    return json.dumps({"critique": f"{mode} {tid}", "verdict": verdict})


def requested(requests: Iterable[RecordedRequest]) -> Counter[tuple[str, str]]:
    """How often each (mode, trace) was asked for; checks that a pair is one request body."""
    pairs: Counter[tuple[str, str]] = Counter()
    bodies: dict[tuple[str, str], str] = {}
    for req in requests:
        assert req.json is not None
        pair = judged(req.json)
        body = json.dumps(req.json, sort_keys=True)
        assert bodies.setdefault(pair, body) == body, f"{pair}: two different request bodies"
        pairs[pair] += 1
    return pairs


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    for name in ("FAILMODES_JUDGE_MODEL", "OPENAI_API_BASE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with fakellm_server(responder=responder) as fake:
        yield fake


def write_suite(
    project: Any, server: FakeLLM, n: int, modes: Iterable[str], gate: str = "{max_fail_rate: 1.0}"
) -> list[dict[str, Any]]:
    data = rows(n)
    project.traces(data)
    lines = [
        "dataset: data/traces.jsonl",
        "cohorts: [route]",
        f'judge: {{model: openai/fake-judge, api_base: "{server.base_url}"}}',
        f"gate: {gate}",
        "failure_modes:",
    ]
    for mode in modes:
        lines += [f"  - name: {mode}", f"    description: {DESCRIPTIONS[mode]}", "    judge: {}"]
        if mode in WHERE:
            lines.append(f"    where: {WHERE[mode]}")
    project.definitions("\n".join(lines) + "\n")
    return data


def check_counts(report: Mapping[str, Any], data: list[dict[str, Any]]) -> None:
    """Per mode: n + errors + skipped = traces, and the verdict list agrees with the counts."""
    for mode in report["modes"]:
        total = next(row for row in mode["cohorts"] if row["cohort"] == "all")
        assert total["n"] + total["errors"] + mode["skipped"] == len(data), mode["name"]
        verdicts = Counter(t["verdict"] for t in mode["traces"])
        assert set(verdicts) <= {"pass", "fail", "error"}, mode["name"]
        assert verdicts["error"] == total["errors"], mode["name"]
        assert verdicts["fail"] == total["fails"], mode["name"]
        assert verdicts["pass"] + verdicts["fail"] == total["n"], mode["name"]
        routes = [row for row in mode["cohorts"] if row["cohort"].startswith("route=")]
        assert sum(row["n"] for row in routes) == total["n"], mode["name"]
        assert sum(row["errors"] for row in routes) == total["errors"], mode["name"]


def check_verdicts(report: Mapping[str, Any], data: list[dict[str, Any]]) -> None:
    """Every verdict is the responder's for that mode and trace (a run without faults)."""
    by_id = {row["id"]: row for row in data}
    for mode in report["modes"]:
        for t in mode["traces"]:
            assert t["verdict"] == expected(by_id[t["id"]], mode["name"]), (mode["name"], t)


def model_row(result: pytest.RunResult) -> dict[str, int]:
    """calls / cached / errors / retries of the fake judge in the "model calls" table."""
    line = next(line for line in result.outlines if line.startswith("openai/fake-judge "))
    calls, cached, errors, retries = (int(v) for v in line.split()[1:5])
    return {"calls": calls, "cached": cached, "errors": errors, "retries": retries}


def model_table_cut(summary: list[str]) -> list[str]:
    """The failure-mode table without the model-call figures (calls and latencies differ per run)."""
    cut = next((i for i, line in enumerate(summary) if line.startswith("model calls")), len(summary))
    return [line for line in summary[:cut] if line.strip()]


# --------------------------------------------------------------------------- faults

#: what an error's reason must say, by the server's answer to the last attempt
#: (an answer that arrives after the client's timeout is a time-out too)
LAST_FAULT = {"429": "rate limited (429)", "500": "server error (500)", "hang": "timed out", "ok": "timed out"}


def answers_by_pair(requests: Iterable[RecordedRequest]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for req in requests:
        assert req.json is not None
        out.setdefault(judged(req.json), []).append(req.outcome)
    return out


def test_fault_run_ends_every_trace_with_a_verdict_or_a_reported_error(project, server) -> None:
    server.fault_rate = FaultRate(0.3, seed=7, retry_after=0.05)
    modes = ["promises_refund", "mentions_manager"]
    data = write_suite(project, server, 60, modes)

    result = project.run_subprocess(
        "-p", "no:cacheprovider", "--failmodes-report", "report.json",
        "--failmodes-timeout", "0.5", "--failmodes-max-retries", "4",
    )  # fmt: skip

    outcomes = server.outcomes
    assert outcomes["429"] and outcomes["500"] and outcomes["hang"], outcomes  # all three faults happened
    seen = answers_by_pair(server.chat_requests)
    assert set(seen) == all_pairs(data, modes)
    report = project.report("report.json")
    check_counts(report, data)
    by_id = {row["id"]: row for row in data}
    errors = 0
    for mode in report["modes"]:
        for t in mode["traces"]:
            answers = seen[(mode["name"], t["id"])]
            if t["verdict"] == "error":
                errors += 1
                # the whole retry budget was spent, and the reason names the last failure
                assert len(answers) == 5, (t, answers)
                assert LAST_FAULT[answers[-1]] in t["reason"], (t, answers)
                assert "after 5 attempts" in t["reason"]
            else:
                assert "ok" in answers, (t, answers)
                assert t["verdict"] == expected(by_id[t["id"]], mode["name"]), (mode["name"], t)
                if t["verdict"] == "fail":  # the verdict came from the request about this trace
                    assert t["reason"] == f"{mode['name']} {t['id']}"
    retried = sum(len(a) - 1 for a in seen.values())
    assert retried >= sum(outcomes[k] for k in ("429", "500", "hang")) - errors  # every fault was retried or reported
    assert result.ret == (1 if errors else 0), result.stdout.str()
    # the cost table counts the same calls: one completion per verdict, each retry, each error
    assert model_row(result) == {"calls": len(seen) - errors, "cached": 0, "errors": errors, "retries": retried}


def test_fault_run_without_retries_reports_errors_and_the_gate_fails(project, server) -> None:
    server.fault_rate = FaultRate(0.3, seed=11, retry_after=0.05)
    modes = ["promises_refund", "mentions_manager"]
    data = write_suite(project, server, 60, modes, gate="{max_fail_rate: 1.0, max_errors: 0}")

    result = project.run_subprocess(
        "-p", "no:cacheprovider", "--failmodes-report", "report.json",
        "--failmodes-timeout", "0.5", "--failmodes-max-retries", "0",
    )  # fmt: skip

    assert result.ret == 1, result.stdout.str()
    seen = answers_by_pair(server.chat_requests)
    assert set(seen) == all_pairs(data, modes)
    assert all(len(answers) == 1 for answers in seen.values())  # no retries
    report = project.report("report.json")
    check_counts(report, data)
    assert report["passed"] is False
    by_id = {row["id"]: row for row in data}
    for mode in report["modes"]:
        verdicts = {t["id"]: t for t in mode["traces"]}
        total = next(row for row in mode["cohorts"] if row["cohort"] == "all")
        assert total["errors"] > 0, mode["name"]
        assert mode["status"] == "breached" and "errors" in mode["breaches"], mode
        for tid, t in verdicts.items():
            (answer,) = seen[(mode["name"], tid)]
            if answer != "ok":  # a failed call is an error, never a pass or a fail
                assert t["verdict"] == "error", (t, answer)
                assert LAST_FAULT[answer] in t["reason"]
            elif t["verdict"] == "error":  # an answer later than the client's timeout
                assert "timed out" in t["reason"], t
            else:
                assert t["verdict"] == expected(by_id[tid], mode["name"]), (mode["name"], t)
    errors = sum(t["verdict"] == "error" for m in report["modes"] for t in m["traces"])
    assert model_row(result) == {"calls": len(seen) - errors, "cached": 0, "errors": errors, "retries": 0}
    text = result.stdout.str()
    assert re.search(r"promises_refund\s+all\s+.*FAIL \(errors \d+ > 0\)", text), text
    assert re.search(r"mentions_manager\s+all\s+.*FAIL \(errors \d+ > 0\)", text), text


# ------------------------------------------------------------------------ interrupts


def stored_pairs(cache: Path) -> set[tuple[str, str]]:
    """(mode, trace) of every verdict in the cache file, read from the critiques."""
    conn = sqlite3.connect(cache)
    try:
        values = [json.loads(v) for (v,) in conn.execute("SELECT value FROM results")]
    finally:
        conn.close()
    out = set()
    for value in values:
        mode, tid = value["critique"].split()
        out.add((mode, tid))
    return out


#: run argv[1:] with SIGINT as a terminal gives it: default disposition, not blocked (exec keeps the pid)
_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); os.execv(sys.argv[1], sys.argv[1:])"
)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_interrupted_run_resumes_without_paying_twice(project, server, sig: signal.Signals) -> None:
    server.latency = 0.1
    modes = ["promises_refund", "mentions_manager"]
    data = write_suite(project, server, 40, modes)
    wanted = all_pairs(data, modes)
    log = project.path / "first.log"

    with log.open("w") as out:
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--failmodes",
                "--failmodes-max-concurrency", "2", "--failmodes-report", "first.json"]  # fmt: skip
        # a user's ctrl-c reaches a process whose SIGINT is neither ignored nor blocked; a process
        # started from a test worker inherits whatever that worker's disposition and mask are
        # (in the whole suite under xdist the run once finished as if no signal had come)
        proc = subprocess.Popen(
            [sys.executable, "-c", _DEFAULT_SIGINT, *argv],
            cwd=project.path, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while server.call_count < len(wanted) // 2:
                assert proc.poll() is None, f"the run ended before it was interrupted:\n{log.read_text()}"
                assert time.monotonic() < deadline, "the run made too few calls"
                time.sleep(0.01)
            proc.send_signal(sig)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    first_log = log.read_text()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, (
            f"SIGINT here: {signal.getsignal(signal.SIGINT)!r}, blocked: {sorted(signal.pthread_sigmask(signal.SIG_BLOCK, []))}\n"
            + first_log
        )
        assert "KeyboardInterrupt" in first_log
        assert project.report("first.json")["passed"] is False
    assert server.wait_until_idle(10)
    first = requested(server.chat_requests)
    stored = stored_pairs(project.path / ".failmodes" / "cache.sqlite3")
    assert 0 < len(stored) < len(wanted), "interrupt half-way through"
    assert stored <= set(first)

    server.reset()
    resumed = project.run_subprocess("-p", "no:cacheprovider", "--failmodes-report", "final.json")
    assert resumed.ret == 0, resumed.stdout.str()
    second = requested(server.chat_requests)
    # exactly what the first run had not stored, each once: nothing paid for is asked again
    assert set(second) == wanted - stored
    assert max(second.values()) == 1
    assert model_row(resumed) == {"calls": len(wanted - stored), "cached": len(stored), "errors": 0, "retries": 0}

    server.reset()
    reference = project.run_subprocess(
        "-p", "no:cacheprovider", "--failmodes-cache-dir", "fresh", "--failmodes-report", "reference.json"
    )
    assert reference.ret == 0, reference.stdout.str()
    assert set(requested(server.chat_requests)) == wanted  # a fresh cache pays for everything
    final = project.report("final.json")
    assert final == project.report("reference.json")
    check_counts(final, data)
    check_verdicts(final, data)


def test_claims_of_a_killed_run_are_taken_over_at_once(tmp_path: Path) -> None:
    """A killed run leaves the claims of its calls in flight; the next run must not wait them out."""
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with (
            ResultCache(tmp_path, owner=f"{host}:{live.pid}") as running,
            ResultCache(tmp_path, owner=f"{host}:{dead.pid}") as killed,
            ResultCache(tmp_path) as rerun,
        ):
            assert running.claim("busy") and killed.claim("orphan")
            assert rerun.claim("busy") is False  # a live process's claim holds
            assert rerun.claim("orphan") is True  # a dead one's is taken over, not waited out
            assert killed.claim("orphan") is False  # and is now the rerun's
    finally:
        live.kill()
        live.wait()


# ---------------------------------------------------------------------------- xdist


@pytest.mark.parametrize("per_trace", [False, True], ids=["per-mode", "per-trace"])
def test_two_workers_share_the_cache_and_pay_each_call_once(project, server, per_trace: bool) -> None:
    server.latency = 0.05
    modes = ["promises_refund", "mentions_manager", "blames_courier"]
    data = write_suite(project, server, 24, modes)
    wanted = all_pairs(data, modes)
    extra = ["--failmodes-per-trace"] if per_trace else []

    parallel = project.run_subprocess(
        "-n", "2", "-p", "no:cacheprovider", "--failmodes-report", "parallel.json", *extra
    )
    parallel.stdout.fnmatch_lines(["*2 workers*"])
    calls = requested(server.chat_requests)
    assert set(calls) == wanted
    assert max(calls.values()) == 1, [pair for pair, n in calls.items() if n > 1]
    # both workers judged the suite: one paid for each call, the other got it through the cache
    figures = model_row(parallel)
    assert figures["calls"] == len(wanted) and figures["cached"] > 0, figures

    server.reset()
    serial = project.run_subprocess(
        "-n", "0", "-p", "no:cacheprovider", "--failmodes-cache-dir", "serial-cache",
        "--failmodes-report", "serial.json", *extra,
    )  # fmt: skip
    calls = requested(server.chat_requests)
    assert set(calls) == wanted and max(calls.values()) == 1
    assert model_row(serial)["calls"] == len(wanted)

    assert parallel.ret == serial.ret
    summary = model_table_cut(project.summary(serial))
    assert summary and summary == model_table_cut(project.summary(parallel))
    report = project.report("serial.json")
    assert report == project.report("parallel.json")
    assert {m["name"] for m in report["modes"]} == set(modes)
    check_counts(report, data)
    check_verdicts(report, data)


# ---------------------------------------------------------------------- corrupt cache


@pytest.mark.parametrize("warnings_are_errors", [False, True], ids=["default", "filterwarnings-error"])
def test_corrupt_cache_is_set_aside_and_the_calls_paid_again(project, server, warnings_are_errors: bool) -> None:
    if warnings_are_errors:
        project.pytester.makeini("[pytest]\nfilterwarnings = error\n")
    modes = ["promises_refund", "mentions_manager"]
    data = write_suite(project, server, 12, modes)
    wanted = all_pairs(data, modes)
    cache = project.path / ".failmodes" / "cache.sqlite3"
    garbage = b"this is not a database\x00\xff" * 64
    cache.parent.mkdir()
    cache.write_bytes(garbage)

    result = project.run_subprocess("-p", "no:cacheprovider", "--failmodes-report", "report.json")
    text = result.stdout.str()
    assert result.ret == 0, text
    # in the warnings summary, naming the file, whatever the filters (a cache problem fails nothing)
    warned = text[text.index("warnings summary") :]
    message = rf"CacheWarning: {re.escape(str(cache))}: not a readable cache .*; set aside as cache\.sqlite3\.corrupt-"
    assert re.search(message, warned), text
    (aside,) = cache.parent.glob("cache.sqlite3.corrupt-*")
    assert aside.read_bytes() == garbage  # set aside, never deleted
    calls = requested(server.chat_requests)
    assert set(calls) == wanted and max(calls.values()) == 1  # every verdict paid (again), once
    report = project.report("report.json")
    check_counts(report, data)
    check_verdicts(report, data)

    assert stored_pairs(cache) == wanted  # the fresh cache holds every verdict for the next run
    if warnings_are_errors:
        return

    # damage inside a readable file: rows whose value no longer matches its digest
    # (every "fail" flipped to "pass") are misses, paid again, never a verdict
    conn = sqlite3.connect(cache)
    try:
        flip = """UPDATE results SET value = replace(value, '"fail"', '"pass"') WHERE value LIKE '%"fail"%'"""
        flipped = conn.execute(flip).rowcount
        conn.commit()
    finally:
        conn.close()
    fails = {(m["name"], t["id"]) for m in report["modes"] for t in m["traces"] if t["verdict"] == "fail"}
    assert flipped == len(fails) > 0
    server.reset()
    again = project.run_subprocess("-p", "no:cacheprovider", "--failmodes-report", "again.json")
    assert again.ret == 0, again.stdout.str()
    calls = requested(server.chat_requests)
    assert set(calls) == fails and max(calls.values()) == 1
    assert project.report("again.json") == report
