"""Interval estimates for fail rates."""

from __future__ import annotations

import math

__all__ = ["wilson_interval", "Z95"]

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
