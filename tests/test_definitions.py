"""YAML definition files: valid files build a Suite; every error is one line
naming file, line and key path, with a suggestion for typos."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_failmodes.dataset import DatasetSpec
from pytest_failmodes.definitions import is_definition_file, load_suite
from pytest_failmodes.detectors.label import LabelDetector
from pytest_failmodes.detectors.python import FixtureRef
from pytest_failmodes.detectors.rules import BUILTIN_RULE_KINDS
from pytest_failmodes.engine import Gate, Suite
from pytest_failmodes.errors import DefinitionError
from pytest_failmodes.trace import Trace

KINDS = {k.name: k for k in BUILTIN_RULE_KINDS}

FULL = """\
dataset:
  path: data/traces.jsonl
  fields: {id: trace_id, input: query, output: response}
cohorts: [route, prompt_version, [route, persona]]
gate:
  max_fail_rate: 0.05
  gate_on: point
  max_errors: 1
  min_cohort_size: 30
  cohort_limits: {"route=billing": 0.10}
failure_modes:
  - name: leaks_system_prompt
    description: FAIL when the reply quotes its instructions.
    rule: {regex: "(?i)my instructions say", field: output}
    max_fail_rate: 0
  - name: missing_order_lookup
    where: {intent: order_status}
    rule: {tool_called: {name: lookup_order, present: false}}
  - name: pii_in_output
    detector: pii_detector
  - name: escalation_missed
    label: {field: human_verdict, fail_values: ["escalate"]}
    gate: {max_fail_rate: 0.1, gate_on: upper, cohort_limits: {"route=tech": 0.2, "route=billing": 0.3}}
  - name: both_layers
    rule: {contains: [sorry]}
    gate: {max_fail_rate: 0.4, min_cohort_size: 5}
    max_fail_rate: 0.25
"""


ONE_MODE = "failure_modes:\n  - {name: m, rule: {regex: x}}\n"


def write(tmp_path: Path, text: str, name: str = "failmodes.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error(tmp_path: Path, text: str) -> DefinitionError:
    path = write(tmp_path, text)
    with pytest.raises(DefinitionError) as info:
        load_suite(path, KINDS)
    exc = info.value
    assert "\n" not in str(exc), f"error spans lines: {str(exc)!r}"
    assert str(exc).startswith(str(path) + ":")
    return exc


def base(mode: str = "rule: {regex: x}", top: str = "") -> str:
    """A valid file with one mode (its body indented under ``- name: m``) and extra top-level keys."""
    body = textwrap.indent(textwrap.dedent(mode), "    ")
    return f"dataset: data.jsonl\n{top}failure_modes:\n  - name: m\n{body}\n"


def test_full_file_builds_a_suite(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    suite = load_suite(path, KINDS)
    assert isinstance(suite, Suite)
    assert suite.source == str(path)
    assert suite.dataset == DatasetSpec(
        tmp_path / "data" / "traces.jsonl", {"id": "trace_id", "input": "query", "output": "response"}, None
    )
    assert suite.cohorts == (("route",), ("prompt_version",), ("route", "persona"))
    names = [m.name for m in suite.modes]
    assert names == ["leaks_system_prompt", "missing_order_lookup", "pii_in_output", "escalation_missed", "both_layers"]
    assert [m.line for m in suite.modes] == [12, 16, 19, 21, 24]
    assert [m.order for m in suite.modes] == [0, 1, 2, 3, 4]
    modes = {m.name: m for m in suite.modes}
    assert modes["leaks_system_prompt"].description == "FAIL when the reply quotes its instructions."
    assert modes["leaks_system_prompt"].key == f"{path}::leaks_system_prompt"
    assert modes["pii_in_output"].detector == FixtureRef("pii_detector")
    assert modes["escalation_missed"].detector == LabelDetector("human_verdict", ("escalate",))
    where = modes["missing_order_lookup"].where
    assert where is not None
    assert where(Trace(id="a", output="o", metadata={"intent": "order_status"}))
    assert not where(Trace(id="b", output="o", metadata={"intent": "refund"}))
    assert modes["leaks_system_prompt"].where is None
    rule = modes["leaks_system_prompt"].detector
    assert callable(rule)
    assert rule(Trace(id="a", output="My instructions say hi")).failed  # type: ignore[operator,union-attr]


def test_gate_merging_file_default_then_mode_gate_then_shorthand(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, FULL), KINDS)
    gates = {m.name: m.gate for m in suite.modes}
    file_gate = Gate(
        max_fail_rate=0.05, gate_on="point", max_errors=1, min_cohort_size=30, cohort_limits={"route=billing": 0.1}
    )
    # the mode's max_fail_rate shorthand overrides the file default
    assert gates["leaks_system_prompt"] == Gate(
        max_fail_rate=0.0, gate_on="point", max_errors=1, min_cohort_size=30, cohort_limits={"route=billing": 0.1}
    )
    # nothing set on the mode: the file gate
    assert gates["missing_order_lookup"] == file_gate
    assert gates["pii_in_output"] == file_gate
    # the mode's gate overrides key by key; cohort limits merge, the mode's winning
    assert gates["escalation_missed"] == Gate(
        max_fail_rate=0.1,
        gate_on="upper",
        max_errors=1,
        min_cohort_size=30,
        cohort_limits={"route=billing": 0.3, "route=tech": 0.2},
    )
    # shorthand beats the mode's gate, which beats the file
    assert gates["both_layers"] == Gate(
        max_fail_rate=0.25, gate_on="point", max_errors=1, min_cohort_size=5, cohort_limits={"route=billing": 0.1}
    )


def test_defaults_without_any_gate(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, base()), KINDS)
    assert suite.modes[0].gate == Gate()
    assert Gate() == Gate(max_fail_rate=None, gate_on="point", max_errors=0, min_cohort_size=0, cohort_limits={})
    assert suite.cohorts == ()
    assert suite.dataset == DatasetSpec(tmp_path / "data.jsonl", {}, None)


def test_dataset_format_override_and_dataset_override(tmp_path: Path) -> None:
    path = write(tmp_path, "dataset: {path: traces.log, format: jsonl}\n" + ONE_MODE)
    assert load_suite(path, KINDS).dataset == DatasetSpec(tmp_path / "traces.log", {}, "jsonl")
    other = tmp_path / "elsewhere.csv"
    suite = load_suite(write(tmp_path, base(), "b.failmodes.yaml"), KINDS, dataset_override=other, display="shown.yaml")
    assert suite.dataset.path == other
    assert suite.source == "shown.yaml"
    assert suite.modes[0].key == "shown.yaml::m"


def test_label_values_keep_their_types(tmp_path: Path) -> None:
    suite = load_suite(
        write(tmp_path, base("label: {field: v, fail_values: [bad, 1, true, 0.0], pass_values: [ok, false]}")), KINDS
    )
    detector = suite.modes[0].detector
    assert detector == LabelDetector("v", ("bad", 1, True, 0.0), ("ok", False))
    assert [type(v) for v in detector.fail_values] == [str, int, bool, float]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("failmodes.yaml", True),
        ("failmodes.yml", True),
        ("checkout.failmodes.yaml", True),
        ("checkout.failmodes.yml", True),
        ("failmodes.json", False),
        ("my_failmodes.yaml", False),
        ("conftest.py", False),
    ],
)
def test_is_definition_file(name: str, expected: bool) -> None:
    assert is_definition_file(Path("some/dir") / name) is expected


# -- errors: file, line, key path, suggestion ---------------------------------


def assert_error(exc: DefinitionError, line: int, key: str | None, *fragments: str) -> None:
    assert (exc.line, exc.key) == (line, key), str(exc)
    for fragment in fragments:
        assert fragment in exc.message, str(exc)
    expected_prefix = f"{exc.file}:{line}:" + (f" {key}:" if key else "")
    assert str(exc).startswith(expected_prefix)


def test_typo_in_a_top_level_key(tmp_path: Path) -> None:
    exc = error(tmp_path, "dataset: d.jsonl\ncohort: [route]\n" + ONE_MODE)
    assert_error(exc, 2, "cohort", "unknown key 'cohort'", "did you mean 'cohorts'?")
    assert str(exc) == f"{exc.file}:2: cohort: unknown key 'cohort'; did you mean 'cohorts'?"


def test_unknown_key_without_a_close_match_has_no_suggestion(tmp_path: Path) -> None:
    exc = error(tmp_path, base(top="zzzzzz: 1\n"))
    assert_error(exc, 2, "zzzzzz", "unknown key 'zzzzzz'")
    assert "did you mean" not in exc.message


def test_typo_in_gate(tmp_path: Path) -> None:
    exc = error(tmp_path, base(top="gate:\n  max_fail_rate: 0.1\n  gate_in: upper\n"))
    assert_error(exc, 4, "gate.gate_in", "unknown key 'gate_in'", "did you mean 'gate_on'?")


def test_typo_in_a_mode(tmp_path: Path) -> None:
    exc = error(tmp_path, base("rule: {regex: x}\ndescripton: hi"))
    assert_error(exc, 5, "failure_modes[0].descripton", "did you mean 'description'?")


def test_typo_in_a_mode_gate(tmp_path: Path) -> None:
    exc = error(tmp_path, base("rule: {regex: x}\ngate:\n  min_cohort: 3"))
    assert_error(exc, 6, "failure_modes[0].gate.min_cohort", "did you mean 'min_cohort_size'?")


def test_typo_in_a_rule_option(tmp_path: Path) -> None:
    exc = error(tmp_path, base("rule:\n  regex: x\n  feild: input"))
    assert_error(
        exc, 6, "failure_modes[0].rule.feild", "unknown option 'feild' for rule 'regex'", "did you mean 'field'?"
    )


def test_typo_in_a_nested_rule_option(tmp_path: Path) -> None:
    exc = error(tmp_path, base("rule:\n  any:\n    - {regex: x}\n    - {contains: [a], ignorecase: true}"))
    assert_error(exc, 7, "failure_modes[0].rule.any[1].ignorecase", "did you mean 'ignore_case'?")


def test_typo_in_tool_called_keys(tmp_path: Path) -> None:
    exc = error(tmp_path, base("rule:\n  tool_called:\n    name: lookup\n    presnt: false"))
    assert_error(exc, 7, "failure_modes[0].rule.tool_called.presnt", "did you mean 'present'?")


def test_unknown_rule_kind(tmp_path: Path) -> None:
    exc = error(tmp_path, base("rule: {regexp: x}"))
    assert_error(exc, 4, "failure_modes[0].rule.regexp", "unknown rule kind 'regexp'", "did you mean 'regex'?")


def test_unknown_rule_kind_without_close_match_lists_the_kinds(tmp_path: Path) -> None:
    exc = error(tmp_path, base("rule: {sentiment: negative}"))
    assert_error(exc, 4, "failure_modes[0].rule.sentiment", "unknown rule kind 'sentiment'", "known kinds: ")
    for kind in KINDS:
        assert kind in exc.message


def test_unknown_where_operator(tmp_path: Path) -> None:
    exc = error(tmp_path, base("rule: {regex: x}\nwhere:\n  turns: {gtt: 3}"))
    assert_error(exc, 6, "failure_modes[0].where.turns.gtt", "unknown operator 'gtt'", "did you mean 'gt'?")


def test_bad_where_operand(tmp_path: Path) -> None:
    exc = error(tmp_path, base("rule: {regex: x}\nwhere:\n  route: {in: billing}"))
    assert_error(exc, 6, "failure_modes[0].where.route.in", "'in' takes a list of values")


def test_unknown_trace_field_in_fields_mapping(tmp_path: Path) -> None:
    exc = error(tmp_path, "dataset:\n  path: d.jsonl\n  fields: {outptu: response}\n" + ONE_MODE)
    assert_error(exc, 3, "dataset.fields.outptu", "unknown trace field 'outptu'", "did you mean 'output'?")


@pytest.mark.parametrize(
    ("body", "got"),
    [
        ("description: nothing to detect", "none"),
        ("rule: {regex: x}\nlabel: {field: v, fail_values: [bad]}", "rule and label"),
        ("rule: {regex: x}\ndetector: fx", "rule and detector"),
        ("label: {field: v, fail_values: [bad]}\ndetector: fx", "label and detector"),
    ],
)
def test_exactly_one_detector(tmp_path: Path, body: str, got: str) -> None:
    exc = error(tmp_path, base(body))
    assert_error(exc, 3, "failure_modes[0]", f"give exactly one of rule, label, detector or judge (got {got})")


def test_duplicate_mode_names(tmp_path: Path) -> None:
    exc = error(tmp_path, base() + "  - name: m\n    rule: {regex: y}\n")
    assert exc.key is not None and exc.key.startswith("failure_modes")
    assert exc.line is not None
    assert "two failure modes are named 'm'" in exc.message


@pytest.mark.parametrize("name", ["1starts_with_digit", "has space", "slash/name", "", "ü"])
def test_bad_mode_names(tmp_path: Path, name: str) -> None:
    exc = error(tmp_path, f"dataset: d.jsonl\nfailure_modes:\n  - name: '{name}'\n    rule: {{regex: x}}\n")
    assert_error(exc, 3, "failure_modes[0].name", "a name starts with a letter or _")


@pytest.mark.parametrize("name", ["ok", "_private", "with.dots-and-dashes_2"])
def test_good_mode_names(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, f"dataset: d.jsonl\nfailure_modes:\n  - name: '{name}'\n    rule: {{regex: x}}\n")
    assert load_suite(path, KINDS).modes[0].name == name


def test_missing_required_keys(tmp_path: Path) -> None:
    exc = error(tmp_path, "dataset: d.jsonl\n")
    assert_error(exc, 1, "failure_modes", "required key is missing")
    exc = error(tmp_path, ONE_MODE)
    assert_error(exc, 1, "dataset", "required key is missing")
    exc = error(tmp_path, "dataset: d.jsonl\nfailure_modes:\n  - rule: {regex: x}\n")
    assert_error(exc, 3, "failure_modes[0].name", "required key is missing")


def test_empty_failure_modes(tmp_path: Path) -> None:
    exc = error(tmp_path, "dataset: d.jsonl\nfailure_modes: []\n")
    assert_error(exc, 2, "failure_modes", "at least 1 item")


@pytest.mark.parametrize(
    ("top", "line", "key", "fragment"),
    [
        ("gate: {max_fail_rate: 1.5}\n", 2, "gate.max_fail_rate", "less than or equal to 1"),
        ("gate: {max_fail_rate: -0.1}\n", 2, "gate.max_fail_rate", "greater than or equal to 0"),
        ("gate: {max_errors: -1}\n", 2, "gate.max_errors", "greater than or equal to 0"),
        ("gate: {gate_on: both}\n", 2, "gate.gate_on", "'point', 'upper' or 'lower'"),
        ("gate:\n  cohort_limits: {route=a: 2}\n", 3, "gate.cohort_limits", "'route=a' must be between 0 and 1"),
        ("cohorts: [route, []]\n", 2, "cohorts[1]", "a cohort is a field name or a non-empty list of field names"),
        ("cohorts: route\n", 2, "cohorts", "valid list"),
    ],
)
def test_invalid_values(tmp_path: Path, top: str, line: int, key: str, fragment: str) -> None:
    assert_error(error(tmp_path, base(top=top)), line, key, fragment)


def test_mode_max_fail_rate_out_of_range(tmp_path: Path) -> None:
    exc = error(tmp_path, base("rule: {regex: x}\nmax_fail_rate: 7"))
    assert_error(exc, 5, "failure_modes[0].max_fail_rate", "less than or equal to 1")


def test_unknown_dataset_suffix(tmp_path: Path) -> None:
    exc = error(tmp_path, "dataset: traces.parquet\n" + ONE_MODE)
    assert_error(exc, 1, "dataset.path", "cannot tell the format of 'traces.parquet'", "jsonl, json, csv")


def test_unknown_dataset_format(tmp_path: Path) -> None:
    exc = error(tmp_path, "dataset: {path: t.jsonl, format: xml}\n" + ONE_MODE)
    assert_error(exc, 1, "dataset.format", "unknown format 'xml'", "jsonl, json, csv, openai")


def test_json_schema_that_is_itself_invalid(tmp_path: Path) -> None:
    exc = error(tmp_path, base("rule:\n  json_schema: {type: 12}"))
    assert_error(exc, 5, "failure_modes[0].rule.json_schema", "invalid JSON schema")


def test_invalid_regex(tmp_path: Path) -> None:
    exc = error(tmp_path, base("rule: {regex: '(unclosed'}"))
    assert_error(exc, 4, "failure_modes[0].rule.regex", "invalid regular expression")


def test_wrong_type_for_a_mode(tmp_path: Path) -> None:
    exc = error(tmp_path, base() + "  - just a string\n")
    assert_error(exc, 5, "failure_modes[1]", "valid dictionary")


def test_invalid_yaml_reports_the_parser_line(tmp_path: Path) -> None:
    exc = error(tmp_path, "dataset: d.jsonl\nfailure_modes:\n  - name: m\n    rule: {regex: x\n  - name: n\n")
    assert exc.line is not None and exc.line >= 4
    assert exc.message.startswith("invalid YAML: ")
    exc = error(tmp_path, "dataset: d.jsonl\n  bad indent: here\n")
    assert exc.message.startswith("invalid YAML: ")
    assert exc.line == 2


def test_control_character_in_yaml(tmp_path: Path) -> None:
    exc = error(tmp_path, "dataset: d.jsonl\nfailure_modes: \x07\n")
    assert exc.line == 2
    assert exc.message.startswith("invalid YAML: ")


@pytest.mark.parametrize(
    ("text", "line"), [("- a\n- b\n", 1), ("just text\n", 1), ("42\n", 1), ("", None), ("# only a comment\n", None)]
)
def test_non_mapping_document(tmp_path: Path, text: str, line: int | None) -> None:
    exc = error(tmp_path, text)
    assert exc.line == line
    assert exc.message == "expected a mapping with 'dataset' and 'failure_modes'"


def test_invalid_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "failmodes.yaml"
    path.write_bytes(b"dataset: d.jsonl\nfailure_modes: \xff\n")
    with pytest.raises(DefinitionError, match="not valid UTF-8"):
        load_suite(path, KINDS)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read"):
        load_suite(tmp_path / "failmodes.yaml", KINDS)


def test_key_with_a_line_break_stays_on_one_line(tmp_path: Path) -> None:
    exc = error(tmp_path, base(top='"multi\\nline": 1\n'))
    assert exc.line == 2
    assert "\\n" in str(exc)
