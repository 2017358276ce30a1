"""Interval estimates for fail rates."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["wilson_interval", "clustered_interval", "ClusteredInterval", "Z95"]

#: two-sided 95% normal quantile
Z95 = 1.959963984540054


def wilson_interval(fails: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for ``fails`` out of ``n``; ``None`` when ``n`` is 0.

    Unlike the normal approximation it stays inside [0, 1] and behaves at 0/n
    and n/n, which are common here (a mode that never fires).
    """
    if n <= 0:
        return None
    if not 0 <= fails <= n:
        raise ValueError(f"fails={fails} must be between 0 and n={n}")
    p = fails / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    low = 0.0 if fails == 0 else max(0.0, centre - half)
    high = 1.0 if fails == n else min(1.0, centre + half)
    return low, high


def _wilson(p: float, n: float, z: float) -> tuple[float, float]:
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(max(0.0, p * (1 - p) / n + z2 / (4 * n * n))) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ClusteredInterval:
    """A fail rate's interval when traces come in clusters (repeated trials of one task)."""

    low: float
    high: float
    #: clusters with at least one evaluated trace
    clusters: int
    #: variance of the clustered estimate over that of independent traces (1: no clustering)
    design_effect: float
    #: the number of independent traces the clustered ones are worth, after the
    #: degrees-of-freedom correction
    effective_n: float


def clustered_interval(counts: Iterable[tuple[int, int]], z: float = Z95) -> ClusteredInterval | None:
    """Design-effect-corrected Wilson interval for clustered binary data (Korn and Graubard 1998).

    ``counts`` holds ``(fails, n)`` per cluster. The fail rate is the pooled
    ratio; its variance is the cluster-level (ratio-estimator) variance
    ``m / (m - 1) * sum((y_i - p n_i)^2) / N^2`` over ``m`` clusters, whose
    ratio to the binomial variance is the design effect. The Wilson interval
    is then taken with the effective sample size ``N / deff`` (the design
    effect is not let below 1, as Korn and Graubard do, so clustering never
    narrows the interval), shrunk once more by ``(z / t_{m-1})^2`` so that
    few clusters give a wider interval, as a t-interval would. At 0/N and N/N
    the variance estimate is 0 and the effective size stays N (their rule),
    corrected for degrees of freedom alone. A single cluster counts as one
    observation (its effective size is 1).

    Korn, E. L. and Graubard, B. I. (1998). Confidence intervals for
    proportions with small expected number of positive counts estimated from
    survey data. *Survey Methodology* 24(2), 193-201.

    ``None`` when nothing was evaluated.
    """
    rows = [(f, n) for f, n in counts if n > 0]
    total = sum(n for _f, n in rows)
    if total == 0:
        return None
    fails = sum(f for f, _n in rows)
    m = len(rows)
    p = fails / total
    deff = 1.0
    if m == 1:
        # one cluster is one observation, whatever its size: no variance can be estimated from it
        deff = float(total)
    elif 0 < fails < total:
        var_cluster = m / (m - 1) * sum((f - p * n) ** 2 for f, n in rows) / (total * total)
        deff = max(1.0, var_cluster / (p * (1 - p) / total))
    n_eff = total / deff
    if m > 1:
        from scipy.stats import norm, t

        # z from the caller's level: the t quantile of the same two-sided level with m - 1 df
        level = 2 * float(norm.cdf(z)) - 1
        t_q = float(t.ppf(0.5 + level / 2, m - 1))
        n_eff *= (z / t_q) ** 2
    low, high = _wilson(p, n_eff, z)
    if fails == 0:
        low = 0.0
    if fails == total:
        high = 1.0
    return ClusteredInterval(low, high, m, deff, n_eff)
