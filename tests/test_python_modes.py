"""``@failure_mode`` test functions."""

from __future__ import annotations

import pytest

MODES = """
    import pytest
    from pytest_failmodes import failure_mode

    @pytest.fixture
    def banned_phrases():
        return ["my instructions say"]

    @failure_mode(dataset="data/traces.jsonl", cohorts=["route"], max_fail_rate=0.3)
    def test_leaks_instructions(trace, banned_phrases):
        for phrase in banned_phrases:
            assert phrase not in trace.output.lower(), f"quotes {phrase!r}"

    @failure_mode(dataset="data/traces.jsonl", cohorts=["route"], max_fail_rate=0.2,
                  where={"intent": "order_status"}, gate={"max_errors": 1})
    def test_order_answer(trace):
        if trace.id == "t08":
            raise ValueError("order service down")
        assert trace.tool_calls, "no order lookup"

    def test_ordinary():
        assert 1 + 1 == 2
"""


@pytest.fixture
def modes(project):
    project.support_traces("tests/data/traces.jsonl")
    project.file("tests/test_modes.py", MODES)
    return project


def test_failure_mode_functions_become_modes(modes) -> None:
    result = modes.run("-v", "tests")

    # leaks: 3/12 = 25% (billing 33.3% > 30%); order: t07 passes, t08 errors, t09 t10 fail
    assert result.ret == 1
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "tests/test_modes.py::test_leaks_instructions FAILED*",
            "tests/test_modes.py::test_order_answer FAILED*",
            "tests/test_modes.py::test_ordinary PASSED*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "failure mode 'test_leaks_instructions' breached its gate (gate_on=point):",
            "  route=billing: 2/6 = 33.3% * > limit 30.0%",
            "failing traces:",
            "  t01: quotes 'my instructions say'",
            "  t02: quotes 'my instructions say'",
            "  t07: quotes 'my instructions say'",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "failure mode 'test_order_answer' breached its gate (gate_on=point):",
            "  all: 2/3 = 66.7% * > limit 20.0%",
            "failing traces:",
            "  t09: no order lookup*",
            "  t10: no order lookup*",
            "errors:",
            "  t08: ValueError: order service down (test_modes.py:*)",
        ]
    )
    summary = modes.summary(result)
    assert summary[0] == "2 failure modes in 1 file: 2 modes breached, 1 detector error"
    assert "Traceback" not in result.stdout.str()


def test_failure_mode_function_passes_its_gate(modes) -> None:
    result = modes.run("tests", "-k", "leaks")
    assert result.ret == 1

    modes.file("tests/test_modes.py", MODES.replace("max_fail_rate=0.3", "max_fail_rate=0.5"))

    result = modes.run("tests", "-k", "leaks")

    assert result.ret == 0
    result.assert_outcomes(passed=1, deselected=2)
    assert modes.summary(result)[0] == "1 failure mode in 1 file: all gates passed"


def test_without_the_option_failure_mode_functions_are_not_collected(modes) -> None:
    result = modes.pytester.runpytest("-v", "tests")

    assert result.ret == 0
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["tests/test_modes.py::test_ordinary PASSED*", "*1 passed*"])
    assert "test_leaks_instructions" not in result.stdout.str()


def test_per_trace_items_for_a_failure_mode_function(modes) -> None:
    result = modes.run("--failmodes-per-trace", "-v", "tests", "-k", "order_answer")

    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "tests/test_modes.py::test_order_answer[[]t07] PASSED*",
            "tests/test_modes.py::test_order_answer[[]t08] FAILED*",
            "tests/test_modes.py::test_order_answer[[]t09] DETECTED*",
            "tests/test_modes.py::test_order_answer[[]t10] DETECTED*",
        ]
    )
    result.stdout.fnmatch_lines(["ERROR evaluating test_order_answer on t08: ValueError: order service down*"])
    per_mode = modes.run("tests", "-k", "order_answer")
    assert modes.summary(result) == modes.summary(per_mode)


def test_a_failure_mode_function_without_trace_is_a_clear_error(project) -> None:
    project.support_traces()
    project.file(
        "test_bad.py",
        """
        from pytest_failmodes import failure_mode

        @failure_mode(dataset="data/traces.jsonl")
        def test_no_trace(record):
            assert record
        """,
    )

    result = project.run()

    assert result.ret != 0
    result.stdout.fnmatch_lines(["*@failure_mode function test_no_trace must take a 'trace' argument*"])


def test_bad_failure_mode_arguments_name_the_function(project) -> None:
    project.support_traces()
    project.file(
        "test_bad.py",
        """
        from pytest_failmodes import failure_mode

        @failure_mode(dataset="data/traces.jsonl", where={"route": {"equal": "billing"}})
        def test_where(trace):
            pass
        """,
    )

    result = project.run()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["test_bad.py:3: failure_modes[0].where.route.equal: unknown operator 'equal'"])
    assert "Traceback" not in result.stdout.str()
