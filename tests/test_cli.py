"""``failmodes compare OLD.json NEW.json``: the comparison from saved reports, without pytest.

The reports come from real ``pytest --failmodes`` runs (once per module): a
baseline of three routes, an A/A re-run, and a candidate whose ``shipping``
route leaks 25% instead of 2% (the same trace ids).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

# the same datasets and definitions as the pytester tests of baselines
from test_baseline import CANDIDATE, DEFINITIONS, LEAKS, MAIN, rows_of, table


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("GITHUB_STEP_SUMMARY", None)  # the sessions below must not write to a CI job's summary
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _traces(path: Path, counts: dict[str, tuple[int, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows_of(counts)), encoding="utf-8")


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--failmodes", "-p", "no:cacheprovider", "-q", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """base.json (saved baseline), same.json (A/A), new.json (candidate, compared by the plugin too)."""
    root = tmp_path_factory.mktemp("cli")
    _traces(root / "data" / "traces.jsonl", MAIN)
    _traces(root / "data" / "candidate.jsonl", CANDIDATE)
    definitions = DEFINITIONS.format(limit=0.9, file_gate="", leaks_gate="", regex=LEAKS)
    (root / "failmodes.yaml").write_text(textwrap.dedent(definitions).lstrip(), encoding="utf-8")
    runs = [
        (0, "--failmodes-save-baseline=base.json"),
        (0, "--failmodes-report=same.json"),
        (1, "--failmodes-dataset=data/candidate.jsonl", "--failmodes-report=new.json", "--failmodes-baseline=base.json"),
    ]
    for expected, *args in runs:
        done = _pytest(root, *args)
        assert done.returncode == expected, done.stdout + done.stderr
    return root


def compare(cwd: Path, *args: str, command: Sequence[str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [*(command or [sys.executable, "-m", "pytest_failmodes.cli"]), "compare", *args]
    return subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120)


def _regressed_by_the_plugin(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (m["name"], c["cohort"]) for m in report["modes"] for c in m["cohorts"] if c.get("baseline", {}).get("regression")
    }


def test_regression_prints_the_table_and_exits_1(reports: Path) -> None:
    done = compare(reports, "base.json", "new.json", "--table=all")

    assert done.returncode == 1, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0] == "2 failure modes in 1 file: 1 mode breached; against base.json: 2 regressions in 1 mode"
    assert re.split(r"\s{2,}", lines[1].strip()) == [
        "mode", "cohort", "n", "fail", "rate", "95% CI", "limit", "base", "Δ", "p (adj.)", "gate",
    ]  # fmt: skip
    rows = table(done.stdout.splitlines())
    assert list(rows)[:2] == [("leaks", "all"), ("leaks", "route=shipping")]  # breached first
    shipping = rows[("leaks", "route=shipping")]
    assert (shipping["n"], shipping["fail"], shipping["rate"], shipping["base"], shipping["Δ"]) == (
        "200", "50", "25.0%", "2.0%", "+23.0pp",
    )  # fmt: skip
    assert re.fullmatch(r"FAIL \(regression p=[0-9.e-]+\)", shipping["gate"])
    assert all(row["gate"] == "ok" for key, row in rows.items() if key not in {("leaks", "all"), ("leaks", "route=shipping")})
    assert len(rows) == 8
    # the same rows regressed as in the pytest run that compared with the same baseline
    plugin = json.loads((reports / "new.json").read_text(encoding="utf-8"))
    cli = {key for key, row in rows.items() if row["gate"].startswith("FAIL (regression")}
    assert cli == _regressed_by_the_plugin(plugin) == {("leaks", "all"), ("leaks", "route=shipping")}


def test_cohorts_are_paired_as_in_the_plugin(reports: Path) -> None:
    # the report records which traces make each cohort, so compare pairs every cohort
    # (not only `all`) and its adjusted p-values are the plugin's, row for row
    plugin = json.loads((reports / "new.json").read_text(encoding="utf-8"))
    leaks = next(m for m in plugin["modes"] if m["name"] == "leaks")
    shipping = next(c for c in leaks["cohorts"] if c["cohort"] == "route=shipping")
    assert len(shipping["members"]) == shipping["n"] == 200
    assert {leaks["traces"][i]["id"] for i in shipping["members"]} <= {t["id"] for t in leaks["traces"]}
    assert all(c["baseline"]["paired"] for m in plugin["modes"] for c in m["cohorts"])

    rows = table(compare(reports, "base.json", "new.json", "--table=all").stdout.splitlines())

    expected = {
        (m["name"], c["cohort"]): f"{c['baseline']['p_adjusted']:.3g}" for m in plugin["modes"] for c in m["cohorts"]
    }
    assert {key: row["p (adj.)"] for key, row in rows.items()} == expected


def test_a_report_without_cohort_members_pairs_only_all(reports: Path) -> None:
    old = json.loads((reports / "new.json").read_text(encoding="utf-8"))
    for mode in old["modes"]:
        for cohort in mode["cohorts"]:
            cohort.pop("members", None)
    (reports / "old-format.json").write_text(json.dumps(old), encoding="utf-8")

    done = compare(reports, "base.json", "old-format.json", "--table=all")

    assert done.returncode == 1, done.stderr
    rows = table(done.stdout.splitlines())
    # shipping is still a regression, found by the unpaired test on its counts
    assert rows[("leaks", "route=shipping")]["gate"].startswith("FAIL (regression p=")


def test_bad_cohort_members_are_a_usage_error(reports: Path) -> None:
    bad = json.loads((reports / "new.json").read_text(encoding="utf-8"))
    bad["modes"][0]["cohorts"][1]["members"] = [0, 99999]
    (reports / "bad.json").write_text(json.dumps(bad), encoding="utf-8")

    done = compare(reports, "base.json", "bad.json")

    assert done.returncode == 2
    assert "'members' must list positions in 'traces'" in done.stderr
    assert "bad.json" in done.stderr


def test_a_a_exits_0(reports: Path) -> None:
    done = compare(reports, "base.json", "same.json", "--table=all")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "2 failure modes in 1 file: all gates passed; against base.json: 0 regressions"
    rows = table(done.stdout.splitlines())
    assert len(rows) == 8
    assert {(row["Δ"], row["p (adj.)"], row["gate"]) for row in rows.values()} == {("+0.0pp", "1", "ok")}


def test_markdown(reports: Path) -> None:
    done = compare(reports, "base.json", "new.json", "--markdown")

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == "### ❌ pytest-failmodes: 2 failure modes in 1 file: 1 mode breached; against base.json: 2 regressions in 1 mode"
    assert lines[2] == "| mode | cohort | n | fail | rate | 95% CI | limit | base | Δ | p (adj.) | gate |"
    assert lines[3] == "|:---|:---|---:|---:|---:|:---|---:|---:|---:|---:|:---|"
    # the regressed rows, then every row in a collapsed block
    body = lines[4:6]
    assert all(line.startswith("| ") and line.endswith(" |") for line in body)
    assert body[1].startswith("| leaks | route=shipping | 200 | 50 | 25.0% |")
    assert re.search(r"\| \+23\.0pp \| [0-9.e-]+ \| FAIL \(regression p=[0-9.e-]+\) \|$", body[1])
    assert lines[6:9] == ["", "<details>", "<summary>Every mode and cohort (2 modes, 8 cohort rows)</summary>"]
    assert lines[-1] == "</details>"
    assert len([line for line in lines[9:] if line.startswith(("| leaks |", "| rude |"))]) == 2 + 8
    assert "rows left out" not in done.stdout


def test_min_increase_option(reports: Path) -> None:
    done = compare(reports, "base.json", "new.json", "--min-increase", "0.5", "--table=all")

    assert done.returncode == 0, done.stdout
    assert table(done.stdout.splitlines())[("leaks", "route=shipping")]["gate"] == "ok"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (("nothing.json", "new.json"), "failmodes compare: nothing.json: no baseline here; *"),
        (("base.json", "nothing.json"), "failmodes compare: nothing.json: no such report; write one with --failmodes-report"),
        (("broken.json", "new.json"), "failmodes compare: broken.json: the baseline is not valid JSON: *"),
        (("base.json", "broken.json"), "failmodes compare: broken.json: the report is not valid JSON: *"),
        (("other.json", "new.json"), "failmodes compare: other.json: not a pytest-failmodes report (schema 'x/y'*"),
        (("base.json", "old-version.json"), "failmodes compare: old-version.json: report schema version 0;*"),
        (("damaged.json", "new.json"), "failmodes compare: damaged.json: modes[[]0].cohorts[[]0]: 'fails' missing *"),
        (("base.json", "incomplete.json"), "failmodes compare: incomplete.json: an incomplete report (KeyError: 'errors'); *"),
    ],
    ids=[
        "missing-baseline", "missing-report", "baseline-not-json", "report-not-json", "other-schema", "report-version",
        "damaged-baseline", "incomplete-report",
    ],  # fmt: skip
)
def test_bad_input_exits_2_with_a_clear_message(reports: Path, files: tuple[str, str], message: str) -> None:
    head = '{"schema": "pytest-failmodes/report", "version": 1, "modes": [{"key": "failmodes.yaml::leaks", '
    (reports / "broken.json").write_text('{"schema": "pytest-failmodes/re', encoding="utf-8")
    (reports / "other.json").write_text('{"schema": "x/y"}', encoding="utf-8")
    (reports / "old-version.json").write_text('{"schema": "pytest-failmodes/report", "version": 0}', encoding="utf-8")
    (reports / "damaged.json").write_text(head + '"cohorts": [{"cohort": "all", "n": 3}]}]}', encoding="utf-8")
    # what comparing needs is there, what the table needs is not
    (reports / "incomplete.json").write_text(head + '"cohorts": [{"cohort": "all", "n": 3, "fails": 1}]}]}', encoding="utf-8")

    done = compare(reports, *files)

    assert done.returncode == 2
    assert done.stdout == ""
    stderr = done.stderr.splitlines()
    assert len(stderr) == 1, done.stderr
    assert pytest.LineMatcher(stderr).fnmatch_lines([message]) is None
    assert "Traceback" not in done.stderr


def test_usage_errors_exit_2(reports: Path) -> None:
    done = compare(reports, "base.json")

    assert done.returncode == 2
    assert "usage: failmodes compare" in done.stderr
    assert "the following arguments are required: new" in done.stderr


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--alpha", "1.5"), "--alpha takes a number between 0 and 1, got 1.5"),
        (("--alpha", "nan"), "--alpha takes a number between 0 and 1, got nan"),
        (("--min-increase", "1"), "--min-increase takes a number >= 0 and < 1 (0.02 is two percentage points), got 1.0"),
        (("--correction", "bonferroni"), "argument --correction: invalid choice: 'bonferroni' *"),
    ],
    ids=["alpha", "alpha-nan", "min-increase", "correction"],
)
def test_out_of_range_options_exit_2(reports: Path, option: tuple[str, str], message: str) -> None:
    done = compare(reports, "base.json", "new.json", *option)

    assert done.returncode == 2
    assert done.stdout == ""
    assert pytest.LineMatcher(done.stderr.splitlines()).fnmatch_lines([f"failmodes compare: error: {message}"]) is None
    assert "Traceback" not in done.stderr


def _console_script() -> str | None:
    beside = Path(sys.executable).parent / ("failmodes.exe" if os.name == "nt" else "failmodes")
    if beside.is_file():
        return str(beside)
    return shutil.which("failmodes")


def test_console_script(reports: Path) -> None:
    script = _console_script()
    if script is None:
        pytest.skip("no `failmodes` script beside this Python nor on PATH: reinstall the package (pip install -e .)")

    regressed = compare(reports, "base.json", "new.json", command=[script])
    same = compare(reports, "base.json", "same.json", "--markdown", command=[script])
    missing = compare(reports, "nothing.json", "new.json", command=[script])

    assert regressed.returncode == 1
    assert regressed.stdout == compare(reports, "base.json", "new.json").stdout
    assert same.returncode == 0
    assert same.stdout.startswith("### ✅ pytest-failmodes: ")
    assert missing.returncode == 2
    assert missing.stderr.startswith("failmodes compare: nothing.json: no baseline here")
    help_text = subprocess.run([script, "--help"], capture_output=True, text=True, env=_env(), timeout=60)
    assert help_text.returncode == 0 and help_text.stdout.startswith("usage: failmodes ")


def test_notes_of_an_earlier_comparison_are_not_repeated(reports: Path) -> None:
    # a report written by a run that compared with a baseline carries that run's notes;
    # compare makes its own comparison and prints only its own notes
    new = json.loads((reports / "new.json").read_text(encoding="utf-8"))
    new["modes"][0]["notes"] = ["baseline: an old note from the run that wrote this report", "kept: not a baseline note"]
    (reports / "noted.json").write_text(json.dumps(new), encoding="utf-8")

    done = compare(reports, "base.json", "noted.json")

    notes = [line for line in done.stdout.splitlines() if line.startswith("note:")]
    assert notes == [f"note: {new['modes'][0]['name']}: kept: not a baseline note"]


def test_a_closed_pipe_is_not_a_traceback(reports: Path) -> None:
    argv = [sys.executable, "-m", "pytest_failmodes.cli", "compare", "base.json", "new.json"]
    done = subprocess.run(
        f"{shlex.join(argv)} | head -n 1", shell=True, cwd=reports, env=_env(), capture_output=True, text=True, timeout=120
    )

    assert done.stdout.startswith("2 failure modes in 1 file:")
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
