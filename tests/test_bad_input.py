"""Bad definitions and datasets: one clear line naming file, line and key; no traceback."""

from __future__ import annotations

import pytest

TRACES = [
    {"id": "t1", "output": "fine", "metadata": {"route": "billing"}},
    {"id": "t2", "output": "fine", "metadata": {"route": "shipping"}},
]

MODE = """
    dataset: %s
    failure_modes:
      - name: leaks
        rule: {regex: "(?i)my instructions say"}
"""


def assert_one_error_line(result: pytest.RunResult, line: str) -> None:
    """``line`` appears exactly once, the run failed, and no traceback was printed."""
    assert result.ret != 0
    output = result.outlines + result.errlines
    assert output.count(line) == 1, "\n".join(output)
    text = "\n".join(output)
    assert "Traceback" not in text
    assert "site-packages" not in text and "pytest_failmodes/" not in text


@pytest.mark.parametrize(
    ("definition", "error"),
    [
        pytest.param(
            """
            dataset: data/traces.jsonl
            cohort: [route]
            failure_modes:
              - name: leaks
                rule: {regex: x}
            """,
            "failmodes.yaml:2: cohort: unknown key 'cohort'; did you mean 'cohorts'?",
            id="top-level-key",
        ),
        pytest.param(
            """
            dataset: data/traces.jsonl
            failure_modes:
              - name: leaks
                descripton: FAIL when the reply quotes its instructions
                rule: {regex: x}
            """,
            "failmodes.yaml:4: failure_modes[0].descripton: unknown key 'descripton'; did you mean 'description'?",
            id="mode-key",
        ),
        pytest.param(
            """
            dataset: data/traces.jsonl
            gate:
              max_fail_rate: 0.1
              min_cohort_sise: 30
            failure_modes:
              - name: leaks
                rule: {regex: x}
            """,
            "failmodes.yaml:4: gate.min_cohort_sise: unknown key 'min_cohort_sise'; did you mean 'min_cohort_size'?",
            id="gate-key",
        ),
        pytest.param(
            """
            dataset: data/traces.jsonl
            failure_modes:
              - name: leaks
                rule: {regex: x}
              - name: wrong_tool
                rule:
                  tool_called: {name: lookup_order, presnt: false}
            """,
            "failmodes.yaml:7: failure_modes[1].rule.tool_called.presnt: unknown key 'presnt'; did you mean 'present'?",
            id="rule-key",
        ),
        pytest.param(
            """
            dataset: data/traces.jsonl
            failure_modes:
              - name: leaks
                rule: {regexp: "(?i)my instructions say"}
            """,
            "failmodes.yaml:4: failure_modes[0].rule.regexp: unknown rule kind 'regexp'; did you mean 'regex'?",
            id="unknown-rule-kind",
        ),
        pytest.param(
            """
            dataset: data/traces.jsonl
            failure_modes:
              - name: leaks
                rule:
                  any:
                    - {regex: x}
                    - {contain: y}
            """,
            "failmodes.yaml:7: failure_modes[0].rule.any[1].contain: "
            "unknown rule kind 'contain'; did you mean 'contains'?",
            id="nested-rule-kind",
        ),
        pytest.param(
            """
            dataset: data/traces.jsonl
            failure_modes:
              - name: billing_leaks
                where:
                  route: {not-in: [shipping]}
                rule: {regex: x}
            """,
            "failmodes.yaml:5: failure_modes[0].where.route.not-in: unknown operator 'not-in'; did you mean 'not_in'?",
            id="where-operator",
        ),
        pytest.param(
            """
            dataset: data/traces.jsonl
            failure_modes:
              - name: leaks
                rule: {regex: "x"
              - name: too_long
                rule: {max_chars: 10}
            """,
            "failmodes.yaml:5: invalid YAML: expected ',' or '}', but got '-'",
            id="invalid-yaml",
        ),
        pytest.param(
            """
            dataset: data/traces.jsonl
            failure_modes:
              - name: leaks
                rule: {regex: x}
                max_fail_rate: 1.5
            """,
            "failmodes.yaml:5: failure_modes[0].max_fail_rate: input should be less than or equal to 1",
            id="rate-out-of-range",
        ),
    ],
)
def test_bad_definition(project, definition: str, error: str) -> None:
    project.traces(TRACES)
    project.definitions(definition)

    result = project.run()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert_one_error_line(result, error)
    result.stdout.fnmatch_lines(["*ERROR collecting failmodes.yaml*", error, "*1 error*"])


def test_bad_definition_in_a_nested_file_is_named_by_its_path(project) -> None:
    project.traces(TRACES)
    project.definitions(
        """
        dataset: ../data/traces.jsonl
        failure_modes:
          - name: leaks
            rule: {regex: x, feild: output}
        """,
        "evals/support.failmodes.yaml",
    )

    result = project.run()

    assert_one_error_line(
        result,
        "evals/support.failmodes.yaml:4: failure_modes[0].rule.feild: "
        "unknown option 'feild' for rule 'regex'; did you mean 'field'?; valid options: field",
    )


@pytest.mark.parametrize("per_trace", [False, True], ids=["per-mode", "per-trace"])
@pytest.mark.parametrize(
    ("dataset", "error"),
    [
        pytest.param(None, "data/missing.jsonl: cannot open dataset: No such file or directory", id="missing-file"),
        pytest.param(
            '{"id": "t1", "output": "fine"}\n{"id": "t2" "output": "fine"}\n',
            "data/traces.jsonl:2: malformed JSON: Expecting ',' delimiter at column 13",
            id="malformed-json",
        ),
        pytest.param(
            '{"id": "t1", "output": "fine"}\n{"id": "t2", "output": "b",\n{"id": "t3", "output": "fine"}\n',
            "data/traces.jsonl:2: malformed JSON: Expecting property name enclosed in double quotes at column 28",
            id="truncated-row",
        ),
        pytest.param(
            '{"id": "t1", "output": "fine"}\n\n{"id": "t2", "output": "fine", "messages": "hello"}\n',
            "data/traces.jsonl:3: messages: input should be a valid list",
            id="bad-field-type",
        ),
        pytest.param(
            '{"id": "t1", "output": "fine"}\n{"output": "fine"}\n',
            "data/traces.jsonl:2: id: missing id",
            id="missing-id",
        ),
        pytest.param(
            '{"id": "t1", "output": "a"}\n{"id": "t2", "output": "b"}\n{"id": "t1", "output": "c"}\n',
            "data/traces.jsonl:3: id: duplicate id 't1' (first seen on line 1)",
            id="duplicate-id",
        ),
    ],
)
def test_bad_dataset(project, per_trace: bool, dataset: str | None, error: str) -> None:
    if dataset is None:
        project.definitions(MODE % "data/missing.jsonl")
    else:
        project.file("data/traces.jsonl", dataset)
        project.definitions(MODE % "data/traces.jsonl")

    result = project.run(*(["--failmodes-per-trace"] if per_trace else []))

    # per mode, the dataset is read when the mode runs; per trace, at collection
    assert result.ret == (pytest.ExitCode.INTERRUPTED if per_trace else pytest.ExitCode.TESTS_FAILED)
    assert_one_error_line(result, error)


def test_duplicate_id_names_the_mapped_column(project) -> None:
    project.file(
        "data/traces.jsonl",
        '{"trace_id": "a", "response": "x"}\n{"trace_id": "b", "response": "y"}\n{"trace_id": "a", "response": "z"}\n',
    )
    project.definitions(
        """
        dataset:
          path: data/traces.jsonl
          fields: {id: trace_id, output: response}
        failure_modes:
          - name: leaks
            rule: {regex: x}
        """
    )

    result = project.run()

    assert_one_error_line(result, "data/traces.jsonl:3: trace_id: duplicate id 'a' (first seen on line 1)")


def test_malformed_csv_row(project) -> None:
    project.file("data/traces.csv", "id,output\nt1,fine\nt2,fine,extra\n")
    project.definitions(MODE % "data/traces.csv")

    result = project.run()

    assert_one_error_line(result, "data/traces.csv:3: row has 3 cells; the header has 2")


def test_a_dataset_error_fails_every_mode_of_its_file_and_nothing_else(project) -> None:
    project.file("data/bad.jsonl", '{"id": "t1", "output": "fine"}\n[1, 2]\n')
    project.traces(TRACES)
    project.definitions(
        """
        dataset: data/bad.jsonl
        failure_modes:
          - name: leaks
            rule: {regex: x}
          - name: too_long
            rule: {max_chars: 10}
        """
    )
    project.definitions(MODE % "data/traces.jsonl", "good.failmodes.yaml")

    result = project.run("-v")

    assert result.ret == 1
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(
        [
            "failmodes.yaml::leaks FAILED*",
            "failmodes.yaml::too_long FAILED*",
            "good.failmodes.yaml::leaks PASSED*",
        ],
        consecutive=False,
    )
    result.stdout.fnmatch_lines(["data/bad.jsonl:2: expected an object with trace fields, got an array"])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("body", "outcome", "shown"),
    [
        ('raise KeyError("OPENAI_API_KEY")', {"failed": 1}, "*KeyError*OPENAI_API_KEY*"),
        ('pytest.skip("no API key")', {"skipped": 1}, "SKIPPED * no API key"),
    ],
    ids=["raises", "skips"],
)
def test_a_detector_fixture_that_raises_affects_only_its_mode(project, body: str, outcome: dict, shown: str) -> None:
    """A broken conftest is the user's code: pytest reports it as usual, on its mode only."""
    project.traces(TRACES)
    project.pytester.makeconftest(
        f"""
        import pytest

        @pytest.fixture
        def judge():
            {body}
        """
    )
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: leaks
            rule: {regex: x}
          - name: judged
            detector: judge
          - name: too_long
            rule: {max_chars: 10}
        """
    )

    result = project.run("-rs", "-v")

    assert result.ret == (1 if "failed" in outcome else 0)
    result.assert_outcomes(passed=2, **outcome)
    result.stdout.fnmatch_lines(
        ["failmodes.yaml::leaks PASSED*", "failmodes.yaml::too_long PASSED*"], consecutive=False
    )
    result.stdout.fnmatch_lines([shown])
    assert project.summary(result)[0] == "2 failure modes in 1 file: all gates passed"
