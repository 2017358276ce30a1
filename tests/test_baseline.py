"""Baselines end to end: ``--failmodes-save-baseline``, ``--failmodes-baseline`` and the CI reports.

Real pytest sessions over a dataset of three routes (the cohorts):

* ``billing``: 200 traces, 4 leak (2%);
* ``shipping``: 200 traces, 4 leak (2%) in the main dataset and 50 (25%) in
  the candidate, the same trace ids: a planted regression in one cohort;
* ``returns``: 40 traces, 2 leak (5%).

A second mode (``rude``) fails on every 20th trace of each route in both
datasets and never changes. The limit is 90%, so no limit is ever breached:
whatever fails below fails on the comparison with the baseline.
"""

from __future__ import annotations

import importlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

#: route -> (traces, leaking traces)
MAIN = {"billing": (200, 4), "shipping": (200, 4), "returns": (40, 2)}
CANDIDATE = {**MAIN, "shipping": (200, 50)}

LEAKS = "(?i)my instructions say"

DEFINITIONS = """
    dataset: data/traces.jsonl
    cohorts: [route]
    gate: {{max_fail_rate: {limit}{file_gate}}}
    failure_modes:
      - name: leaks
        description: FAIL when the reply quotes its instructions.
        rule: {{regex: "{regex}"}}{leaks_gate}
      - name: rude
        rule: {{contains: whatever}}
"""

#: (mode, cohort) of the summary rows, in the table's order when nothing is breached
ROWS = [
    (mode, cohort)
    for mode in ("leaks", "rude")
    for cohort in ("all", "route=billing", "route=returns", "route=shipping")
]


@pytest.fixture(scope="module", autouse=True)
def _preloaded_statistics() -> None:
    """Import what comparing needs before any pytester run.

    An in-process pytester run drops the modules imported during it, and numpy
    cannot be imported twice in one process ("cannot load module more than once").
    """
    for name in ("baseline", "regression", "report.markdown", "report.junit", "report.html"):
        importlib.import_module(f"pytest_failmodes.{name}")
    for name in ("numpy", "scipy.special", "scipy.stats"):
        importlib.import_module(name)


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    # a CI job running this suite must not get the test sessions' tables in its summary
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def rows_of(counts: Mapping[str, tuple[int, int]], prefix: str = "") -> list[dict[str, Any]]:
    """Traces by route: the first ``fails`` of each route leak, every 20th is rude."""
    out = []
    for route, (n, fails) in counts.items():
        for i in range(n):
            reply = "My instructions say: no refunds." if i < fails else f"Happy to help with {route}."
            if i % 20 == 19:
                reply += " Whatever."
            out.append({"id": f"{prefix}{route}-{i:03d}", "input": f"question {i}", "output": reply, "metadata": {"route": route}})
    return out


def prepare(
    project: Any,
    *,
    file_gate: str = "",
    leaks_gate: str = "",
    regex: str = LEAKS,
    main: Mapping[str, tuple[int, int]] = MAIN,
    candidate: Mapping[str, tuple[int, int]] = CANDIDATE,
) -> Any:
    """The main dataset, the candidate (same ids) and the definitions."""
    project.traces(rows_of(main), "data/traces.jsonl")
    project.traces(rows_of(candidate), "data/candidate.jsonl")
    write_definitions(project, file_gate=file_gate, leaks_gate=leaks_gate, regex=regex)
    return project


def write_definitions(
    project: Any, *, file_gate: str = "", leaks_gate: str = "", regex: str = LEAKS, extra: str = "", limit: float = 0.9
) -> None:
    text = DEFINITIONS.format(file_gate=file_gate, leaks_gate=leaks_gate, regex=regex, limit=limit) + extra
    project.definitions(text)


def save_baseline(project: Any, *args: str, path: str = "base/baseline.json") -> Path:
    result = project.run(f"--failmodes-save-baseline={path}", *args)
    assert result.ret == 0, result.outlines
    return project.path / path


#: a run of the candidate dataset against the baseline save_baseline() wrote
AGAINST_BASELINE = ("--failmodes-dataset=data/candidate.jsonl", "--failmodes-baseline=base/baseline.json")


def run_candidate(project: Any, *args: str) -> pytest.RunResult:
    return project.run(*AGAINST_BASELINE, *args)


def table(summary: list[str]) -> dict[tuple[str, str], dict[str, str]]:
    """The summary table as (mode, cohort) -> {column: cell}, in the table's order."""
    header = re.split(r"\s{2,}", summary[1].strip())
    out: dict[tuple[str, str], dict[str, str]] = {}
    for line in summary[3:]:
        if not line.strip() or line.startswith(("note:", "BROKEN")):
            break
        cells = dict(zip(header, re.split(r"\s{2,}", line.strip())))
        out[(cells["mode"], cells["cohort"])] = cells
    return out


def notes(summary: list[str]) -> list[str]:
    return [line for line in summary if line.startswith("note:")]


def mode_of(report: Mapping[str, Any], name: str) -> dict[str, Any]:
    (found,) = [m for m in report["modes"] if m["name"] == name]
    return found


def cohort_of(mode: Mapping[str, Any], cohort: str) -> dict[str, Any]:
    (found,) = [c for c in mode["cohorts"] if c["cohort"] == cohort]
    return found


def assert_planted_regression(project: Any, result: Any, report_name: str) -> None:
    """The candidate's shipping cohort (and with it `all`) regressed; nothing else did."""
    assert result.ret == 1
    summary = project.summary(result)
    assert summary[0] == "2 failure modes in 1 file: 1 mode breached; against base/baseline.json: 2 regressions in 1 mode"
    rows = table(summary)
    shipping = rows[("leaks", "route=shipping")]
    assert (shipping["n"], shipping["fail"], shipping["rate"], shipping["limit"]) == ("200", "50", "25.0%", "90.0%")
    assert (shipping["base"], shipping["Δ"]) == ("2.0%", "+23.0pp")
    assert re.fullmatch(r"FAIL \(regression p=[0-9.e-]+\)", shipping["gate"]), shipping["gate"]
    assert float(shipping["p (adj.)"]) < 1e-6
    assert rows[("leaks", "all")]["gate"].startswith("FAIL (regression p=")
    # breached rows first; the others pass, compared and unchanged
    assert list(rows)[:2] == [("leaks", "all"), ("leaks", "route=shipping")]
    for key in set(ROWS) - {("leaks", "all"), ("leaks", "route=shipping")}:
        assert rows[key]["gate"] == "ok", key
        assert rows[key]["Δ"] == "+0.0pp", key
    assert "limit" not in " ".join(r["gate"] for r in rows.values())

    report = project.report(report_name)
    assert report["passed"] is False
    assert report["baseline"] == "base/baseline.json"
    leaks = mode_of(report, "leaks")
    assert leaks["status"] == "breached"
    # `all` holds the shipping traces, so it rose too; no limit was breached
    assert leaks["breaches"] == ["regression:all", "regression:route=shipping"]
    figures = cohort_of(leaks, "route=shipping")["baseline"]
    assert figures["paired"] is True
    assert figures["test"] == "mcnemar"
    assert figures["discordant"] == [46, 0]  # 46 traces went pass -> fail, none the other way
    assert (figures["base_fails"], figures["base_n"], figures["base_rate"]) == (4, 200, 0.02)
    assert figures["delta"] == pytest.approx(0.23)
    assert figures["regression"] is True and figures["improvement"] is False
    assert figures["p_adjusted"] < 1e-6
    for cohort in ("route=billing", "route=returns"):
        other = cohort_of(leaks, cohort)["baseline"]
        assert (other["regression"], other["discordant"], other["p_adjusted"]) == (False, [0, 0], 1.0)
    rude = mode_of(report, "rude")
    assert (rude["status"], rude["breaches"]) == ("ok", [])
    assert not any(c["baseline"]["regression"] for c in rude["cohorts"])


# -- saving and A/A ---------------------------------------------------------------------


def test_save_baseline_default_path_under_rootdir(project, monkeypatch) -> None:
    prepare(project)
    project.pytester.makeini("[pytest]\n")  # the rootdir
    (project.path / "sub").mkdir()
    monkeypatch.chdir(project.path / "sub")

    result = project.run("--failmodes-save-baseline", "-q", "..")
    explicit = project.run("--failmodes-save-baseline=b.json", "-q", "..")

    assert result.ret == explicit.ret == 0
    # the default is under the rootdir; a path given is relative to where pytest runs
    assert not (project.path / "sub" / ".failmodes").exists()
    assert (project.path / "sub" / "b.json").is_file()
    saved = json.loads((project.path / ".failmodes" / "baseline.json").read_text(encoding="utf-8"))
    assert saved == json.loads((project.path / "sub" / "b.json").read_text(encoding="utf-8"))
    assert (saved["schema"], saved["version"], saved["passed"], saved["baseline"]) == (
        "pytest-failmodes/report",
        1,
        True,
        None,
    )
    leaks = mode_of(saved, "leaks")
    assert leaks["fingerprint"]
    assert len(leaks["traces"]) == 440
    assert sum(t["verdict"] == "fail" for t in leaks["traces"]) == 10
    assert cohort_of(leaks, "route=shipping")["fails"] == 4


def test_a_a_rerun_of_the_same_data_passes(project) -> None:
    prepare(project)
    assert project.run("--failmodes-save-baseline", "-q").ret == 0

    result = project.run("--failmodes-baseline=.failmodes/baseline.json", "--failmodes-report=r.json")

    assert result.ret == 0
    summary = project.summary(result)
    assert summary[0] == "2 failure modes in 1 file: all gates passed; against .failmodes/baseline.json: 0 regressions"
    rows = table(summary)
    assert sorted(rows) == sorted(ROWS)  # ordered by rate: the order is test_summary_tables'
    for key, row in rows.items():
        assert (row["Δ"], row["p (adj.)"], row["gate"]) == ("+0.0pp", "1", "ok"), key
    assert rows[("leaks", "route=shipping")]["base"] == "2.0%"
    assert notes(summary) == []
    report = project.report("r.json")
    assert report["passed"] is True
    for mode in report["modes"]:
        for cohort in mode["cohorts"]:
            assert cohort["baseline"]["paired"] is True
            assert cohort["baseline"]["test"] == "mcnemar"
            assert cohort["baseline"]["discordant"] == [0, 0]
            assert cohort["baseline"]["regression"] is False


@pytest.mark.slow
def test_a_a_rerun_with_two_workers(project) -> None:
    prepare(project)
    saved = project.run_subprocess("-n", "2", "-p", "no:cacheprovider", "--failmodes-save-baseline")
    assert saved.ret == 0
    # the workers' results make the same baseline as one process
    save_baseline(project, path="serial.json")
    assert (project.path / ".failmodes" / "baseline.json").read_bytes() == (project.path / "serial.json").read_bytes()

    result = project.run_subprocess("-n", "2", "-p", "no:cacheprovider", "--failmodes-baseline=.failmodes/baseline.json")

    assert result.ret == 0
    result.stdout.fnmatch_lines(["*2 workers*"])
    summary = project.summary(result)
    assert summary[0].endswith("0 regressions")
    rows = table(summary)
    assert sorted(rows) == sorted(ROWS)  # ordered by rate: the order is test_summary_tables'
    assert {(row["Δ"], row["p (adj.)"], row["gate"]) for row in rows.values()} == {("+0.0pp", "1", "ok")}


# -- the planted regression ------------------------------------------------------------


def test_planted_regression_in_one_cohort_fails_the_run(project) -> None:
    prepare(project)
    save_baseline(project)

    result = run_candidate(project, "--failmodes-report=r.json")

    assert_planted_regression(project, result, "r.json")


@pytest.mark.slow
def test_planted_regression_with_two_workers_matches_one_process(project) -> None:
    prepare(project)
    save_baseline(project)
    args = ["-p", "no:cacheprovider", *AGAINST_BASELINE]

    serial = project.run_subprocess("-n", "0", *args, "--failmodes-report=serial.json")
    parallel = project.run_subprocess("-n", "2", *args, "--failmodes-report=parallel.json")

    parallel.stdout.fnmatch_lines(["*2 workers*"])
    assert_planted_regression(project, serial, "serial.json")
    assert_planted_regression(project, parallel, "parallel.json")
    assert project.summary(serial) == project.summary(parallel)
    assert (project.path / "serial.json").read_bytes() == (project.path / "parallel.json").read_bytes()


def test_planted_regression_per_trace(project) -> None:
    prepare(project)
    save_baseline(project)

    result = run_candidate(project, "--failmodes-per-trace", "-q", "--failmodes-report=r.json")

    assert result.ret == 1
    rows = table(project.summary(result))
    assert rows[("leaks", "route=shipping")]["gate"].startswith("FAIL (regression p=")
    assert rows[("leaks", "route=billing")]["gate"] == "ok"
    figures = cohort_of(mode_of(project.report("r.json"), "leaks"), "route=shipping")["baseline"]
    assert (figures["paired"], figures["test"], figures["regression"]) == (True, "mcnemar", True)


def test_baseline_path_with_a_space_and_an_absolute_path(project, tmp_path_factory) -> None:
    # `--failmodes-baseline /abs/path` (no `=`) reaches pytest's rootdir choice as if
    # it were a test path; the run's mode keys may then differ from the baseline's
    prepare(project)
    elsewhere = tmp_path_factory.mktemp("saved") / "baseline.json"
    save_baseline(project, path=str(elsewhere))
    assert elsewhere.is_file()

    result = project.run(
        "--failmodes-dataset=data/candidate.jsonl", "--failmodes-baseline", str(elsewhere), "--failmodes-report=r.json"
    )

    assert result.ret == 1
    # what this test is about: the rootdir moved up, so the run's keys differ from the baseline's
    run_key = mode_of(project.report("r.json"), "leaks")["key"]
    assert mode_of(json.loads(elsewhere.read_text(encoding="utf-8")), "leaks")["key"] == "failmodes.yaml::leaks"
    assert run_key == f"{project.path.name}/failmodes.yaml::leaks", "pytest no longer moves the rootdir here"
    summary = project.summary(result)
    assert summary[0].endswith(f"against {elsewhere}: 2 regressions in 1 mode")
    assert notes(summary) == []
    rows = table(summary)
    assert rows[("leaks", "route=shipping")]["gate"].startswith("FAIL (regression p=")
    assert rows[("rude", "route=shipping")]["Δ"] == "+0.0pp"
    figures = cohort_of(mode_of(project.report("r.json"), "leaks"), "route=shipping")["baseline"]
    assert (figures["paired"], figures["regression"]) == (True, True)


@pytest.mark.parametrize(
    ("file_gate", "leaks_gate", "args"),
    [
        (", min_increase: 0.5", "", ()),
        ("", "\n        gate: {min_increase: 0.5}", ()),
        ("", "", ("--failmodes-min-increase=0.5",)),
        # the definition file wins over the command line
        (", min_increase: 0.5", "", ("--failmodes-min-increase=0.01",)),
    ],
    ids=["file-gate", "mode-gate", "option", "file-gate-wins"],
)
def test_min_increase_larger_than_the_rise_is_no_regression(project, file_gate, leaks_gate, args) -> None:
    prepare(project)
    save_baseline(project)
    # the gate is not part of a mode's fingerprint: the baseline still compares
    write_definitions(project, file_gate=file_gate, leaks_gate=leaks_gate)

    result = run_candidate(project, "--failmodes-report=r.json", *args)

    assert result.ret == 0, result.outlines
    summary = project.summary(result)
    assert summary[0].endswith("0 regressions")
    assert notes(summary) == []
    shipping = table(summary)[("leaks", "route=shipping")]
    assert (shipping["base"], shipping["Δ"], shipping["gate"]) == ("2.0%", "+23.0pp", "ok")
    assert float(shipping["p (adj.)"]) < 1e-6  # significant, and still not a regression
    report = project.report("r.json")
    assert report["passed"] is True
    assert mode_of(report, "leaks")["breaches"] == []


def test_min_increase_below_the_rise_still_gates(project) -> None:
    prepare(project, file_gate=", min_increase: 0.2")
    save_baseline(project)

    result = run_candidate(project)

    # shipping rose 23 points (> 20): a regression; `all` rose 10.5 points (< 20): not one
    assert result.ret == 1
    rows = table(project.summary(result))
    assert rows[("leaks", "route=shipping")]["gate"].startswith("FAIL (regression p=")
    assert rows[("leaks", "all")]["gate"] == "ok"


@pytest.mark.parametrize(
    ("args", "ret", "p_adjusted", "exact"),
    [
        ((), 1, "0.00195", 2 / 1024),
        (("--failmodes-alpha=0.005",), 1, "0.00195", 2 / 1024),
        (("--failmodes-correction=holm",), 1, "0.00781", 8 / 1024),
        (("--failmodes-alpha=0.005", "--failmodes-correction=holm"), 0, "0.00781", 8 / 1024),
        (("--failmodes-alpha=0.005", "--failmodes-correction=bh"), 1, "0.00391", 4 / 1024),
    ],
    ids=["tarone-holm", "tarone-holm-alpha", "holm", "holm-alpha", "bh-alpha"],
)
def test_correction_spans_every_mode_and_cohort(
    project, args: tuple[str, ...], ret: int, p_adjusted: str, exact: float
) -> None:
    # shipping: 4 -> 14 of 200, the same ids: 10 traces pass -> fail, p = 2**-10 for it and for
    # `all`; the family is 2 modes x 4 cohorts = 8 tests: Holm gives 8 p, BH 8/2 p. The other 6
    # rows have no discordant pair, so they can never be significant: Tarone-Holm (the default)
    # counts only the 2 rows that can, 2 p
    prepare(project, candidate={**MAIN, "shipping": (200, 14)})
    save_baseline(project)

    result = run_candidate(project, *args)

    assert result.ret == ret
    rows = table(project.summary(result))
    for cohort in ("all", "route=shipping"):
        row = rows[("leaks", cohort)]
        assert row["p (adj.)"] == p_adjusted
        assert row["gate"] == (f"FAIL (regression p={exact:.2g})" if ret else "ok")
    others = [r["p (adj.)"] for key, r in rows.items() if key not in {("leaks", "all"), ("leaks", "route=shipping")}]
    assert others == ["1"] * 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--failmodes-alpha=1.5",), "ERROR: --failmodes-alpha takes a number >= 1e-09 and < 1.0, got '1.5'"),
        (("--failmodes-alpha=nan",), "ERROR: --failmodes-alpha takes a number >= 1e-09 and < 1.0, got 'nan'"),
        (("--failmodes-min-increase=1",), "ERROR: --failmodes-min-increase takes a number >= 0.0 and < 1.0, got '1'"),
        (("--failmodes-correction=bonferroni",), "*--failmodes-correction: invalid choice: 'bonferroni'*"),
    ],
    ids=["alpha-above-1", "alpha-nan", "min-increase-1", "correction"],
)
def test_out_of_range_options_are_usage_errors(project, args: tuple[str, ...], message: str) -> None:
    prepare(project)
    save_baseline(project)

    result = project.run("--failmodes-baseline=base/baseline.json", *args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_min_increase_of_one_in_yaml_is_a_definition_error(project) -> None:
    prepare(project, file_gate=", min_increase: 1.0")

    result = project.run()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["failmodes.yaml:3: gate.min_increase: input should be less than 1"])


def test_other_trace_ids_are_compared_unpaired(project) -> None:
    prepare(project)
    save_baseline(project)
    # another sample of traces: new ids, shipping at 15 of 60 (25%)
    project.traces(rows_of({"billing": (60, 1), "shipping": (60, 15)}, prefix="new-"), "data/other.jsonl")

    result = project.run(
        "--failmodes-dataset=data/other.jsonl", "--failmodes-baseline=base/baseline.json", "--failmodes-report=r.json"
    )

    assert result.ret == 1
    summary = project.summary(result)
    assert notes(summary) == [
        f"note: {mode}: baseline: the baseline evaluated other traces (0 of 120 ids in common): "
        "cohorts are compared unpaired"
        for mode in ("leaks", "rude")
    ]
    rows = table(summary)
    assert rows[("leaks", "route=shipping")]["gate"].startswith("FAIL (regression p=")
    assert rows[("leaks", "route=billing")]["gate"] == "ok"
    assert ("leaks", "route=returns") not in rows  # not in this sample: nothing to compare
    leaks = mode_of(project.report("r.json"), "leaks")
    for cohort in leaks["cohorts"]:
        assert cohort["baseline"]["paired"] is False
        assert cohort["baseline"]["discordant"] is None
        assert cohort["baseline"]["test"] in ("boschloo", "fisher")
    assert cohort_of(leaks, "route=shipping")["baseline"]["test"] == "boschloo"


# -- what is not compared, and why -------------------------------------------------------


def test_changed_and_new_modes_are_explained_not_compared(project) -> None:
    prepare(project)
    save_baseline(project)
    # leaks: another regex (the same traces match); shouting: a mode the baseline lacks
    write_definitions(
        project,
        regex="(?i)instructions",
        extra="      - name: shouting\n        rule: {regex: '[A-Z]{5}'}\n",
    )

    result = run_candidate(project, "--failmodes-report=r.json")

    # the changed mode's rise is not judged against rates of another definition
    assert result.ret == 0, result.outlines
    summary = project.summary(result)
    assert notes(summary) == [
        "note: leaks: baseline: its definition changed since the baseline: not compared (save a new baseline)",
        "note: shouting: baseline: not in the baseline base/baseline.json: nothing to compare",
    ]
    rows = table(summary)
    shipping = rows[("leaks", "route=shipping")]
    assert (shipping["rate"], shipping["base"], shipping["Δ"], shipping["p (adj.)"]) == ("25.0%", "-", "-", "-")
    assert rows[("shouting", "all")]["base"] == "-"
    assert rows[("rude", "route=shipping")]["base"] == "5.0%"  # unchanged: compared
    report = project.report("r.json")
    assert report["passed"] is True
    assert not any("baseline" in c for c in mode_of(report, "leaks")["cohorts"])
    assert all("baseline" in c for c in mode_of(report, "rude")["cohorts"])
    assert mode_of(report, "leaks")["notes"] == [
        "baseline: its definition changed since the baseline: not compared (save a new baseline)"
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all", "the baseline is not valid JSON: *"),
        ('{"schema": "someone-else/report", "version": 1}', "not a pytest-failmodes report (schema 'someone-else/report'*"),
        ('{"schema": "pytest-failmodes/report", "version": 99, "modes": []}', "baseline schema version 99;*save the baseline again"),
        ("[1, 2]", "not a pytest-failmodes report"),
        (
            '{"schema": "pytest-failmodes/report", "version": 1, "modes": [{"key": "failmodes.yaml::leaks", "cohorts": [{"cohort": "all"}]}]}',
            "modes[[]0].cohorts[[]0]: 'n' missing or not an integer: the baseline is damaged, save it again",
        ),
        (
            '{"schema": "pytest-failmodes/report", "version": 1, "modes": [{"key": "failmodes.yaml::leaks", "traces": [{"verdict": "fail"}]}]}',
            "modes[[]0].traces[[]0]: 'id' missing or not a string: *",
        ),
    ],
    ids=["not-json", "other-schema", "other-version", "not-an-object", "cohort-without-n", "trace-without-id"],
)
def test_a_bad_baseline_is_a_usage_error_naming_the_file(project, content: str, message: str) -> None:
    prepare(project)
    project.file("base/odd.json", content)

    result = project.run("--failmodes-baseline=base/odd.json")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: base/odd.json: {message}"])
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output
    assert "failure modes" not in output  # stopped before any work


def test_a_missing_baseline_is_a_usage_error(project) -> None:
    prepare(project)

    result = project.run("--failmodes-baseline=base/nothing.json")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: base/nothing.json: no baseline here; save one with --failmodes-save-baseline on the reference branch"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


# -- improvements ----------------------------------------------------------------------


def test_improvements_are_reported_never_gated(project) -> None:
    prepare(project)
    # the baseline is the run where shipping leaked 25%; this run brings it back to 2%
    save_baseline(project, "--failmodes-dataset=data/candidate.jsonl")

    result = project.run("--failmodes-baseline=base/baseline.json", "--failmodes-report=r.json")

    assert result.ret == 0
    summary = project.summary(result)
    assert summary[0].endswith("all gates passed; against base/baseline.json: 0 regressions")
    rows = table(summary)
    shipping = rows[("leaks", "route=shipping")]
    assert (shipping["base"], shipping["Δ"], shipping["gate"]) == ("25.0%", "-23.0pp", "ok (improved)")
    assert float(shipping["p (adj.)"]) == 1.0  # the p-value of a rise
    assert rows[("leaks", "route=billing")]["gate"] == "ok"
    report = project.report("r.json")
    assert report["passed"] is True
    figures = cohort_of(mode_of(report, "leaks"), "route=shipping")["baseline"]
    assert (figures["improvement"], figures["regression"], figures["discordant"]) == (True, False, [0, 46])


# -- CI reports -------------------------------------------------------------------------


def gates_suite(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    (suite,) = [s for s in root.iter("testsuite") if s.get("name") == "failmodes-gates"]
    return suite


def properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in case.iter("property")}  # type: ignore[misc]


def test_junit_has_one_testcase_per_gate(project) -> None:
    prepare(project)
    save_baseline(project)

    result = run_candidate(project, "--junitxml=out/j.xml", "--failmodes-report=r.json")

    assert result.ret == 1
    suite = gates_suite(project.path / "out" / "j.xml")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        (f"failmodes.yaml::{mode}", f"gate[{cohort}]") for mode, cohort in ROWS
    ]
    failed = [(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None]
    assert failed == [("failmodes.yaml::leaks", "gate[all]"), ("failmodes.yaml::leaks", "gate[route=shipping]")]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("8", "2", "0", "0")
    # pytest's own suite is still there, with the mode items
    root = ET.parse(project.path / "out" / "j.xml").getroot()
    assert [s.get("name") for s in root.iter("testsuite")] == ["pytest", "failmodes-gates"]

    shipping = next(c for c in cases if c.get("name") == "gate[route=shipping]" and c.get("classname").endswith("leaks"))
    props = properties(shipping)
    assert {"n", "fails", "rate", "ci_low", "ci_high", "limit", "base_rate", "delta", "p_adjusted"} <= props.keys()
    assert (props["n"], props["fails"], props["rate"], props["limit"]) == ("200", "50", "0.25", "0.9")
    assert (props["base_rate"], props["delta"]) == ("0.02", "0.23")
    figures = cohort_of(mode_of(project.report("r.json"), "leaks"), "route=shipping")
    assert float(props["ci_low"]) == pytest.approx(figures["ci_low"], rel=1e-5)
    assert float(props["p_adjusted"]) == pytest.approx(figures["baseline"]["p_adjusted"], rel=1e-5)
    message = shipping.find("failure").get("message")  # type: ignore[union-attr]
    assert message.startswith("regression against the baseline: +0.23, p=")
    assert properties(cases[1])["delta"] == "0"  # leaks, route=billing


def test_junit_gates_without_a_baseline_fail_on_the_limit(project) -> None:
    prepare(project)
    write_definitions(project, limit=0.2)

    result = project.run("--failmodes-dataset=data/candidate.jsonl", "--junitxml=j.xml")

    assert result.ret == 1
    suite = gates_suite(project.path / "j.xml")
    cases = suite.findall("testcase")
    assert len(cases) == len(ROWS)
    failed = {(c.get("classname"), c.get("name")): c.find("failure").get("message") for c in cases if c.find("failure") is not None}  # type: ignore[union-attr]
    assert failed == {("failmodes.yaml::leaks", "gate[route=shipping]"): "fail rate 0.25 over the limit 0.2"}
    assert (suite.get("tests"), suite.get("failures")) == ("8", "1")
    assert "base_rate" not in properties(cases[0])


def test_junit_counts_a_broken_mode_as_an_error(project) -> None:
    project.support_traces()
    project.definitions(
        """
        dataset: {path: data/traces.jsonl}
        failure_modes:
          - name: fine
            rule: {contains: "zzz-never", field: output}
          - name: broken
            detector: no_such_fixture
        """
    )

    result = project.run("--junitxml=j.xml")

    assert result.ret == 1
    suite = gates_suite(project.path / "j.xml")
    (case,) = [c for c in suite.findall("testcase") if c.get("classname") == "failmodes.yaml::broken"]
    assert case.find("error") is not None and case.find("failure") is None
    assert (suite.get("failures"), suite.get("errors")) == ("0", "1")


def test_markdown_file_and_github_step_summary(project, monkeypatch, tmp_path) -> None:
    main = {"billing": (40, 1), "shipping": (200, 4), "gift|card": (20, 0)}
    prepare(project, main=main, candidate={**main, "shipping": (200, 50)})
    save_baseline(project)
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("## earlier step\n\nsome text\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))

    result = run_candidate(project, "--failmodes-markdown=out/s.md")

    assert result.ret == 1
    text = (project.path / "out" / "s.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "### ❌ pytest-failmodes: 2 failure modes in 1 file: 1 mode breached; against base/baseline.json: 2 regressions in 1 mode"
    assert lines[1] == ""
    assert lines[2] == "| mode | cohort | n | fail | rate | 95% CI | limit | base | Δ | p (adj.) | gate |"
    assert lines[3] == "|:---|:---|---:|---:|---:|:---|---:|---:|---:|---:|:---|"
    # the regressed rows, then every row in a collapsed block
    assert lines[4].startswith("| leaks | all | ") and "FAIL (regression p=" in lines[4]
    assert lines[5].startswith("| leaks | route=shipping | 200 | 50 | 25.0% |") and "| +23.0pp |" in lines[5]
    assert re.search(r"\| FAIL \(regression p=[0-9.e-]+\) \|$", lines[5])
    assert lines[6:8] == ["", "<details>"] and lines[-1] == "</details>"
    # the table of every row: 11 columns
    body = [line for line in lines[8:] if line.startswith("| ") and len(re.findall(r"(?<!\\)\|", line)) == 12]
    assert len(body) == 1 + 8  # its header and the rows
    body = body[1:]
    assert body[0].startswith("| leaks | all | ") and body[1].startswith("| leaks | route=shipping | ")
    assert all("FAIL" not in line for line in body[2:])
    # a pipe in a cohort value does not end the cell
    gift = [line for line in body if "gift" in line]
    assert gift == [line for line in body if "route=gift\\|card" in line] and len(gift) == 2
    assert all(len(re.findall(r"(?<!\\)\|", line)) == 12 for line in body)
    # the job summary keeps what earlier steps wrote
    assert step_summary.read_text(encoding="utf-8") == "## earlier step\n\nsome text\n" + text + "\n"
    # without --failmodes-markdown the job summary still gets the table, appended again
    again = run_candidate(project)
    assert again.ret == 1
    assert step_summary.read_text(encoding="utf-8") == "## earlier step\n\nsome text\n" + (text + "\n") * 2


def test_markdown_without_a_baseline_has_no_baseline_columns(project) -> None:
    prepare(project)

    result = project.run("--failmodes-markdown=s.md")

    assert result.ret == 0
    lines = (project.path / "s.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "### ✅ pytest-failmodes: 2 failure modes in 1 file: all gates passed"
    assert lines[2] == "No cohort breached its gate or regressed."
    assert "| mode | cohort | n | fail | rate | 95% CI | limit | gate |" in lines


def test_html_report_is_one_offline_file(project) -> None:
    prepare(project)
    save_baseline(project)

    result = run_candidate(project, "--failmodes-html=out/r.html")

    assert result.ret == 1
    assert [p.name for p in (project.path / "out").iterdir()] == ["r.html"]
    html = (project.path / "out" / "r.html").read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert re.search(r"https?:|(src|href)\s*=\s*[\"']?//", html, re.I) is None
    markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)  # our scripts' text may name tags
    assert re.search(r"<(link|img|iframe|object|embed)\b", markup, re.I) is None
    # the summary table's rows are data its script draws: [cells after the mode column, gate css, ...]
    data = re.search(r'<script type="application/json" id="fm-data">(.*?)</script>', html, re.S)
    assert data is not None
    summary = json.loads(data.group(1))["summary"]["modes"]
    rows = [cells for m in summary for cells, gate_css, *_ in m.get("rows", []) if gate_css == "fail"]
    shipping = [cells for cells in rows if cells[0] == "route=shipping"]
    assert len(rows) == 2 and len(shipping) == 1
    assert "FAIL (regression)" in shipping[0] and "25.0%" in shipping[0]
    assert any("+23.0 pp" in cell for cell in shipping[0])


# --------------------------------------------------------------------------------------
# guards found while writing docs/ci.md
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["failmodes.yaml", "tests", "base/baseline"])
def test_save_baseline_refuses_a_path_that_is_not_json(project, value: str) -> None:
    # the value is optional, so `--failmodes-save-baseline failmodes.yaml` takes the next word
    prepare(project)
    before = (project.path / "failmodes.yaml").read_text(encoding="utf-8")

    result = project.run("--failmodes-save-baseline", value)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --failmodes-save-baseline writes a .json file, got '{value}'; write *"])
    assert (project.path / "failmodes.yaml").read_text(encoding="utf-8") == before


def test_a_baseline_saved_alone_records_cohort_members(project) -> None:
    prepare(project)
    saved = json.loads(save_baseline(project).read_text(encoding="utf-8"))

    shipping = cohort_of(mode_of(saved, "leaks"), "route=shipping")
    assert len(shipping["members"]) == shipping["n"] == 200


def test_a_partial_per_trace_run_is_not_compared(project) -> None:
    prepare(project)
    save_baseline(project)

    result = run_candidate(project, "--failmodes-per-trace", "-k", "shipping", "--failmodes-report=r.json")

    assert result.ret == 0, result.outlines
    leaks = mode_of(project.report("r.json"), "leaks")
    assert all("baseline" not in c for c in leaks["cohorts"])
    assert any("a partial run: not compared with the baseline" in n for n in leaks["notes"])


def test_cohorts_that_cannot_pair_say_so(project) -> None:
    # one shipping trace is gone from the new run: every new id is in the baseline, yet
    # shipping (and `all`) hold other traces than the baseline's and cannot pair
    prepare(project)
    save_baseline(project)
    rows = rows_of(CANDIDATE)
    assert rows.pop(250)["id"] == "shipping-050"
    project.traces(rows, "data/candidate.jsonl")

    result = run_candidate(project, "--failmodes-report=r.json")

    leaks = mode_of(project.report("r.json"), "leaks")
    assert cohort_of(leaks, "route=shipping")["baseline"]["paired"] is False
    assert cohort_of(leaks, "route=billing")["baseline"]["paired"] is True
    assert "baseline: compared unpaired (their decided traces differ): all, route=shipping" in leaks["notes"]
    assert result.ret == 1  # shipping still regressed, found by the unpaired test


def test_judge_model_from_the_environment_is_part_of_the_fingerprint(monkeypatch, tmp_path: Path) -> None:
    # another judge is another detector: its verdicts must not be compared with the old judge's
    from pytest_failmodes.definitions import load_suite
    from pytest_failmodes.detectors.rules import BUILTIN_RULE_KINDS

    (tmp_path / "d.jsonl").write_text('{"id": "a", "input": "q", "output": "r"}\n', encoding="utf-8")
    definition = tmp_path / "f.failmodes.yaml"
    definition.write_text(
        "dataset: d.jsonl\njudge: {model: openai/a}\nfailure_modes:\n  - name: m\n    description: FAIL when x.\n    judge: {}\n",
        encoding="utf-8",
    )

    def fingerprint() -> str:
        return load_suite(definition, {k.name: k for k in BUILTIN_RULE_KINDS}).modes[0].fingerprint

    monkeypatch.delenv("FAILMODES_JUDGE_MODEL", raising=False)
    plain = fingerprint()
    monkeypatch.setenv("FAILMODES_JUDGE_MODEL", "openai/b")
    assert fingerprint() != plain
    monkeypatch.setenv("FAILMODES_JUDGE_MODEL", "openai/c")
    assert len({plain, fingerprint()}) == 2
