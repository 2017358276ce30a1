"""Regression statistics, each checked against scipy and against exact enumeration."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pytest_failmodes.regression import (
    Comparison,
    _bh_by_hand,
    adjust,
    compare,
    mcnemar_exact_one_sided,
    min_attainable_p,
    paired_counts,
    two_proportion_one_sided,
)

# --------------------------------------------------------------------------------------
# independent references
# --------------------------------------------------------------------------------------


def binomial_upper_tail(b: int, n: int) -> Fraction:
    """P(X >= b), X ~ Binomial(n, 1/2), by summing the exact probabilities."""
    return Fraction(sum(math.comb(n, k) for k in range(b, n + 1)), 2**n)


def fisher_greater(new_fails: int, new_n: int, base_fails: int, base_n: int) -> Fraction:
    """One-sided Fisher by enumeration: P(new sample holds >= new_fails of all fails | margins)."""
    fails = new_fails + base_fails
    total = math.comb(new_n + base_n, fails)
    hi = min(fails, new_n)
    return Fraction(sum(math.comb(new_n, k) * math.comb(base_n, fails - k) for k in range(new_fails, hi + 1)), total)


def boschloo_by_enumeration(new_fails: int, new_n: int, base_fails: int, base_n: int, grid: int = 4000) -> float:
    """Boschloo's p-value from its definition: sup over the common rate of P(Fisher p <= observed).

    Every table with the same sample sizes is enumerated; its Fisher p-value is
    an exact fraction, so "as extreme" is decided without rounding. The sup is
    taken over a fine grid of the nuisance rate (a lower bound that converges).
    """
    observed = fisher_greater(new_fails, new_n, base_fails, base_n)
    region = [
        (x1, x2)
        for x1 in range(new_n + 1)
        for x2 in range(base_n + 1)
        if fisher_greater(x1, new_n, x2, base_n) <= observed
    ]
    best = 0.0
    for i in range(grid + 1):
        pi = i / grid
        total = 0.0
        for x1, x2 in region:
            total += (
                math.comb(new_n, x1)
                * pi**x1
                * (1 - pi) ** (new_n - x1)
                * math.comb(base_n, x2)
                * pi**x2
                * (1 - pi) ** (base_n - x2)
            )
        best = max(best, total)
    return best


def holm_by_procedure(p: list[float]) -> list[float]:
    """Holm's adjusted p-value of H_i = the smallest alpha at which the step-down procedure rejects H_i."""
    m = len(p)

    def rejected(alpha: float) -> set[int]:
        out: set[int] = set()
        for step, i in enumerate(sorted(range(m), key=lambda k: p[k])):
            if p[i] * (m - step) > alpha:
                break
            out.add(i)
        return out

    candidates = sorted({p[i] * k for i in range(m) for k in range(1, m + 1)})
    return [min(1.0, next(a for a in candidates if i in rejected(a))) for i in range(m)]


# --------------------------------------------------------------------------------------
# McNemar
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("b", range(0, 13))
@pytest.mark.parametrize("c", [0, 1, 2, 5, 12])
def test_mcnemar_matches_binomtest_and_enumeration(b: int, c: int) -> None:
    got = mcnemar_exact_one_sided(b, c)
    assert got == pytest.approx(float(binomial_upper_tail(b, b + c)), rel=1e-12, abs=1e-300)
    if b + c:
        assert got == pytest.approx(stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue, rel=1e-12)


@pytest.mark.parametrize(("b", "c"), [(300, 250), (40, 5), (5, 40), (1000, 880), (200, 0)])
def test_mcnemar_large_counts(b: int, c: int) -> None:
    expected = stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue
    assert mcnemar_exact_one_sided(b, c) == pytest.approx(expected, rel=1e-9)
    assert mcnemar_exact_one_sided(b, c) == pytest.approx(float(binomial_upper_tail(b, b + c)), rel=1e-9)


def test_mcnemar_edges() -> None:
    assert mcnemar_exact_one_sided(0, 0) == 1.0  # no discordant pairs: nothing changed
    assert mcnemar_exact_one_sided(0, 7) == 1.0  # only improvements
    assert mcnemar_exact_one_sided(5, 0) == 1 / 32
    # the two tails overlap at the observed value: together they exceed 1
    assert mcnemar_exact_one_sided(3, 3) + mcnemar_exact_one_sided(3, 3) > 1


@pytest.mark.parametrize(("b", "c"), [(-1, 0), (0, -2), (1.5, 0), (True, 1)])
def test_mcnemar_rejects_bad_counts(b: Any, c: Any) -> None:
    with pytest.raises(ValueError, match="non-negative integer"):
        mcnemar_exact_one_sided(b, c)


# --------------------------------------------------------------------------------------
# two proportions
# --------------------------------------------------------------------------------------

TABLES = [
    # base_fails, base_n, new_fails, new_n
    (0, 10, 4, 10),
    (1, 10, 4, 10),
    (4, 10, 1, 10),
    (2, 7, 2, 7),
    (0, 3, 3, 4),
    (3, 20, 9, 20),
    (1, 5, 6, 12),
    (5, 30, 11, 25),
    (10, 400, 20, 400),
    (0, 40, 1, 40),
]


@pytest.mark.parametrize(("bf", "bn", "nf", "nn"), TABLES)
def test_fisher_matches_scipy_and_enumeration(bf: int, bn: int, nf: int, nn: int) -> None:
    got = two_proportion_one_sided(bf, bn, nf, nn, method="fisher")
    # a different orientation from the module's: rows are the samples, new first
    expected = stats.fisher_exact([[nf, nn - nf], [bf, bn - bf]], alternative="greater").pvalue
    assert got == pytest.approx(expected, rel=1e-9)
    assert got == pytest.approx(float(fisher_greater(nf, nn, bf, bn)), rel=1e-9)


@pytest.mark.parametrize(("bf", "bn", "nf", "nn"), [t for t in TABLES if t[1] * t[3] <= 900])
def test_boschloo_matches_scipy(bf: int, bn: int, nf: int, nn: int) -> None:
    got = two_proportion_one_sided(bf, bn, nf, nn, method="boschloo")
    # columns swapped and the alternative mirrored: H1 p(base) < p(new)
    expected = stats.boschloo_exact([[bf, nf], [bn - bf, nn - nf]], alternative="less").pvalue
    assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("bf", "bn", "nf", "nn"), [(0, 5, 3, 5), (1, 6, 4, 5), (2, 4, 3, 6), (1, 8, 2, 3), (3, 7, 2, 7)]
)
def test_boschloo_matches_its_definition(bf: int, bn: int, nf: int, nn: int) -> None:
    got = two_proportion_one_sided(bf, bn, nf, nn, method="boschloo")
    assert got == pytest.approx(boschloo_by_enumeration(nf, nn, bf, bn), abs=1e-4)


@pytest.mark.parametrize(("bf", "bn", "nf", "nn"), [t for t in TABLES if t[1] * t[3] <= 900])
def test_boschloo_is_never_above_fisher(bf: int, bn: int, nf: int, nn: int) -> None:
    # Boschloo uses Fisher's p-value as its statistic and drops the conditioning
    boschloo = two_proportion_one_sided(bf, bn, nf, nn, method="boschloo")
    assert boschloo <= two_proportion_one_sided(bf, bn, nf, nn, method="fisher") + 1e-12


@pytest.mark.parametrize("method", ["fisher", "boschloo"])
@pytest.mark.parametrize(
    ("bf", "bn", "nf", "nn"),
    [
        (0, 0, 0, 0),  # 0/0 in both runs
        (0, 0, 3, 5),  # no baseline trace
        (2, 5, 0, 0),  # no new trace
        (6, 6, 9, 9),  # all fail
        (0, 6, 0, 9),  # all pass
        (0, 1, 0, 1),
        (1, 1, 1, 1),
    ],
)
def test_two_proportions_degenerate_tables_give_one(method: Any, bf: int, bn: int, nf: int, nn: int) -> None:
    # pyproject's filterwarnings = error: any scipy warning fails this test
    assert two_proportion_one_sided(bf, bn, nf, nn, method=method) == 1.0


@pytest.mark.parametrize("method", ["fisher", "boschloo"])
def test_two_proportions_direction(method: Any) -> None:
    worse = two_proportion_one_sided(0, 12, 8, 12, method=method)
    better = two_proportion_one_sided(8, 12, 0, 12, method=method)
    assert worse < 0.01
    assert better == 1.0
    # all-fail new run against an all-pass baseline: the strongest evidence there is
    assert two_proportion_one_sided(0, 6, 6, 6, method=method) < two_proportion_one_sided(0, 6, 5, 6, method=method)


def test_two_proportions_validates() -> None:
    with pytest.raises(ValueError, match="exceeds base_n"):
        two_proportion_one_sided(5, 4, 0, 4)
    with pytest.raises(ValueError, match="exceeds new_n"):
        two_proportion_one_sided(0, 4, 5, 4)
    with pytest.raises(ValueError, match="non-negative"):
        two_proportion_one_sided(-1, 4, 0, 4)
    with pytest.raises(ValueError, match="unknown method 'barnard'"):
        two_proportion_one_sided(1, 4, 2, 4, method="barnard")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# corrections
# --------------------------------------------------------------------------------------

HOLM_CASES = [
    [0.01, 0.02, 0.03, 0.04, 0.05],
    [0.01, 0.01, 0.04, 0.2],  # a tie at the bottom
    [0.03, 0.01, 0.03, 0.03],  # ties in the middle, unsorted input
    [0.5, 0.5, 0.5],
    [0.3, 0.0, 1.0, 0.0004, 0.012],
    [0.02],
]


@pytest.mark.parametrize("p", HOLM_CASES)
def test_holm_matches_the_procedure(p: list[float]) -> None:
    got = adjust(p, "holm")
    assert got == pytest.approx(holm_by_procedure(p), abs=1e-15)


def test_holm_known_values() -> None:
    assert adjust([0.01, 0.02, 0.03, 0.04, 0.05], "holm") == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])
    # tied raw values get the same adjusted value whatever their order
    assert adjust([0.01, 0.01, 0.04, 0.2], "holm") == pytest.approx([0.04, 0.04, 0.08, 0.2])
    assert adjust([0.03, 0.01, 0.03, 0.03], "holm") == pytest.approx([0.09, 0.04, 0.09, 0.09])
    assert adjust([0.4, 0.6], "holm") == [0.8, 0.8]
    assert adjust([0.9, 0.6], "holm") == [1.0, 1.0]  # capped at 1


def test_bh_known_values() -> None:
    assert adjust([0.01, 0.02, 0.03, 0.04, 0.05], "bh") == pytest.approx([0.05] * 5)
    assert adjust([0.005, 0.01, 0.03, 0.04], "bh") == pytest.approx([0.02, 0.02, 0.04, 0.04])
    # sorted: 0.001 (x4 = 0.004), 0.03 (x2 = 0.06), 0.04 (x4/3 = 0.0533), 0.5; step-up takes the min from the top
    assert adjust([0.04, 0.001, 0.03, 0.5], "bh") == pytest.approx([0.04 * 4 / 3, 0.004, 0.04 * 4 / 3, 0.5])
    assert adjust([0.02], "bh") == [0.02]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30))
def test_bh_by_hand_matches_scipy(p: list[float]) -> None:
    # the hand-written version serves scipy 1.10, which lacks false_discovery_control
    assert _bh_by_hand(p) == pytest.approx(list(stats.false_discovery_control(p, method="bh")), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("method", ["holm", "bh", "none"])
def test_none_passes_through_and_is_not_counted(method: Any) -> None:
    got = adjust([None, 0.01, None, 0.02], method)
    assert got[0] is None and got[2] is None
    assert got[1:4:2] == pytest.approx(adjust([0.01, 0.02], method))
    assert adjust([None, None], method) == [None, None]
    assert adjust([], method) == []


def test_adjust_validates() -> None:
    with pytest.raises(ValueError, match="unknown correction 'bonferroni'"):
        adjust([0.1], "bonferroni")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside"):
        adjust([1.5], "holm")
    with pytest.raises(ValueError, match="outside"):
        adjust([float("nan")], "bh")


# --------------------------------------------------------------------------------------
# Tarone's refinement: smallest attainable p-values, and the step-down that uses them
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", range(0, 25))
def test_mcnemar_floor_is_the_smallest_p_over_every_outcome(d: int) -> None:
    smallest = min(mcnemar_exact_one_sided(b, d - b) for b in range(d + 1))
    assert min_attainable_p("mcnemar", discordant=d) == pytest.approx(smallest, rel=1e-12)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_fisher_floor_is_the_smallest_p_over_every_table_with_those_margins(n: int, other_n: int, data: Any) -> None:
    fails = data.draw(st.integers(0, n + other_n))
    tables = [(k, fails - k) for k in range(max(0, fails - other_n), min(fails, n) + 1)]
    smallest = min(float(fisher_greater(k, n, rest, other_n)) for k, rest in tables)
    assert min_attainable_p("fisher", fails=fails, n=n, other_n=other_n) == pytest.approx(smallest, rel=1e-9)


def test_floor_of_a_test_without_margins_counts_it_in_full() -> None:
    assert min_attainable_p("boschloo", fails=3, n=10, other_n=10) == 0.0


def tarone_holm_by_procedure(p: list[float], floors: list[float], alpha: float) -> set[int]:
    """The step-down as written in the docs, by brute force: reject the smallest remaining
    p-value while it is at most alpha / K, K = Tarone's K of the remaining tests."""
    remaining = set(range(len(p)))
    rejected: set[int] = set()
    while remaining:
        k = 1
        while sum(1 for i in remaining if floors[i] <= alpha / k) > k:
            k += 1
        i = min(remaining, key=lambda j: (p[j], j))
        if p[i] > alpha / k:
            break
        rejected.add(i)
        remaining.discard(i)
    return rejected


@st.composite
def p_with_floors(draw: Any) -> tuple[list[float], list[float]]:
    p = draw(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30))
    floors = [draw(st.floats(0.0, 1.0)) * x for x in p]
    return p, floors


@settings(max_examples=300, deadline=None)
@given(p_with_floors(), st.sampled_from([0.01, 0.05, 0.1]))
def test_tarone_holm_decisions_match_the_procedure(case: tuple[list[float], list[float]], alpha: float) -> None:
    p, floors = case
    got = adjust(p, "tarone-holm", min_attainable=floors, alpha=alpha)
    declared = {i for i, q in enumerate(got) if q is not None and q <= alpha}
    assert declared == tarone_holm_by_procedure(p, floors, alpha)


@settings(max_examples=300, deadline=None)
@given(p_with_floors(), st.sampled_from([0.01, 0.05, 0.1]))
def test_tarone_holm_is_never_above_holm_and_equals_it_when_every_test_can_reach_alpha(
    case: tuple[list[float], list[float]], alpha: float
) -> None:
    p, floors = case
    tarone = adjust(p, "tarone-holm", min_attainable=floors, alpha=alpha)
    holm = adjust(p, "holm")
    assert all(t <= h + 1e-12 for t, h in zip(tarone, holm))  # type: ignore[operator]
    assert adjust(p, "tarone-holm", min_attainable=[0.0] * len(p), alpha=alpha) == pytest.approx(holm, abs=1e-15)


def test_tarone_holm_known_values() -> None:
    # the third test can never reach 0.05: the family is 2, then 1 (Holm: 3, then 2)
    p, floors = [0.001, 0.02, 0.5], [0.0005, 0.02, 0.5]
    assert adjust(p, "tarone-holm", min_attainable=floors, alpha=0.05) == pytest.approx([0.002, 0.02, 0.5])
    assert adjust(p, "holm") == pytest.approx([0.003, 0.04, 0.5])
    # step 1: all three can reach 0.05, only two can reach 0.05/2: K = 2 (Holm: 3); step 2:
    # both remaining can reach 0.05, one 0.025: K = 2 again; 0.02 * 2 = 0.04 carries on
    p, floors = [0.004, 0.02, 0.03], [0.001, 0.002, 0.03]
    assert adjust(p, "tarone-holm", min_attainable=floors, alpha=0.05) == pytest.approx([0.008, 0.04, 0.04])
    assert adjust(p, "holm") == pytest.approx([0.012, 0.04, 0.04])
    # untested rows pass through and are not counted
    got = adjust([None, 0.01, 0.02], "tarone-holm", min_attainable=[None, 0.0, 0.0], alpha=0.05)
    assert got == [None, pytest.approx(0.02), pytest.approx(0.02)]


def test_tarone_holm_validates() -> None:
    with pytest.raises(ValueError, match="tarone-holm needs alpha"):
        adjust([0.1], "tarone-holm", min_attainable=[0.0])
    with pytest.raises(ValueError, match="needs min_attainable"):
        adjust([0.1], "tarone-holm", alpha=0.05)
    with pytest.raises(ValueError, match="smallest attainable p-value 0.2 is outside"):
        adjust([0.1], "tarone-holm", min_attainable=[0.2], alpha=0.05)


def test_compare_pays_only_for_rows_that_can_regress() -> None:
    # one planted row (10 of 12 discordant pairs go pass -> fail) among 20 rows whose
    # verdicts repeat exactly: those can never be significant and cost nothing
    ids = [f"t{i}" for i in range(40)]
    base = dict.fromkeys(ids, "pass")
    moved = {**base, **{f"t{i}": "fail" for i in range(10)}}
    back = {**base, **{f"t{i}": "fail" for i in range(30, 32)}}
    planted = {"mode": "m", "cohort": "hot", "base_verdicts": back, "new_verdicts": moved}
    quiet = [{"mode": "m", "cohort": f"c{i}", "base_verdicts": base, "new_verdicts": base} for i in range(20)]
    p = mcnemar_exact_one_sided(10, 2)
    tarone = compare([planted, *quiet])[0]
    holm = compare([planted, *quiet], correction="holm")[0]
    assert tarone.p_adjusted == pytest.approx(p) and tarone.regression
    assert holm.p_adjusted == pytest.approx(min(1.0, 21 * p)) and not holm.regression


p_lists = st.lists(st.one_of(st.none(), st.floats(0.0, 1.0)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(p_lists, st.sampled_from(["holm", "bh", "none"]))
def test_adjusted_is_a_p_value_at_least_the_raw_one(p: list[float | None], method: Any) -> None:
    got = adjust(p, method)
    for raw, adj in zip(p, got):
        assert (raw is None) == (adj is None)
        if raw is not None and adj is not None:
            assert raw <= adj <= 1.0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40), st.sampled_from(["holm", "bh"]))
def test_adjustment_is_monotone(p: list[float], method: Any) -> None:
    got = adjust(p, method)
    for i in range(len(p)):
        for j in range(len(p)):
            if p[i] <= p[j]:
                assert got[i] <= got[j]  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40))
def test_bh_between_raw_and_holm_holm_below_bonferroni(p: list[float]) -> None:
    holm, bh = adjust(p, "holm"), adjust(p, "bh")
    m = len(p)
    for raw, h, b in zip(p, holm, bh):
        assert raw <= b <= h + 1e-15  # type: ignore[operator]
        assert h <= min(1.0, m * raw) + 1e-15  # type: ignore[operator]


# --------------------------------------------------------------------------------------
# p-values stay p-values
# --------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400))
def test_mcnemar_is_a_probability_and_falls_with_b(b: int, c: int) -> None:
    p = mcnemar_exact_one_sided(b, c)
    assert 0.0 <= p <= 1.0
    assert mcnemar_exact_one_sided(b + 1, c) <= p
    assert mcnemar_exact_one_sided(b, c + 1) >= p


tables = st.tuples(st.integers(0, 60), st.integers(0, 60)).flatmap(
    lambda n: st.tuples(st.integers(0, n[0]), st.just(n[0]), st.integers(0, n[1]), st.just(n[1]))
)


@settings(max_examples=300, deadline=None)
@given(tables)
def test_fisher_is_a_probability(table: tuple[int, int, int, int]) -> None:
    p = two_proportion_one_sided(*table, method="fisher")
    assert 0.0 <= p <= 1.0
    bf, bn, nf, nn = table
    if nf < nn:  # one more failing new trace is more evidence
        assert two_proportion_one_sided(bf, bn, nf + 1, nn, method="fisher") <= p + 1e-12


small_tables = st.tuples(st.integers(0, 12), st.integers(0, 12)).flatmap(
    lambda n: st.tuples(st.integers(0, n[0]), st.just(n[0]), st.integers(0, n[1]), st.just(n[1]))
)


@settings(max_examples=60, deadline=None)
@given(small_tables)
def test_boschloo_is_a_probability_below_fisher(table: tuple[int, int, int, int]) -> None:
    p = two_proportion_one_sided(*table, method="boschloo")
    assert 0.0 <= p <= two_proportion_one_sided(*table, method="fisher") + 1e-12


# --------------------------------------------------------------------------------------
# pairing
# --------------------------------------------------------------------------------------


def test_paired_counts() -> None:
    base = {"a": "fail", "b": "fail", "c": "pass", "d": "pass", "e": "pass", "f": "fail"}
    new = {"a": "fail", "b": "pass", "c": "fail", "d": "fail", "e": "pass", "f": "fail"}
    # both fail: a, f; pass -> fail: c, d; fail -> pass: b; both pass: e
    assert paired_counts(base, new) == (2, 2, 1, 1)
    assert paired_counts(new, base) == (2, 1, 2, 1)


def test_paired_counts_needs_identical_evaluated_ids() -> None:
    base = {"a": "fail", "b": "pass"}
    assert paired_counts(base, {"a": "fail"}) is None
    assert paired_counts(base, {"a": "fail", "b": "pass", "c": "pass"}) is None
    assert paired_counts(base, {"a": "fail", "x": "pass"}) is None
    # an error or a skip means "not evaluated": it breaks the pairing unless both runs agree
    assert paired_counts({"a": "fail", "b": "error"}, {"a": "pass", "b": "skip"}) == (0, 0, 1, 0)
    assert paired_counts({"a": "fail", "b": "pass"}, {"a": "fail", "b": "error"}) is None
    assert paired_counts({}, {}) == (0, 0, 0, 0)


def test_paired_counts_rejects_unknown_verdicts() -> None:
    with pytest.raises(ValueError, match="new verdict of trace 'a' is 'FAIL'"):
        paired_counts({"a": "fail"}, {"a": "FAIL"})


# --------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------


def row(mode: str, cohort: str, bf: int, bn: int, nf: int, nn: int, **extra: Any) -> dict[str, Any]:
    return {"mode": mode, "cohort": cohort, "base_fails": bf, "base_n": bn, "new_fails": nf, "new_n": nn, **extra}


def verdicts(fails: set[int], n: int) -> dict[str, str]:
    return {f"t{i}": "fail" if i in fails else "pass" for i in range(n)}


def test_one_cohort_unpaired_regression() -> None:
    (got,) = compare([row("leaks", "all", 0, 30, 8, 30)])
    assert got.paired is False and got.discordant is None and got.test == "boschloo"
    assert got.delta == pytest.approx(8 / 30)
    assert got.p_value == pytest.approx(stats.boschloo_exact([[8, 0], [22, 30]], alternative="greater").pvalue)
    assert got.p_adjusted == got.p_value  # a family of one
    assert got.regression is True and got.improvement is False


def test_paired_rows_use_mcnemar() -> None:
    base = verdicts({0, 1, 2}, 50)
    new = verdicts({0, 10, 11, 12, 13, 14, 15, 16, 17}, 50)
    (got,) = compare([{"mode": "m", "cohort": "all", "base_verdicts": base, "new_verdicts": new}])
    assert got.paired is True and got.test == "mcnemar"
    assert got.discordant == (8, 2)
    assert (got.base_fails, got.base_n, got.new_fails, got.new_n) == (3, 50, 9, 50)
    assert got.p_value == pytest.approx(stats.binomtest(8, 10, 0.5, alternative="greater").pvalue)
    assert got.p_value_decrease == pytest.approx(stats.binomtest(2, 10, 0.5, alternative="greater").pvalue)
    assert got.delta == pytest.approx(6 / 50)


def test_maps_over_different_ids_fall_back_to_unpaired() -> None:
    base = verdicts({0, 1}, 40)
    new = verdicts({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 41)
    (got,) = compare([row("m", "all", 2, 40, 10, 41, base_verdicts=base, new_verdicts=new)], unpaired_method="fisher")
    assert got.paired is False and got.test == "fisher"
    assert got.p_value == pytest.approx(stats.fisher_exact([[10, 2], [31, 38]], alternative="greater").pvalue)


def test_counts_come_from_the_maps_when_not_given() -> None:
    base = verdicts({0, 1, 2}, 30)
    new = {**verdicts({0, 1, 2, 3, 4, 5, 6}, 30), "t0": "error"}  # t0 not evaluated: not paired
    rows = [{"mode": "m", "cohort": "all", "base_verdicts": base, "new_verdicts": new}]
    (got,) = compare(rows, unpaired_method="fisher")
    assert got.paired is False
    assert (got.base_fails, got.base_n, got.new_fails, got.new_n) == (3, 30, 6, 29)
    # one side from a map, the other from counts
    (mixed,) = compare([{"mode": "m", "cohort": "all", "base_verdicts": base, "new_fails": 9, "new_n": 31}])
    assert (mixed.base_fails, mixed.base_n, mixed.new_fails, mixed.new_n) == (3, 30, 9, 31)


def test_counts_must_agree_with_the_maps() -> None:
    base = verdicts({0}, 10)
    with pytest.raises(ValueError, match=r"m \[all\]: new_fails=1 but the verdict maps give 0"):
        compare([row("m", "all", 1, 10, 1, 10, base_verdicts=base, new_verdicts=verdicts(set(), 10))])


def test_correction_runs_over_all_modes_and_cohorts() -> None:
    planted = row("leaks", "route=a", 2, 100, 12, 100)
    (alone,) = compare([planted], unpaired_method="fisher")
    assert alone.p_value is not None and alone.p_value < 0.05 and alone.regression
    quiet = [row(mode, f"route={r}", 5, 100, 5, 100) for mode in ("x", "y", "z") for r in "bcdefghij"]
    got = compare([planted, *quiet], unpaired_method="fisher")
    assert got[0].p_value == alone.p_value
    assert got[0].p_adjusted == pytest.approx(min(1.0, alone.p_value * 28))
    assert not any(c.regression for c in got)
    by_hand = adjust([c.p_value for c in got], "holm")
    assert [c.p_adjusted for c in got] == by_hand
    bh = compare([planted, *quiet], unpaired_method="fisher", correction="bh")
    assert [c.p_adjusted for c in bh] == adjust([c.p_value for c in got], "bh")


def test_min_increase_is_absolute() -> None:
    big = row("m", "all", 400, 10_000, 520, 10_000)  # 4.0% -> 5.2%: very significant, 1.2 points
    (plain,) = compare([big], unpaired_method="fisher")
    assert plain.p_adjusted is not None and plain.p_adjusted < 1e-4 and plain.regression
    (gated,) = compare([big], unpaired_method="fisher", min_increase=0.02)
    assert gated.p_adjusted == plain.p_adjusted and not gated.regression
    # exactly two points is enough, despite 0.06 - 0.04 < 0.02 in floating point
    (two_points,) = compare([row("m", "all", 400, 10_000, 600, 10_000)], unpaired_method="fisher", min_increase=0.02)
    assert two_points.regression
    # a row's own min_increase wins over the argument
    (own,) = compare([dict(big, min_increase=0.01)], unpaired_method="fisher", min_increase=0.02)
    assert own.regression


def test_improvement_is_reported_not_a_regression() -> None:
    got = compare([row("m", "all", 12, 40, 1, 40), row("m", "route=a", 3, 40, 3, 40)])
    assert got[0].improvement is True and got[0].regression is False
    # the tail the data point away from is tested with Fisher's test
    assert got[0].test == "fisher"
    assert got[0].p_value == pytest.approx(stats.fisher_exact([[1, 12], [39, 28]], alternative="greater").pvalue)
    assert got[0].p_value > 0.99
    assert got[0].p_value_decrease == pytest.approx(
        stats.boschloo_exact([[12, 1], [28, 39]], alternative="greater").pvalue
    )
    assert got[0].p_adjusted_decrease == pytest.approx(min(1.0, 2 * got[0].p_value_decrease))
    assert got[1].improvement is False and got[1].regression is False


@pytest.mark.parametrize(
    ("bf", "bn", "nf", "nn"),
    [(0, 0, 0, 0), (0, 0, 4, 10), (3, 10, 0, 0)],
)
def test_rows_without_traces_are_not_tested(bf: int, bn: int, nf: int, nn: int) -> None:
    got = compare([row("m", "empty", bf, bn, nf, nn), row("m", "all", 1, 50, 9, 50)], unpaired_method="fisher")
    assert got[0].p_value is None and got[0].p_adjusted is None and got[0].delta is None
    assert not got[0].regression and not got[0].improvement and got[0].test == ""
    # and they do not count in the family
    assert got[1].p_adjusted == got[1].p_value


def test_all_fail_all_pass_and_no_discordant_pairs() -> None:
    same = verdicts({1, 2, 3}, 20)
    got = compare(
        [
            row("m", "all_fail", 10, 10, 10, 10),
            row("m", "all_pass", 0, 10, 0, 10),
            {"mode": "m", "cohort": "same", "base_verdicts": same, "new_verdicts": dict(same)},
            {"mode": "m", "cohort": "none", "base_verdicts": {}, "new_verdicts": {}},
        ]
    )
    assert [c.p_value for c in got] == [1.0, 1.0, 1.0, None]
    assert got[2].discordant == (0, 0) and got[2].delta == 0.0
    assert not any(c.regression or c.improvement for c in got)


def test_identical_runs_declare_nothing() -> None:
    rows = [row(mode, f"c{i}", i, 20 + 7 * i, i, 20 + 7 * i) for mode in ("a", "b") for i in range(12)]
    assert not any(c.regression or c.improvement for c in compare(rows, unpaired_method="fisher"))


def test_large_tables_use_fisher() -> None:
    (got,) = compare([row("m", "all", 20, 400, 40, 400)], boschloo_max_cells=1000)
    assert got.test == "fisher"
    assert got.p_value == pytest.approx(stats.fisher_exact([[40, 20], [360, 380]], alternative="greater").pvalue)
    (small,) = compare([row("m", "all", 1, 20, 6, 20)], boschloo_max_cells=1000)
    assert small.test == "boschloo"


def test_comparison_is_json_safe() -> None:
    base = verdicts({0, 1}, 30)
    new = verdicts({0, 5, 6, 7}, 30)
    got = compare(
        [
            {"mode": "m", "cohort": "all", "base_verdicts": base, "new_verdicts": new},
            row("m", "route=a", 0, 0, 0, 0),
        ]
    )
    for c in got:
        text = json.dumps(c.to_dict(), allow_nan=False)
        assert Comparison.from_dict(json.loads(text)) == c
    assert got[0].to_dict()["discordant"] == [3, 1]
    assert got[0].base_rate == pytest.approx(2 / 30) and got[1].new_rate is None


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        ([row("m", "all", 1, 5, 1, 5)], {"alpha": 0}, "alpha=0"),
        ([row("m", "all", 1, 5, 1, 5)], {"correction": "sidak"}, "unknown correction 'sidak'"),
        ([row("m", "all", 1, 5, 1, 5)], {"unpaired_method": "z"}, "unknown unpaired_method 'z'"),
        ([row("m", "all", 1, 5, 1, 5)], {"min_increase": 2}, "min_increase=2"),
        ([row("m", "all", 1, 5, 1, 5, min_increase=-0.1)], {}, r"m \[all\]: min_increase=-0.1"),
        ([{"mode": "m", "cohort": "all", "base_fails": 1}], {}, r"m \[all\]: missing 'base_n'"),
        (
            [{"mode": "m", "cohort": "all", "base_verdicts": {"a": "fial"}, "new_verdicts": {"a": "fail"}}],
            {},
            r"m \[all\]: baseline verdict of trace 'a' is 'fial'",
        ),
        ([row("m", "all", 6, 5, 1, 5)], {}, r"m \[all\]: more fails than traces"),
        ([row("m", "all", 1, 5, 1.0, 5)], {}, r"m \[all\]: new_fails=1.0"),
        ([row(None, "all", 1, 5, 1, 5)], {}, "row 0: 'mode' and 'cohort' must be strings"),  # type: ignore[arg-type]
    ],
)
def test_compare_fails_loudly(rows: list[dict[str, Any]], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compare(rows, **kwargs)


count_rows = st.lists(
    st.tuples(st.integers(1, 60), st.integers(1, 60)).flatmap(
        lambda n: st.tuples(st.integers(0, n[0]), st.just(n[0]), st.integers(0, n[1]), st.just(n[1]))
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(
    count_rows,
    st.sampled_from(["holm", "bh"]),
    st.sampled_from([0.0, 0.02, 0.1]),
    st.sampled_from([0.01, 0.05, 0.2]),
)
def test_compare_decisions_follow_their_definition(
    tables: list[tuple[int, int, int, int]], correction: Any, min_increase: float, alpha: float
) -> None:
    rows = [row("m", f"c{i}", *t) for i, t in enumerate(tables)]
    got = compare(rows, alpha=alpha, correction=correction, min_increase=min_increase, unpaired_method="fisher")
    assert [c.p_adjusted for c in got] == adjust([c.p_value for c in got], correction)
    for c in got:
        assert c.p_value is not None and c.p_adjusted is not None and c.delta is not None
        assert 0.0 <= c.p_value <= c.p_adjusted <= 1.0
        assert c.regression == (c.p_adjusted <= alpha and c.delta >= min_increase - 1e-9)
        assert not (c.regression and c.improvement)
        if c.regression:
            assert c.delta > 0


# --------------------------------------------------------------------------------------
# cheap to import
# --------------------------------------------------------------------------------------


def test_importing_the_module_and_the_plugin_loads_no_scipy_or_numpy() -> None:
    code = (
        "import sys; import pytest_failmodes.regression, pytest_failmodes.plugin; "
        "print(sorted(m for m in ('scipy', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fisher_many_gives_what_fisher_gives_one_by_one() -> None:
    from pytest_failmodes.regression import fisher_greater_many

    tables = [
        (bf, bn, nf, nn)
        for bn in (0, 1, 7, 40)
        for nn in (0, 1, 9, 35)
        for bf in sorted({0, bn // 3, bn})
        for nf in sorted({0, nn // 2, nn})
    ] + [(3, 400, 30, 120), (200, 400, 0, 400), (5, 1000, 9, 1000)]
    expected = [two_proportion_one_sided(*t, method="fisher") for t in tables]
    got = fisher_greater_many(tables)
    assert len(got) == len(tables)
    for t, want, have in zip(tables, expected, got):
        assert have == pytest.approx(want, rel=1e-9, abs=1e-300), t
    # the trivial tables (nothing to compare) are 1.0, as one by one
    assert fisher_greater_many([(0, 0, 3, 5), (0, 10, 0, 10), (4, 4, 6, 6)]) == [1.0, 1.0, 1.0]
    assert fisher_greater_many([]) == []
    with pytest.raises(ValueError, match="more fails than traces"):
        fisher_greater_many([(5, 4, 0, 3)])
