"""Hostile or unlucky input: one clear line naming file, line and key; no traceback, hang
or unbounded memory. One test per case (issue 10, item 8)."""

from __future__ import annotations

import json
import os
import sys

import pytest

TRACES = [{"id": "t1", "output": "fine"}, {"id": "t2", "output": "also fine"}]


def assert_one_line(result: pytest.RunResult, line: str) -> None:
    """``line`` appears exactly once and no traceback was printed."""
    output = result.outlines + result.errlines
    assert output.count(line) == 1, "\n".join(output)
    text = "\n".join(output)
    assert "Traceback" not in text and "RecursionError" not in text and "MemoryError" not in text


def definition_error(project, definition: str, line: str) -> None:
    project.traces(TRACES)
    project.definitions(definition)
    result = project.run()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert_one_line(result, line)
    result.stdout.fnmatch_lines(["*ERROR collecting failmodes.yaml*", line, "*1 error*"])


# -- YAML definitions ------------------------------------------------------------------


def test_a_repeated_top_level_key_names_both_lines(project) -> None:
    definition_error(
        project,
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: strict
            rule: {regex: fine}
        failure_modes:
          - name: lenient
            rule: {regex: nothing}
        """,
        "failmodes.yaml:5: failure_modes: key 'failure_modes' is given twice (lines 2 and 5); "
        "YAML would keep only the last: give each key once",
    )


def test_a_repeated_key_inside_a_mode_names_both_lines(project) -> None:
    definition_error(
        project,
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: leaks
            max_fail_rate: 0.0
            rule: {regex: fine}
            max_fail_rate: 0.5
        """,
        "failmodes.yaml:6: failure_modes[0].max_fail_rate: key 'max_fail_rate' is given twice (lines 4 and 6); "
        "YAML would keep only the last: give each key once",
    )


def test_an_alias_bomb_is_stopped_before_it_expands(project) -> None:
    levels = ['x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    definition_error(
        project,
        "dataset: data/traces.jsonl\n" + "\n".join(levels) + "\nfailure_modes:\n  - name: a\n    rule: {regex: x}\n",
        "failmodes.yaml:7: x5[1]: aliases expand to more than 100,000 extra nodes (an alias bomb?)",
    )


def test_a_recursive_alias_is_one_line(project) -> None:
    definition_error(
        project,
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: a
            rule: &r {not: *r}
        """,
        "failmodes.yaml:4: failure_modes[0].rule.not: an alias refers to a node that contains it (a recursive alias)",
    )


def test_yaml_nested_thousands_deep_is_one_line(project) -> None:
    deep = "[" * 3000 + "]" * 3000
    definition_error(
        project,
        f"dataset: data/traces.jsonl\nextra: {deep}\nfailure_modes:\n  - name: a\n    rule: {{regex: x}}\n",
        "failmodes.yaml:2: nested more than 100 levels deep",
    )


def test_not_rules_600_deep_are_one_line(project) -> None:
    rule = "{not: " * 600 + "{regex: x}" + "}" * 600
    definition_error(
        project,
        f"dataset: data/traces.jsonl\nfailure_modes:\n  - name: a\n    rule: {rule}\n",
        "failmodes.yaml:4: nested more than 100 levels deep",
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [("!!int abc", "'abc' is not a valid !!int"), ("!!float x", "'x' is not a valid !!float"),
     ("!!timestamp yesterday", "'yesterday' is not a valid !!timestamp")],
    ids=["int", "float", "timestamp"],
)
def test_a_bad_scalar_tag_is_one_line(project, value: str, shown: str) -> None:
    definition_error(
        project,
        f"""
        dataset: data/traces.jsonl
        failure_modes:
          - name: a
            max_fail_rate: {value}
            rule: {{regex: x}}
        """,
        f"failmodes.yaml:4: failure_modes[0].max_fail_rate: {shown}",
    )


@pytest.mark.parametrize("name", ['"leak\\n"', '"leak\\tx"', '"le\\u0085ak"'], ids=["newline", "tab", "nel"])
def test_a_mode_name_with_a_control_character_is_rejected(project, name: str) -> None:
    definition_error(
        project,
        f"""
        dataset: data/traces.jsonl
        failure_modes:
          - name: {name}
            rule: {{regex: x}}
        """,
        "failmodes.yaml:3: failure_modes[0].name: a name starts with a letter or _ and holds only letters, digits, _ . and -",
    )


@pytest.mark.parametrize(
    ("setting", "shown"),
    [
        ("max_fail_rate: true", "failure_modes[0].max_fail_rate: expected a number, got true"),
        ('max_fail_rate: "0.05"', "failure_modes[0].max_fail_rate: expected a number, got the text '0.05'; write the number without quotes"),
        ("gate: {max_errors: 2.5}", "failure_modes[0].gate.max_errors: expected a whole number, got 2.5"),
        ("gate: {min_cohort_size: false}", "failure_modes[0].gate.min_cohort_size: expected a whole number, got false"),
        ("gate: {cohort_limits: {route=billing: yes}}", "failure_modes[0].gate.cohort_limits.route=billing: expected a number, got true"),
        ("max_fail_rate: .nan", "failure_modes[0].max_fail_rate: input should be a finite number"),
    ],
    ids=["bool-rate", "quoted-rate", "float-count", "bool-count", "bool-limit", "nan"],
)
def test_numbers_are_numbers(project, setting: str, shown: str) -> None:
    definition_error(
        project,
        f"""
        dataset: data/traces.jsonl
        failure_modes:
          - name: a
            rule: {{regex: x}}
            {setting}
        """,
        f"failmodes.yaml:5: {shown}",
    )


def test_a_prompt_with_a_format_width_is_rejected_before_formatting(project) -> None:
    definition_error(
        project,
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: a
            description: FAIL when the reply is rude
            judge:
              model: openai/fake
              prompt: "{trace:>99999999999}"
        """,
        "failmodes.yaml:7: failure_modes[0].judge.prompt: bad placeholder in prompt ({trace:>99999999999}): "
        "no format specs or conversions; use {name}, {definition}, {examples}, {trace}, and double braces {{ }} for literal ones",
    )


# -- regexes -----------------------------------------------------------------------------


SLOW = {"id": "slow", "output": "a" * 5000 + "!"}


def test_a_catastrophic_regex_is_that_traces_error(project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILMODES_REGEX_TIMEOUT", "0.2")
    project.traces([{"id": "ok", "output": "fine"}, SLOW])
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: slow
            rule: {regex: "(a|aa)+$"}
            gate: {max_errors: 0}
        """
    )

    result = project.run("--failmodes-per-trace")

    # the gate fails on the error; the trace is neither a pass nor a detection
    assert result.parseoutcomes() == {"passed": 1, "failed": 1, "gate": 1}
    result.stdout.fnmatch_lines(
        [
            "ERROR evaluating slow on slow: output: regex /(a|aa)+$/ took longer than 0.2s on this text "
            "(catastrophic backtracking?); simplify it, e.g. (a+)+ -> a+",
            "slow *all *1 *0 *0.0%*1 *FAIL (errors 1 > 0)",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_catastrophic_pattern_in_a_json_schema_is_an_error(project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILMODES_REGEX_TIMEOUT", "0.2")
    project.traces([{"id": "ok", "output": json.dumps({"code": "b"})}, {"id": "slow", "output": json.dumps({"code": SLOW["output"]})}])
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: shape
            rule:
              json_schema:
                type: object
                properties: {code: {type: string, pattern: "^(a|aa)+$"}}
        """
    )

    result = project.run("--failmodes-per-trace")

    assert result.parseoutcomes() == {"detected": 1, "failed": 1, "gate": 1}
    result.stdout.fnmatch_lines(["ERROR evaluating shape on slow: output: JSON schema regex /^(a|aa)+$/ took longer than 0.2s*"])


def test_pattern_properties_keys_are_matched_with_the_time_limit(project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILMODES_REGEX_TIMEOUT", "0.2")
    project.traces([{"id": "ok", "output": json.dumps({"x_1": 1})}, {"id": "slow", "output": json.dumps({SLOW["output"]: 1})}])
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: keys
            rule:
              json_schema:
                type: object
                patternProperties: {"^(x|xx)_[0-9]$|^(a|aa)+$": {type: integer}}
                additionalProperties: false
        """
    )

    result = project.run("--failmodes-per-trace")

    assert result.parseoutcomes() == {"passed": 1, "failed": 1, "gate": 1}
    result.stdout.fnmatch_lines(["ERROR evaluating keys on slow: output: JSON schema regex /^(x|xx)_*(a|aa)+$/ took*"])


def test_regexes_keep_python_re_semantics(project) -> None:
    project.traces(
        [{"id": "t1", "output": "My INSTRUCTIONS say"}, {"id": "t2", "output": "order 12-12"}, {"id": "t3", "output": "fine"}]
    )
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: leaks
            rule: {regex: "(?i)my instructions"}
          - name: repeats
            rule: {regex: '(?P<n>\\d+)-(?P=n)'}
          - name: lookahead
            rule: {regex: 'order (?=\\d)'}
        """
    )

    result = project.run("--failmodes-per-trace")

    assert result.parseoutcomes() == {"passed": 6, "detected": 3}
    result.stdout.fnmatch_lines(["failmodes.yaml D...D..D. *"])


def test_a_bad_timeout_setting_is_one_line(project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILMODES_REGEX_TIMEOUT", "never")
    definition_error(
        project,
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: a
            rule: {regex: x}
        """,
        "failmodes.yaml:4: failure_modes[0].rule.regex: FAILMODES_REGEX_TIMEOUT='never': expected a number of seconds greater than 0",
    )


# -- datasets ----------------------------------------------------------------------------

MODE = """
    dataset: {path}
    failure_modes:
      - name: leaks
        rule: {{regex: LEAK}}
"""


def dataset_error(project, path: str, line: str) -> None:
    project.definitions(MODE.format(path=path))
    result = project.run()
    # per mode, a dataset error fails every mode of its file
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert_one_line(result, line)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_as_dataset_is_refused_without_blocking(project) -> None:
    (project.path / "data").mkdir()
    os.mkfifo(project.path / "data" / "traces.jsonl")
    dataset_error(project, "data/traces.jsonl", "data/traces.jsonl: not a regular file (a FIFO); give the path of a dataset file")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this platform")
def test_dev_zero_as_dataset_is_refused(project) -> None:
    project.definitions(MODE.format(path="{path: /dev/zero, format: jsonl}"))
    result = project.run()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert_one_line(result, "/dev/zero: not a regular file (a character device); give the path of a dataset file")


def test_an_empty_directory_as_dataset_is_one_line(project) -> None:
    # a folder is a dataset of its data files (docs/trace-formats.md); one with none is an error
    (project.path / "data" / "traces.jsonl").mkdir(parents=True)
    dataset_error(project, "data/traces.jsonl", "data/traces.jsonl: the folder holds no .jsonl, .json or .csv file (optionally .gz); it is empty")



def test_a_long_csv_cell_is_read(project) -> None:
    long = "x" * 140_000 + " LEAK"
    project.file("data/traces.csv", f'id,output\nt1,fine\nt2,"{long}"\n')
    project.definitions(MODE.format(path="data/traces.csv"))

    result = project.run("--failmodes-per-trace")

    assert result.parseoutcomes() == {"passed": 1, "detected": 1}


def test_a_csv_cell_beyond_the_limit_is_one_line(project, monkeypatch: pytest.MonkeyPatch) -> None:
    import csv

    from pytest_failmodes.readers import _source

    # the real limit is 16M characters; a smaller one keeps the test fast
    monkeypatch.setattr(_source, "MAX_CSV_CELL", 1000)
    old = csv.field_size_limit(1000)
    try:
        project.file("data/traces.csv", f'id,output\nt1,fine\nt2,"{"x" * 2000}"\n')
        dataset_error(
            project, "data/traces.csv",
            "data/traces.csv:3: a cell is longer than 1,000 characters, the limit for CSV cells; use JSONL for larger values",
        )
    finally:
        csv.field_size_limit(old)


@pytest.mark.parametrize("depth", [250, 1000, 5000])
def test_deep_nesting_is_one_line(project, depth: int) -> None:
    # written by hand: json.dumps itself stops at Python's recursion limit
    deep = "[" * depth + '"LEAK"' + "]" * depth
    project.file("data/traces.jsonl", f'{{"id": "t1", "output": "fine", "metadata": {{"deep": {deep}}}}}\n{{"id": "t2", "output": "x"}}\n')
    key = " metadata:" if depth < sys.getrecursionlimit() // 2 else ""
    dataset_error(project, "data/traces.jsonl", f"data/traces.jsonl:1:{key} nested more than 200 levels deep; flatten the row")


def test_nesting_below_the_limit_is_read(project) -> None:
    value: object = "LEAK"
    for _ in range(150):
        value = {"k": value}
    project.traces([{"id": "t1", "output": json.dumps(value)}, {"id": "t2", "output": "fine", "metadata": {"d": value}}])
    project.definitions(MODE.format(path="data/traces.jsonl"))

    result = project.run("--failmodes-per-trace", "--failmodes-html=r.html", "--failmodes-report=r.json")

    assert result.parseoutcomes() == {"passed": 1, "detected": 1}
    assert (project.path / "r.html").is_file() and (project.path / "r.json").is_file()


def test_deep_nesting_in_a_csv_json_cell_is_one_line(project) -> None:
    cell = json.dumps({"deep": json.loads("[" * 300 + "]" * 300)}).replace('"', '""')
    project.file("data/traces.csv", f'id,output,metadata\nt1,fine,"{cell}"\n')
    dataset_error(project, "data/traces.csv", "data/traces.csv:2: metadata: nested more than 200 levels deep; flatten the row")


@pytest.mark.parametrize(
    ("name", "data", "line"),
    [
        ("traces.jsonl", b'\xef\xbb\xbf{"id": "a", "output": "caf\xe9"}\n', "data/traces.jsonl:1: not valid UTF-8 (byte 0xe9); save the file as UTF-8"),
        ("traces.jsonl", b'{"id": "a", "output": "caf\xe9"}\n', "data/traces.jsonl:1: not valid UTF-8 (byte 0xe9); save the file as UTF-8"),
        (
            "traces.json",
            b'\xef\xbb\xbf[\n{"id": "a", "output": "x"},\n{"id": "b", "output": "\xff"}\n]\n',
            "data/traces.json:3: not valid UTF-8 (byte 0xff); save the file as UTF-8",
        ),
        ("traces.json", b'\xef\xbb\xbf[{"id": "a", "output": "\xc3"}]\n', "data/traces.json:1: not valid UTF-8 (byte 0xc3); save the file as UTF-8"),
    ],
    ids=["jsonl-bom", "jsonl-no-bom", "json-bom-line-3", "json-bom-truncated"],
)
def test_invalid_utf8_names_the_right_byte_and_line_with_a_bom(project, name: str, data: bytes, line: str) -> None:
    (project.path / "data").mkdir()
    (project.path / "data" / name).write_bytes(data)
    dataset_error(project, f"data/{name}", line)


def test_a_bom_alone_is_not_an_error(project) -> None:
    (project.path / "data").mkdir()
    (project.path / "data" / "traces.json").write_bytes(b'\xef\xbb\xbf[{"id": "a", "output": "LEAK"}]')
    project.definitions(MODE.format(path="data/traces.json"))
    result = project.run("--failmodes-per-trace")
    assert result.parseoutcomes() == {"detected": 1}


@pytest.mark.parametrize(
    ("row", "line"),
    [
        ({"id": "t9", "output": "x", "messages": [{"role": "user", "content": 5}]}, "data/traces.jsonl:3: messages[0].content: input should be a valid string"),
        ({"id": "t9", "output": "x", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 3}}]}]},
         "data/traces.jsonl:3: messages[0].tool_calls[0].function.arguments: input should be a valid string"),
    ],
    ids=["content", "arguments"],
)
def test_dataset_keys_carry_no_pydantic_union_tags(project, row: dict, line: str) -> None:
    project.traces([*TRACES, row])
    dataset_error(project, "data/traces.jsonl", line)


def test_a_dataset_outside_the_rootdir_is_named_in_the_run_header(project) -> None:
    outside = project.path.parent / f"{project.path.name}-data"
    outside.mkdir()
    (outside / "traces.jsonl").write_text(json.dumps({"id": "t1", "output": "fine"}) + "\n", encoding="utf-8")
    project.file("pytest.ini", "[pytest]\n")
    project.definitions(MODE.format(path=f"../{outside.name}/traces.jsonl"))

    result = project.run()

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [f"failmodes: dataset {outside / 'traces.jsonl'} (named in failmodes.yaml) is outside the rootdir {project.path}"]
    )


def test_a_dataset_inside_the_rootdir_gets_no_note(project) -> None:
    project.traces(TRACES)
    project.definitions(MODE.format(path="data/traces.jsonl"))
    result = project.run()
    assert result.ret == pytest.ExitCode.OK
    assert "outside the rootdir" not in result.stdout.str()


LABELLED = """
    dataset: data/traces.jsonl
    labels: labels.jsonl
    failure_modes:
      - name: leaks
        rule: {regex: LEAK}
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_as_labels_file_is_refused_without_blocking(project) -> None:
    os.mkfifo(project.path / "labels.jsonl")
    definition_error(project, LABELLED, "labels.jsonl: cannot read labels file: not a regular file")


def test_a_deeply_nested_label_row_is_one_line(project) -> None:
    (project.path / "labels.jsonl").write_text('{"id": "t1", "mode": "leaks", "verdict": ' + "[" * 5000 + "]" * 5000 + "}\n")
    definition_error(project, LABELLED, "labels.jsonl:1: nested too deeply: a label row is a flat {id, mode, verdict, note?}")
