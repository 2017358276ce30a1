"""pytest-xdist: ``-n 2`` gives the same summary, exit status, JSON report and hook calls as ``-n 0``."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

CONFTEST = """
    import pytest

    where = []

    def pytest_configure(config):
        where.append(config.workerinput["workerid"] if hasattr(config, "workerinput") else "controller")

    def pytest_failmodes_mode_result(result):
        with open("mode_results.txt", "a") as fh:
            fh.write(f"{where[-1]} {result.key}\\n")

    @pytest.fixture
    def judge():
        def detect(trace):
            if trace.id == "t05":
                raise TimeoutError("judge timed out")
            return "refund" in trace.output
        return detect
"""

SUPPORT = """
    dataset: data/traces.jsonl
    cohorts: [route, [route, persona]]
    gate: {max_fail_rate: %(limit)s, max_errors: 1}
    failure_modes:
      - name: leaks
        rule: {regex: "(?i)my instructions say"}
      - name: judged_refund
        detector: judge
      - name: missing_order_lookup
        where: {intent: order_status}
        rule: {tool_called: {name: lookup_order, present: false}}
"""

LABELS = """
    dataset: ../data/traces.jsonl
    cohorts: [persona]
    gate: {max_fail_rate: %(limit)s}
    failure_modes:
      - name: escalation_missed
        label: {field: human_verdict, fail_values: [escalate]}
      - name: too_short
        rule: {min_chars: 10}
"""


KEYS = [
    "failmodes.yaml::leaks",
    "failmodes.yaml::judged_refund",
    "failmodes.yaml::missing_order_lookup",
    "more/labels.failmodes.yaml::escalation_missed",
    "more/labels.failmodes.yaml::too_short",
]


def hook_calls(project) -> list[str]:
    """The calls the conftest recorded since the last look."""
    record = project.path / "mode_results.txt"
    calls = sorted(record.read_text(encoding="utf-8").splitlines())
    record.unlink()
    return calls


@pytest.fixture
def suite(project):
    project.support_traces()
    project.pytester.makeconftest(CONFTEST)

    def write(limit: float):
        project.definitions(SUPPORT % {"limit": limit})
        project.definitions(LABELS % {"limit": limit}, "more/labels.failmodes.yaml")
        return project

    return write


@pytest.mark.parametrize("per_trace", [False, True], ids=["per-mode", "per-trace"])
@pytest.mark.parametrize(("limit", "ret"), [(0.6, 0), (0.3, 1)], ids=["pass", "breach"])
def test_two_workers_match_one_process(suite, per_trace: bool, limit: float, ret: int) -> None:
    project = suite(limit)
    extra = ["--failmodes-per-trace"] if per_trace else []

    serial = project.run_subprocess("-n", "0", "-p", "no:cacheprovider", "--failmodes-report", "serial.json", *extra)
    serial_calls = hook_calls(project)
    parallel = project.run_subprocess(
        "-n", "2", "-p", "no:cacheprovider", "--failmodes-report", "parallel.json", *extra
    )

    # pytest_failmodes_mode_result: once per mode, on the controller
    assert serial_calls == hook_calls(project) == sorted(f"controller {key}" for key in KEYS)

    parallel.stdout.fnmatch_lines(["*2 workers*"])
    assert serial.ret == parallel.ret == ret
    summary = project.summary(serial)
    assert summary == project.summary(parallel)
    verdict = "all gates passed, 1 detector error" if ret == 0 else "breached, 1 detector error"
    assert summary[0].startswith("5 failure modes in 2 files: ")
    assert summary[0].endswith(verdict)
    serial_report = (project.path / "serial.json").read_bytes()
    assert serial_report == (project.path / "parallel.json").read_bytes()
    assert project.report("serial.json")["passed"] is (ret == 0)
