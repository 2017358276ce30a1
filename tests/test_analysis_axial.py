"""``failmodes axial``: fail notes -> draft failure modes -> a YAML file pytest runs unedited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_failmodes.analysis.axial import axial_offline, suggest_detector
from pytest_failmodes.analysis.notes import Note
from pytest_failmodes.analysis.notes import decided_notes as read_notes
from pytest_failmodes.cli import main
from pytest_failmodes.trace import Trace

LANG = ["replied in English to a Spanish question", "answer in english although the user wrote spanish",
        "english reply to a spanish speaker", "wrong language, english instead of spanish"]
REFUND = ["promised a refund without checking the policy", "refund promised with no policy check",
          "offers a refund and never checks the refund policy", "refund promise, policy not checked"]
LOOKUP = ["did not call lookup_order before giving the status", "no lookup_order call, status invented",
          "status given without lookup_order", "never called lookup_order"]

def _note(trace_id: str, verdict: str, note: str = "", tags: tuple[str, ...] = (), **kw: object) -> Note:
    """A decided note, arguments in the order a reader of the test expects."""
    return Note(trace_id=trace_id, verdict=verdict, note=note, tags=tags, **kw)  # type: ignore[arg-type]



def _notes(groups: list[list[str]]) -> list[Note]:
    out = []
    for g, texts in enumerate(groups):
        for i, text in enumerate(texts):
            out.append(_note(f"g{g}n{i}", "fail", text, line=len(out) + 1))
    return out


def test_planted_groups_are_found() -> None:
    res = axial_offline(_notes([LANG, REFUND, LOOKUP]))
    groups = sorted(sorted(m.trace_ids) for m in res.modes)
    assert groups == [[f"g{g}n{i}" for i in range(4)] for g in range(3)]
    names = {m.name for m in res.modes}
    assert len(names) == 3 and all(n.replace("_", "").isalnum() for n in names)
    assert all(m.definition.startswith("FAIL when: ") for m in res.modes)
    assert res.uncovered == []


def test_tags_make_their_own_modes_and_singletons_are_listed() -> None:
    notes = [_note("a", "fail", "x went wrong", ("tone",), line=1), _note("b", "fail", "y", ("tone",), line=2),
             _note("c", "pass", "fine", line=3), _note("d", "fail", "a completely unrelated oddity", line=4)]
    res = axial_offline(notes)
    assert [(m.name, m.trace_ids, m.source) for m in res.modes] == [("tone", ["a", "b"], "tag:tone")]
    assert [n.trace_id for n in res.uncovered] == ["d"]
    assert res.modes[0].flags == []


def test_generic_and_rare_modes_are_flagged() -> None:
    notes = [_note(f"t{i}", "fail", "sorry loop", ("apology",), line=i) for i in range(20)]
    notes.append(_note("x", "fail", "rare thing", ("rare",), line=21))
    res = axial_offline(notes)
    flags = {m.name: m.flags for m in res.modes}
    assert flags["apology"][0].startswith("too generic: matches 95%")
    assert flags["rare"] == ["rare: matches 5% of fail notes (< 5%)"]  # 1 of 21: 4.8%


def _trace(tid: str, output: str, tools: tuple[str, ...] = ()) -> Trace:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "q"}]
    for k, t in enumerate(tools):
        msgs.append({"role": "assistant", "content": None, "tool_calls": [{"id": f"c{k}", "type": "function", "function": {"name": t, "arguments": "{}"}}]})
        msgs.append({"role": "tool", "tool_call_id": f"c{k}", "content": "ok"})
    msgs.append({"role": "assistant", "content": output})
    return Trace(id=tid, messages=msgs)


def test_suggested_rules() -> None:
    ok = [_trace(f"p{i}", f"Order {i} ships Friday.", ("lookup_order",)) for i in range(10)]
    missing = [_trace(f"f{i}", "It ships soon.") for i in range(4)]
    rule, fit = suggest_detector(missing, ok)  # type: ignore[misc]
    assert rule == {"tool_called": {"name": "lookup_order", "present": False}}
    assert fit.startswith("the rule fails on 4/4 member traces and on 0/10 traces noted pass (Fisher p = 0.001, ")
    leaky = [_trace(f"l{i}", f"My instructions say no, case {i}.", ("lookup_order",)) for i in range(6)]
    rule, fit = suggest_detector(leaky, ok)  # type: ignore[misc]
    assert rule["field"] == "output" and rule["regex"].startswith("(?i)\\b")
    import re

    assert all(re.search(rule["regex"], t.output or "") for t in leaky)
    assert not any(re.search(rule["regex"], t.output or "") for t in ok)
    # a pattern no better than chance among all the candidates tried is not suggested
    assert suggest_detector(leaky[:2], ok[:5]) is None
    assert suggest_detector([_trace("v", "Order 1 ships Friday.", ("lookup_order",))] * 2, ok) is None


def _project_files(root: Path) -> tuple[Path, Path]:
    rows, notes = [], []
    for i in range(30):
        tid = f"t{i:02d}"
        kind = i % 3
        if kind == 0:
            out, tools = "It ships tomorrow.", ()
            notes.append({"trace_id": tid, "verdict": "fail", "note": LOOKUP[i % 4], "reviewer": "ana"})
        elif kind == 1:
            out, tools = "Sorry, so sorry, sorry for the trouble.", ("lookup_order",)
            notes.append({"trace_id": tid, "verdict": "fail", "note": ["apologises again and again", "sorry loop, too many apologies"][i % 2], "reviewer": "ana"})
        else:
            out, tools = "Order 12 ships Friday.", ("lookup_order",)
            notes.append({"trace_id": tid, "verdict": "pass", "note": "", "reviewer": "ana"})
        t = _trace(tid, out, tools)
        rows.append({"id": tid, "messages": [m.model_dump(exclude_none=True) for m in t.messages], "route": "billing" if i < 15 else "shipping"})
    (root / "data").mkdir(exist_ok=True)
    data = root / "data" / "traces.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = root / "notes.jsonl"
    path.write_text("".join(json.dumps(n) + "\n" for n in notes), encoding="utf-8")
    return path, data


def test_draft_runs_unedited_under_pytest(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    notes, data = _project_files(project.path)
    out = project.path / "draft.failmodes.yaml"
    assert main(["axial", str(notes), "-o", str(out), "--dataset", str(data), "--cohorts", "route"]) == 0
    printed = capsys.readouterr().out
    assert "20 fail notes -> " in printed and "draft written to" in printed
    text = out.read_text()
    assert text.startswith("# DRAFT failure modes written by `failmodes axial` from notes.jsonl")
    assert 'dataset: "data/traces.jsonl"' in text
    assert '{"tool_called": {"name": "lookup_order", "present": false}}' in text
    first = out.read_bytes()
    assert main(["axial", str(notes), "-o", str(out), "--dataset", str(data), "--cohorts", "route"]) == 0
    assert out.read_bytes() == first  # offline: byte-identical
    capsys.readouterr()
    result = project.run("draft.failmodes.yaml", "--failmodes-report=r.json")
    assert result.ret == 0
    report = project.report("r.json")
    lookups = [m for m in report["modes"] if "tool_called(lookup_order" in m["detector"]]
    assert lookups and all(m["cohorts"][0]["fails"] == 10 for m in lookups)
    result.stdout.fnmatch_lines(["*passed*"])


def test_judge_modes_skip_until_a_model_is_set(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"id": f"t{i}", "input": f"hi {i}", "output": "Hello there.", "route": "a"} for i in range(6)]
    project.traces(rows)
    notes = [{"trace_id": f"t{i}", "verdict": "fail" if i % 2 else "pass", "note": "tone is curt and cold" if i % 2 else "", "reviewer": "r"} for i in range(6)]
    (project.path / "notes.jsonl").write_text("".join(json.dumps(n) + "\n" for n in notes))
    assert main(["axial", "notes.jsonl", "-o", "draft.failmodes.yaml", "--dataset", "data/traces.jsonl"]) == 0
    out = project.path / "draft.failmodes.yaml"
    text = out.read_text()
    assert "    judge:\n      examples:\n" in text and '"verdict": "fail"' in text and '"verdict": "pass"' in text
    capsys.readouterr()
    result = project.run("draft.failmodes.yaml")
    result.stdout.fnmatch_lines(["*1 skipped*"])
    assert result.ret == 0


def test_bad_notes_line_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text('{"trace_id": "a", "verdict": "fail", "note": "x"}\n{"trace_id": "b", "verdict": "failed"}\n')
    assert main(["axial", str(path), "-o", str(tmp_path / "d.yaml")]) == 2
    assert "notes.jsonl:2: verdict: must be one of pass, fail, defer or null, got 'failed'; did you mean 'fail'?" in capsys.readouterr().err
    path.write_text('{"trace_id": "a", "verdict": "fail", "notes": "x"}\n')
    assert main(["axial", str(path), "-o", str(tmp_path / "d.yaml")]) == 2
    assert "notes.jsonl:1: notes: unknown key; did you mean 'note'?" in capsys.readouterr().err


def test_latest_note_per_trace_and_reviewer_wins(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    lines = [
        {"trace_id": "a", "verdict": "fail", "note": "first", "reviewer": "x"},
        {"trace_id": "a", "verdict": "fail", "note": "other reviewer", "reviewer": "y"},
        {"trace_id": "a", "verdict": "pass", "note": "changed my mind", "reviewer": "x"},
    ]
    path.write_text("".join(json.dumps(n) + "\n" for n in lines))
    got = [(n.reviewer, n.verdict, n.note) for n in read_notes(path)]
    assert got == [("y", "fail", "other reviewer"), ("x", "pass", "changed my mind")]


def test_cohen_kappa_known_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_failmodes.analysis.agreement import cohen_kappa, reviewer_agreement

    # 2x2 table [[20, 5], [10, 15]]: observed 0.7, expected 0.5 -> kappa 0.4
    x = ["fail"] * 25 + ["pass"] * 25
    y = ["fail"] * 20 + ["pass"] * 5 + ["fail"] * 10 + ["pass"] * 15
    assert cohen_kappa(x, y) == pytest.approx(0.4)
    assert cohen_kappa(["fail", "pass"], ["fail", "pass"]) == pytest.approx(1.0)
    assert cohen_kappa(["fail"] * 3, ["fail"] * 3) is None
    notes = [_note(f"t{i}", a, reviewer="ana", line=i) for i, a in enumerate(x)]
    notes += [_note(f"t{i}", b, reviewer="bo", line=100 + i) for i, b in enumerate(y)]
    [ag] = reviewer_agreement(notes)
    assert (ag.a, ag.b, ag.n, ag.agree) == ("ana", "bo", 50, 35) and ag.kappa == pytest.approx(0.4)
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(json.dumps({"trace_id": n.trace_id, "verdict": n.verdict, "reviewer": n.reviewer, "note": "wrong tone"}) + "\n" for n in notes))
    assert main(["axial", str(path), "-o", str(tmp_path / "d.yaml")]) == 0
    assert "reviewers ana and bo: 35/50 shared traces agree, Cohen's kappa 0.40" in capsys.readouterr().out
