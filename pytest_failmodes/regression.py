"""Regression statistics: did a run fail more often than its baseline, per mode and cohort?

Pure data in, pure data out, no pytest. scipy is imported inside the functions
that need it, so importing this module costs nothing; the plugin may import it
on every run.

The pieces:

* :func:`paired_counts` decides whether two runs evaluated the same traces
  and, if they did, counts the four kinds of pair;
* :func:`mcnemar_exact_one_sided` tests paired runs (exact McNemar on the
  discordant pairs);
* :func:`two_proportion_one_sided` tests unpaired runs (Boschloo's or Fisher's
  exact test);
* :func:`adjust` corrects a family of p-values for multiplicity (Holm,
  Holm with Tarone's refinement for discrete tests, or Benjamini-Hochberg);
* :func:`compare` ties them together for every mode x cohort of a run.

Every p-value here is one-sided, for the alternative "the new fail rate is
higher than the baseline's", unless said otherwise.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
import dataclasses
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal

__all__ = [
    "BOSCHLOO_MAX_CELLS",
    "Comparison",
    "adjust",
    "clustered_mcnemar_one_sided",
    "compare",
    "mcnemar_exact_one_sided",
    "min_attainable_p",
    "paired_counts",
    "two_proportion_one_sided",
]

Correction = Literal["tarone-holm", "holm", "bh", "none"]
UnpairedMethod = Literal["boschloo", "fisher"]

CORRECTIONS = ("tarone-holm", "holm", "bh", "none")
#: what the plugin and ``failmodes compare`` use unless told otherwise
DEFAULT_CORRECTION: Correction = "tarone-holm"
UNPAIRED_METHODS = ("boschloo", "fisher")

#: Boschloo's test through scipy costs more than linearly in the table's cells:
#: 0.3 s for 200 vs 200 traces, 1.5 s for 400 vs 400, 11 s for 800 vs 800 (one
#: call, 2 cores, scipy 1.17; bench/gate_calibration.py measures it). Above this many cells, ``(base_n + 1) * (new_n + 1)``, :func:`compare`
#: uses Fisher's exact test instead and says so in ``Comparison.test``. Boschloo's
#: advantage over Fisher is largest on small samples, where it is cheap; on large
#: ones the two p-values are close (0.042 against 0.046 for 20/400 vs 10/400).
BOSCHLOO_MAX_CELLS = 100_000

#: slack on ``delta >= min_increase``: 0.06 - 0.04 is 0.019999999999999997 in
#: floating point, and a 2-point increase must count as one
_DELTA_EPS = 1e-9

_KNOWN_VERDICTS = frozenset({"fail", "pass", "error", "skip"})


@dataclass(frozen=True)
class Comparison:
    """The comparison of one mode in one cohort between a baseline run and a new run.

    JSON-safe through :meth:`to_dict` (``discordant`` becomes a list) and back
    through :meth:`from_dict`.

    * ``paired``: both runs evaluated exactly the same trace ids; the test is
      exact McNemar on ``discordant`` = (b, c), b = traces that passed in the
      baseline and fail now, c = traces that failed in the baseline and pass now.
    * ``delta``: new fail rate minus baseline fail rate, absolute (0.02 is two
      percentage points); ``None`` when either run has no evaluated trace.
    * ``p_value``: one-sided, H1: the new rate is higher than the baseline's.
      ``None`` when the row could not be tested (no evaluated trace in one of
      the runs); such a row is not part of the correction family.
    * ``p_adjusted``: ``p_value`` after the correction over every tested row of
      the run.
    * ``regression``: ``p_adjusted <= alpha`` and ``delta >= min_increase``.
    * ``p_value_decrease`` / ``p_adjusted_decrease``: the same for the other
      tail (H1: the new rate is lower), corrected as a family of its own.
    * ``improvement``: ``p_adjusted_decrease <= alpha`` and
      ``delta <= -min_increase``; reported, never gated.
    * ``test``: ``"mcnemar"``, ``"boschloo"`` or ``"fisher"`` (the test behind
      ``p_value``), ``""`` when untested.
    """

    mode: str
    cohort: str
    base_fails: int
    base_n: int
    new_fails: int
    new_n: int
    paired: bool
    discordant: tuple[int, int] | None
    delta: float | None
    p_value: float | None
    p_adjusted: float | None
    regression: bool
    improvement: bool
    p_value_decrease: float | None = None
    p_adjusted_decrease: float | None = None
    test: str = ""

    @property
    def base_rate(self) -> float | None:
        return self.base_fails / self.base_n if self.base_n else None

    @property
    def new_rate(self) -> float | None:
        return self.new_fails / self.new_n if self.new_n else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.discordant is not None:
            data["discordant"] = list(self.discordant)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        fields = dict(data)
        if fields.get("discordant") is not None:
            b, c = fields["discordant"]
            fields["discordant"] = (int(b), int(c))
        return cls(**fields)


# --------------------------------------------------------------------------------------
# pairing
# --------------------------------------------------------------------------------------


def _fail_set(verdicts: Mapping[str, str], side: str) -> tuple[AbstractSet[str], set[str]]:
    """(evaluated ids, failing ids); errors and skips are not evaluated."""
    # whole-map passes at C speed: this runs for every mode x cohort of a run
    kinds = Counter(verdicts.values())
    if kinds.keys() - _KNOWN_VERDICTS:
        trace_id, verdict = next((k, v) for k, v in verdicts.items() if v not in _KNOWN_VERDICTS)
        raise ValueError(
            f"{side} verdict of trace {trace_id!r} is {verdict!r}; "
            "expected 'fail' or 'pass' ('error' and 'skip' are left out)"
        )
    failing = {k for k, v in verdicts.items() if v == "fail"}
    if kinds["error"] or kinds["skip"]:
        return {k for k, v in verdicts.items() if v == "fail" or v == "pass"}, failing
    return verdicts.keys(), failing


def paired_counts(base: Mapping[str, str], new: Mapping[str, str]) -> tuple[int, int, int, int] | None:
    """Pair two runs' per-trace verdicts: ``(both_fail, b, c, both_pass)`` or ``None``.

    ``base`` and ``new`` map trace id to ``"fail"`` or ``"pass"``; ``"error"``
    and ``"skip"`` entries are left out (the trace was not evaluated). ``b``
    counts traces that passed in ``base`` and fail in ``new`` (pass -> fail),
    ``c`` the reverse.

    The runs are paired only when the evaluated id sets are identical; otherwise
    the result is ``None`` and the caller should use an unpaired test. A partial
    overlap is not paired on purpose: the traces only one run evaluated would
    have to be dropped, and which traces error out is not independent of the
    change under test.
    """
    return _pair(_fail_set(base, "baseline"), _fail_set(new, "new"))


_Sets = tuple[AbstractSet[str], set[str]]


def _pair(base: _Sets, new: _Sets) -> tuple[int, int, int, int] | None:
    (base_ids, base_fail), (new_ids, new_fail) = base, new
    if base_ids != new_ids:
        return None
    both_fail = len(base_fail & new_fail)
    b = len(new_fail - base_fail)
    c = len(base_fail - new_fail)
    return both_fail, b, c, len(base_ids) - both_fail - b - c


# --------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}={value!r} must be a non-negative integer")


def mcnemar_exact_one_sided(b: int, c: int) -> float:
    """Exact one-sided McNemar p-value: ``P(X >= b)`` for ``X ~ Binomial(b + c, 1/2)``.

    ``b`` = discordant pairs pass -> fail, ``c`` = fail -> pass. Under H0 (the
    change does not alter any trace's fail probability) each discordant pair is
    equally likely to go either way. 1.0 when there is no discordant pair.
    Swap the arguments for the other tail.
    """
    _check_count("b", b)
    _check_count("c", c)
    if b == 0:
        return 1.0
    from scipy.special import bdtrc

    # bdtrc(k, n, p) = P(X > k); accurate in the far tail (incomplete beta)
    return _clip(float(bdtrc(b - 1, b + c, 0.5)))


def clustered_mcnemar_one_sided(discordant: Sequence[tuple[int, int]]) -> float:
    """One-sided McNemar test for clustered matched pairs (Durkalski et al. 2003).

    ``discordant`` holds ``(b_k, c_k)`` per cluster: its pairs that went
    pass -> fail and fail -> pass. Trials of one task are not independent, so
    the plain McNemar test, which treats every pair as its own draw, is
    anti-conservative; this statistic takes the variance from the clusters:
    ``z = sum(b_k - c_k) / sqrt(sum((b_k - c_k)^2))``, standard normal under H0
    for enough clusters. With one pair per cluster it is the (asymptotic)
    McNemar test. 1.0 when no cluster has a discordant pair.

    Durkalski, V. L., Palesch, Y. Y., Lipsitz, S. R. and Rust, P. F. (2003).
    Analysis of clustered matched-pair data. *Statistics in Medicine* 22(15),
    2417-2428.
    """
    diffs = [b - c for b, c in discordant]
    denom = sum(d * d for d in diffs)
    if denom == 0:
        return 1.0
    from scipy.special import ndtr

    return _clip(float(ndtr(-sum(diffs) / math.sqrt(denom))))


def rao_scott_counts(fails: int, n: int, design_effect: float) -> tuple[int, int]:
    """Counts deflated by a design effect (Rao and Scott 1992): ``round(f / d), round(n / d)``.

    An exact test on the deflated table treats clustered traces as the
    ``n / d`` independent ones they are worth.

    Rao, J. N. K. and Scott, A. J. (1992). A simple method for the analysis of
    clustered binary data. *Biometrics* 48(2), 577-585.
    """
    if design_effect <= 1.0:
        return fails, n
    n_eff = max(1, round(n / design_effect))
    return min(n_eff, round(fails / design_effect)), n_eff


def two_proportion_one_sided(
    base_fails: int,
    base_n: int,
    new_fails: int,
    new_n: int,
    method: UnpairedMethod = "boschloo",
) -> float:
    """Exact one-sided p-value for H1: new fail rate > baseline fail rate, unpaired.

    ``method`` is ``"boschloo"`` (:func:`scipy.stats.boschloo_exact`, uniformly
    more powerful than Fisher's test, and slow on large samples, see
    :data:`BOSCHLOO_MAX_CELLS`) or ``"fisher"`` (:func:`scipy.stats.fisher_exact`).
    Swap baseline and new for the other tail.

    A table with nothing to compare gives 1.0 without calling scipy: either run
    has no trace, or every trace of both runs failed, or none did.
    """
    for name, value in (("base_fails", base_fails), ("base_n", base_n), ("new_fails", new_fails), ("new_n", new_n)):
        _check_count(name, value)
    if base_fails > base_n:
        raise ValueError(f"base_fails={base_fails} exceeds base_n={base_n}")
    if new_fails > new_n:
        raise ValueError(f"new_fails={new_fails} exceeds new_n={new_n}")
    if method not in UNPAIRED_METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(UNPAIRED_METHODS)}")
    fails = base_fails + new_fails
    if base_n == 0 or new_n == 0 or fails == 0 or fails == base_n + new_n:
        return 1.0
    return _exact_2x2(base_fails, base_n, new_fails, new_n, method)


@lru_cache(maxsize=4096)
def _exact_2x2(base_fails: int, base_n: int, new_fails: int, new_n: int, method: str) -> float:
    # cached: the same tables recur (an A/A re-run, the "all" cohort of every
    # mode that never fires), and a Boschloo call can take seconds
    from scipy import stats

    # columns are the two samples (scipy's convention for boschloo_exact), rows
    # fail / pass; "greater" is H1: p(new) > p(base), for fisher_exact an odds
    # ratio above 1, the same hypothesis
    table = [[new_fails, base_fails], [new_n - new_fails, base_n - base_fails]]
    if method == "boschloo":
        p = float(stats.boschloo_exact(table, alternative="greater").pvalue)
    else:
        p = float(stats.fisher_exact(table, alternative="greater").pvalue)
    if math.isnan(p):
        raise ArithmeticError(f"scipy's {method} test returned NaN for {table!r}")
    return _clip(p)


def fisher_greater_many(tables: Sequence[tuple[int, int, int, int]]) -> list[float]:
    """Fisher's one-sided exact p-values for many ``(base_fails, base_n, new_fails, new_n)``
    tables at once, each the value ``two_proportion_one_sided(..., method="fisher")`` gives.

    One vectorised hypergeometric tail for the lot: a history page or a simulation
    tests thousands of series, and one ``fisher_exact`` call costs half a millisecond."""
    out = [1.0] * len(tables)
    todo: list[int] = []
    for i, (base_fails, base_n, new_fails, new_n) in enumerate(tables):
        for name, value in (("base_fails", base_fails), ("base_n", base_n), ("new_fails", new_fails), ("new_n", new_n)):
            _check_count(name, value)
        if base_fails > base_n or new_fails > new_n:
            raise ValueError(f"more fails than traces in {tables[i]!r}")
        fails = base_fails + new_fails
        if not (base_n == 0 or new_n == 0 or fails == 0 or fails == base_n + new_n):
            todo.append(i)
    if not todo:
        return out
    import numpy as np
    from scipy.stats import hypergeom

    t = np.array([tables[i] for i in todo], dtype=np.int64)
    base_fails, base_n, new_fails, new_n = t[:, 0], t[:, 1], t[:, 2], t[:, 3]
    # P(X >= new_fails), X the new run's fails given both margins: Fisher's "greater"
    p = hypergeom.sf(new_fails - 1, base_n + new_n, base_fails + new_fails, new_n)
    for i, value in zip(todo, p.tolist()):
        if math.isnan(value):
            raise ArithmeticError(f"the hypergeometric tail is NaN for {tables[i]!r}")
        out[i] = _clip(value)
    return out


def min_attainable_p(test: str, *, discordant: int = 0, fails: int = 0, n: int = 0, other_n: int = 0) -> float:
    """The smallest one-sided p-value a test can give, whatever the outcome, given
    the margins it conditions on; what Tarone's refinement of Holm needs.

    * ``"mcnemar"``: ``discordant`` pairs; all of them going the tested way gives
      ``0.5 ** discordant`` (1.0 with none).
    * ``"fisher"``: ``fails`` in both runs together, ``n`` traces in the run whose
      rate the alternative says is higher, ``other_n`` in the other; the most
      extreme table puts ``min(fails, n)`` fails in that run, and its
      hypergeometric probability is the smallest p-value.
    * ``"boschloo"`` (an unconditional test, no margin to condition on) and
      anything else: 0.0, which makes the test count in full.
    """
    if test == "mcnemar":
        _check_count("discordant", discordant)
        return 0.5**discordant
    if test == "fisher":
        for name, value in (("fails", fails), ("n", n), ("other_n", other_n)):
            _check_count(name, value)
        if fails > n + other_n:
            raise ValueError(f"fails={fails} exceeds n + other_n={n + other_n}")
        if n == 0 or other_n == 0 or fails == 0 or fails == n + other_n:
            return 1.0
        from scipy.stats import hypergeom

        most = min(fails, n)
        return _clip(float(hypergeom.pmf(most, n + other_n, fails, n)))
    return 0.0


def _clip(p: float) -> float:
    # sums of probabilities can land a few ulps outside [0, 1]
    return min(1.0, max(0.0, p))


# --------------------------------------------------------------------------------------
# multiplicity
# --------------------------------------------------------------------------------------


def adjust(
    p_values: Sequence[float | None],
    method: Correction = "holm",
    *,
    min_attainable: Sequence[float | None] | None = None,
    alpha: float | None = None,
) -> list[float | None]:
    """Adjusted p-values for a family, in input order; ``None`` entries pass through.

    * ``"holm"``: Holm's step-down; controls the family-wise error rate (the
      chance of any false regression) under any dependence between the tests.
      Sorted ascending, the i-th of m gets ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    * ``"tarone-holm"``: Holm's step-down where, at each step, the family size
      counts only the remaining tests that *can* reach significance: an exact
      test of a row with few discordant pairs (or a small table) has a smallest
      attainable p-value above ``alpha / K`` and can never be declared, so it
      need not be paid for (Tarone 1990; step-down form as in Hommel and
      Krummenauer 1998). Needs ``min_attainable`` (each test's smallest
      attainable p-value given its margins, see :func:`min_attainable_p`; 0.0
      when unknown, which counts the test in full) and ``alpha``, because the
      family size depends on the level. Controls the family-wise error rate
      like Holm, conditionally on the margins the exact tests condition on,
      and is never less powerful than Holm.
    * ``"bh"``: Benjamini-Hochberg step-up; controls the false discovery rate
      (the expected share of false ones among declared regressions) for
      independent or positively dependent tests. More regressions found, more
      false alarms when nothing changed.
    * ``"none"``: the raw p-values, for contrast in calibration only.

    ``None`` entries (untested rows) are not counted in the family size m.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; expected one of {', '.join(CORRECTIONS)}")
    tested = [i for i, p in enumerate(p_values) if p is not None]
    raw = [float(p_values[i]) for i in tested]  # type: ignore[arg-type]
    for p in raw:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-value {p!r} is outside [0, 1]")
    if method == "tarone-holm":
        if alpha is None or not 0.0 < alpha < 1.0:
            raise ValueError(f"tarone-holm needs alpha in (0, 1), got {alpha!r}")
        if min_attainable is None or len(min_attainable) != len(p_values):
            raise ValueError("tarone-holm needs min_attainable, one value per p-value")
        floors = [0.0 if min_attainable[i] is None else float(min_attainable[i]) for i in tested]  # type: ignore[arg-type]
        for floor, p in zip(floors, raw):
            if not 0.0 <= floor <= p + 1e-12:
                raise ValueError(f"smallest attainable p-value {floor!r} is outside [0, p={p!r}]")
        adjusted = _tarone_holm(raw, floors, alpha)
    elif method == "holm":
        adjusted = _holm(raw)
    elif method == "bh":
        adjusted = _bh(raw)
    else:
        adjusted = raw
    out: list[float | None] = [None] * len(p_values)
    for i, p in zip(tested, adjusted):
        out[i] = p
    return out


def _tarone_k(floors_sorted: Sequence[float], alpha: float) -> int:
    """Tarone's K for a set of tests: the smallest K >= 1 such that at most K of
    them have a smallest attainable p-value <= alpha / K."""
    from bisect import bisect_right

    k = 1
    while bisect_right(floors_sorted, alpha / k) > k:
        k += 1
    return k


def _tarone_holm(raw: Sequence[float], floors: Sequence[float], alpha: float) -> list[float]:
    """Step-down: the j-th smallest p-value is compared with ``alpha / K_j``, K_j being
    Tarone's K over the tests not yet rejected. Adjusted values are the running
    maximum of ``min(1, K_j * p_(j))``, so ``adjusted <= alpha`` is exactly the
    procedure's decision at ``alpha``. (Any K_j counts only tests that could
    still be rejected; K_j is never above Holm's m - j + 1.)"""
    from bisect import bisect_left

    m = len(raw)
    order = sorted(range(m), key=raw.__getitem__)
    remaining = sorted(floors)
    out = [0.0] * m
    running = 0.0
    for i in order:
        k = _tarone_k(remaining, alpha)
        running = max(running, min(1.0, k * raw[i]))
        out[i] = running
        # the test leaves the remaining set whether or not it is rejected: once one
        # step fails, every later adjusted value is above alpha through the maximum
        del remaining[bisect_left(remaining, floors[i])]
    return out


def _holm(raw: Sequence[float]) -> list[float]:
    m = len(raw)
    order = sorted(range(m), key=raw.__getitem__)
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        # the running maximum keeps the adjusted values monotone in the raw ones
        running = max(running, min(1.0, (m - rank) * raw[i]))
        out[i] = running
    return out


def _bh(raw: Sequence[float]) -> list[float]:
    if not raw:
        return []
    from scipy import stats

    if hasattr(stats, "false_discovery_control"):  # scipy >= 1.11
        return [_clip(float(p)) for p in stats.false_discovery_control(raw, method="bh")]
    return _bh_by_hand(raw)


def _bh_by_hand(raw: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg for scipy 1.10, which lacks ``false_discovery_control``."""
    m = len(raw)
    order = sorted(range(m), key=raw.__getitem__, reverse=True)
    out = [0.0] * m
    running = 1.0
    for k, i in enumerate(order):
        rank = m - k  # 1-based rank in ascending order
        running = min(running, raw[i] * m / rank)
        out[i] = running
    return out


# --------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tested:
    base_fails: int
    base_n: int
    new_fails: int
    new_n: int
    paired: bool
    discordant: tuple[int, int] | None
    p_up: float | None
    p_down: float | None
    test: str
    #: smallest attainable p-value of each tail given the margins (Tarone); 0.0: unknown
    floor_up: float | None = None
    floor_down: float | None = None


def _int_field(row: Mapping[str, Any], key: str, name: str) -> int:
    if key not in row:
        raise ValueError(f"{name}: missing {key!r} (give the counts or the verdict maps)")
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: {key}={value!r} must be a non-negative integer")
    return value


_COUNT_KEYS = ("base_fails", "base_n", "new_fails", "new_n")


def _test_row(row: Mapping[str, Any], name: str, unpaired_method: str, boschloo_max_cells: int | None) -> _Tested:
    sets: dict[str, _Sets] = {}
    for side, label in (("base", "baseline"), ("new", "new")):
        verdicts = row.get(f"{side}_verdicts")
        if verdicts is not None:
            sets[side] = _fail_set(verdicts, f"{name}: {label}")
    derived: dict[str, int] = {}
    for side, (evaluated, failing) in sets.items():
        derived[f"{side}_fails"], derived[f"{side}_n"] = len(failing), len(evaluated)
    counts: dict[str, int] = {}
    for key in _COUNT_KEYS:
        if key in derived:
            if key in row and row[key] != derived[key]:
                raise ValueError(f"{name}: {key}={row[key]!r} but the verdict maps give {derived[key]}")
            counts[key] = derived[key]
        else:
            counts[key] = _int_field(row, key, name)
    base_fails, base_n, new_fails, new_n = (counts[key] for key in _COUNT_KEYS)

    pair = _pair(sets["base"], sets["new"]) if len(sets) == 2 else None
    clusters = row.get("clusters")
    if pair is not None and clusters and base_n:
        _, b, c, _ = pair
        (base_ids, base_fail), (_new_ids, new_fail) = sets["base"], sets["new"]
        per: dict[str, list[int]] = {}
        for tid in base_ids:
            went = (tid in new_fail) - (tid in base_fail)
            if went:
                slot = per.setdefault(str(clusters.get(tid, tid)), [0, 0])
                slot[0 if went > 0 else 1] += 1
        cells = [(x, y) for x, y in per.values()]
        p_up = clustered_mcnemar_one_sided(cells)
        p_down = clustered_mcnemar_one_sided([(y, x) for x, y in cells])
        return _Tested(base_fails, base_n, new_fails, new_n, True, (b, c), p_up, p_down, "mcnemar-clustered", 0.0, 0.0)
    if pair is not None:
        _, b, c, _ = pair
        if base_n == 0:
            return _Tested(0, 0, 0, 0, True, (0, 0), None, None, "")
        p_up, p_down = mcnemar_exact_one_sided(b, c), mcnemar_exact_one_sided(c, b)
        floor = min_attainable_p("mcnemar", discordant=b + c)
        return _Tested(base_fails, base_n, new_fails, new_n, True, (b, c), p_up, p_down, "mcnemar", floor, floor)

    if base_fails > base_n or new_fails > new_n:
        raise ValueError(f"{name}: more fails than traces ({base_fails}/{base_n} -> {new_fails}/{new_n})")
    if base_n == 0 or new_n == 0:
        return _Tested(base_fails, base_n, new_fails, new_n, False, None, None, None, "")
    deffs = (float(row.get("base_design_effect") or 1.0), float(row.get("new_design_effect") or 1.0))
    if max(deffs) > 1.0:
        # clustered traces: the exact test runs on the counts they are worth (Rao-Scott)
        shown = (base_fails, base_n, new_fails, new_n)
        base_fails, base_n = rao_scott_counts(base_fails, base_n, deffs[0])
        new_fails, new_n = rao_scott_counts(new_fails, new_n, deffs[1])
        t = _unpaired(base_fails, base_n, new_fails, new_n, unpaired_method, boschloo_max_cells)
        return dataclasses.replace(
            t, base_fails=shown[0], base_n=shown[1], new_fails=shown[2], new_n=shown[3], test=t.test + "-rao-scott"
        )
    return _unpaired(base_fails, base_n, new_fails, new_n, unpaired_method, boschloo_max_cells)


def _unpaired(
    base_fails: int, base_n: int, new_fails: int, new_n: int, unpaired_method: str, boschloo_max_cells: int | None
) -> _Tested:
    method = unpaired_method
    if method == "boschloo" and boschloo_max_cells is not None and (base_n + 1) * (new_n + 1) > boschloo_max_cells:
        method = "fisher"
    # Boschloo only for the tail the data point to; the other tail cannot be
    # small, and Fisher's test (also exact) gives it at a fraction of the cost
    up_method = method if new_fails * base_n > base_fails * new_n else "fisher"
    down_method = method if new_fails * base_n < base_fails * new_n else "fisher"
    p_up = two_proportion_one_sided(base_fails, base_n, new_fails, new_n, up_method)  # type: ignore[arg-type]
    p_down = two_proportion_one_sided(new_fails, new_n, base_fails, base_n, down_method)  # type: ignore[arg-type]
    fails = base_fails + new_fails
    floor_up = min_attainable_p(up_method, fails=fails, n=new_n, other_n=base_n)
    floor_down = min_attainable_p(down_method, fails=fails, n=base_n, other_n=new_n)
    return _Tested(
        base_fails, base_n, new_fails, new_n, False, None, p_up, p_down, up_method, floor_up, floor_down
    )


def compare(
    rows: Sequence[Mapping[str, Any]],
    *,
    alpha: float = 0.05,
    correction: Correction = DEFAULT_CORRECTION,
    min_increase: float = 0.0,
    unpaired_method: UnpairedMethod = "boschloo",
    boschloo_max_cells: int | None = BOSCHLOO_MAX_CELLS,
) -> list[Comparison]:
    """Compare every mode x cohort of a run against its baseline; one :class:`Comparison` per row.

    Each row is a mapping with ``mode`` and ``cohort`` (strings) and, for each
    side, either the counts (``base_fails`` and ``base_n``; ``new_fails`` and
    ``new_n``; n counts passes + fails, errors are not in it) or the per-trace
    verdict map (``base_verdicts``; ``new_verdicts``: trace id -> ``"fail"`` /
    ``"pass"``, see :func:`paired_counts`), or both, in which case they must
    agree. An optional ``min_increase`` in a row overrides the argument for that
    row (a per-mode or per-file setting). Other keys are ignored.

    * When both maps are given and the evaluated ids are identical, the row is
      paired and tested with :func:`mcnemar_exact_one_sided`; otherwise with
      :func:`two_proportion_one_sided` using ``unpaired_method``, falling back
      to Fisher's test for tables larger than ``boschloo_max_cells`` cells
      (``None``: never).
    * Every tested row is corrected together, across all modes and cohorts of
      the run (``correction``: ``"tarone-holm"`` by default, ``"holm"``,
      ``"bh"``; ``"none"`` only to show what an uncorrected gate would do).
      With ``"tarone-holm"``, ``p_adjusted`` is relative to ``alpha``: the
      family size at each step counts the rows that could reach ``alpha / K``.
    * ``min_increase`` is absolute: 0.02 means the new fail rate must be at
      least two percentage points above the baseline's, on top of being
      significant. It keeps a large cohort from gating on a tiny real change.
    * Improvements are tested on the other tail, and the decrease p-values are
      corrected as a separate family with the same method, so the regression
      gate's error rate does not depend on how many rows improved. An
      improvement needs ``delta <= -min_increase`` as well. It is reported,
      never gated.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha!r} must be between 0 and 1")
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; expected one of {', '.join(CORRECTIONS)}")
    if unpaired_method not in UNPAIRED_METHODS:
        raise ValueError(f"unknown unpaired_method {unpaired_method!r}; expected one of {', '.join(UNPAIRED_METHODS)}")
    _check_min_increase(min_increase, "min_increase")

    tested: list[_Tested] = []
    names: list[tuple[str, str]] = []
    thresholds: list[float] = []
    for index, row in enumerate(rows):
        mode, cohort = row.get("mode"), row.get("cohort")
        if not isinstance(mode, str) or not isinstance(cohort, str):
            raise ValueError(f"row {index}: 'mode' and 'cohort' must be strings, got {mode!r} and {cohort!r}")
        name = f"{mode} [{cohort}]"
        threshold = row.get("min_increase", min_increase)
        _check_min_increase(threshold, f"{name}: min_increase")
        names.append((mode, cohort))
        thresholds.append(float(threshold))
        tested.append(_test_row(row, name, unpaired_method, boschloo_max_cells))

    up_adjusted = adjust(
        [t.p_up for t in tested], correction, min_attainable=[t.floor_up for t in tested], alpha=alpha
    )
    down_adjusted = adjust(
        [t.p_down for t in tested], correction, min_attainable=[t.floor_down for t in tested], alpha=alpha
    )
    out = []
    for (mode, cohort), t, threshold, p_adj, p_adj_down in zip(names, tested, thresholds, up_adjusted, down_adjusted):
        delta = t.new_fails / t.new_n - t.base_fails / t.base_n if t.base_n and t.new_n else None
        regression = p_adj is not None and delta is not None and p_adj <= alpha and delta >= threshold - _DELTA_EPS
        improvement = (
            p_adj_down is not None and delta is not None and p_adj_down <= alpha and delta <= -threshold + _DELTA_EPS
        )
        out.append(
            Comparison(
                mode=mode,
                cohort=cohort,
                base_fails=t.base_fails,
                base_n=t.base_n,
                new_fails=t.new_fails,
                new_n=t.new_n,
                paired=t.paired,
                discordant=t.discordant,
                delta=delta,
                p_value=t.p_up,
                p_adjusted=p_adj,
                regression=regression,
                improvement=improvement,
                p_value_decrease=t.p_down,
                p_adjusted_decrease=p_adj_down,
                test=t.test,
            )
        )
    return out


def _check_min_increase(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name}={value!r} must be a number in [0, 1) (absolute: 0.02 is two percentage points)")
