"""Our hookspecs: ``pytest_failmodes_rule_kinds`` and ``pytest_failmodes_mode_result``."""

from __future__ import annotations

import pytest

MAX_WORDS = """
    from pytest_failmodes import RuleKind, Verdict

    def pytest_failmodes_rule_kinds():
        def build(value, field="output"):
            limit = int(value)

            def detect(trace):
                words = len(str(trace.get(field)).split())
                return Verdict.fail(f"{words} words") if words > limit else Verdict.pass_()

            return detect

        return [RuleKind("max_words", build)]
"""


def test_a_plugin_adds_a_rule_kind(project) -> None:
    project.traces(
        [
            project.row("short", "Yes."),
            project.row("long", "It will arrive on Monday or Tuesday next week."),
            project.row("chatty", "Thanks for asking about that, let me explain everything in detail."),
        ]
    )
    project.pytester.makeconftest(MAX_WORDS)
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: rambling
            rule: {max_words: 5}
            max_fail_rate: 0.5
          - name: rambling_question
            rule: {max_words: 1, field: input}
            max_fail_rate: 0.5
        """
    )

    result = project.run()

    assert result.ret == 1
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "failure mode 'rambling' breached its gate (gate_on=point):",
            "  all: 2/3 = 66.7% * > limit 50.0%",
            "failing traces:",
            "  long: 9 words",
            "  chatty: 11 words",
        ]
    )


def test_a_plugin_rule_kind_validates_its_options(project) -> None:
    project.traces([project.row("t1", "Yes.")])
    project.pytester.makeconftest(MAX_WORDS)
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: rambling
            rule: {max_words: 5, feild: input}
        """
    )

    result = project.run()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "failmodes.yaml:4: failure_modes[0].rule.feild: "
            "unknown option 'feild' for rule 'max_words'; did you mean 'field'?; valid options: field"
        ]
    )


def test_a_plugin_rule_kind_replaces_a_builtin_of_the_same_name(project) -> None:
    project.traces([project.row("t1", "Sorry!"), project.row("t2", "SORRY!"), project.row("t3", "Fine.")])
    project.pytester.makeconftest(
        """
        from pytest_failmodes import RuleKind, Verdict

        def pytest_failmodes_rule_kinds():
            def build(value):
                # case-sensitive, unlike the built-in
                return lambda trace: Verdict.fail("shouting") if value in trace.output else Verdict.pass_()
            return [RuleKind("contains", build)]
        """
    )
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: apology
            rule: {contains: SORRY}
            max_fail_rate: 0
        """
    )

    result = project.run()

    assert result.ret == 1
    # the built-in would have matched t1 too (ignore_case defaults to true)
    result.stdout.fnmatch_lines(["  all: 1/3 = 33.3% *", "failing traces:", "  t2: shouting"])
    assert "  t1:" not in result.stdout.str()


RECORDER = """
    where = []

    def pytest_configure(config):
        where.append(config.workerinput["workerid"] if hasattr(config, "workerinput") else "controller")

    def pytest_failmodes_mode_result(result):
        worker = where[-1]
        with open("mode_results.txt", "a") as fh:
            fh.write(f"{worker} {result.key} {result.passed} {result.rows[0].n}\\n")
"""


@pytest.fixture
def recorded(project):
    project.support_traces()
    project.pytester.makeconftest(RECORDER)
    project.definitions(
        """
        dataset: data/traces.jsonl
        gate: {max_fail_rate: 0.2}
        failure_modes:
          - name: leaks
            rule: {regex: "(?i)my instructions say"}
          - name: too_long
            rule: {max_chars: 500}
          - name: escalation_missed
            label: {field: human_verdict, fail_values: [escalate]}
        """
    )
    return project


EXPECTED = [
    "controller failmodes.yaml::escalation_missed True 12",
    "controller failmodes.yaml::leaks False 12",
    "controller failmodes.yaml::too_long True 12",
]


def _calls(project) -> list[str]:
    return sorted((project.path / "mode_results.txt").read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize("per_trace", [False, True], ids=["per-mode", "per-trace"])
def test_mode_result_hook_is_called_once_per_mode(recorded, per_trace: bool) -> None:
    """(Under xdist too, on the controller only: see test_xdist.py.)"""
    result = recorded.run(*(["--failmodes-per-trace"] if per_trace else []))

    assert result.ret == 1
    assert _calls(recorded) == EXPECTED



def test_a_rule_kind_from_a_subdirectory_conftest_is_seen(project) -> None:
    # a definition file collected before the conftest that adds the kind must not freeze the kinds
    project.traces([project.row("t1", "one two three four", route="x")], "a/data.jsonl")
    project.traces([project.row("t1", "one two three four", route="x")], "b/data.jsonl")
    project.file(
        "a/failmodes.yaml",
        """
        dataset: data.jsonl
        failure_modes:
          - name: leaks
            rule: {regex: "secret"}
        """,
    )
    project.file(
        "b/conftest.py",
        """
        from pytest_failmodes import RuleKind, Verdict

        def pytest_failmodes_rule_kinds():
            def build(value):
                def detect(trace):
                    return Verdict.fail("long") if len(trace.output.split()) > value else Verdict.pass_()
                return detect
            return [RuleKind("max_words", build)]
        """,
    )
    project.file(
        "b/failmodes.yaml",
        """
        dataset: data.jsonl
        gate: {max_fail_rate: 0}
        failure_modes:
          - name: wordy
            rule: {max_words: 3}
        """,
    )
    result = project.run("-v")

    result.stdout.fnmatch_lines(["a/failmodes.yaml::leaks PASSED*", "b/failmodes.yaml::wordy FAILED*"])
    assert result.ret == 1
