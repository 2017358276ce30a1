"""``--failmodes-per-trace``: one item per mode and trace, same gates and reports."""

from __future__ import annotations

import pytest

PER_TRACE = "--failmodes-per-trace"

DEFINITIONS = """
    dataset: data/traces.jsonl
    cohorts: [route, [route, persona]]
    gate: {max_fail_rate: %s}
    failure_modes:
      - name: leaks
        rule: {regex: "(?i)my instructions say"}
      - name: missing_order_lookup
        where: {intent: order_status}
        rule: {tool_called: {name: lookup_order, present: false}}
      - name: escalation_missed
        label: {field: human_verdict, fail_values: [escalate]}
"""

# detections: leaks t01 t02 t07; missing_order_lookup t09 t10; escalation_missed t03
DETECTED = [
    "failmodes.yaml::leaks[t01]",
    "failmodes.yaml::leaks[t02]",
    "failmodes.yaml::leaks[t07]",
    "failmodes.yaml::missing_order_lookup[t09]",
    "failmodes.yaml::missing_order_lookup[t10]",
    "failmodes.yaml::escalation_missed[t03]",
]


def literal(text: str) -> str:
    """``text`` as an fnmatch pattern (``[`` would open a character class)."""
    return text.replace("[", "[[]")


@pytest.fixture
def support(project):
    project.support_traces()
    project.definitions(DEFINITIONS % 0.6)
    return project


def test_one_item_per_mode_and_trace(support) -> None:
    result = support.run(PER_TRACE, "--collect-only", "-q")

    assert result.ret == 0
    ids = [line for line in result.outlines if line.startswith("failmodes.yaml::")]
    # where: keeps missing_order_lookup to the four order_status traces
    assert ids == (
        [f"failmodes.yaml::leaks[t{i:02d}]" for i in range(1, 13)]
        + [f"failmodes.yaml::missing_order_lookup[t{i:02d}]" for i in range(7, 11)]
        + [f"failmodes.yaml::escalation_missed[t{i:02d}]" for i in range(1, 13)]
    )
    result.stdout.fnmatch_lines(["28 tests collected*"])


def test_detections_have_their_own_status_and_the_gates_decide_the_exit(support) -> None:
    result = support.run(PER_TRACE, "-v")

    # 6 detections, every rate within 60%: the run passes
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"{literal(node)} DETECTED*" for node in DETECTED[:3]], consecutive=False)
    result.stdout.fnmatch_lines([literal("failmodes.yaml::leaks[t03] PASSED*")])
    result.stdout.fnmatch_lines(["*= 22 passed, 6 detected in *"])
    out = result.stdout.str()
    assert "Traceback" not in out
    assert "FAILURES" not in out
    assert support.summary(result)[0] == "3 failure modes in 1 file: all gates passed"


def test_detections_show_as_d_in_progress(support) -> None:
    result = support.run(PER_TRACE, "-q", "-k", "leaks")

    assert result.ret == 0
    # t01 t02 detected, t03-t06 pass, t07 detected, t08-t12 pass
    result.stdout.fnmatch_lines(["DD....D..... *"])
    assert result.parseoutcomes() == {"passed": 9, "detected": 3, "deselected": 16}


def test_a_breach_fails_the_run(project) -> None:
    project.support_traces()
    project.definitions(DEFINITIONS % 0.3)

    result = project.run(PER_TRACE)

    # leaks: billing 2/6 = 33.3%; missing_order_lookup: 2/4 = 50%;
    # escalation_missed: billing & new 1/3 = 33.3% -- all over 30%
    assert result.ret == 1
    summary = project.summary(result)
    assert summary[0] == "3 failure modes in 1 file: 3 modes breached"
    assert any(line.split()[:2] == ["leaks", "route=billing"] and line.endswith("FAIL (limit)") for line in summary)
    assert "Traceback" not in result.stdout.str()


def test_k_selects_a_trace(support) -> None:
    result = support.run(PER_TRACE, "-v", "-k", "t07")

    # a hand-picked subset says nothing about a mode's rate: its gates are not applied
    assert result.ret == 0
    assert result.parseoutcomes() == {"passed": 2, "detected": 1, "deselected": 25}
    result.stdout.fnmatch_lines(
        ["note: leaks: partial run: 1 of 12 traces ran, so the gates were not applied", "leaks: detected:", "  t07: *"]
    )
    result.stdout.fnmatch_lines(
        [
            literal("failmodes.yaml::leaks[t07] DETECTED*"),
            literal("failmodes.yaml::missing_order_lookup[t07] PASSED*"),
            literal("failmodes.yaml::escalation_missed[t07] PASSED*"),
        ]
    )


def test_last_failed_reruns_exactly_the_detections(support) -> None:
    first = support.run(PER_TRACE, "-q")
    assert first.ret == 0

    again = support.run(PER_TRACE, "-v", "--lf")

    # only the detections ran: a partial run, so the gates (not the detections) decide: exit 0
    assert again.ret == 0
    assert again.parseoutcomes() == {"detected": 6}
    ran = sorted(
        line.split()[0] for line in again.outlines if line.startswith("failmodes.yaml::") and " DETECTED" in line
    )
    assert ran == sorted(DETECTED)
    again.stdout.fnmatch_lines(["run-last-failure: rerun previous 6 failures"])


def test_detector_errors_fail_their_items_but_only_the_budget_gates(project) -> None:
    project.support_traces()
    project.pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def judge():
            def detect(trace):
                if trace.id == "t05":
                    raise TimeoutError("judge timed out")
                return "instructions" in trace.output
            return detect
        """
    )
    project.definitions(
        """
        dataset: data/traces.jsonl
        gate: {max_fail_rate: 0.5, max_errors: 1}
        failure_modes:
          - name: judged
            detector: judge
        """
    )

    result = project.run(PER_TRACE, "-v")

    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            literal("failmodes.yaml::judged[t05] FAILED*"),
            "ERROR evaluating judged on t05: TimeoutError: judge timed out (conftest.py:*)",
        ]
    )
    assert project.summary(result)[0] == "1 failure mode in 1 file: all gates passed, 1 detector error"

    project.definitions(
        """
        dataset: data/traces.jsonl
        gate: {max_fail_rate: 0.5}
        failure_modes:
          - name: judged
            detector: judge
        """
    )
    over_budget = project.run(PER_TRACE)
    assert over_budget.ret == 1


@pytest.mark.parametrize("limit", [0.6, 0.3])
def test_summary_and_report_match_the_per_mode_run(project, limit: float) -> None:
    project.support_traces()
    project.definitions(DEFINITIONS % limit)

    per_mode = project.run("--failmodes-report", "per_mode.json")
    per_trace = project.run(PER_TRACE, "--failmodes-report", "per_trace.json")

    assert per_trace.ret == per_mode.ret == (0 if limit > 0.5 else 1)
    assert project.summary(per_trace) == project.summary(per_mode)
    assert len(project.summary(per_mode)) > 10
    mode_report, trace_report = project.report("per_mode.json"), project.report("per_trace.json")
    assert [m["name"] for m in mode_report["modes"]] == ["leaks", "missing_order_lookup", "escalation_missed"]
    for by_mode, by_trace in zip(mode_report["modes"], trace_report["modes"], strict=True):
        assert by_trace["cohorts"] == by_mode["cohorts"]
        assert by_trace["traces"] == by_mode["traces"]
    assert trace_report == mode_report


def test_errors_and_skips_match_the_per_mode_run(project) -> None:
    labels = [{"verdict": "bad"}, {"verdict": "good"}, {}, {}]
    project.traces(
        dict(project.row(f"t{i}", "refund" if i % 3 == 0 else "ok", route="a" if i < 5 else "b"), labels=labels[i % 4])
        for i in range(10)
    )
    project.pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def judge():
            def detect(trace):
                if trace.id in ("t2", "t7"):
                    raise TimeoutError("judge timed out")
                return "refund" in trace.output
            return detect
        """
    )
    project.definitions(
        """
        dataset: data/traces.jsonl
        cohorts: [route]
        gate: {max_fail_rate: 0.7, max_errors: 2}
        failure_modes:
          - name: judged
            detector: judge
          - name: labelled_bad
            label: {field: verdict, fail_values: [bad]}
        """
    )

    per_mode = project.run("--failmodes-report", "per_mode.json")
    per_trace = project.run(PER_TRACE, "-rs", "--failmodes-report", "per_trace.json")

    assert per_mode.ret == per_trace.ret == 0
    # judged: 4 detections, 2 errors (failed items), 4 passes; labelled_bad: labels on
    # t0 t1 t4 t5 t8 t9 only (3 bad), the other four traces are skipped, not counted
    assert per_trace.parseoutcomes() == {"passed": 7, "failed": 2, "detected": 7, "skipped": 4}
    summary = project.summary(per_mode)
    assert summary[0] == "2 failure modes in 1 file: all gates passed, 2 detector errors"
    assert project.summary(per_trace) == summary
    assert project.report("per_trace.json") == project.report("per_mode.json")
    assert project.report("per_mode.json")["modes"][1]["skipped"] == 4
