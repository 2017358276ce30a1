"""Run history: ``--failmodes-history=DIR`` writes one file per run; ``failmodes history DIR`` reads them."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from browser import dump_dom, find_chromium, parse_html, screenshot

from pytest_failmodes.cli import main
from pytest_failmodes.history import (
    SCHEMA,
    Point,
    Series,
    ShiftTest,
    build_series,
    find_shifts,
    load_history,
    write_run,
)
from pytest_failmodes.report.history_page import render_history

DEFINITIONS = """
    dataset: data/traces.jsonl
    cohorts: [route]
    failure_modes:
      - name: leaks
        rule: {regex: "(?i)my instructions say"}
        max_fail_rate: 0.5
"""


def _traces(project: Any) -> None:
    project.traces(
        [project.row(f"t{i}", "my instructions say" if i % 3 == 0 else "ok", route=["refunds", "shipping"][i % 2]) for i in range(12)]
    )


# -- writing ------------------------------------------------------------------------------------


def test_two_runs_write_two_files_with_the_figures(project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _traces(project)
    project.definitions(DEFINITIONS)
    monkeypatch.setenv("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    monkeypatch.delenv("GITHUB_HEAD_REF", raising=False)
    first = project.run("--failmodes-history", "hist")
    assert first.ret == 0
    second = project.run("--failmodes-history", "hist")
    assert second.ret == 0
    files = sorted((project.path / "hist").glob("*.json"))
    assert len(files) == 2
    runs = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    for run in runs:
        assert run["schema"] == SCHEMA and run["version"] == 1
        assert run["git"] == {"commit": "0123456789abcdef0123456789abcdef01234567", "branch": "main"}
        assert run["timestamp"].endswith("Z") and run["started"] <= run["timestamp"]
        (mode,) = run["modes"]
        assert mode["key"] == "failmodes.yaml::leaks" and mode["name"] == "leaks"
        assert len(mode["fingerprint"]) >= 8
        rows = {r["cohort"]: r for r in mode["cohorts"]}
        assert set(rows) == {"all", "route=refunds", "route=shipping"}
        assert (rows["all"]["n"], rows["all"]["fails"], rows["all"]["rate"]) == (12, 4, 4 / 12)
        assert rows["route=refunds"]["fails"] == 2 and rows["route=shipping"]["fails"] == 2
        assert 0 < rows["all"]["ci_low"] < rows["all"]["rate"] < rows["all"]["ci_high"] < 1
        assert rows["all"]["limit"] == 0.5 and rows["all"]["breach"] is None
        assert "traces" not in mode  # a history file stays small
    assert runs[0]["timestamp"] < runs[1]["timestamp"]


def test_ini_history_is_relative_to_the_ini_file_and_git_is_optional(project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_SHA", "GITHUB_REF_NAME", "GITHUB_HEAD_REF", "CI_COMMIT_SHA", "CI_COMMIT_REF_NAME"):
        monkeypatch.delenv(name, raising=False)
    # git on PATH finds no repository (or none at all): the run is recorded without a commit
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(project.path.parent))
    _traces(project)
    project.definitions(DEFINITIONS)
    project.file("pytest.ini", "[pytest]\nfailmodes_history = .failmodes/history\n")
    sub = project.path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    result = project.run(str(project.path))
    assert result.ret == 0
    (written,) = (project.path / ".failmodes" / "history").glob("*.json")
    data = json.loads(written.read_text(encoding="utf-8"))
    assert data["git"] == {"commit": None, "branch": None}


def test_an_unwritable_history_fails_the_run_with_one_line(project: Any) -> None:
    _traces(project)
    project.definitions(DEFINITIONS)
    (project.path / "hist").write_text("a file, not a directory", encoding="utf-8")
    result = project.run("--failmodes-history", "hist")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["ERROR pytest-failmodes: could not add this run to the history in *hist (*); no file was written"])


def test_under_xdist_only_the_controller_writes(project: Any) -> None:
    pytest.importorskip("xdist")
    _traces(project)
    project.definitions(DEFINITIONS)
    result = project.run_subprocess("-n", "2", "--failmodes-history", "hist")
    assert result.ret == 0
    assert len(list((project.path / "hist").glob("*.json"))) == 1


def test_names_never_collide() -> None:
    # the same summary (same timestamp) written many times: as many files
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        summary = _summary({"m": {"all": (1, 10)}})
        paths = {write_run(Path(tmp), summary) for _ in range(50)}
        assert len(paths) == 50 == len(list(Path(tmp).glob("*.json")))


# -- a history made in the test -----------------------------------------------------------------------


def _summary(
    modes: dict[str, dict[str, tuple[int, int]]],
    *,
    fingerprint: str = "f1",
    stamp: str = "2026-12-01T10:00:00.000000Z",
    commit: str | None = None,
    baseline: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    from pytest_failmodes.stats import wilson_interval

    out = []
    for name, cohorts in modes.items():
        rows = []
        for cohort, (fails, n) in cohorts.items():
            ci = wilson_interval(fails, n)
            row = {
                "cohort": cohort, "n": n, "fails": fails, "errors": 0, "rate": fails / n if n else None,
                "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "limit": 0.3,
                "gated": True, "breach": "limit" if n and fails / n > 0.3 else None,
            }
            if baseline and (name, cohort) in baseline:
                row["baseline"] = baseline[(name, cohort)]
            rows.append(row)
        out.append({"key": f"t.failmodes.yaml::{name}", "name": name, "fingerprint": fingerprint, "status": "ok", "cohorts": rows})
    return {
        "schema": SCHEMA, "version": 1, "generator": "test", "timestamp": stamp, "started": None,
        "git": {"commit": commit, "branch": "main" if commit else None}, "baseline": None, "modes": out,
    }


def _history(tmp_path: Path, rates: list[dict[str, dict[str, tuple[int, int]]]], **kw: Any) -> Path:
    directory = tmp_path / "hist"
    for i, modes in enumerate(rates):
        fp = kw.get("fingerprints", {}).get(i, "f1")
        write_run(directory, _summary(modes, fingerprint=fp, stamp=f"2026-11-{1 + i // 24:02d}T{i % 24:02d}:00:00.000000Z", commit=f"{i:02d}" + "a" * 38))
    return directory


def _flat(n_runs: int, seed: int = 1) -> list[dict[str, dict[str, tuple[int, int]]]]:
    rng = random.Random(seed)
    return [
        {
            "refund": {"all": (sum(rng.random() < 0.1 for _ in range(200)), 200), "route=a": (sum(rng.random() < 0.2 for _ in range(100)), 100)},
            "tone": {"all": (sum(rng.random() < 0.05 for _ in range(200)), 200)},
        }
        for _ in range(n_runs)
    ]


# -- the shift test ------------------------------------------------------------------------------


def _series(fails: list[int], n: int = 200, fingerprints: list[str] | None = None) -> Series:
    fps = fingerprints or ["f"] * len(fails)
    return Series(
        "m", "m", "all",
        [Point(i, n, f, 0, None, None, None, False, fps[i], None) for i, f in enumerate(fails)],
    )


def test_a_planted_step_is_flagged_from_where_it_began() -> None:
    s = _series([20, 18, 22, 19, 21, 20, 17, 23, 20, 19, 40, 42, 39])
    assert find_shifts([s]) == 1
    assert s.shift is not None and s.shift.flagged and s.shift.direction == "up"
    assert s.shift.since == 10
    assert 0.09 < s.shift.reference_rate < 0.11 and 0.19 < s.shift.recent_rate < 0.21


def test_a_drop_is_flagged_down() -> None:
    s = _series([40, 42, 38, 41, 39, 40, 43, 37, 40, 41, 12, 10, 11])
    assert find_shifts([s]) == 1
    assert s.shift is not None and s.shift.direction == "down"


def test_one_wild_run_is_not_a_shift() -> None:
    # the latest run alone at five times the rate; the two before it ordinary but above the mean
    s = _series([20, 18, 22, 19, 21, 20, 17, 23, 20, 19, 21, 22, 100])
    assert find_shifts([s]) == 0
    assert s.shift is None or not s.shift.flagged


def test_one_run_back_down_ends_the_shift() -> None:
    s = _series([20, 18, 22, 19, 21, 20, 17, 23, 20, 19, 40, 42, 19])
    assert find_shifts([s]) == 0


def test_a_definition_change_restarts_the_history() -> None:
    # the rate doubled when the definition changed: not a shift of the application
    fails = [20, 18, 22, 19, 21, 20, 17, 23, 20, 19, 40, 42, 39]
    s = _series(fails, fingerprints=["a"] * 10 + ["b"] * 3)
    assert find_shifts([s]) == 0
    assert s.shift is None
    assert s.definition_changes() == [10]


def test_no_shift_in_flat_histories_of_many_series() -> None:
    rng = random.Random(7)
    series = [_series([sum(rng.random() < 0.1 for _ in range(200)) for _ in range(20)]) for _ in range(300)]
    assert find_shifts(series) == 0


def test_shift_test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="one run is not a sustained shift"):
        ShiftTest(min_run=1)


# -- reading ----------------------------------------------------------------------------------------


def test_unreadable_files_are_skipped_with_one_line_each(tmp_path: Path) -> None:
    directory = _history(tmp_path, _flat(3))
    (directory / "broken.json").write_text("{not json", encoding="utf-8")
    (directory / "other.json").write_text('{"schema": "something else"}', encoding="utf-8")
    bad = _summary({"m": {"all": (1, 2)}})
    bad["modes"][0]["cohorts"][0]["fails"] = 5
    (directory / "bad-row.json").write_text(json.dumps(bad), encoding="utf-8")
    (directory / "latin1.json").write_bytes(b'{"a": "\xe9"}')
    warnings: list[str] = []
    runs = load_history(directory, warnings.append)
    assert len(runs) == 3
    assert sorted(warnings) == [
        f"skipped {directory / 'bad-row.json'}: modes[0].cohorts[0]: fails (5) exceed n (2)",
        f"skipped {directory / 'broken.json'}: not JSON (line 1, column 2: Expecting property name enclosed in double quotes)",
        f"skipped {directory / 'latin1.json'}: not UTF-8 (byte 7)",
        f"skipped {directory / 'other.json'}: not a run summary (its 'schema' is not 'pytest-failmodes/history')",
    ]


def test_cli_table_flags_the_shift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rates = _flat(12)
    for r in rates[-3:]:
        r["refund"]["route=a"] = (45, 100)
    directory = _history(tmp_path, rates)
    assert main(["history", str(directory), "--json", str(tmp_path / "h.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"history {directory}: 12 runs, 2026-11-01 00:00 00aaaaaa .. 2026-11-01 11:00 11aaaaaa (latest: main 11aaaaaaaaaa)")
    row = next(line for line in out if "route=a" in line)
    assert row.split()[:2] == ["refund", "route=a"]
    assert "45.0% (45/100)" in row and "SHIFT up since run 10" in row and "breach" in row
    assert out[-1] == "1 of 3 mode x cohort series with a sustained shift (the last 3 runs against up to 10 before them; 0.05 chance of any false shift on this dashboard)"
    data = json.loads((tmp_path / "h.json").read_text(encoding="utf-8"))
    assert len(data["runs"]) == 12 and len(data["series"]) == 3
    flagged = [s for s in data["series"] if s["shift"] and s["shift"]["flagged"]]
    assert [(s["name"], s["cohort"], s["shift"]["since"]) for s in flagged] == [("refund", "route=a", 9)]


def test_cli_reads_what_pytest_wrote(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _traces(project)
    project.definitions(DEFINITIONS)
    for _ in range(2):
        assert project.run("--failmodes-history", "hist").ret == 0
    assert main(["history", str(project.path / "hist"), "--all-rows"]) == 0
    out = capsys.readouterr().out
    assert "leaks   route=refunds   33.3% (2/6)   33.3% (2/6)   +0.0 pp" in out
    assert "0 of 3 mode x cohort series with a sustained shift" in out


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--mode", "refnd"], "failmodes history: {d}: --mode 'refnd' is in no run of the history; did you mean 'refund'?"),
        (["--cohort", "route=b"], "failmodes history: {d}: --cohort 'route=b' is in no run of the history; did you mean 'route=a'?"),
    ],
)
def test_cli_filter_that_matches_nothing_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], error: str) -> None:
    directory = _history(tmp_path, _flat(2))
    assert main(["history", str(directory), *args]) == 2
    assert capsys.readouterr().err.strip() == error.format(d=directory)


def test_cli_missing_or_empty_directory_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"failmodes history: {tmp_path / 'nope'}: no such history directory; write one with pytest --failmodes --failmodes-history=DIR"
    )
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.json").write_text("[]", encoding="utf-8")
    assert main(["history", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"failmodes history: warning: skipped {tmp_path / 'empty' / 'x.json'}: not a run summary (its 'schema' is not 'pytest-failmodes/history')",
        f"failmodes history: {tmp_path / 'empty'}: holds no readable run (*.json written by --failmodes-history)",
    ]


def test_cli_rejects_a_one_run_shift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["history", str(tmp_path), "--min-run", "1"])
    assert exc.value.code == 2
    assert "--min-run takes a whole number >= 2 (one run is not a sustained shift), got 1" in capsys.readouterr().err


# -- the page in a browser ----------------------------------------------------------------------------

HOSTILE = "<script>alert(1)</script>\u202e\x1b[31m&amp;\"'"


@pytest.fixture
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no Chromium binary found ($FAILMODES_CHROMIUM, chromium, chromium-browser, google-chrome); apt-get install -y chromium")
    return binary


def test_page_in_chromium_one_panel_per_series_and_hostile_names(tmp_path: Path, chromium: str) -> None:
    rates = _flat(14)
    for i, r in enumerate(rates):
        r[HOSTILE] = {"all": (3, 50), f"route={HOSTILE}": (2 + (20 if i >= 11 else 0), 40)}
    directory = _history(tmp_path, rates, fingerprints={6: "f2", 7: "f2", 8: "f2", 9: "f2", 10: "f2", 11: "f2", 12: "f2", 13: "f2"})
    page = tmp_path / "history.html"
    assert main(["history", str(directory), "--html", str(page)]) == 0
    html_text = page.read_text(encoding="utf-8")
    assert "<script" not in html_text  # the page needs none, and a name cannot add one
    dom = parse_html(dump_dom(chromium, page.as_uri()))
    panels = dom.find_all("figure", cls="panel")
    assert len(panels) == 5  # refund x {all, route=a}, tone x {all}, hostile x {all, route=hostile}
    assert all(len(p.find_all("svg")) == 1 for p in panels)
    assert not dom.find_all("script")
    captions = [p.find_all("figcaption")[0].text for p in panels]
    # shown, not obeyed: the bidi override and ESC as escapes, markup as text
    assert any("route=<script>alert(1)</script>\\u202e\\x1b[31m&amp;\"'" in c for c in captions)
    headings = [h.text for h in dom.find_all("h2")]
    assert "<script>alert(1)</script>\\u202e\\x1b[31m&amp;\"' t.failmodes.yaml::<script>alert(1)</script>\\u202e\\x1b[31m&amp;\"'" in headings
    shifted = [p for p in panels if "up" in p.classes]
    assert len(shifted) == 1 and "shift up" in shifted[0].text
    # the definitions changed at run 7: the line is drawn in every panel
    assert sum(1 for p in panels if any(path.attrs.get("stroke-dasharray") == "2 2" for path in p.find_all("path"))) == 5
    screenshot(chromium, page.as_uri(), tmp_path / "history.png", width=1400, height=900)
    assert (tmp_path / "history.png").stat().st_size > 5000


def test_page_is_deterministic(tmp_path: Path) -> None:
    directory = _history(tmp_path, _flat(5))
    runs = load_history(directory, lambda line: None)
    series = build_series(runs)
    find_shifts(series)
    assert render_history(runs, series, ShiftTest()) == render_history(runs, series, ShiftTest())


def test_only_the_newest_runs_are_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = _history(tmp_path, _flat(6))
    assert main(["history", str(directory), "--last", "4"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == f"failmodes history: warning: 2 older run files in {directory} not read (the newest 4 are; --last N reads more)"
    assert captured.out.startswith(f"history {directory}: 4 runs, 2026-11-01 02:00 02aaaaaa .. 2026-11-01 05:00 05aaaaaa")
