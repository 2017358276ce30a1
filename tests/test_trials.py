"""Dataset-level controls and repeated trials: file-level where:, pair_by:, derived
cohorts, cluster_by: (cluster-aware intervals and regression tests, pass^k)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from pytest_failmodes.regression import clustered_mcnemar_one_sided, compare, rao_scott_counts
from pytest_failmodes.stats import clustered_interval, wilson_interval


def trials(run: str = "r1", failing_tasks: int = 5, tasks: int = 20, k: int = 4) -> list[dict[str, Any]]:
    """``tasks`` tasks x ``k`` trials; the first ``failing_tasks`` tasks fail in every trial."""
    rows = []
    for t in range(tasks):
        for r in range(k):
            rows.append({
                "id": f"{run}-t{t}-{r}",
                "input": f"task {t}",
                "output": "FAIL" if t < failing_tasks else "ok",
                "metadata": {"task_id": f"t{t}", "trial": r, "latency_ms": 300 * r, "tools": ["lookup", "refund"][: r % 3]},
            })
    return rows


DEFS = """
    dataset: data/traces.jsonl
    %s
    failure_modes:
      - name: fails
        rule: {regex: FAIL}
"""


def all_row(report: dict[str, Any]) -> dict[str, Any]:
    return report["modes"][0]["cohorts"][0]


def test_cluster_by_widens_the_interval_and_reports_pass_k(project) -> None:
    project.traces(trials())
    project.definitions(DEFS % "")
    plain = project.run("--failmodes-report=plain.json")
    project.definitions(DEFS % "cluster_by: task_id")
    clustered = project.run("--failmodes-report=clustered.json")

    assert plain.ret == clustered.ret == 0
    p, c = all_row(project.report("plain.json")), all_row(project.report("clustered.json"))
    assert (p["n"], p["fails"]) == (c["n"], c["fails"]) == (80, 20)
    assert "clustered" not in p
    assert (p["ci_low"], p["ci_high"]) == pytest.approx(wilson_interval(20, 80))
    # 5 of 20 tasks fail in all 4 trials: the trials of a task are one draw, not four
    assert c["clustered"]["clusters"] == 20
    # 4 trials per task, all alike: a design effect of 4 (times m / (m - 1) = 20 / 19)
    assert c["clustered"]["design_effect"] == pytest.approx(4 * 20 / 19, rel=0.001)
    assert c["ci_high"] - c["ci_low"] > 1.8 * (p["ci_high"] - p["ci_low"])
    clustered.stdout.fnmatch_lines([
        "fails *all *80 *20 *25.0%*[[]10.4%, 49.0%]*",
        "*repeated trials: 20 clusters of 4+ trials; pass^4 = 75.0% (all 4 trials pass), fail-any-of-4 = 25.0%, pass^1 = 75.0%",
    ])
    mode = project.report("clustered.json")["modes"][0]
    assert mode["trials"]["pass_hat_k"]["4"] == pytest.approx(0.75)
    assert mode["trials"]["fail_any_of_k"]["4"] == pytest.approx(0.25)
    assert mode["traces"][0]["cluster"] == "t0"


def test_cluster_by_per_trace_gives_the_same_interval(project) -> None:
    project.traces(trials())
    project.definitions(DEFS % "cluster_by: task_id")
    per_mode = project.run("--failmodes-report=a.json")
    per_trace = project.run("--failmodes-per-trace", "--failmodes-report=b.json")

    assert per_mode.ret == per_trace.ret == 0
    assert all_row(project.report("a.json")) == all_row(project.report("b.json"))
    assert project.report("a.json")["modes"][0]["trials"] == project.report("b.json")["modes"][0]["trials"]


def test_cluster_by_a_column_of_a_composite_id_in_raw_json(project) -> None:
    # tau-bench's raw trajectories: no id of their own, so fields: builds "task/trial" from
    # two columns; those columns stay fields of the trace, and the trials cluster by task
    import json

    runs = [
        {"task_id": t, "trial": r, "reward": 0.0 if t < 5 else 1.0,
         "traj": [{"role": "user", "content": f"task {t}"}, {"role": "assistant", "content": "FAIL" if t < 5 else "ok"}]}
        for t in range(20) for r in range(4)
    ]
    (project.path / "raw.json").write_text(json.dumps(runs), encoding="utf-8")
    dataset = "dataset: {path: raw.json, fields: {id: [task_id, trial], messages: traj}}"
    project.definitions((DEFS % "").replace("dataset: data/traces.jsonl", dataset))
    plain = project.run("--failmodes-report=plain.json")
    project.definitions((DEFS % "cluster_by: task_id").replace("dataset: data/traces.jsonl", dataset))
    clustered = project.run("--failmodes-report=clustered.json")

    assert plain.ret == clustered.ret == 0, clustered.stdout.str()
    p, c = all_row(project.report("plain.json")), all_row(project.report("clustered.json"))
    assert (p["n"], p["fails"]) == (c["n"], c["fails"]) == (80, 20)
    assert c["clustered"]["clusters"] == 20
    assert c["ci_high"] - c["ci_low"] > 1.8 * (p["ci_high"] - p["ci_low"])
    assert "lack the field" not in clustered.stdout.str()
    assert project.report("clustered.json")["modes"][0]["traces"][0]["cluster"] == "0"


def test_a_cluster_field_no_trace_has_is_said(project) -> None:
    project.traces(trials())
    project.definitions(DEFS % "cluster_by: task")
    result = project.run()

    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*cluster_by: 80 trace(s) lack the field and count as clusters of their own (every trace: is the field name right?)"
    ])


def test_file_level_where_chooses_the_traces(project) -> None:
    project.traces(trials())
    project.definitions(DEFS % "where: {trial: {lt: 2}}")
    result = project.run("--failmodes-report=r.json")

    assert result.ret == 0
    assert (all_row(project.report("r.json"))["n"], all_row(project.report("r.json"))["fails"]) == (40, 10)


def test_file_level_where_that_keeps_nothing_is_an_error(project) -> None:
    project.traces(trials())
    project.definitions(DEFS % "where: {trial: 9}")
    result = project.run()

    assert result.ret != 0
    result.stdout.fnmatch_lines(["*data/traces.jsonl: where: Where(trial eq 9) matched none of the 80 traces*"])
    assert "Traceback" not in result.stdout.str()


def test_bad_file_level_keys_name_the_line(project) -> None:
    project.traces(trials())
    project.definitions(DEFS % "cohorts: [{field: latency_ms, bins: [500, 0]}]")
    result = project.run()

    assert result.ret != 0
    result.stdout.fnmatch_lines(["*failmodes.yaml:2: cohorts[[]0]: bins must be increasing numbers, such as [[]0, 500, 2000]*"])


def test_derived_cohorts_bins_and_membership(project) -> None:
    project.traces(trials())
    project.definitions(DEFS % "cohorts: [{field: latency_ms, bins: [0, 500, 800]}, {field: tools, has: refund}, tools]")
    result = project.run("--failmodes-report=r.json")

    assert result.ret == 0
    rows = {r["cohort"]: r["n"] for r in project.report("r.json")["modes"][0]["cohorts"]}
    assert rows == {
        "all": 80,
        "latency_ms=[0, 500)": 40,  # trials 0 and 1: 0 ms, 300 ms
        "latency_ms=[500, 800)": 20,
        "latency_ms=[800, inf)": 20,
        "tools has refund=true": 20,
        "tools has refund=false": 60,
        "tools=(none)": 40,  # an empty list
        "tools=lookup": 20,
        "tools=lookup,refund": 20,
    }
    # bins in the order of their numbers, not as text
    order = [r["cohort"] for r in project.report("r.json")["modes"][0]["cohorts"]]
    assert order[1:4] == ["latency_ms=[0, 500)", "latency_ms=[500, 800)", "latency_ms=[800, inf)"]


def test_a_cohort_as_fine_as_the_traces_is_warned_about(project) -> None:
    project.traces(trials())
    project.definitions(DEFS % "cohorts: [input, task_id]")
    result = project.run()

    assert result.ret == 0
    out = result.stdout.str()
    assert "cohort input has 20 distinct values" not in out  # 20 values over 80 traces: fine
    project.traces([{**r, "metadata": {**r["metadata"], "uid": r["id"]}} for r in trials()])
    project.definitions(DEFS % "cohorts: [uid]")
    result = project.run()
    result.stdout.fnmatch_lines([
        "*cohort uid has 80 distinct values over 80 traces, more than half: each holds too few traces to say anything (is it an id?)"
    ])


# -- baselines: pair_by and clusters ---------------------------------------------------------


def test_pair_by_pairs_runs_whose_ids_differ(project) -> None:
    project.traces(trials("r1"))
    project.definitions(DEFS % "pair_by: [task_id, trial]")
    assert project.run("--failmodes-save-baseline").ret == 0
    project.traces(trials("r2", failing_tasks=6))
    result = project.run("--failmodes-baseline=.failmodes/baseline.json", "--failmodes-report=r.json")

    assert result.ret == 0
    base = all_row(project.report("r.json"))["baseline"]
    assert base["paired"] is True and base["discordant"] == [4, 0] and base["test"] == "mcnemar"
    assert project.report("r.json")["modes"][0]["traces"][0]["pair"] == "task_id=t0 & trial=0"

    # the same without pair_by: no id in common, so the test is unpaired
    project.definitions(DEFS % "")
    project.traces(trials("r1"))
    assert project.run("--failmodes-save-baseline").ret == 0
    project.traces(trials("r2", failing_tasks=6))
    result = project.run("--failmodes-baseline=.failmodes/baseline.json", "--failmodes-report=u.json")
    assert all_row(project.report("u.json"))["baseline"]["paired"] is False
    result.stdout.fnmatch_lines(["*the baseline evaluated other traces (0 of 80 ids in common): cohorts are compared unpaired*"])


def test_cluster_by_makes_the_paired_test_cluster_aware(project) -> None:
    project.traces(trials("r1"))
    project.definitions(DEFS % "pair_by: [task_id, trial]\n    cluster_by: task_id")
    assert project.run("--failmodes-save-baseline").ret == 0
    project.traces(trials("r2", failing_tasks=6))
    result = project.run("--failmodes-baseline=.failmodes/baseline.json", "--failmodes-report=r.json")

    assert result.ret == 0
    base = all_row(project.report("r.json"))["baseline"]
    # 4 discordant pairs, all in one task: one cluster is no evidence at all
    assert base["test"] == "mcnemar-clustered" and base["discordant"] == [4, 0]
    assert base["p_value"] == pytest.approx(0.158655, abs=1e-5)


def test_failmodes_compare_reads_pairs_and_clusters_back(project) -> None:
    project.traces(trials("r1"))
    project.definitions(DEFS % "pair_by: [task_id, trial]\n    cluster_by: task_id")
    assert project.run("--failmodes-report=old.json").ret == 0
    project.traces(trials("r2", failing_tasks=6))
    assert project.run("--failmodes-report=new.json").ret == 0

    result = project.pytester.run(sys.executable, "-m", "pytest_failmodes.cli", "compare", "old.json", "new.json", "--table=all")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["fails*all*80*"])
    assert "ids in common" not in result.stdout.str()


# -- the statistics ---------------------------------------------------------------------------


def test_clustered_interval_without_clustering_is_close_to_wilson() -> None:
    ci = clustered_interval([(1, 1)] * 20 + [(0, 1)] * 180)
    assert ci is not None and ci.design_effect == pytest.approx(1.0, abs=0.01) and ci.clusters == 200
    low, high = wilson_interval(20, 200)  # type: ignore[misc]
    assert ci.low == pytest.approx(low, abs=0.002) and ci.high == pytest.approx(high, abs=0.002)
    assert clustered_interval([]) is None
    one = clustered_interval([(2, 4)])
    assert one is not None and one.effective_n == 1.0  # one cluster is one observation
    zero = clustered_interval([(0, 4)] * 10)
    assert zero is not None and zero.low == 0.0 and 0 < zero.high < 1


def test_clustered_mcnemar_and_rao_scott() -> None:
    # one pair per cluster: the asymptotic McNemar test
    assert clustered_mcnemar_one_sided([(1, 0)] * 9 + [(0, 1)]) == pytest.approx(0.00570, abs=1e-4)
    assert clustered_mcnemar_one_sided([]) == 1.0
    assert clustered_mcnemar_one_sided([(4, 0)]) == pytest.approx(0.158655, abs=1e-5)
    assert rao_scott_counts(20, 80, 4.0) == (5, 20)
    assert rao_scott_counts(3, 10, 0.5) == (3, 10)
    rows = [{"mode": "m", "cohort": "all", "base_fails": 10, "base_n": 80, "new_fails": 24, "new_n": 80}]
    plain, = compare(rows)
    clustered, = compare([{**rows[0], "base_design_effect": 4.0, "new_design_effect": 4.0}])
    assert clustered.test == "boschloo-rao-scott" and (clustered.base_n, clustered.new_fails) == (80, 24)
    assert clustered.p_value > plain.p_value  # type: ignore[operator]


@pytest.mark.slow
@pytest.mark.parametrize("per_trace", [False, True], ids=["per-mode", "per-trace"])
def test_clusters_and_pairs_under_xdist_match_one_process(project, per_trace: bool) -> None:
    project.traces(trials())
    project.definitions(DEFS % "pair_by: [task_id, trial]\n    cluster_by: task_id\n    cohorts: [{field: latency_ms, bins: [0, 500]}]")
    extra = ["--failmodes-per-trace"] if per_trace else []
    serial = project.run_subprocess("-n", "0", "-p", "no:cacheprovider", "--failmodes-report=serial.json", *extra)
    parallel = project.run_subprocess("-n", "2", "-p", "no:cacheprovider", "--failmodes-report=parallel.json", *extra)

    parallel.stdout.fnmatch_lines(["*2 workers*"])
    assert serial.ret == parallel.ret == 0
    assert project.summary(serial) == project.summary(parallel)
    assert (project.path / "serial.json").read_bytes() == (project.path / "parallel.json").read_bytes()
    assert "clustered" in all_row(project.report("parallel.json"))
