"""Nothing that matches nothing passes: typed values, names no trace has, empty modes, cohort labels."""

from __future__ import annotations

import json
import random
import sys
from typing import Any

import pytest

MESSAGES = [
    {"role": "user", "content": "get me a human"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "transfer_to_human_agents", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "queued"},
    {"role": "assistant", "content": "A person will reply soon."},
]


def rows(n: int = 100) -> list[dict[str, Any]]:
    """Traces as a JSON dataset writes them: ``reward`` is the number 0.0 or 1.0."""
    rng = random.Random(7)
    out = []
    for i in range(n):
        out.append(
            {
                "id": f"t{i:03d}",
                "messages": MESSAGES,
                "reward": 0.0 if rng.random() < 0.57 else 1.0,
                "route": ("billing", "shipping")[i % 2],
            }
        )
    return out


def esc(line: str) -> str:
    """A literal line as an fnmatch pattern that may also hold ``*``: brackets match themselves."""
    return line.replace("[", "[[]")


def fails(data: list[dict[str, Any]]) -> int:
    return sum(1 for r in data if r["reward"] == 0.0)


# -- typed values ------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["0", "0.0", '"0"', '"0.0"'])
def test_a_numeric_label_matches_however_it_is_written(project, spelling: str) -> None:
    data = rows()
    project.traces(data)
    project.definitions(
        f"""
        dataset: data/traces.jsonl
        cohorts: [reward]
        failure_modes:
          - name: low_reward
            label: {{field: reward, fail_values: [{spelling}], pass_values: [1.0]}}
        """
    )
    result = project.run("--failmodes-report", "r.json")
    assert result.ret == 0
    modes = project.report("r.json")["modes"]
    all_row = modes[0]["cohorts"][0]
    assert (all_row["n"], all_row["fails"], all_row["errors"]) == (100, fails(data), 0)
    # numbers print canonically: reward=0 and reward=1, whatever the data or definition wrote
    assert [c["cohort"] for c in modes[0]["cohorts"]] == ["all", "reward=0", "reward=1"]
    assert modes[0]["cohorts"][1]["values"] == {"reward": "0"}


def test_booleans_match_true_and_text_true(project) -> None:
    project.traces(
        [
            {"id": "a", "output": "x", "flag": True},
            {"id": "b", "output": "x", "flag": "true"},
            {"id": "c", "output": "x", "flag": "False"},
        ]
    )
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: flagged
            label: {field: flag, fail_values: [true], pass_values: ["false"]}
          - name: only_true
            where: {flag: "TRUE"}
            rule: {regex: x}
        """
    )
    result = project.run("--failmodes-report", "r.json")
    assert result.ret == 0
    flagged, only_true = project.report("r.json")["modes"]
    assert (flagged["cohorts"][0]["n"], flagged["cohorts"][0]["fails"]) == (3, 2)
    assert (only_true["cohorts"][0]["n"], only_true["skipped"]) == (2, 1)


def test_a_value_no_trace_has_is_a_note(project) -> None:
    project.traces(rows(20))
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: low_reward
            label: {field: reward, fail_values: [0.5]}
          - name: some_routes
            where: {route: [billing, shiping]}
            rule: {regex: nothing}
        """
    )
    result = project.run("--failmodes-report", "r.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "note: low_reward: failmodes.yaml:4: failure_modes[0].label.fail_values: '0.5' never occurs in 'reward',"
            " which has 0, 1: it matches no trace",
            "note: some_routes: failmodes.yaml:6: failure_modes[1].where.route: 'shiping' never occurs in 'route',"
            " which has billing, shipping: it matches no trace",
        ]
    )
    assert project.report("r.json")["modes"][1]["notes"][0].endswith("it matches no trace")


def test_a_where_list_means_any_of(project) -> None:
    project.traces(
        [
            {"id": "a", "output": "LEAK", "route": "billing"},
            {"id": "b", "output": "LEAK", "route": "shipping"},
            {"id": "c", "output": "LEAK", "route": "returns"},
        ]
    )
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: leak
            where: {route: [billing, shipping]}
            rule: {regex: LEAK}
            max_fail_rate: 0
        """
    )
    result = project.run("--failmodes-report", "r.json")
    assert result.ret == 1
    mode = project.report("r.json")["modes"][0]
    assert (mode["status"], mode["cohorts"][0]["n"], mode["skipped"]) == ("breached", 2, 1)


# -- names that match nothing --------------------------------------------------------------


TYPOS = [
    (
        "label: {field: rewards, fail_values: [0]}",
        "failmodes.yaml:4: failure_modes[0].label.field: field 'rewards' occurs in no trace of the dataset;"
        " did you mean 'reward'?",
    ),
    (
        "rule: {tool_called: {name: transfer_to_human_agent}}",
        "failmodes.yaml:4: failure_modes[0].rule.tool_called.name: tool 'transfer_to_human_agent' is called in no"
        " trace of the dataset; did you mean 'transfer_to_human_agents'?",
    ),
    (
        "rule: {any: [{regex: x}, {contains: y, field: metadata.rout}]}",
        "failmodes.yaml:4: failure_modes[0].rule.any[1].field: field 'metadata.rout' occurs in no trace of the"
        " dataset; did you mean 'metadata.route'?",
    ),
    (
        "where: {ruote: billing}\n            rule: {regex: x}",
        "failmodes.yaml:4: failure_modes[0].where.ruote: field 'ruote' occurs in no trace of the dataset;"
        " did you mean 'route'?",
    ),
]


@pytest.mark.parametrize(
    ("mode", "error", "xdist"),
    [
        *[(mode, error, ()) for mode, error in TYPOS],
        # xdist workers each evaluate the whole dataset for their modes: one case shows it (they are slow)
        (*TYPOS[0], ("-n", "2")),
    ],
    ids=["label", "tool", "rule-field", "where", "label-n2"],
)
def test_a_name_no_trace_has_breaks_the_mode(project, mode: str, error: str, xdist: tuple[str, ...]) -> None:
    project.traces(rows(30))
    project.definitions(
        f"""
        dataset: data/traces.jsonl
        failure_modes:
          - name: m
            {mode}
          - name: fine
            rule: {{regex: nothing}}
        """
    )
    run = project.run_subprocess if xdist else project.run
    result = run(*xdist, "-p", "no:cacheprovider", "--failmodes-report", "r.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines([f"BROKEN m: {error}", "*1 failed, 1 passed*"])
    m, fine = project.report("r.json")["modes"]
    assert (m["status"], m["broken"], fine["status"]) == ("broken", error, "ok")


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "n2"])
def test_names_are_checked_over_every_trace_per_trace_too(project, xdist: tuple[str, ...]) -> None:
    data = rows(30)
    data[29]["escalated"] = True  # one trace has it: the field exists
    project.traces(data)
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: escalation
            where: {escalated: {exists: true}}
            rule: {regex: nothing}
          - name: typo
            where: {esclated: {exists: true}}
            rule: {regex: nothing}
        """
    )
    run = project.run_subprocess if xdist else project.run
    result = run(*xdist, "-p", "no:cacheprovider", "--failmodes-per-trace", "--failmodes-report", "r.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "BROKEN typo: failmodes.yaml:7: failure_modes[1].where.esclated: field 'esclated' occurs in no trace of"
            " the dataset; did you mean 'escalated'?",
            "*1 failed, 1 passed*",
        ]
    )
    escalation, typo = project.report("r.json")["modes"]
    assert (escalation["status"], escalation["cohorts"][0]["n"]) == ("ok", 1)
    assert typo["status"] == "broken"


def test_a_cohort_field_no_trace_has_breaks_every_mode(project) -> None:
    project.traces(rows(10))
    project.definitions(
        """
        dataset: data/traces.jsonl
        cohorts: [route, tier]
        failure_modes:
          - name: a
            rule: {regex: nothing}
          - name: b
            rule: {regex: nothing}
        """
    )
    result = project.run()
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "BROKEN a: failmodes.yaml:2: cohorts[1]: field 'tier' occurs in no trace of the dataset",
            "BROKEN b: failmodes.yaml:2: cohorts[1]: field 'tier' occurs in no trace of the dataset",
            "*2 failed*",
        ]
    )


def test_a_fields_mapping_to_a_column_no_row_has_breaks_every_mode(project) -> None:
    project.traces([{"trace_id": "a", "query": "q", "response": "r", "route": "x"}])
    project.definitions(
        """
        dataset:
          path: data/traces.jsonl
          fields: {id: trace_id, input: qeury, output: response}
        failure_modes:
          - name: a
            rule: {regex: nothing}
        """
    )
    result = project.run()
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "BROKEN a: failmodes.yaml:3: dataset.fields.input: column 'qeury' (mapped onto input) occurs in no row of"
            " the dataset; did you mean 'query'?",
        ]
    )


def test_a_python_mode_checks_its_where_and_cohorts(project) -> None:
    project.traces(rows(10))
    project.file(
        "test_modes.py",
        """
        from pytest_failmodes import failure_mode

        @failure_mode(dataset="data/traces.jsonl", cohorts=["rout"], where={"route": "billing"})
        def test_short(trace):
            assert len(trace.output) < 500
        """,
    )
    result = project.run("test_modes.py")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["BROKEN test_short: test_modes.py:3: cohorts[0]: field 'rout' occurs in no trace of the dataset; did you mean 'route'?"]
    )


# -- empty modes -----------------------------------------------------------------------------


EMPTY = """
    dataset: data/traces.jsonl
    {gate}
    failure_modes:
      - name: refunds
        where: {{route: refunds}}
        rule: {{regex: nothing}}
        {allow}
      - name: fine
        rule: {{regex: nothing}}
"""


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "n2"])
@pytest.mark.parametrize("per_trace", [(), ("--failmodes-per-trace",)], ids=["per-mode", "per-trace"])
def test_a_mode_whose_every_trace_was_skipped_is_empty_and_fails(project, xdist: tuple[str, ...], per_trace: tuple[str, ...]) -> None:
    project.traces(rows(20))
    project.definitions(EMPTY.format(gate="", allow=""))
    run = project.run_subprocess if xdist else project.run
    result = run(
        *xdist, *per_trace, "-p", "no:cacheprovider", "--failmodes-report", "r.json", "--junitxml", "j.xml",
        "--failmodes-markdown", "r.md",
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "failure mode 'refunds' is empty:",
            "  empty: all 20 traces were skipped (where:, or no trace has the label), so nothing was checked;"
            " set allow_empty: true if that is expected",
            "refunds * all * 0 * 0 * - * - * - * FAIL (empty: all 20 traces skipped)",
            esc("note: refunds: failmodes.yaml:5: failure_modes[0].where.route: 'refunds' never occurs in 'route',*"),
        ]
    )
    refunds, fine = project.report("r.json")["modes"]
    assert (refunds["status"], refunds["breaches"], refunds["skipped"]) == ("empty", ["empty"], 20)
    assert [(c["cohort"], c["n"]) for c in refunds["cohorts"]] == [("all", 0)]
    assert fine["status"] == "ok"
    assert project.report("r.json")["passed"] is False
    assert "| refunds | all | 0 | 0 | - | - | - | FAIL (empty: all 20 traces skipped) |" in (project.path / "r.md").read_text()
    junit = (project.path / "j.xml").read_text()
    assert 'name="gate[all]"' in junit and "empty: all 20 traces were skipped, so nothing was checked" in junit


@pytest.mark.parametrize(
    ("gate", "allow"),
    [("", "allow_empty: true"), ("gate: {allow_empty: true}", "")],
    ids=["mode", "file-gate"],
)
def test_allow_empty_lets_an_empty_mode_pass(project, gate: str, allow: str) -> None:
    project.traces(rows(20))
    project.definitions(EMPTY.format(gate=gate, allow=allow))
    result = project.run("--failmodes-report", "r.json", "--failmodes-html", "r.html")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["refunds * all * 0 * 0 * - * - * - * empty (allowed)"])
    report = project.report("r.json")
    assert (report["modes"][0]["status"], report["modes"][0]["breaches"], report["passed"]) == ("empty", [], True)
    html = (project.path / "r.html").read_text()
    assert "PASSED" in html and "empty (allowed)" in html


# -- cohort labels ----------------------------------------------------------------------------


def test_cohort_labels_do_not_collide_and_pair_with_a_baseline(project) -> None:
    project.traces(
        [
            {"id": "a", "output": "LEAK", "route": "x & persona=y", "persona": "p"},
            {"id": "b", "output": "ok", "route": "x", "persona": "y"},
        ]
    )
    project.definitions(
        """
        dataset: data/traces.jsonl
        cohorts: [route, [route, persona]]
        failure_modes:
          - name: leak
            rule: {regex: LEAK}
        """
    )
    result = project.run("--failmodes-report", "r.json", "--failmodes-save-baseline", "base.json")
    assert result.ret == 0
    cohorts = project.report("r.json")["modes"][0]["cohorts"]
    labels = {c["cohort"]: (c["n"], c["fails"], c.get("values")) for c in cohorts}
    assert labels == {
        "all": (2, 1, None),
        'route="x & persona=y"': (1, 1, {"route": "x & persona=y"}),
        "route=x": (1, 0, {"route": "x"}),
        'route="x & persona=y" & persona=p': (1, 1, {"route": "x & persona=y", "persona": "p"}),
        "route=x & persona=y": (1, 0, {"route": "x", "persona": "y"}),
    }
    again = project.run("--failmodes-report", "again.json", "--failmodes-baseline", "base.json")
    assert again.ret == 0
    paired = {c["cohort"]: c.get("baseline") for c in project.report("again.json")["modes"][0]["cohorts"]}
    assert all(b is not None and b["base_n"] == 1 for k, b in paired.items() if k != "all"), paired


def test_failmodes_compare_reads_empty_modes(project) -> None:
    project.traces(rows(10))
    project.definitions(EMPTY.format(gate="", allow=""))
    project.run("--failmodes-report", "a.json")
    project.run("--failmodes-report", "b.json")
    result = project.pytester.run(sys.executable, "-m", "pytest_failmodes.cli", "compare", "a.json", "b.json")
    assert result.ret in (0, 1), result.stderr.str()
    assert "Traceback" not in result.stderr.str()
    result.stdout.fnmatch_lines(["*refunds*"])
    assert json.loads((project.path / "a.json").read_text())["modes"][0]["status"] == "empty"
