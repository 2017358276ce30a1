"""Langfuse and Inspect AI data through a whole ``pytest --failmodes`` session: the
exporter-produced fixtures of tests/data (made by tests/data/make_fixtures.py),
a rule mode and step rules, and one corrupted file of each format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"

MODES = """
    dataset: %s
    failure_modes:
      - name: could_not
        rule: {regex: "could not", field: output}
      - name: looked_up_order
        rule: {tool_called: lookup_order}
      - name: tool_failed
        rule: {step_error: true, kind: tool}
"""


def counts(report: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    """Mode name -> (traces, fails, errors) of its ``all`` row in the JSON report."""
    out = {}
    for mode in report["modes"]:
        [row] = [c for c in mode["cohorts"] if c["cohort"] == "all"]
        out[mode["name"]] = (row["n"], row["fails"], row["errors"])
    return out


def failing(report: dict[str, Any], name: str) -> list[str]:
    [mode] = [m for m in report["modes"] if m["name"] == name]
    return sorted(t["id"] for t in mode["traces"] if t["verdict"] == "fail")


def test_langfuse_observations_in_a_session(project: Any) -> None:
    shutil.copy(DATA / "langfuse.jsonl", project.path / "observations.jsonl")
    project.definitions(MODES % "observations.jsonl")

    result = project.run("--failmodes-report=r.json")

    assert result.ret == 0
    report = project.report("r.json")
    assert counts(report) == {"could_not": (3, 1, 0), "looked_up_order": (3, 2, 0), "tool_failed": (3, 1, 0)}
    refund = failing(report, "could_not")
    assert failing(report, "tool_failed") == refund and len(refund) == 1
    result.stdout.fnmatch_lines([
        "looked_up_order*all*3*2*66.7%*",
        "could_not*all*3*1*33.3%*",
        "tool_failed*all*3*1*33.3%*",
    ])
    assert "empty output" not in result.stdout.str()


def test_inspect_eval_log_in_a_session(project: Any) -> None:
    pytest.importorskip("inspect_ai", reason="the [inspect] extra is not installed")
    (project.path / "logs").mkdir()
    shutil.copy(DATA / "inspect" / "support.eval", project.path / "logs" / "support.eval")
    project.definitions(MODES % "logs")

    result = project.run("--failmodes-report=r.json")

    assert result.ret == 0
    report = project.report("r.json")
    assert counts(report) == {"could_not": (4, 2, 0), "looked_up_order": (4, 4, 0), "tool_failed": (4, 2, 0)}
    assert failing(report, "tool_failed") == ["support/refund/1", "support/refund/2"]
    assert failing(report, "could_not") == ["support/refund/1", "support/refund/2"]
    result.stdout.fnmatch_lines([
        "looked_up_order*all*4*4*100.0%*",
        "could_not*all*4*2*50.0%*",
        "tool_failed*all*4*2*50.0%*",
    ])


#: one mode: per mode, each mode that reads a bad dataset prints its error
ONE_MODE = """
    dataset: %s
    failure_modes:
      - name: looked_up_order
        rule: {tool_called: lookup_order}
"""


def assert_one_error_line(result: pytest.RunResult, line: str) -> None:
    """``line`` is printed once, and no traceback."""
    output = result.outlines + result.errlines
    assert output.count(line) == 1, "\n".join(output)
    text = "\n".join(output)
    assert "Traceback" not in text and "pytest_failmodes/" not in text


@pytest.mark.parametrize("per_trace", [False, True], ids=["per-mode", "per-trace"])
def test_a_corrupted_langfuse_file_in_a_session(project: Any, per_trace: bool) -> None:
    rows = [json.loads(x) for x in (DATA / "langfuse.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    del rows[1]["traceId"]
    project.file("observations.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    project.definitions(ONE_MODE % "observations.jsonl")

    result = project.run(*(["--failmodes-per-trace"] if per_trace else []))

    # per mode, each mode fails on reading its dataset; per trace, collection stops
    assert result.ret == (pytest.ExitCode.INTERRUPTED if per_trace else pytest.ExitCode.TESTS_FAILED)
    assert_one_error_line(
        result, f"observations.jsonl:2: traceId: observation {rows[1]['id']!r} has no traceId"
    )


def write_bad_inspect_logs(logs: Path, how: str) -> str:
    """A corrupted Inspect log in ``logs``; the start of the error line it must give."""
    from inspect_ai.log import read_eval_log, write_eval_log

    if how == "json":
        # the log as Inspect writes it in JSON, with a message role it does not know
        path = logs / "bad.json"
        write_eval_log(read_eval_log(str(DATA / "inspect" / "support.eval")), str(path), format="json")
        log = json.loads(path.read_text(encoding="utf-8"))
        log["samples"][1]["messages"][1]["role"] = "wizard"
        path.write_text(json.dumps(log), encoding="utf-8")
        return "logs/bad.json: samples[1].messages[1].role: not a valid Inspect AI log: Input should be 'system'"
    data = (DATA / "inspect" / "support.eval").read_bytes()
    (logs / "cut.eval").write_bytes(data[: len(data) // 2])  # a log cut off mid-write
    return "logs/cut.eval: cannot read the Inspect AI log: "


@pytest.mark.parametrize("how", ["json", "eval"])
@pytest.mark.parametrize("per_trace", [False, True], ids=["per-mode", "per-trace"])
def test_a_corrupted_inspect_log_in_a_session(project: Any, per_trace: bool, how: str) -> None:
    pytest.importorskip("inspect_ai", reason="the [inspect] extra is not installed")
    (project.path / "logs").mkdir()
    start = write_bad_inspect_logs(project.path / "logs", how)
    project.definitions(ONE_MODE % "logs")

    result = project.run(*(["--failmodes-per-trace"] if per_trace else []))

    assert result.ret == (pytest.ExitCode.INTERRUPTED if per_trace else pytest.ExitCode.TESTS_FAILED)
    output = result.outlines + result.errlines
    [line, *_] = [x for x in output if x.startswith(start)] or [""]
    assert line, "\n".join(output)
    assert_one_error_line(result, line)
