"""``failmodes cooccur``: modes that fail together, from a real report."""

from __future__ import annotations

from typing import Any

import pytest
from scipy.stats import binomtest, fisher_exact

from pytest_failmodes.analysis.cooccur import cooccur, cooccur_lines
from pytest_failmodes.analysis.report_data import ModeVerdicts
from pytest_failmodes.cli import main

from agent_data import AGENT_MODES, agent_rows


def _mode(name: str, fails: set[int], n: int = 40, at: dict[int, int] | None = None) -> ModeVerdicts:
    """``at``: trace -> the step index its fail names."""
    ids = tuple(f"t{i}" for i in range(n))
    steps = tuple((f"s{at[i]}", at[i]) if at and i in at else None for i in range(n)) if at else ()
    return ModeVerdicts(name, name, ids, tuple("fail" if i in fails else "pass" for i in range(n)), ("",) * n, {}, steps)


def test_known_counts_lift_and_fisher() -> None:
    a = _mode("a", set(range(10)))
    b = _mode("b", set(range(2, 12)))  # 8 shared with a
    c = _mode("c", {20, 30})
    res = cooccur([a, b, c])
    ab = next(p for p in res.pairs if (p.a, p.b) == ("a", "b"))
    assert (ab.n, ab.both, ab.a_only, ab.b_only) == (40, 8, 2, 2)
    assert ab.jaccard == pytest.approx(8 / 12)
    assert ab.lift == pytest.approx(8 * 40 / (10 * 10))
    assert ab.p_value == pytest.approx(fisher_exact([[8, 2], [2, 28]], alternative="greater")[1])
    assert ab.significant and res.pairs[0] is ab
    ac = next(p for p in res.pairs if (p.a, p.b) == ("a", "c"))
    assert ac.both == 0 and ac.lift == 0 and not ac.significant


def test_which_mode_comes_first_sign_test_and_bh() -> None:
    # a and b fail together in t0..t9: a's step comes first in 9, b's in none, the same step in 1
    a = _mode("a", set(range(12)), at={**{i: 1 for i in range(9)}, 9: 4, 10: 2})
    b = _mode("b", set(range(10)), at={**{i: 3 for i in range(9)}, 9: 4})
    # c fails with a in t10, t11: c first in t10; t11 has no step for a... c names none there
    c = _mode("c", {10, 11, 20}, at={10: 0})
    judge = _mode("judge", set(range(5)))  # a judge names no step
    res = cooccur([a, b, c, judge])
    ab = next(p for p in res.pairs if (p.a, p.b) == ("a", "b"))
    assert (ab.a_first, ab.b_first, ab.same_step, ab.ordered) == (9, 0, 1, 10)
    assert ab.order_p == pytest.approx(binomtest(9, 9, 0.5).pvalue)
    ac = next(p for p in res.pairs if (p.a, p.b) == ("a", "c"))
    assert (ac.a_first, ac.b_first, ac.same_step) == (0, 1, 0) and ac.order_p == 1.0
    # BH over the two pairs with an order: ab's 2/512 * 2 / 1, ac's 1.0
    assert ab.order_q == pytest.approx(2 * binomtest(9, 9, 0.5).pvalue) and ab.first == "a"
    assert ac.order_q == pytest.approx(1.0) and ac.first is None
    aj = next(p for p in res.pairs if (p.a, p.b) == ("a", "judge"))
    assert aj.ordered == 0 and aj.order_p is None and aj.order_q is None
    assert res.with_steps == ["a", "b", "c"]
    lines = cooccur_lines(res)
    table = lines[lines.index("which comes first, in the traces failing both at known steps (two-sided sign test, ties left out, BH):") + 3:]
    assert table[0].split() == ["a", "b", "10", "9", "0", "1", "0.0039", "0.0078", "a"]
    assert table[1].split() == ["a", "c", "1", "0", "1", "0", "1", "1"]
    assert len(table) == 2


def test_no_order_without_two_modes_that_name_their_steps() -> None:
    res = cooccur([_mode("a", {1, 2}, at={1: 0, 2: 0}), _mode("judge", {1, 2})])
    assert all(p.ordered == 0 for p in res.pairs)
    assert cooccur_lines(res)[-1] == (
        "which comes first: not known (only a's fails name the step they failed at; rules over steps and "
        "regexes over the output name the step they failed at, judges and labels do not)"
    )


def test_cli_which_mode_comes_first_from_a_real_report(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    project.traces(agent_rows())
    project.definitions(AGENT_MODES)
    assert project.run("--failmodes-report=r.json").ret == 0
    capsys.readouterr()
    assert main(["cooccur", "r.json", "--json", "c.json"]) == 0
    out = capsys.readouterr().out.splitlines()
    # 6 traces book with no search (step 1) and apologise in the reply (step 2): booking comes first
    assert out[-1].split() == ["books_unsearched", "apologises", "6", "6", "0", "0", "0.031", "0.031", "books_unsearched"]
    import json

    pair = json.loads((project.path / "c.json").read_text())["pairs"][0]
    assert (pair["a_first"], pair["b_first"], pair["order_q"], pair["first"]) == (6, 0, pytest.approx(0.03125), "books_unsearched")


def test_cli_on_a_real_report(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    project.support_traces()
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: leaks
            rule: {regex: "(?i)my instructions say"}
          - name: refuses
            rule: {regex: "(?i)never refund"}
        """
    )
    project.run("--failmodes-report=r.json")
    capsys.readouterr()
    assert main(["cooccur", str(project.path / "r.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2 modes, 1 pairs tested; one-sided Fisher, BH q = 0.1"
    row = out[3].split()
    assert row[:6] == ["leaks", "refuses", "12", "3", "0", "0"]
    # both regexes read the output: in the one leaking trace with steps, the same step (the reply)
    assert out[-1].split() == ["leaks", "refuses", "1", "0", "0", "1", "-", "-"]
    assert main(["cooccur", str(project.path / "data/traces.jsonl")]) == 2
    assert "expected a JSON report" in capsys.readouterr().err


def test_a_report_whose_step_fields_are_not_sound_is_one_error(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    traces = [{"id": "t0", "verdict": "fail", "reason": "", "evidence": None, "step_id": "s1", "step_index": "2"}]
    report = {"schema": "pytest-failmodes/report", "version": 1, "modes": [{"key": "f::m", "name": "m", "traces": traces}]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    assert main(["cooccur", str(path)]) == 2
    assert capsys.readouterr().err.strip().endswith("r.json: modes[0].traces[0].step_index: 'step_index' must be a whole number >= 0")
