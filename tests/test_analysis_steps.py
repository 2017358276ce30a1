"""``failmodes steps``: first failing step, exposure-normalised transitions, Ochiai."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from pytest_failmodes.analysis.steps import START, StepView, analyse_steps, message_step, ochiai, step_lines, trace_steps
from pytest_failmodes.cli import main
from pytest_failmodes.stats import wilson_interval
from pytest_failmodes.trace import Trace

from agent_data import AGENT_MODES, agent_rows


def _seq(*names: str, fail_at: int | None = None) -> list[StepView]:
    return [StepView(f"s{i}", n, i == fail_at) for i, n in enumerate(names)]


def test_matrix_counts_and_exposure() -> None:
    steps = {
        # passing traces: all reach search, two reach book
        "p1": _seq("search", "book", "reply"),
        "p2": _seq("search", "book", "reply"),
        "p3": _seq("search", "reply"),
        # failing: two break at book after search, one breaks at search first
        "f1": _seq("search", "book", fail_at=1),
        "f2": _seq("search", "book", "reply", fail_at=1),
        "f3": _seq("search", fail_at=0),
        # failing, not localised
        "f4": _seq("search", "reply"),
    }
    fails = {t: t.startswith("f") for t in steps}
    a = analyse_steps(steps, fails)
    assert a.fails == 4 and a.localised == 3 and a.unlocalised == ["f4"]
    cells = {(t.src, t.dst): (t.count, t.exposure) for t in a.transitions}
    # search was completed by p1 p2 p3 f1 f2 f4 (f3 failed in it): exposure 6
    assert cells == {("search", "book"): (2, 6), (START, "search"): (1, 7)}
    t = next(t for t in a.transitions if t.src == "search")
    assert t.rate == pytest.approx(2 / 6) and t.ci == pytest.approx(wilson_interval(2, 6))
    per_state = {s.state: (s.first_failures, s.reached) for s in a.state_failures}
    # book was attempted by p1 p2 f1 f2
    assert per_state["book"] == (2, 4) and per_state["search"] == (1, 7)
    rows, cols, _ = a.matrix()
    assert rows == [START, "search"] and cols == ["search", "book"]


def test_ochiai_known_values() -> None:
    assert ochiai(2, 0, 4) == pytest.approx(2 / math.sqrt(8))
    assert ochiai(0, 5, 4) == 0.0 and ochiai(0, 0, 0) == 0.0
    steps = {"p": _seq("a"), "f1": _seq("a", "b"), "f2": _seq("b")}
    a = analyse_steps(steps, {"p": False, "f1": True, "f2": True})
    scores = {s.name: s.score for s in a.suspicion}
    assert scores["b"] == pytest.approx(1.0)  # in every failing trace, no passing one
    assert scores["a"] == pytest.approx(1 / math.sqrt(2 * 2))
    assert [s.name for s in a.suspicion] == ["b", "a"]


def test_noted_first_failing_step_by_id_name_or_position() -> None:
    steps = {"f1": _seq("a", "b", "c"), "f2": _seq("a", "b", "c"), "f3": _seq("a", "b", "c"), "f4": _seq("a", "b")}
    a = analyse_steps(steps, dict.fromkeys(steps, True), {"f1": "s2", "f2": "b", "f3": "1", "f4": "zzz"})
    assert a.first_failing == {"f1": ("s2", "c"), "f2": ("s1", "b"), "f3": ("s0", "a")}
    assert any("'zzz' is none of its steps" in w for w in a.warnings)


def test_order_puts_states_in_pipeline_order_and_names_unknown_ones() -> None:
    steps = {"f": _seq("b", "a", fail_at=1), "p": _seq("b", "a")}
    assert analyse_steps(steps, {"f": True, "p": False}, order=["a", "b"]).states == ["a", "b"]
    from pytest_failmodes.errors import FailmodesError

    with pytest.raises(FailmodesError, match="state 'bb' is no step of any trace; did you mean 'b'"):
        analyse_steps(steps, {"f": True, "p": False}, order=["bb"])


def _messages(tools: list[tuple[str, str]]) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
    for k, (name, result) in enumerate(tools):
        msgs.append({"role": "assistant", "content": None, "tool_calls": [{"id": f"c{k}", "type": "function", "function": {"name": name, "arguments": "{}"}}]})
        msgs.append({"role": "tool", "tool_call_id": f"c{k}", "name": name, "content": result})
    msgs.append({"role": "assistant", "content": "done"})
    return msgs


def test_steps_derived_from_messages() -> None:
    t = Trace(id="x", messages=_messages([("search", "[...]"), ("book", "Error: payment does not add up")]))
    # index: the position in trace.steps (msg1 and msg3 only called tools: no state of their own)
    assert trace_steps(t) == [StepView("c0", "search", False, 1), StepView("c1", "book", True, 3), StepView("msg5", "assistant", False, 4)]


def test_message_marks_of_the_review_page_become_steps() -> None:
    t = Trace(id="x", messages=_messages([("search", "[...]"), ("book", "booked")]))
    # message 1 only calls search: its call; message 4 is book's result; message 0 (the user) precedes c0
    assert [message_step(t, f"message:{i}") for i in (0, 1, 4, 5)] == ["c0", "c0", "c1", "msg5"]
    assert message_step(t, "c1") == "c1" and message_step(t, "message:99") == "message:99"


def test_a_mode_that_names_its_step_localises_the_first_failure() -> None:
    steps = {
        # f1: a mode names b, another names c: the earliest, b
        "f1": _seq("a", "b", "c"),
        # f2: an error status at c, a mode at b: b is earlier
        "f2": _seq("a", "b", "c", fail_at=2),
        # f3: a reviewer's note wins over a mode
        "f3": _seq("a", "b", "c"),
        # f4: a mode names a step by index only; f5: a step that is no state (an LLM turn that only called tools)
        "f4": [StepView("x0", "a", False, 0), StepView("x1", "b", False, 2)],
        "f5": [StepView("y0", "a", False, 0), StepView("y1", "b", False, 2)],
        # f6: a mode names a step the trace does not have
        "f6": _seq("a"),
        "p": _seq("a", "b", "c"),
    }
    marked = {
        "f1": [("late", ("s2", 2)), ("early", ("s1", 1))],
        "f2": [("early", ("s1", None))],
        "f3": [("early", ("s2", None))],
        "f4": [("m", (None, 2))],
        "f5": [("m", ("llm-turn", 1))],
        "f6": [("m", ("gone", None))],
    }
    fails = {t: t.startswith("f") for t in steps}
    a = analyse_steps(steps, fails, {"f3": "a"}, marked=marked)
    assert a.first_failing == {
        "f1": ("s1", "b"), "f2": ("s1", "b"), "f3": ("s0", "a"), "f4": ("x1", "b"), "f5": ("y1", "b"),
    }
    assert a.sources == {"f1": "mode early", "f2": "mode early", "f3": "note", "f4": "mode m", "f5": "mode m"}
    assert a.unlocalised == ["f6"]
    assert a.warnings == ["trace 'f6': mode 'm' names step 'gone', which is none of its steps"]
    cells = {(t.src, t.dst): (t.count, t.exposure) for t in a.transitions}
    # a was completed by every trace but f3 (noted at a) and f6 (not localised, so all of it counts)
    assert cells == {("a", "b"): (4, 6), (START, "a"): (1, 7)}
    assert "first failing step told 1 by a note, 4 by a mode's step" in step_lines(a)


def test_steps_from_a_report_whose_modes_name_their_steps(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    project.traces(agent_rows())
    project.definitions(AGENT_MODES)
    assert project.run("--failmodes-report=r.json").ret == 0
    report = project.report("r.json")
    t0 = report["modes"][0]["traces"][0]
    assert (t0["verdict"], t0["step_id"], t0["step_index"]) == ("fail", "c0", 1)
    assert t0["evidence"] == {"step_id": "c0", "step_index": 1}
    sorry = report["modes"][1]["traces"][0]
    assert (sorry["step_id"], sorry["step_index"], sorry["evidence"]["found"]) == ("msg3", 2, "Sorry")
    assert "step_id" not in report["modes"][1]["traces"][6]  # a pass names no step
    capsys.readouterr()
    out_json = project.path / "s.json"
    # pytester runs in the project: the report names failmodes.yaml, which is at hand
    assert main(["steps", "r.json", "--dataset", "data/traces.jsonl", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "states in the pipeline order of failmodes.yaml"
    assert out[1] == "10 traces, 8 failing; first failing step known for 8 (0 not localised)"
    assert out[2] == "first failing step told 8 by a mode's step"
    saved = json.loads(out_json.read_text())
    assert saved["states"] == ["search", "book", "assistant"]
    assert {(t["src"], t["dst"]): (t["count"], t["exposure"]) for t in saved["transitions"]} == {
        (START, "book"): (6, 10), ("search", "assistant"): (2, 4),
    }
    assert saved["first_failing"]["t0"] == {"step": "c0", "state": "book", "source": "mode books_unsearched"}
    # --order instead: the states it names, then the others by name
    assert main(["steps", "r.json", "--dataset", "data/traces.jsonl", "--order", "assistant", "--json", str(out_json)]) == 0
    assert json.loads(out_json.read_text())["states"] == ["assistant", "book", "search"]
    # without it, nor the definition file at hand: the order the traces show the states in
    (project.path / "failmodes.yaml").rename(project.path / "elsewhere.yaml")
    assert main(["steps", "r.json", "--dataset", "data/traces.jsonl", "--json", str(out_json)]) == 0
    assert json.loads(out_json.read_text())["states"] == ["book", "assistant", "search"]


def test_a_pipeline_state_no_trace_has_is_an_error_where_it_is_written(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    project.traces(agent_rows())
    project.definitions(AGENT_MODES.replace("[search, book, assistant]", "\n      - search\n      - boook"))
    assert project.run("--failmodes-report=r.json").ret == 0
    capsys.readouterr()
    args = ["steps", str(project.path / "r.json"), "--dataset", str(project.path / "data/traces.jsonl")]
    assert main([*args, "--definitions", str(project.path / "failmodes.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("failmodes.yaml:4: pipeline[1]: pipeline state 'boook' is no step of any trace; did you mean 'book'?")
    assert main([*args, "--order", "search", "--definitions", "x.yaml"]) == 2
    assert "give the order once" in capsys.readouterr().err
    # a file named on purpose must name a pipeline
    other = project.file("other.failmodes.yaml", "dataset: data/traces.jsonl\nfailure_modes: [{name: m, rule: {regex: x}}]\n")
    assert main([*args, "--definitions", str(other)]) == 2
    assert capsys.readouterr().err.strip().endswith("other.failmodes.yaml: --definitions: names no pipeline: (a list of step names in pipeline order)")


def test_a_pipeline_names_each_state_once(project: Any) -> None:
    project.traces(agent_rows())
    project.definitions(AGENT_MODES.replace("[search, book, assistant]", "[search, book, search]"))
    result = project.run()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*failmodes.yaml:2: pipeline: 'search' is twice in the pipeline*"])

