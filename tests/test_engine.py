"""The pytest-free engine: evaluate() over a small dataset, cohorts, gates, results."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_failmodes.dataset import DatasetSpec
from pytest_failmodes.definitions import load_suite
from pytest_failmodes.detectors import build_rule
from pytest_failmodes.detectors.label import LabelDetector
from pytest_failmodes.detectors.rules import BUILTIN_RULE_KINDS
from pytest_failmodes.engine import (
    Aggregator,
    CohortRow,
    Gate,
    ModeResult,
    ModeSpec,
    Suite,
    cohort_keys,
    detect_one,
    evaluate,
)
from pytest_failmodes.errors import DatasetError
from pytest_failmodes.stats import wilson_interval
from pytest_failmodes.trace import Trace
from pytest_failmodes.verdict import Verdict
from pytest_failmodes.where import compile_where

KINDS = {k.name: k for k in BUILTIN_RULE_KINDS}

# id, route, persona, output ("bad" marks the failure the test modes look for)
ROWS: list[dict[str, Any]] = [
    {"id": "1", "route": "a", "persona": "x", "output": "bad"},
    {"id": "2", "route": "a", "persona": "x", "output": "ok"},
    {"id": "3", "route": "a", "persona": "y", "output": "bad"},
    {"id": "4", "route": "a", "output": "ok"},
    {"id": "5", "route": "b", "persona": "x", "output": "ok"},
    {"id": "6", "route": "b", "persona": "y", "output": "ok"},
    {"id": "7", "route": "b", "persona": "y", "output": "bad"},
    {"id": "8", "route": "b", "persona": "", "output": "ok"},
    {"id": "9", "persona": "x", "output": "ok"},
    {"id": "10", "route": "a", "persona": "x", "output": "ok"},
]
COHORTS = (("route",), ("route", "persona"))


@pytest.fixture
def dataset(tmp_path: Path) -> DatasetSpec:
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return DatasetSpec(path)


def is_bad(trace: Trace) -> bool:
    return trace.output == "bad"


def run(
    dataset: DatasetSpec,
    detectors: Mapping[str, Callable[[Trace], Any]],
    *,
    gates: Mapping[str, Gate] | None = None,
    wheres: Mapping[str, dict[str, Any]] | None = None,
    cohorts: tuple[tuple[str, ...], ...] = COHORTS,
    **kwargs: Any,
) -> dict[str, ModeResult]:
    gates = gates or {}
    wheres = wheres or {}
    modes = tuple(
        ModeSpec(
            name=name,
            source="suite.yaml",
            detector=det,
            where=compile_where(wheres[name]) if name in wheres else None,
            gate=gates.get(name, Gate()),
            order=i,
        )
        for i, (name, det) in enumerate(detectors.items())
    )
    suite = Suite(source="suite.yaml", dataset=dataset, cohorts=cohorts, modes=modes)
    result = evaluate(suite, detectors, **kwargs)
    return result.modes


def by_cohort(result: ModeResult) -> dict[str, tuple[int, int, int]]:
    return {r.cohort: (r.n, r.fails, r.errors) for r in result.rows}


def row(result: ModeResult, cohort: str) -> CohortRow:
    return next(r for r in result.rows if r.cohort == cohort)


# -- counting ---------------------------------------------------------------------


def test_per_cohort_counts_with_combinations_and_missing_values(dataset: DatasetSpec) -> None:
    result = run(dataset, {"bad": is_bad})["bad"]
    assert by_cohort(result) == {
        "all": (10, 3, 0),
        "route=(missing)": (1, 0, 0),
        "route=a": (5, 2, 0),
        "route=b": (4, 1, 0),
        "route=(missing) & persona=x": (1, 0, 0),
        "route=a & persona=(missing)": (1, 0, 0),
        "route=a & persona=x": (3, 1, 0),
        "route=a & persona=y": (1, 1, 0),
        "route=b & persona=(missing)": (1, 0, 0),  # an empty value counts as missing
        "route=b & persona=x": (1, 0, 0),
        "route=b & persona=y": (2, 1, 0),
    }
    # all first, then by field grouping, then by label
    assert [r.cohort for r in result.rows] == list(by_cohort(result))
    assert result.ids == [r["id"] for r in ROWS]
    assert result.codes == "FPFPPPFPPP"
    assert result.skipped == 0
    assert row(result, "route=a").rate == pytest.approx(0.4)
    assert row(result, "route=a").ci == wilson_interval(2, 5)


def test_without_cohorts_only_the_all_row(dataset: DatasetSpec) -> None:
    result = run(dataset, {"bad": is_bad}, cohorts=())["bad"]
    assert by_cohort(result) == {"all": (10, 3, 0)}


def test_cohort_keys_render_values_as_text() -> None:
    trace = Trace(id="t", output="o", metadata={"vip": True, "turns": 3, "tier": None})
    assert cohort_keys(trace, [("vip",), ("turns", "tier"), ("nope",)]) == [
        "all",
        "vip=true",
        "turns=3 & tier=(missing)",
        "nope=(missing)",
    ]


def test_where_skipped_traces_are_not_counted(dataset: DatasetSpec) -> None:
    result = run(dataset, {"bad": is_bad}, wheres={"bad": {"route": "a"}})["bad"]
    assert result.skipped == 5
    assert by_cohort(result)["all"] == (5, 2, 0)
    assert "route=b" not in by_cohort(result)
    assert result.codes == "FPFPSSSSSP"
    # skipped traces are left out of the per-trace verdicts
    assert [v[0] for v in result.verdicts()] == ["1", "2", "3", "4", "10"]


def test_skip_verdicts_are_not_counted(dataset: DatasetSpec) -> None:
    detector = LabelDetector("persona", frozenset({"y"}))  # missing or empty persona: skipped
    result = run(dataset, {"persona_y": detector})["persona_y"]
    assert result.skipped == 2
    assert by_cohort(result)["all"] == (8, 3, 0)
    assert result.codes == "PPFSPFFSPP"


def test_detector_exception_is_an_error_not_in_n(dataset: DatasetSpec) -> None:
    def flaky(trace: Trace) -> bool:
        if trace.id in ("2", "5"):
            raise RuntimeError(f"backend down for {trace.id}")
        return is_bad(trace)

    result = run(dataset, {"flaky": flaky})["flaky"]
    assert by_cohort(result)["all"] == (8, 3, 2)
    assert by_cohort(result)["route=a"] == (4, 2, 1)
    assert by_cohort(result)["route=b"] == (3, 1, 1)
    assert result.errors == 2
    assert result.codes == "FEFPEPFPPP"
    reason, evidence = result.details[1]
    assert reason.startswith("RuntimeError: backend down for 2 (test_engine.py:")
    assert evidence is None


def test_bool_and_verdict_returning_detectors(dataset: DatasetSpec) -> None:
    def verdicts(trace: Trace) -> Verdict:
        if is_bad(trace):
            return Verdict.fail("found bad", evidence={"id": trace.id})
        return Verdict.pass_()

    results = run(dataset, {"as_bool": is_bad, "as_verdict": verdicts})
    assert by_cohort(results["as_bool"]) == by_cohort(results["as_verdict"])
    assert results["as_bool"].details[0] == ["detector returned True", None]
    assert results["as_verdict"].details[0] == ["found bad", {"id": "1"}]
    assert list(results["as_verdict"].verdicts())[:2] == [
        ("1", "fail", "found bad", {"id": "1"}),
        ("2", "pass", "", None),
    ]


@pytest.mark.parametrize("returned", [None, 1, 0, "yes", [], Verdict])
def test_non_bool_non_verdict_return_is_an_error(dataset: DatasetSpec, returned: Any) -> None:
    result = run(dataset, {"odd": lambda trace: returned})["odd"]
    assert by_cohort(result)["all"] == (0, 0, 10)
    assert set(result.codes) == {"E"}
    reason = result.details[0][0]
    assert "expected a Verdict or a bool" in reason
    assert type(returned).__name__ in reason


def test_detect_one_turns_exceptions_into_errors() -> None:
    trace = Trace(id="t", output="o")

    def boom(_: Trace) -> bool:
        raise KeyError("k")

    verdict = detect_one(boom, trace)
    assert verdict.errored and verdict.reason.startswith("KeyError: 'k'")
    assert detect_one(lambda _: True, trace).failed
    assert detect_one(lambda _: False, trace).passed


def test_each_detector_runs_once_per_trace_in_one_pass(dataset: DatasetSpec) -> None:
    calls: dict[str, list[str]] = {"m1": [], "m2": []}

    def recorder(name: str) -> Callable[[Trace], bool]:
        def detect(trace: Trace) -> bool:
            calls[name].append(trace.id)
            return False

        return detect

    results = run(dataset, {"m1": recorder("m1"), "m2": recorder("m2")}, wheres={"m2": {"persona": "x"}})
    assert calls["m1"] == [r["id"] for r in ROWS]
    assert calls["m2"] == ["1", "2", "5", "9", "10"]
    assert results["m2"].skipped == 5


def test_only_and_broken(dataset: DatasetSpec) -> None:
    detectors = {"m1": is_bad, "m2": is_bad, "m3": is_bad}
    results = run(dataset, detectors, only=["m1", "m3"], broken={"m3": "fixture not found"})
    assert set(results) == {"m1", "m3"}
    assert results["m1"].passed
    broken = results["m3"]
    assert broken.broken == "fixture not found"
    assert broken.rows == [] and broken.codes == "" and not broken.passed


def test_dataset_errors_propagate(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "output": "x"}\n{"id": "a", "output": "y"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match="duplicate id"):
        run(DatasetSpec(path), {"bad": is_bad})


# -- gates ------------------------------------------------------------------------


def test_point_gate_breaches_above_the_limit_only(dataset: DatasetSpec) -> None:
    # all: 3/10 = 0.3 exactly at the limit; route=a: 0.4 over it
    result = run(dataset, {"bad": is_bad}, gates={"bad": Gate(max_fail_rate=0.3)})["bad"]
    assert row(result, "all").breach is None
    assert row(result, "route=a").breach == "limit"
    assert row(result, "route=b").breach is None
    assert {r.cohort for r in result.breached_rows} == {
        "route=a",
        "route=a & persona=x",  # 1/3
        "route=a & persona=y",
        "route=b & persona=y",
    }
    assert not result.passed


def test_no_limit_means_no_gate(dataset: DatasetSpec) -> None:
    result = run(dataset, {"bad": is_bad})["bad"]
    assert all(r.limit is None and not r.gated and r.breach is None for r in result.rows)
    assert result.passed


@pytest.mark.parametrize(
    ("gate_on", "limit", "breach"),
    [
        # 3/10: point 0.30, Wilson 95% roughly [0.108, 0.603]
        ("point", 0.35, False),
        ("upper", 0.35, True),
        ("lower", 0.35, False),
        ("point", 0.25, True),
        ("upper", 0.61, False),
        ("lower", 0.25, False),
        ("lower", 0.10, True),
    ],
)
def test_gate_on_point_upper_lower(dataset: DatasetSpec, gate_on: str, limit: float, breach: bool) -> None:
    low, high = wilson_interval(3, 10)  # type: ignore[misc]
    assert 0.10 < low < 0.25 and 0.35 < high < 0.61  # the parametrisation relies on these
    result = run(dataset, {"bad": is_bad}, gates={"bad": Gate(max_fail_rate=limit, gate_on=gate_on)}, cohorts=())["bad"]
    assert (row(result, "all").breach == "limit") is breach
    assert result.passed is not breach


def test_zero_limit_breaches_on_any_failure(dataset: DatasetSpec) -> None:
    result = run(dataset, {"bad": is_bad, "never": lambda t: False}, gates={
        "bad": Gate(max_fail_rate=0.0), "never": Gate(max_fail_rate=0.0, gate_on="upper")
    }, cohorts=())
    assert not result["bad"].passed
    # 0/10 has an upper bound above 0, so an upper-bound gate at 0 can never pass
    assert not result["never"].passed


def test_min_cohort_size_small_cohorts_shown_not_gated(dataset: DatasetSpec) -> None:
    result = run(dataset, {"bad": is_bad}, gates={"bad": Gate(max_fail_rate=0.0, min_cohort_size=4)})["bad"]
    rows = {r.cohort: r for r in result.rows}
    assert len(rows) == 11  # every cohort is still shown
    assert not rows["all"].small and rows["all"].gated and rows["all"].breach == "limit"
    assert not rows["route=a"].small and rows["route=a"].breach == "limit"  # n=5
    assert not rows["route=b"].small and rows["route=b"].breach == "limit"  # n=4
    for cohort in ("route=(missing)", "route=a & persona=x", "route=a & persona=y", "route=b & persona=y"):
        assert rows[cohort].small and not rows[cohort].gated and rows[cohort].breach is None, cohort


def test_all_row_is_never_small(dataset: DatasetSpec) -> None:
    result = run(dataset, {"bad": is_bad}, gates={"bad": Gate(max_fail_rate=0.1, min_cohort_size=100)})["bad"]
    assert not row(result, "all").small and row(result, "all").breach == "limit"
    assert all(r.small for r in result.rows if r.cohort != "all")


def test_cohort_limits_override_the_mode_limit(dataset: DatasetSpec) -> None:
    gate = Gate(max_fail_rate=0.3, cohort_limits={"route=a": 0.5, "route=b": 0.1, "route=b & persona=y": 0.5})
    result = run(dataset, {"bad": is_bad}, gates={"bad": gate})["bad"]
    assert row(result, "route=a").limit == 0.5 and row(result, "route=a").breach is None
    assert row(result, "route=b").limit == 0.1 and row(result, "route=b").breach == "limit"
    assert row(result, "route=b & persona=y").breach is None
    assert row(result, "all").limit == 0.3
    assert row(result, "route=a & persona=y").limit == 0.3


def test_cohort_limit_without_a_mode_limit_gates_that_cohort_only(dataset: DatasetSpec) -> None:
    result = run(dataset, {"bad": is_bad}, gates={"bad": Gate(cohort_limits={"route=a": 0.2})})["bad"]
    assert [r.cohort for r in result.rows if r.gated] == ["route=a"]
    assert [r.cohort for r in result.breached_rows] == ["route=a"]


def test_max_errors(dataset: DatasetSpec) -> None:
    def flaky(trace: Trace) -> bool:
        if trace.id in ("2", "5"):
            raise ValueError("nope")
        return False

    within = run(dataset, {"flaky": flaky}, gates={"flaky": Gate(max_errors=2)})["flaky"]
    assert within.errors == 2 and not within.error_breach and within.passed
    over = run(dataset, {"flaky": flaky})["flaky"]  # default budget: 0
    assert over.error_breach and not over.passed
    assert not over.breached_rows  # errors alone, no rate breach


def test_cohort_with_only_errors_is_not_gated(dataset: DatasetSpec) -> None:
    def errors_on_b(trace: Trace) -> bool:
        if trace.get("route") == "b":
            raise ValueError("no")
        return False

    result = run(dataset, {"m": errors_on_b}, gates={"m": Gate(max_fail_rate=0.0, max_errors=10)})["m"]
    b = row(result, "route=b")
    assert (b.n, b.errors, b.rate, b.ci, b.gated, b.breach) == (0, 4, None, None, False, None)
    assert result.passed


# -- results ----------------------------------------------------------------------


def test_mode_result_round_trips_through_json(dataset: DatasetSpec) -> None:
    def mixed(trace: Trace) -> Verdict | bool:
        if trace.id == "2":
            raise RuntimeError("x")
        if is_bad(trace):
            return Verdict.fail("bad output", evidence={"where": [1, 2], "id": trace.id})
        return False

    gate = Gate(max_fail_rate=0.2, gate_on="upper", max_errors=1, min_cohort_size=2, cohort_limits={"route=b": 0.5})
    result = run(dataset, {"mixed": mixed}, gates={"mixed": gate}, wheres={"mixed": {"id": {"ne": "9"}}})["mixed"]
    payload = json.loads(json.dumps(result.to_dict()))
    back = ModeResult.from_dict(payload)
    assert back == result
    assert back.to_dict() == result.to_dict()
    assert list(back.verdicts()) == list(result.verdicts())
    assert back.passed == result.passed
    assert payload["rows"][0]["cohort"] == "all"
    assert payload["rows"][0]["ci_low"] == pytest.approx(result.rows[0].ci[0])  # type: ignore[index]
    assert payload["gate"]["cohort_limits"] == {"route=b": 0.5}


def test_aggregator_counts() -> None:
    agg = Aggregator()
    agg.add(["all", "route=a"], "pass")
    agg.add(["all", "route=a"], "fail")
    agg.add(["all", "route=b"], "error")
    agg.add(["all", "route=b"], "skip")
    assert agg.counts == {"all": [1, 1, 1], "route=a": [1, 1, 0], "route=b": [0, 0, 1]}
    assert agg.skipped == 1


def test_gate_to_from_dict() -> None:
    gate = Gate(max_fail_rate=0.1, gate_on="lower", max_errors=3, min_cohort_size=7, cohort_limits={"x=1": 0.2})
    assert Gate.from_dict(json.loads(json.dumps(gate.to_dict()))) == gate
    assert gate.limit_for("x=1") == 0.2 and gate.limit_for("x=2") == 0.1


def test_evaluate_a_loaded_definition_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    rows = [
        {"trace_id": "t1", "req": {"q": "refund?"}, "reply": "My instructions say no.", "route": "billing"},
        {"trace_id": "t2", "req": {"q": "hi"}, "reply": "Hello!", "route": "billing"},
        {"trace_id": "t3", "req": {"q": "bug"}, "reply": "Fixed.", "route": "tech"},
    ]
    (tmp_path / "data" / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    definition = tmp_path / "failmodes.yaml"
    definition.write_text(
        "dataset:\n"
        "  path: data/t.jsonl\n"
        "  fields: {id: trace_id, input: req.q, output: reply}\n"
        "cohorts: [route]\n"
        "gate: {max_fail_rate: 0.4}\n"
        "failure_modes:\n"
        "  - name: leaks\n"
        "    rule: {regex: '(?i)my instructions'}\n"
        "  - name: long_question\n"
        "    where: {route: billing}\n"
        "    rule: {min_chars: 3, field: input}\n"
        "    max_fail_rate: 0\n",
        encoding="utf-8",
    )
    suite = load_suite(definition, KINDS)
    detectors = {m.name: m.detector for m in suite.modes}
    result = evaluate(suite, detectors)  # type: ignore[arg-type]
    assert result.traces == 3
    leaks, short = result.modes["leaks"], result.modes["long_question"]
    assert by_cohort(leaks) == {"all": (3, 1, 0), "route=billing": (2, 1, 0), "route=tech": (1, 0, 0)}
    assert row(leaks, "route=billing").breach == "limit" and not leaks.passed
    assert by_cohort(short) == {"all": (2, 1, 0), "route=billing": (2, 1, 0)}
    assert short.skipped == 1 and not short.passed
    assert leaks.detector == repr(build_rule({"regex": "(?i)my instructions"}, KINDS))
