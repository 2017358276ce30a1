"""``failmodes slices``: Fisher's exact test per slice, Benjamini-Hochberg over all of them."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import fisher_exact

from pytest_failmodes.analysis.report_data import Outcomes
from pytest_failmodes.analysis.slices import find_slices
from pytest_failmodes.cli import main


def _outcomes(rows: list[tuple[dict[str, Any], bool]]) -> Outcomes:
    return Outcomes("m", [f"t{i}" for i in range(len(rows))], [f for _, f in rows], [""] * len(rows), [m for m, _ in rows])


def _planted(n_per: int = 60, seed: int = 1) -> Outcomes:
    """Four routes, two personas; route=billing fails 60%, the rest 10%."""
    rng = random.Random(seed)
    rows = []
    for route in ("billing", "shipping", "returns", "account"):
        for i in range(n_per):
            rate = 0.6 if route == "billing" else 0.1
            rows.append(({"route": route, "persona": "new" if i % 2 else "old"}, rng.random() < rate))
    return _outcomes(rows)


def test_planted_slice_is_found_first_with_fishers_p() -> None:
    out = _planted()
    [res] = find_slices([out], ["route", "persona"])
    top = res.found[0]
    assert top.label == "route=billing"
    table = [[top.fails, top.n - top.fails], [top.rest_fails, top.rest_n - top.rest_fails]]
    assert top.p_value == pytest.approx(fisher_exact(table, alternative="greater")[1], rel=1e-9)
    assert top.diff_low > 0.3 and top.diff_low < top.diff < top.diff_high
    # singles: 4 routes + 2 personas; pairs: 8; every one has >= 10 traces
    assert res.tested == 14
    assert all(s.significant and s.q_value <= 0.1 for s in res.found)
    assert not any(s.fields == ("route",) and s.values[0] != "billing" for s in res.found)


def test_null_data_gives_no_slice() -> None:
    rng = random.Random(7)
    rows = [({"a": rng.choice("xyz"), "b": rng.choice("pq")}, rng.random() < 0.2) for _ in range(300)]
    [res] = find_slices([_outcomes(rows)])
    assert res.tested > 0
    assert res.found == []
    assert res.closest and all(not s.significant for s in res.closest)


def test_small_n_is_warned_about() -> None:
    rows = [({"a": "x" if i < 10 else "y"}, i < 2) for i in range(20)]
    [res] = find_slices([_outcomes(rows)])
    assert res.found == []
    assert any("n too small to find anything" in w for w in res.warnings)


def test_numeric_fields_are_binned_and_busy_fields_skipped() -> None:
    rows = [({"length": i, "user": f"u{i}"}, i >= 150) for i in range(200)]
    [res] = find_slices([_outcomes(rows)])
    assert res.bins["length"] == ["[0, 49.75)", "[49.75, 99.5)", "[99.5, 149.2)", "[149.2, 199]"]
    assert "user" in res.skipped_fields and "200 distinct values" in res.skipped_fields["user"]
    assert res.found[0].label == "length=[149.2, 199]"


def test_unknown_field_names_the_nearest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps({"id": f"t{i}", "output": "x", "route": "a", "failed": i % 2}) + "\n" for i in range(20)))
    assert main(["slices", str(data), "--outcome", "failed", "--fields", "rout"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("failmodes slices: ")
    assert "field 'rout' is in no trace of mode 'failed'; did you mean 'route'?" in err
    assert main(["slices", str(data), "--outcome", "faild"]) == 2
    assert "no row has the outcome field 'faild'; did you mean 'failed'?" in capsys.readouterr().err
    assert main(["slices", str(data)]) == 2
    assert "a dataset needs --outcome FIELD" in capsys.readouterr().err


def test_unreadable_outcome_names_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "t.jsonl"
    data.write_text(json.dumps({"id": "a", "output": "x", "failed": 1}) + "\n" + json.dumps({"id": "b", "output": "x", "failed": "maybe"}) + "\n")
    assert main(["slices", str(data), "--outcome", "failed"]) == 2
    assert "t.jsonl:2: failed: cannot read 'maybe' as an outcome" in capsys.readouterr().err


def test_slices_of_a_real_report(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """A report from a real run: cohort values come from its rows' members; --dataset adds the rest."""
    rng = random.Random(3)
    rows = []
    for i in range(240):
        route = ("billing", "shipping", "returns")[i % 3]
        leak = rng.random() < (0.5 if route == "billing" else 0.05)
        rows.append(project.row(f"r{i}", "my instructions say no" if leak else "fine", route=route, tier=("gold", "basic")[i % 2]))
    project.traces(rows)
    project.definitions(
        """
        dataset: data/traces.jsonl
        cohorts: [route]
        failure_modes:
          - name: leaks_system_prompt
            rule: {regex: "(?i)my instructions say"}
        """
    )
    project.run("--failmodes-report=report.json").assert_outcomes(passed=1)
    capsys.readouterr()  # the session's own output
    report = str(project.path / "report.json")
    assert main(["slices", report, "--json", str(project.path / "s.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("mode leaks_system_prompt: ")
    assert "3 slices tested (single values and pairs of route; support >= 10)" in lines[0]
    assert any(line.lstrip().startswith("route=billing ") for line in lines)
    saved = json.loads((project.path / "s.json").read_text())
    assert saved["modes"][0]["found"][0]["slice"] == "route=billing"
    first = (project.path / "s.json").read_bytes()
    assert main(["slices", report, "--json", str(project.path / "s.json")]) == 0
    assert (project.path / "s.json").read_bytes() == first  # deterministic: the same bytes twice
    capsys.readouterr()
    assert main(["slices", report, "--dataset", str(project.path / "data/traces.jsonl"), "--fields", "route,tier"]) == 0
    assert "of route, tier;" in capsys.readouterr().out
    assert main(["slices", report, "--mode", "leaks_system_promt"]) == 2
    assert "no mode 'leaks_system_promt' in this report; did you mean 'leaks_system_prompt'?" in capsys.readouterr().err
