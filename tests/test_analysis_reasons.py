"""``failmodes reasons``: a mode's reasons clustered, with ids stable across runs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_failmodes.analysis.reasons import cluster_reasons, match_previous
from pytest_failmodes.analysis.report_data import ModeVerdicts
from pytest_failmodes.cli import main

A = ["the reply is in English but the question was Spanish", "answered in English, user wrote Spanish", "English answer to a Spanish message"]
B = ["promised a refund without checking the refund policy", "refund promised, policy never checked", "offers a refund before any policy check"]
C = ["made up an order status without calling lookup_order", "invented the status, no lookup_order call", "status given with no lookup_order"]


def _mode(reasons: list[str], order: list[int] | None = None) -> ModeVerdicts:
    idx = order or list(range(len(reasons)))
    ids = tuple(f"t{i}" for i in idx) + ("ok1", "ok2")
    verdicts = ("fail",) * len(idx) + ("pass", "pass")
    texts = tuple(reasons[i] for i in idx) + ("", "")
    billing = tuple(k for k, t in enumerate(ids) if t in ("t0", "t1", "t2", "ok1"))
    return ModeVerdicts("m", "f::m", ids, verdicts, texts, {"route=billing": billing})


def test_planted_reason_clusters_and_cohort_rates() -> None:
    res = cluster_reasons(_mode(A + B + C))
    assert sorted(c.trace_ids for c in res.clusters) == [["t0", "t1", "t2"], ["t3", "t4", "t5"], ["t6", "t7", "t8"]]
    lang = next(c for c in res.clusters if "t0" in c.trace_ids)
    assert lang.cohorts["route=billing"] == (3, 4, 0.75)
    assert lang.share == pytest.approx(1 / 3) and lang.examples[0][0] in lang.trace_ids
    assert {c.id for c in res.clusters} == {0, 1, 2}


def test_ids_stay_stable_across_runs() -> None:
    first = cluster_reasons(_mode(A + B + C))
    previous = {c.id: set(c.trace_ids) for c in first.clusters}
    # the same reasons in another order, without the refund group, plus a new group
    D = ["rude tone towards the user", "the tone is rude and curt", "curt, rude reply"]
    reasons = A + B + C + D
    again = cluster_reasons(_mode(reasons, [11, 10, 9, 8, 7, 6, 2, 1, 0]), previous=previous)
    by_members = {tuple(c.trace_ids): c.id for c in again.clusters}
    was = {tuple(c.trace_ids): c.id for c in first.clusters}
    assert by_members[("t0", "t1", "t2")] == was[("t0", "t1", "t2")]
    assert by_members[("t6", "t7", "t8")] == was[("t6", "t7", "t8")]
    assert by_members[("t10", "t11", "t9")] == 3  # new: after the previous ids


def test_match_previous_is_greedy_by_jaccard() -> None:
    prev = {0: {"a", "b", "c"}, 1: {"d", "e"}}
    assert match_previous([{"d", "e", "f"}, {"a", "b"}, {"z"}], prev) == [(1, pytest.approx(2 / 3)), (0, pytest.approx(2 / 3)), (2, None)]


def test_cli_on_a_real_report(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [project.row(f"t{i}", "x", why=r) for i, r in enumerate(A + B + C)]
    project.traces(rows)
    project.file(
        "conftest.py",
        """
        import pytest
        from pytest_failmodes import Verdict

        @pytest.fixture
        def why_detector():
            return lambda trace: Verdict.fail(trace.metadata["why"])
        """,
    )
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: critique
            detector: why_detector
        """
    )
    project.run("--failmodes-report=r.json")
    capsys.readouterr()
    report = str(project.path / "r.json")
    assert main(["reasons", report, "--mode", "critique", "--json", str(project.path / "c.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "mode critique: 9 fail reasons; 9 reasons in 3 clusters" + out[0].split("3 clusters", 1)[1]
    saved = json.loads((project.path / "c.json").read_text())
    assert main(["reasons", report, "--mode", "critique", "--previous", str(project.path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert out.count("(J=1.00)") == 3
    assert len(saved["clusters"]) == 3
    assert main(["reasons", report, "--mode", "critiq"]) == 2
    assert "did you mean 'critique'?" in capsys.readouterr().err
