"""``failmodes steps``: first failing step, exposure-normalised transitions, Ochiai."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from pytest_failmodes.analysis.steps import START, StepView, analyse_steps, ochiai, trace_steps
from pytest_failmodes.cli import main
from pytest_failmodes.stats import wilson_interval
from pytest_failmodes.trace import Trace


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
    assert trace_steps(t) == [StepView("c0", "search", False), StepView("c1", "book", True), StepView("msg5", "assistant", False)]


def test_cli_on_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = []
    for i in range(10):
        broken = i < 4
        tools = [("search", "ok"), ("book", "Error: no seat" if broken else "booked")]
        rows.append({"id": f"t{i}", "messages": _messages(tools), "failed": int(broken)})
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["steps", str(data), "--outcome", "failed", "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "10 traces, 4 failing; first failing step known for 4 (0 not localised)"
    row = next(line for line in out if line.startswith("search "))
    assert "4/10 (40%)" in row
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["transitions"] == [{"src": "search", "dst": "book", "count": 4, "exposure": 10, "rate": 0.4, "ci": list(wilson_interval(4, 10))}]
    assert main(["steps", str(data), "--outcome", "faled"]) == 2
    assert "no trace has the outcome field 'faled'; did you mean 'failed'?" in capsys.readouterr().err
