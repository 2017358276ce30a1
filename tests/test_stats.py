"""Wilson score interval, checked against an independent computation."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_failmodes.stats import Z95, wilson_interval


def wilson_by_quadratic(k: int, n: int, z: float) -> tuple[float, float]:
    """The Wilson bounds are the p solving (k/n - p)^2 = z^2 p (1 - p) / n.

    Expanded: (1 + z^2/n) p^2 - (2 k/n + z^2/n) p + (k/n)^2 = 0, solved with the
    quadratic formula (a different route from the centre +- half-width form).
    """
    phat = k / n
    a = 1 + z * z / n
    b = -(2 * phat + z * z / n)
    c = phat * phat
    disc = math.sqrt(b * b - 4 * a * c)
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


GRID = [(k, n) for n in (1, 2, 3, 5, 10, 30, 100, 1000, 12345) for k in sorted({0, 1, n // 3, n // 2, n - 1, n})]


def test_z95_is_the_two_sided_95_percent_quantile() -> None:
    assert Z95 == pytest.approx(NormalDist().inv_cdf(0.975), abs=1e-12)


@pytest.mark.parametrize(("k", "n"), GRID)
def test_matches_the_quadratic_solution(k: int, n: int) -> None:
    got = wilson_interval(k, n)
    assert got is not None
    low, high = wilson_by_quadratic(k, n, NormalDist().inv_cdf(0.975))
    assert got[0] == pytest.approx(low, abs=1e-12)
    assert got[1] == pytest.approx(high, abs=1e-12)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # published reference values (Newcombe 1998, Table I, Wilson score method)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (29, 29, 0.8830, 1.0),
    ],
)
def test_published_reference_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got is not None
    assert got[0] == pytest.approx(low, abs=5e-5)
    assert got[1] == pytest.approx(high, abs=5e-5)


@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_edges_are_exact(n: int) -> None:
    none_failed = wilson_interval(0, n)
    all_failed = wilson_interval(n, n)
    assert none_failed is not None and all_failed is not None
    assert none_failed[0] == 0.0 and 0.0 < none_failed[1] < 1.0
    assert all_failed[1] == 1.0 and 0.0 < all_failed[0] < 1.0
    # symmetric: k fails is n - k passes
    assert none_failed[1] == pytest.approx(1 - all_failed[0], abs=1e-12)


def test_n_equal_one() -> None:
    z2 = NormalDist().inv_cdf(0.975) ** 2
    assert wilson_interval(0, 1) == (0.0, pytest.approx(z2 / (1 + z2)))
    assert wilson_interval(1, 1) == (pytest.approx(1 / (1 + z2)), 1.0)


@pytest.mark.parametrize("n", [0, -1])
def test_no_observations_gives_none(n: int) -> None:
    assert wilson_interval(0, n) is None


@pytest.mark.parametrize(("k", "n"), [(-1, 5), (6, 5)])
def test_impossible_counts_are_rejected(k: int, n: int) -> None:
    with pytest.raises(ValueError, match="between 0 and n"):
        wilson_interval(k, n)


def test_other_confidence_levels() -> None:
    z = NormalDist().inv_cdf(0.995)
    got = wilson_interval(3, 40, z=z)
    assert got is not None
    assert got == pytest.approx(wilson_by_quadratic(3, 40, z), abs=1e-12)
    narrower = wilson_interval(3, 40)
    assert narrower is not None
    assert got[0] < narrower[0] and narrower[1] < got[1]


@given(st.integers(1, 10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_interval_contains_the_point_estimate_and_stays_in_bounds(kn: tuple[int, int]) -> None:
    k, n = kn
    got = wilson_interval(k, n)
    assert got is not None
    low, high = got
    assert 0.0 <= low <= k / n <= high <= 1.0
    assert low < high
