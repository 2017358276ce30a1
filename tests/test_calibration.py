"""Calibration statistics: TPR/TNR, the Rogan-Gladen rate and its bootstrap, by hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_failmodes.calibration import (
    CalibrationError,
    Pair,
    bootstrap_theta,
    corrected_rate,
    measure,
    rogan_gladen,
)
from pytest_failmodes.labels import HumanLabels, content_key, split_of
from pytest_failmodes.stats import wilson_interval
from pytest_failmodes.trace import Trace


def pairs(tp: int, fn: int, tn: int, fp: int, cohort: str = "route=a") -> list[Pair]:
    out = []
    for kind, n, human, judge in (("tp", tp, "fail", "fail"), ("fn", fn, "fail", "pass"),
                                  ("tn", tn, "pass", "pass"), ("fp", fp, "pass", "fail")):
        out += [Pair(f"{kind}{i}", human, judge, f"judge says {judge}", "", ("all", cohort)) for i in range(n)]
    return out


# --------------------------------------------------------------------------- point estimate


def test_point_estimate_equals_the_hand_computation() -> None:
    # TPR = 8/10, TNR = 27/30; 30 of 100 judged traces fail
    # theta = (0.30 + 0.90 - 1) / (0.80 + 0.90 - 1) = 0.20 / 0.70
    assert corrected_rate(30, 100, tp=8, fn=2, tn=27, fp=3) == pytest.approx(2 / 7)


@pytest.mark.parametrize(("p_obs", "expected"), [(0.05, 0.0), (0.10, 0.0), (0.95, 1.0), (0.80, 1.0), (0.45, 0.5)])
def test_rogan_gladen_is_clipped_to_zero_and_one(p_obs: float, expected: float) -> None:
    # TPR 0.8, TNR 0.9: p_obs = 0.1 is the false-positive floor, 0.8 the ceiling
    assert rogan_gladen(p_obs, 0.8, 0.9) == pytest.approx(expected)


def test_measure_reports_the_confusion_matrix_and_wilson_intervals() -> None:
    result = measure(pairs(8, 2, 27, 3), {"all": (100, 30), "route=a": (100, 30)}, resamples=500)

    assert result["confusion"] == {"tp": 8, "fn": 2, "tn": 27, "fp": 3}
    assert (result["human_fail"], result["human_pass"], result["labelled"]) == (10, 30, 40)
    assert result["tpr"] == pytest.approx(0.8) and result["tnr"] == pytest.approx(0.9)
    assert result["tpr_ci"] == list(wilson_interval(8, 10))  # type: ignore[arg-type]
    assert result["tnr_ci"] == list(wilson_interval(27, 30))  # type: ignore[arg-type]
    assert result["correctable"] and result["reason"] is None
    entry = result["corrected"]["all"]
    assert entry["rate"] == pytest.approx(2 / 7)
    assert entry["ci_low"] < 2 / 7 < entry["ci_high"]
    assert [d["id"] for d in result["disagreements"]] == ["fn0", "fn1", "fp0", "fp1", "fp2"]
    assert result["disagreements"][0] == {"id": "fn0", "human": "fail", "judge": "pass", "reason": "judge says pass", "note": ""}
    # 10 FAIL labels < 20: the TPR is flagged, the TNR (30 labels) is not
    assert result["warnings"] == ["only 10 traces labelled FAIL (fewer than 20): TPR is imprecise"]
    # per cohort TPR/TNR from the pairs in it
    assert result["cohorts"] == [{"cohort": "route=a", "confusion": {"tp": 8, "fn": 2, "tn": 27, "fp": 3},
                                  "tpr": 0.8, "tpr_ci": result["tpr_ci"], "tnr": 0.9, "tnr_ci": result["tnr_ci"]}]


# --------------------------------------------------------------------------- degenerate inputs


def test_one_class_only_gives_a_message_and_no_corrected_rate() -> None:
    with pytest.raises(CalibrationError, match="no trace is labelled FAIL by a person, so TPR cannot be measured"):
        corrected_rate(5, 50, tp=0, fn=0, tn=30, fp=2)
    with pytest.raises(CalibrationError, match="no trace is labelled PASS by a person, so TNR cannot be measured"):
        corrected_rate(5, 50, tp=10, fn=1, tn=0, fp=0)

    result = measure(pairs(0, 0, 30, 2), {"all": (50, 5)})

    assert not result["correctable"]
    assert result["corrected"] == {}
    assert result["tpr"] is None and result["tpr_ci"] is None and result["tnr"] == pytest.approx(30 / 32)
    assert result["reason"] == "no trace is labelled FAIL by a person, so TPR cannot be measured"
    assert result["warnings"][-1].endswith("; no corrected rate is reported")


def test_tpr_plus_tnr_at_most_one_gives_a_message_and_no_corrected_rate() -> None:
    # TPR 0.5, TNR 0.5: a coin
    with pytest.raises(CalibrationError, match=r"TPR \+ TNR = 1.000 <= 1: the detector does no better than chance"):
        corrected_rate(20, 40, tp=10, fn=10, tn=10, fp=10)

    result = measure(pairs(6, 14, 10, 10), {"all": (200, 80)})  # TPR 0.3 + TNR 0.5

    assert not result["correctable"] and result["corrected"] == {}
    assert "TPR + TNR = 0.800 <= 1" in result["reason"]
    assert any("no corrected rate is reported" in w for w in result["warnings"])


def test_zero_unlabelled_traces_says_the_labels_are_the_measurement() -> None:
    result = measure(pairs(8, 2, 27, 3), {"all": (40, 11)})

    entry = result["corrected"]["all"]
    assert entry["rate"] is None and entry["ci_low"] is None
    assert entry["reason"] == "every judged trace is labelled: read the human fail rate, 10/40"


def test_no_judged_traces_is_an_error() -> None:
    with pytest.raises(CalibrationError, match="no judged traces"):
        corrected_rate(0, 0, tp=8, fn=2, tn=27, fp=3)
    result = measure(pairs(8, 2, 27, 3, cohort="route=a"), {"all": (100, 30), "route=b": (0, 0)})
    assert result["corrected"]["route=b"]["reason"] == "no judged traces"


def test_too_few_labels_for_an_interval_says_so() -> None:
    # three labels, TPR 1/2 and TNR 1/1: most resamples draw no PASS label, or no TP
    result = measure(pairs(1, 1, 1, 0), {"all": (100, 20)}, resamples=400)

    entry = result["corrected"]["all"]
    assert entry["rate"] == pytest.approx((0.2 + 1 - 1) / (0.5 + 1 - 1))
    assert entry["ci_low"] is None
    assert "too few labels for an interval" in entry["reason"]


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_deterministic_under_a_seed() -> None:
    h = [True] * 20 + [False] * 80
    j = [True] * 17 + [False] * 3 + [True] * 8 + [False] * 72

    a, _ = bootstrap_theta(h, j, 250, 1000, resamples=300, seed=7)
    b, _ = bootstrap_theta(h, j, 250, 1000, resamples=300, seed=7)
    c, _ = bootstrap_theta(h, j, 250, 1000, resamples=300, seed=8)

    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    first = measure(pairs(17, 3, 72, 8), {"all": (1100, 275)}, seed=3)
    assert first == measure(pairs(17, 3, 72, 8), {"all": (1100, 275)}, seed=3)


def test_bootstrap_resamples_the_unlabelled_verdicts_too() -> None:
    # a perfect judge: TPR = TNR = 1 in every resample, so theta* = p_obs*, and the
    # interval is all sampling error of p_obs (a labelled-only bootstrap gives width 0)
    n_lab, n_unl, unl_fails = 100, 2000, 500
    h = [True] * 25 + [False] * 75
    thetas, dropped = bootstrap_theta(h, h, unl_fails, n_unl, resamples=4000, seed=1)

    assert dropped == 0
    p = (25 + unl_fails) / (n_lab + n_unl)
    # the stratified bootstrap's variance of p_obs: the labelled stratum's plus the unlabelled one's
    sd = math.sqrt(n_lab * 0.25 * 0.75 + n_unl * 0.25 * 0.75) / (n_lab + n_unl)
    assert np.mean(thetas) == pytest.approx(p, abs=0.002)
    assert np.std(thetas) == pytest.approx(sd, rel=0.1)


def test_drops_resamples_without_an_estimate_and_counts_them() -> None:
    # two FAIL labels among 40: some resamples draw neither
    h = [True] * 2 + [False] * 38
    thetas, dropped = bootstrap_theta(h, h, 10, 100, resamples=2000, seed=0)
    # P(no FAIL label drawn) = (38/40)^40 ~ 12.9%
    assert 0.09 < dropped / 2000 < 0.17
    assert len(thetas) + dropped == 2000


# --------------------------------------------------------------------------- splits and examples


def test_split_is_a_stable_hash_of_the_id_with_the_given_shares() -> None:
    shares = (0.2, 0.4, 0.4)
    parts = [split_of(f"trace-{i}", shares) for i in range(20_000)]

    assert parts == [split_of(f"trace-{i}", shares) for i in range(20_000)]
    for name, share in zip(("train", "dev", "test"), shares):
        assert parts.count(name) / len(parts) == pytest.approx(share, abs=0.015)
    assert {split_of(f"x{i}", (0.0, 0.0, 1.0)) for i in range(200)} == {"test"}


def test_role_excludes_few_shot_examples_and_unused_splits() -> None:
    labels = HumanLabels(
        source="field human", field="human", fail_values=frozenset({"bad"}),
        examples=frozenset({content_key("Money back?", "Refund done!")}),
    )
    example = Trace(id="e1", input=" Money back?", output="Refund done!\n", labels={"human": "bad"})
    other = Trace(id="o1", input="Money back?", output="Let me check.", labels={"human": "ok"})

    assert labels.role(example) == "example"
    assert labels.role(other) == "measure"
    assert labels.human(example) == ("fail", "")
    assert labels.human(other) == ("pass", "")
    assert labels.human(Trace(id="u", output="x")) == (None, "")

    split = HumanLabels(source="labels.jsonl", by_id={"a": ("fail", "n")}, split=(0.5, 0.0, 0.5), use=("test",))
    roles = {split.role(Trace(id=f"t{i}", output="x")) for i in range(100)}
    assert roles == {"train", "measure"}
    assert split.human(Trace(id="a", output="x")) == ("fail", "n")


def test_labels_travel_as_dicts() -> None:
    labels = HumanLabels(
        source="labels.jsonl", by_id={"a": ("fail", "note")}, examples=frozenset({("i", "o")}),
        split=(0.2, 0.4, 0.4), use=("dev", "test"), resamples=500, seed=4,
    )
    back = HumanLabels.from_dict(labels.to_dict())
    assert back.to_dict() == labels.to_dict()
    assert back.by_id == {"a": ("fail", "note")} and back.split == (0.2, 0.4, 0.4)
