"""``pytest --failmodes`` end to end: collection, items, summary, gates, detectors."""

from __future__ import annotations

import re

import pytest

SUPPORT = """
    dataset: data/traces.jsonl
    cohorts: [route]
    gate: {max_fail_rate: 0.2}
    failure_modes:
      - name: leaks_system_prompt
        description: FAIL when the reply quotes its instructions.
        rule: {regex: "(?i)my instructions say", field: output}
      - name: too_long
        rule: {max_chars: 500}
"""


def cells(line: str) -> list[str]:
    """A summary table row split into its cells."""
    return re.split(r"\s{2,}", line.strip())


def table(summary: list[str]) -> list[list[str]]:
    """The table rows of a summary (header, rule line and BROKEN notes dropped)."""
    return [cells(line) for line in summary[3:] if line.strip() and not line.startswith("BROKEN")]


# -- collection ------------------------------------------------------------------------


def test_collects_only_definition_files(project) -> None:
    project.support_traces()
    project.definitions(SUPPORT)
    project.definitions(SUPPORT.replace("data/", "../data/"), "sub/extra.failmodes.yaml")
    project.definitions(SUPPORT.replace("data/", "../data/"), "sub/failmodes.yml")
    # not definition files: never parsed, so their nonsense is no error
    project.file("other.yaml", "this: [is not: a definition")
    project.file("failmodes.yaml.bak", "garbage: [")
    project.file("notes.failmodes.txt", "garbage: [")

    result = project.run("--collect-only", "-q")

    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "failmodes.yaml::leaks_system_prompt",
            "failmodes.yaml::too_long",
            "sub/extra.failmodes.yaml::leaks_system_prompt",
            "sub/extra.failmodes.yaml::too_long",
            "sub/failmodes.yml::leaks_system_prompt",
            "sub/failmodes.yml::too_long",
            "6 tests collected*",
        ]
    )
    assert "other.yaml" not in result.stdout.str()
    assert "notes" not in result.stdout.str()


def test_one_item_per_mode_and_k_selects_one(project) -> None:
    project.support_traces()
    project.definitions(SUPPORT)

    result = project.run("-v", "-k", "too_long")

    assert result.ret == 0
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["failmodes.yaml::too_long PASSED*"])
    summary = project.summary(result)
    assert summary[0] == "1 failure mode in 1 file: all gates passed"
    assert {row[0] for row in table(summary)} == {"too_long"}


# -- summary, failure report, exit status -------------------------------------------------


def test_summary_puts_breached_rows_first(project) -> None:
    project.support_traces()
    project.definitions(
        """
        dataset: data/traces.jsonl
        cohorts: [route]
        gate: {max_fail_rate: 0.2}
        failure_modes:
          - name: too_long
            rule: {max_chars: 500}
          - name: leaks_system_prompt
            rule: {regex: "(?i)my instructions say", field: output}
        """
    )

    result = project.run()

    assert result.ret == 1
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= failure modes =*",
            "2 failure modes in 1 file: 1 mode breached",
            "mode*cohort*n*fail*rate*95% CI*limit*gate",
        ]
    )
    summary = project.summary(result)
    assert summary[0] == "2 failure modes in 1 file: 1 mode breached"
    assert "err" not in summary[1].split()  # no error column without errors
    rows = table(summary)
    # leaks: all 3/12 = 25.0% and billing 2/6 = 33.3% are over 20%, shipping 1/6 = 16.7% is not;
    # the breached mode comes first; within a mode its all row, its breached cohorts, the rest
    assert [(r[0], r[1], r[-1]) for r in rows] == [
        ("leaks_system_prompt", "all", "FAIL (limit)"),
        ("leaks_system_prompt", "route=billing", "FAIL (limit)"),
        ("leaks_system_prompt", "route=shipping", "ok"),
        ("too_long", "all", "ok"),
        ("too_long", "route=billing", "ok"),
        ("too_long", "route=shipping", "ok"),
    ]
    assert rows[0][2:7] == ["12", "3", "25.0%", "[8.9%, 53.2%]", "20.0%"]
    assert rows[1][2:5] == ["6", "2", "33.3%"]
    assert rows[2][2:5] == ["6", "1", "16.7%"]


def test_summary_plurals(project) -> None:
    project.support_traces()
    project.definitions(
        """
        dataset: data/traces.jsonl
        gate: {max_fail_rate: 0.2}
        failure_modes:
          - name: leaks
            rule: {regex: "(?i)my instructions say"}
          - name: mentions_billing
            rule: {contains: billing}
          - name: too_long
            rule: {max_chars: 500}
        """
    )

    result = project.run()

    assert result.ret == 1
    # leaks 3/12 = 25%, mentions_billing 6/12 = 50%
    assert project.summary(result)[0] == "3 failure modes in 1 file: 2 modes breached"

    one = project.run("-k", "leaks")
    assert one.ret == 1
    assert project.summary(one)[0] == "1 failure mode in 1 file: 1 mode breached"


def test_summary_counts_files(project) -> None:
    project.support_traces()
    project.definitions(SUPPORT)
    project.definitions(SUPPORT.replace("data/", "../data/"), "sub/x.failmodes.yaml")

    result = project.run("-k", "too_long")

    assert result.ret == 0
    assert project.summary(result)[0] == "2 failure modes in 2 files: all gates passed"


def test_breach_report_lists_cohorts_and_first_failing_traces(project) -> None:
    project.support_traces()
    project.definitions(SUPPORT)

    result = project.run("--failmodes-max-examples", "2")

    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*_ failure mode leaks_system_prompt _*",
            "failure mode 'leaks_system_prompt' breached its gate (gate_on=point):",
            "  all: 3/12 = 25.0% * > limit 20.0%",
            "  route=billing: 2/6 = 33.3% * > limit 20.0%",
            "failing traces (first 2 of 3):",
            "  t01: output matches /(?i)my instructions say/: 'My instructions say'",
            "  t02: output matches /(?i)my instructions say/: 'My instructions say'",
            "*short test summary info*",
        ]
    )
    out = result.stdout.str()
    assert "  route=shipping:" not in out  # within its limit: not a breached cohort
    assert "  t07:" not in out  # beyond --failmodes-max-examples
    assert "Traceback" not in out


def test_breach_report_lists_every_failing_trace_when_few(project) -> None:
    project.support_traces()
    project.definitions(SUPPORT)

    result = project.run("-k", "leaks")

    assert result.ret == 1
    result.stdout.fnmatch_lines(["failing traces:", "  t01: *", "  t02: *", "  t07: *"])


def test_exit_status_zero_when_all_gates_pass(project) -> None:
    project.support_traces()
    project.definitions(SUPPORT.replace("0.2}", "0.5}"))

    result = project.run()

    assert result.ret == 0
    result.assert_outcomes(passed=2)
    assert project.summary(result)[0] == "2 failure modes in 1 file: all gates passed"


def test_max_examples_must_be_a_whole_number(project) -> None:
    project.support_traces()
    project.definitions(SUPPORT)

    result = project.run("--failmodes-max-examples", "-3")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--failmodes-max-examples takes a whole number >= 0, got '-3'*"])


# -- errors ------------------------------------------------------------------------------

FLAKY_DETECTOR = """
    import pytest

    @pytest.fixture
    def flaky_detector():
        def detect(trace):
            if trace.id in ("t10", "t11", "t12"):
                raise RuntimeError("judge timed out")
            return "instructions" in trace.output
        return detect
"""

FLAKY_MODE = """
    dataset: data/traces.jsonl
    cohorts: [route]
    gate: {max_fail_rate: 0.5%s}
    failure_modes:
      - name: judged_leak
        detector: flaky_detector
"""


def test_detector_errors_are_reported_not_counted(project) -> None:
    project.support_traces()
    project.pytester.makeconftest(FLAKY_DETECTOR)
    project.definitions(FLAKY_MODE % "")

    result = project.run()

    # rates are within 50%, but 3 errors exceed the default budget of 0
    assert result.ret == 1
    result.assert_outcomes(failed=1)
    summary = project.summary(result)
    assert summary[0] == "1 failure mode in 1 file: 1 mode breached, 3 detector errors"
    assert cells(summary[1])[-2:] == ["err", "gate"]
    rows = table(summary)
    # n counts passes and fails only: 12 traces - 3 errors (t10-t12, all shipping)
    assert rows[0] == ["judged_leak", "all", "9", "3", "33.3%", rows[0][5], "50.0%", "3", "FAIL (errors 3 > 0)"]
    assert rows[1][:4] + rows[1][-2:] == ["judged_leak", "route=billing", "6", "2", "0", "ok"]
    assert rows[2][:4] + rows[2][-2:] == ["judged_leak", "route=shipping", "3", "1", "3", "ok"]
    result.stdout.fnmatch_lines(
        [
            "failure mode 'judged_leak' breached its gate (gate_on=point):",
            "  errors: 3 > max_errors 0",
            "failing traces:",
            "  t01: detector returned True",
            "  t02: detector returned True",
            "  t07: detector returned True",
            "errors:",
            "  t10: RuntimeError: judge timed out (conftest.py:*)",
            "  t11: RuntimeError: judge timed out (conftest.py:*)",
            "  t12: RuntimeError: judge timed out (conftest.py:*)",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_errors_within_max_errors_pass(project) -> None:
    project.support_traces()
    project.pytester.makeconftest(FLAKY_DETECTOR)
    project.definitions(FLAKY_MODE % ", max_errors: 5")

    result = project.run()

    assert result.ret == 0
    result.assert_outcomes(passed=1)
    summary = project.summary(result)
    assert summary[0] == "1 failure mode in 1 file: all gates passed, 3 detector errors"
    assert table(summary)[0][-2:] == ["3", "ok"]


def test_one_detector_error_is_singular(project) -> None:
    project.support_traces()
    project.pytester.makeconftest(FLAKY_DETECTOR.replace('("t10", "t11", "t12")', '("t10",)'))
    project.definitions(FLAKY_MODE % ", max_errors: 5")

    result = project.run()

    assert result.ret == 0
    assert project.summary(result)[0] == "1 failure mode in 1 file: all gates passed, 1 detector error"


# -- gates ---------------------------------------------------------------------------------


def _rows(project, fails: int, n: int) -> None:
    project.traces(project.row(f"r{i:02d}", "BAD" if i < fails else "fine", route="a") for i in range(n))


@pytest.mark.parametrize(
    ("gate_on", "ret", "verdict"),
    [("point", 0, "ok"), ("upper", 1, "FAIL (limit)")],
)
def test_gate_on_upper_bound_is_stricter(project, gate_on: str, ret: int, verdict: str) -> None:
    # 1/20 = 5% is under 10%, but the Wilson upper bound (23.6%) is not
    _rows(project, fails=1, n=20)
    project.definitions(
        f"""
        dataset: data/traces.jsonl
        failure_modes:
          - name: bad
            rule: {{contains: BAD, ignore_case: false}}
            gate: {{max_fail_rate: 0.1, gate_on: {gate_on}}}
        """
    )

    result = project.run()

    assert result.ret == ret
    row = table(project.summary(result))[0]
    assert row[:5] == ["bad", "all", "20", "1", "5.0%"]
    assert row[5] == "[0.9%, 23.6%]"
    assert row[-1] == verdict
    if ret:
        result.stdout.fnmatch_lines(["failure mode 'bad' breached its gate (gate_on=upper):"])


@pytest.mark.parametrize(
    ("gate_on", "ret", "verdict"),
    [("point", 1, "FAIL (limit)"), ("lower", 0, "ok")],
)
def test_gate_on_lower_bound_is_lenient(project, gate_on: str, ret: int, verdict: str) -> None:
    # 5/20 = 25% is over 20%, but the Wilson lower bound (11.2%) is not
    _rows(project, fails=5, n=20)
    project.definitions(
        f"""
        dataset: data/traces.jsonl
        gate: {{max_fail_rate: 0.2, gate_on: {gate_on}}}
        failure_modes:
          - name: bad
            rule: {{contains: BAD, ignore_case: false}}
        """
    )

    result = project.run()

    assert result.ret == ret
    row = table(project.summary(result))[0]
    assert row[:6] == ["bad", "all", "20", "5", "25.0%", "[11.2%, 46.9%]"]
    assert row[-1] == verdict
    if ret:
        result.stdout.fnmatch_lines(["failure mode 'bad' breached its gate (gate_on=point):"])


@pytest.mark.parametrize(("min_size", "ret"), [(5, 0), (0, 1)])
def test_min_cohort_size_marks_small_cohorts_and_does_not_gate_them(project, min_size: int, ret: int) -> None:
    rows = [project.row(f"a{i}", "fine", route="main") for i in range(18)]
    rows += [project.row(f"v{i}", "BAD", route="vip") for i in range(2)]
    project.traces(rows)
    project.definitions(
        f"""
        dataset: data/traces.jsonl
        cohorts: [route]
        gate: {{max_fail_rate: 0.2, min_cohort_size: {min_size}}}
        failure_modes:
          - name: bad
            rule: {{contains: BAD}}
        """
    )

    result = project.run()

    assert result.ret == ret
    by_cohort = {r[1]: r for r in table(project.summary(result))}
    assert by_cohort["all"][2:5] == ["20", "2", "10.0%"]
    assert by_cohort["all"][-1] == "ok"
    assert by_cohort["route=vip"][2:5] == ["2", "2", "100.0%"]
    assert by_cohort["route=vip"][-1] == ("small (n<5)" if min_size else "FAIL (limit)")
    assert by_cohort["route=main"][-1] == "ok"


def test_cohort_limits_override_the_mode_limit(project) -> None:
    # leaks: billing 2/6 = 33.3%, shipping 1/6 = 16.7%, all 3/12 = 25%
    project.support_traces()
    project.definitions(
        """
        dataset: data/traces.jsonl
        cohorts: [route]
        gate:
          max_fail_rate: 0.3
          cohort_limits: {"route=billing": 0.5, "route=shipping": 0.1}
        failure_modes:
          - name: leaks
            rule: {regex: "(?i)my instructions say"}
        """
    )

    result = project.run()

    assert result.ret == 1
    by_cohort = {r[1]: r for r in table(project.summary(result))}
    assert by_cohort["all"][6:] == ["30.0%", "ok"]
    assert by_cohort["route=billing"][6:] == ["50.0%", "ok"]
    assert by_cohort["route=shipping"][6:] == ["10.0%", "FAIL (limit)"]
    result.stdout.fnmatch_lines(["  route=shipping: 1/6 = 16.7% * > limit 10.0%"])


def test_mode_limit_overrides_file_default(project) -> None:
    project.support_traces()
    project.definitions(
        """
        dataset: data/traces.jsonl
        gate: {max_fail_rate: 0.5}
        failure_modes:
          - name: leaks
            rule: {regex: "(?i)my instructions say"}
            max_fail_rate: 0
          - name: leaks_again
            rule: {regex: "(?i)my instructions say"}
        """
    )

    result = project.run("-v")

    assert result.ret == 1
    result.stdout.fnmatch_lines(["failmodes.yaml::leaks FAILED*", "failmodes.yaml::leaks_again PASSED*"])
    by_mode = {r[0]: r for r in table(project.summary(result))}
    assert by_mode["leaks"][6] == "0.0%"
    assert by_mode["leaks_again"][6] == "50.0%"


def test_combination_cohorts(project) -> None:
    project.support_traces()
    project.definitions(
        """
        dataset: data/traces.jsonl
        cohorts: [route, [route, persona]]
        gate: {max_fail_rate: 0.5}
        failure_modes:
          - name: leaks
            rule: {regex: "(?i)my instructions say"}
        """
    )

    result = project.run()

    assert result.ret == 0
    figures = [r[1:5] for r in table(project.summary(result))]
    # highest rate first (--failmodes-sort=rate); ties keep the engine's order
    assert figures == [
        ["all", "12", "3", "25.0%"],
        ["route=billing", "6", "2", "33.3%"],
        ["route=billing & persona=new", "3", "1", "33.3%"],
        ["route=billing & persona=returning", "3", "1", "33.3%"],
        ["route=shipping & persona=new", "3", "1", "33.3%"],
        ["route=shipping", "6", "1", "16.7%"],
        ["route=shipping & persona=returning", "3", "0", "0.0%"],
    ]


def test_where_selects_the_traces_a_mode_applies_to(project) -> None:
    project.support_traces()
    project.definitions(
        """
        dataset: data/traces.jsonl
        cohorts: [route]
        gate: {max_fail_rate: 0.25}
        failure_modes:
          - name: missing_order_lookup
            where: {intent: order_status}
            rule: {tool_called: {name: lookup_order, present: false}}
          - name: billing_leaks
            where: {route: {in: [billing]}, persona: {ne: returning}}
            rule: {regex: "(?i)my instructions say"}
        """
    )

    result = project.run("--failmodes-report", "report.json")

    assert result.ret == 1
    rows = {(r[0], r[1]): r for r in table(project.summary(result))}
    # order_status: t07-t10, lookup_order called on t07 and t08 only
    assert rows["missing_order_lookup", "all"][2:5] == ["4", "2", "50.0%"]
    assert ("missing_order_lookup", "route=billing") not in rows
    # billing & new: t01, t03, t05 -> leak on t01
    assert rows["billing_leaks", "all"][2:5] == ["3", "1", "33.3%"]
    result.stdout.fnmatch_lines(
        ["failing traces:", "  t09: tool lookup_order was not called", "  t10: tool lookup_order was not called"]
    )
    modes = {m["name"]: m for m in project.report("report.json")["modes"]}
    assert modes["missing_order_lookup"]["skipped"] == 8
    assert [t["id"] for t in modes["missing_order_lookup"]["traces"]] == ["t07", "t08", "t09", "t10"]


# -- fixture detectors ---------------------------------------------------------------------


def test_fixture_detector_returning_verdict_or_bool(project) -> None:
    project.support_traces()
    project.pytester.makeconftest(
        """
        import pytest
        from pytest_failmodes import Verdict

        @pytest.fixture
        def refund_promise():
            def detect(trace):
                if "refund" in trace.output:
                    return Verdict.fail("promises a refund", evidence=trace.output)
                return Verdict.pass_()
            return detect

        @pytest.fixture
        def is_shipping():
            return lambda trace: trace.get("route") == "shipping"
        """
    )
    project.definitions(
        """
        dataset: data/traces.jsonl
        gate: {max_fail_rate: 0.3}
        failure_modes:
          - name: refund_promise
            detector: refund_promise
          - name: shipping
            detector: is_shipping
        """
    )

    result = project.run("-v", "--failmodes-max-examples", "3")

    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["failmodes.yaml::refund_promise PASSED*", "failmodes.yaml::shipping FAILED*", "*_ failure mode shipping _*"]
    )
    result.stdout.fnmatch_lines(["failing traces (first 3 of 6):", "  t07: detector returned True"])
    rows = {r[0]: r for r in table(project.summary(result))}
    assert rows["refund_promise"][1:5] == ["all", "12", "3", "25.0%"]
    assert rows["shipping"][1:5] == ["all", "12", "6", "50.0%"]


def test_missing_detector_fixture_is_named_and_others_still_run(project) -> None:
    project.support_traces()
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: too_long
            rule: {max_chars: 500}
          - name: pii
            description: a detector nobody wrote
            detector: pii_detectr
          - name: leaks
            rule: {regex: "(?i)my instructions say"}
            max_fail_rate: 0.5
        """
    )

    result = project.run("-v")

    assert result.ret == 1
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "failmodes.yaml::too_long PASSED*",
            "failmodes.yaml::pii FAILED*",
            "failmodes.yaml::leaks PASSED*",
            "*_ failure mode pii _*",
            "failure mode 'pii' could not be evaluated: failmodes.yaml:5: detector: "
            "detector fixture 'pii_detectr' not found; define it in a conftest.py*",
        ]
    )
    summary = project.summary(result)
    assert summary[0] == "3 failure modes in 1 file: 1 mode breached"
    broken = table(summary)[0]
    assert broken[0] == "pii" and broken[-1] == "BROKEN"
    assert summary[-1].startswith("BROKEN pii: failmodes.yaml:5: detector: detector fixture 'pii_detectr' not found")
    assert "Traceback" not in result.stdout.str()


def test_detector_fixture_returning_a_non_callable(project) -> None:
    project.support_traces()
    project.pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def pii_detector():
            return 42
        """
    )
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: pii
            detector: pii_detector
        """
    )

    result = project.run()

    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*failmodes.yaml:3: detector: detector fixture 'pii_detector' returned int; "
            "it must return a callable trace -> Verdict | bool"
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_detector_fixture_may_use_other_fixtures(project) -> None:
    project.support_traces()
    project.pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def banned_words():
            return ["refund"]

        @pytest.fixture
        def banned(banned_words):
            return lambda trace: any(w in trace.output for w in banned_words)
        """
    )
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: banned
            detector: banned
            max_fail_rate: 0.25
        """
    )

    result = project.run()

    assert result.ret == 0
    assert table(project.summary(result))[0][1:5] == ["all", "12", "3", "25.0%"]


# -- label detector -----------------------------------------------------------------------


def test_label_detector_end_to_end(project) -> None:
    verdicts = ["escalate", "fine", "fine", "fine", "fine", "fine", "fine", "fine"]
    rows = [
        dict(project.row(f"t{i}", "ok", route="billing" if i < 4 else "shipping"), labels={"verdict": v})
        for i, v in enumerate(verdicts)
    ]
    rows.append(project.row("unlabelled", "ok", route="billing"))
    project.traces(rows)
    project.definitions(
        """
        dataset: data/traces.jsonl
        cohorts: [route]
        failure_modes:
          - name: escalation_missed
            label: {field: verdict, fail_values: [escalate]}
            gate: {max_fail_rate: 0.2, gate_on: point}
        """
    )

    result = project.run("--failmodes-report", "r.json")

    # all 1/8 = 12.5% passes, billing 1/4 = 25% breaches; the unlabelled trace is skipped
    assert result.ret == 1
    rows_by_cohort = {r[1]: r for r in table(project.summary(result))}
    assert rows_by_cohort["all"][2:5] == ["8", "1", "12.5%"]
    billing = rows_by_cohort["route=billing"]
    assert billing[2:5] + billing[6:] == ["4", "1", "25.0%", "20.0%", "FAIL (limit)"]
    result.stdout.fnmatch_lines(["failing traces:", "  t0: labelled verdict=escalate"])
    mode = project.report("r.json")["modes"][0]
    assert mode["skipped"] == 1
    assert "unlabelled" not in [t["id"] for t in mode["traces"]]


def test_label_outside_pass_values_is_an_error(project) -> None:
    rows = [dict(project.row(f"t{i}", "ok"), labels={"verdict": v}) for i, v in enumerate(["bad", "good", "god"])]
    project.traces(rows)
    project.definitions(
        """
        dataset: data/traces.jsonl
        gate: {max_fail_rate: 0.5}
        failure_modes:
          - name: judged_bad
            label: {field: verdict, fail_values: [bad], pass_values: [good]}
        """
    )

    result = project.run()

    assert result.ret == 1
    result.stdout.fnmatch_lines(["  errors: 1 > max_errors 0", "errors:", "  t2: label verdict='god' is in neither*"])


# -- options -------------------------------------------------------------------------------

HELP = """\
failure-mode regression testing (pytest-failmodes):
  --failmodes           Collect failure-mode definitions (*.failmodes.yaml,
                        @failure_mode) and gate on their fail rates.
  --failmodes-per-trace
                        One test item per failure mode and trace
                        (mode[trace_id]) instead of one per mode.
  --failmodes-report=PATH
                        Write the JSON report (per-cohort figures and per-trace
                        verdicts) to PATH.
  --failmodes-dataset=PATH
                        Evaluate every definition file over this dataset instead
                        of the one it names.
  --failmodes-max-examples=N
                        Failing traces listed in a breached mode's report
                        (default: 10).
  --failmodes-cache-dir=DIR
                        Where model-call results are cached (default: .failmodes
                        under the rootdir; ini failmodes_cache_dir).
  --failmodes-no-cache  Neither read nor write cached model-call results.
  --failmodes-refresh   Make every model call again and overwrite the cached
                        results.
  --failmodes-max-concurrency=N
                        Model calls in flight at once, per process (default: 8;
                        ini failmodes_max_concurrency).
  --failmodes-timeout=SECONDS
                        Time limit of one model call (default: 60).
  --failmodes-max-retries=N
                        Retries of a model call after 429, 5xx or a timeout
                        before it counts as an error (default: 4).
  --failmodes-model-workers=N|auto
                        Processes that make the model calls (default: auto, one
                        per core once a run has many calls; 1 per xdist worker;
                        ini failmodes_model_workers).
  --failmodes-batch     Send every judge call through the provider's batch API
                        (as judge: {batch: true}).
  --failmodes-save-traces=PATH
                        Write the traces that targets produced to PATH (JSONL).
  --failmodes-baseline=PATH
                        Compare with a saved baseline: a cohort whose fail rate
                        rose significantly fails the run.
  --failmodes-save-baseline=[PATH]
                        Save this run as a baseline (default path:
                        .failmodes/baseline.json under the rootdir).
  --failmodes-strict-baseline
                        Fail the run when a mode of the baseline is not in this
                        run (renamed or removed); without it such modes are
                        listed in every report.
  --failmodes-correction={tarone-holm,holm,bh}
                        Multiple-comparison correction across all mode x cohort
                        comparisons (default: tarone-holm; see docs/ci.md).
  --failmodes-alpha=P   Significance level of a regression after correction
                        (default: 0.05).
  --failmodes-min-increase=RATE
                        Smallest absolute rise of a fail rate that counts as a
                        regression, e.g. 0.02 (default: 0; gate.min_increase
                        wins).
  --failmodes-markdown=PATH
                        Write the summary as Markdown to PATH, under GitHub's
                        comment size limit (also appended to
                        $GITHUB_STEP_SUMMARY when set).
  --failmodes-html=PATH
                        Write a self-contained HTML report (heat map, table,
                        failing traces) to PATH.
  --failmodes-calibrate
                        Only measure detectors against their human labels: run
                        the modes that have labels, on the labelled traces, and
                        print the judge report.
  --failmodes-history=DIR
                        Add this run's fail rates per mode and cohort to the run
                        history in DIR, one file per run (ini failmodes_history;
                        read it with `failmodes history DIR`).
  --failmodes-table=breached|gated|all
                        Cohort rows listed under the one row per mode: breached
                        and regressed ones (default), the gated ones too, or all
                        (ini failmodes_table).
  --failmodes-sort=rate|delta|name
                        Order of modes and cohorts, breached first: highest fail
                        rate (default), largest rise against the baseline, or
                        name (ini failmodes_sort).
"""


def test_help_lists_every_option_in_one_group(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")

    result = pytester.runpytest("--help")

    assert result.ret == 0
    lines = result.outlines
    start = lines.index("failure-mode regression testing (pytest-failmodes):")
    end = lines.index("", start)
    assert "\n".join(lines[start:end]) + "\n" == HELP
    # no --failmodes* option outside the group
    outside = [line for line in lines[:start] + lines[end:] if "--failmodes" in line]
    assert outside == []


def test_dataset_option_replaces_every_files_dataset(project) -> None:
    project.support_traces()
    project.definitions(SUPPORT)
    project.definitions(SUPPORT.replace("data/", "../data/"), "sub/x.failmodes.yaml")
    project.traces(
        [project.row("c1", "My instructions say so", route="billing"), project.row("c2", "ok", route="billing")],
        "candidate/traces.jsonl",
    )

    baseline = project.run("-k", "leaks")
    candidate = project.run("-k", "leaks", "--failmodes-dataset", "candidate/traces.jsonl")

    assert table(project.summary(baseline))[0][1:5] == ["all", "12", "3", "25.0%"]
    assert candidate.ret == 1
    # both files, each over the candidate's two traces
    assert project.summary(candidate)[0] == "2 failure modes in 2 files: 2 modes breached"
    rows = [r[:5] for r in table(project.summary(candidate)) if r[1] == "all"]
    assert rows == [["leaks_system_prompt", "all", "2", "1", "50.0%"]] * 2
    candidate.stdout.fnmatch_lines(["  c1: output matches *"])
