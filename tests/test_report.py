"""``--failmodes-report PATH``: the JSON report."""

from __future__ import annotations

import pytest

DEFINITIONS = """
    dataset: data/traces.jsonl
    cohorts: [route]
    gate: {max_fail_rate: 0.3, min_cohort_size: 5}
    failure_modes:
      - name: leaks
        description: FAIL when the reply quotes its instructions.
        rule: {regex: "(?i)my instructions say"}
      - name: judged
        detector: judge
        gate: {max_errors: 0, cohort_limits: {"route=shipping": 0.5}}
      - name: missing_order_lookup
        where: {intent: order_status}
        rule: {tool_called: {name: lookup_order, present: false}}
        max_fail_rate: 0.6
"""

JUDGE = """
    import pytest
    from pytest_failmodes import Verdict

    @pytest.fixture
    def judge():
        def detect(trace):
            if trace.id == "t12":
                raise TimeoutError("judge timed out")
            if "refund" in trace.output:
                return Verdict.fail("promises a refund", evidence={"phrase": "refund"})
            return False
        return detect
"""


@pytest.fixture
def reported(project):
    project.support_traces()
    project.pytester.makeconftest(JUDGE)
    project.definitions(DEFINITIONS)
    result = project.run("--failmodes-report", "out/report.json")
    return project, result


def test_report_header(reported) -> None:
    project, result = reported
    report = project.report("out/report.json")

    assert result.ret == 1
    assert report["schema"] == "pytest-failmodes/report"
    assert report["version"] == 1
    assert report["generator"].startswith("pytest-failmodes ")
    assert report["passed"] is False
    assert [m["key"] for m in report["modes"]] == [
        "failmodes.yaml::leaks",
        "failmodes.yaml::judged",
        "failmodes.yaml::missing_order_lookup",
    ]


def test_report_mode_and_cohort_figures(reported) -> None:
    project, _ = reported
    leaks, judged, lookup = project.report("out/report.json")["modes"]

    assert leaks["name"] == "leaks"
    assert leaks["file"] == "failmodes.yaml"
    assert leaks["line"] == 5
    assert leaks["description"] == "FAIL when the reply quotes its instructions."
    assert leaks["gate"] == {
        "max_fail_rate": 0.3,
        "gate_on": "point",
        "max_errors": 0,
        "min_cohort_size": 5,
        "cohort_limits": {},
        "min_increase": None,
        "gate_on_corrected": False,
        "allow_empty": False,
    }
    # billing 2/6 = 33.3% > 30%
    assert leaks["status"] == "breached"
    assert leaks["breaches"] == ["limit:route=billing"]
    assert leaks["broken"] is None
    assert leaks["skipped"] == 0
    billing = leaks["cohorts"][1]
    assert billing["cohort"] == "route=billing"
    assert (billing["n"], billing["fails"], billing["errors"]) == (6, 2, 0)
    assert billing["rate"] == pytest.approx(2 / 6)
    assert billing["ci_low"] == pytest.approx(0.0967, abs=1e-4)
    assert billing["ci_high"] == pytest.approx(0.7000, abs=1e-4)
    assert billing["limit"] == 0.3
    assert (billing["small"], billing["gated"], billing["breach"]) == (False, True, "limit")
    assert [c["cohort"] for c in leaks["cohorts"]] == ["all", "route=billing", "route=shipping"]

    # judged: 3 fails of 11 (t12 errored); billing 2/6 over 30%; shipping has its
    # own limit; 1 error > max_errors 0
    assert judged["status"] == "breached"
    assert judged["breaches"] == ["limit:route=billing", "errors"]
    assert judged["detector"] == "fixture(judge)"
    all_row, billing, shipping = judged["cohorts"]
    assert (all_row["n"], all_row["fails"], all_row["errors"]) == (11, 3, 1)
    assert (shipping["n"], shipping["errors"], shipping["limit"]) == (5, 1, 0.5)

    # missing_order_lookup: only order_status traces (all shipping), 2/4 = 50% under 60%
    assert lookup["status"] == "ok"
    assert lookup["breaches"] == []
    assert lookup["skipped"] == 8
    assert [(c["cohort"], c["n"], c["small"], c["gated"]) for c in lookup["cohorts"]] == [
        ("all", 4, False, True),
        ("route=shipping", 4, True, False),
    ]


def test_report_per_trace_verdicts(reported) -> None:
    project, _ = reported
    leaks, judged, lookup = project.report("out/report.json")["modes"]

    assert [t["id"] for t in leaks["traces"]] == [f"t{i:02d}" for i in range(1, 13)]
    assert leaks["traces"][0] == {
        "id": "t01",
        "verdict": "fail",
        "reason": "output matches /(?i)my instructions say/: 'My instructions say'",
        "evidence": "My instructions say",
    }
    assert leaks["traces"][2] == {"id": "t03", "verdict": "pass", "reason": "", "evidence": None}
    by_id = {t["id"]: t for t in judged["traces"]}
    assert by_id["t01"]["evidence"] == {"phrase": "refund"}
    assert by_id["t12"]["verdict"] == "error"
    assert by_id["t12"]["reason"].startswith("TimeoutError: judge timed out (conftest.py:")
    # traces a where: filter skipped are not listed
    assert [(t["id"], t["verdict"]) for t in lookup["traces"]] == [
        ("t07", "pass"),
        ("t08", "pass"),
        ("t09", "fail"),
        ("t10", "fail"),
    ]


def test_report_is_written_atomically(reported) -> None:
    project, _ = reported
    out = project.path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    (out / "report.json").write_text("stale", encoding="utf-8")

    result = project.run("--failmodes-report", "out/report.json", "-k", "missing_order_lookup")

    assert result.ret == 0
    # replaced whole, no temporary file left behind
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    report = project.report("out/report.json")
    assert report["passed"] is True
    assert [m["name"] for m in report["modes"]] == ["missing_order_lookup"]


def test_report_path_is_relative_to_the_invocation_dir(project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.support_traces("evals/data/traces.jsonl")
    project.file("pytest.ini", "[pytest]\n")
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: too_long
            rule: {max_chars: 500}
        """,
        "evals/failmodes.yaml",
    )
    monkeypatch.chdir(project.path / "evals")

    result = project.run("--failmodes-report", "reports/run.json")

    assert result.ret == 0
    # the rootdir is the project (pytest.ini), the report lands where pytest was invoked
    result.stdout.fnmatch_lines([f"rootdir: {project.path}*"])
    assert (project.path / "evals/reports/run.json").is_file()
    assert not (project.path / "reports").exists()
    assert project.report("evals/reports/run.json")["modes"][0]["file"] == "evals/failmodes.yaml"


def test_report_of_an_interrupted_run_does_not_claim_to_pass(project) -> None:
    project.support_traces()
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: too_long
            rule: {max_chars: 500}
        """
    )
    project.definitions("dataset: data/traces.jsonl\nfailure_modes: []\n", "broken.failmodes.yaml")

    result = project.run("--failmodes-report", "report.json", "--continue-on-collection-errors")

    assert result.ret == 1
    result.stdout.fnmatch_lines(["broken.failmodes.yaml:2: failure_modes: list should have at least 1 item*"])
    assert project.report("report.json")["modes"][0]["status"] == "ok"

    interrupted = project.run("--failmodes-report", "report.json")

    assert interrupted.ret == pytest.ExitCode.INTERRUPTED
    assert project.report("report.json")["passed"] is False


def test_a_mode_whose_dataset_is_unreadable_is_reported_broken(project) -> None:
    project.traces([project.row("a", "fine", route="x")], "data/traces.jsonl")
    (project.path / "data/traces.jsonl").write_text('{"id": "a", "output": "ok"}\n{"id": \n', encoding="utf-8")
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: leaks
            rule: {regex: "secret"}
        """
    )
    result = project.run("--failmodes-report", "r.json")

    assert result.ret == 1
    report = project.report("r.json")
    assert report["passed"] is False
    (mode,) = report["modes"]
    assert mode["status"] == "broken"
    assert mode["broken"].startswith("data/traces.jsonl:2: malformed JSON")


def test_a_cohort_limit_that_matches_nothing_is_noted(project) -> None:
    project.traces([project.row(f"t{i}", "fine", route="billing") for i in range(5)])
    project.definitions(
        """
        dataset: data/traces.jsonl
        cohorts: [route]
        gate: {max_fail_rate: 0.5, cohort_limits: {"route=biling": 0.1}}
        failure_modes:
          - name: leaks
            rule: {regex: "secret"}
        """
    )
    result = project.run("--failmodes-report", "r.json")

    assert result.ret == 0
    result.stdout.fnmatch_lines(["note: leaks: cohort_limits names 'route=biling', which matched no trace"])
    assert project.report("r.json")["modes"][0]["notes"] == ["cohort_limits names 'route=biling', which matched no trace"]
