"""``failmodes cooccur``: modes that fail together, from a real report."""

from __future__ import annotations

from typing import Any

import pytest
from scipy.stats import fisher_exact

from pytest_failmodes.analysis.cooccur import cooccur
from pytest_failmodes.analysis.report_data import ModeVerdicts
from pytest_failmodes.cli import main


def _mode(name: str, fails: set[int], n: int = 40) -> ModeVerdicts:
    ids = tuple(f"t{i}" for i in range(n))
    return ModeVerdicts(name, name, ids, tuple("fail" if i in fails else "pass" for i in range(n)), ("",) * n, {})


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
    row = out[-1].split()
    assert row[:6] == ["leaks", "refuses", "12", "3", "0", "0"]
    assert main(["cooccur", str(project.path / "data/traces.jsonl")]) == 2
    assert "expected a JSON report" in capsys.readouterr().err
