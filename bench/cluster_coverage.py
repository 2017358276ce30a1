"""Coverage of the 95% interval on clustered data: plain Wilson against the clustered one.

Each repetition draws ``tasks`` tasks, each with its own fail probability from
a Beta distribution (mean ``rate``; the intra-cluster correlation ``icc`` sets
how much tasks differ), and ``trials`` repeated trials of each task, so a
task's trials are not independent, as in agent benchmarks run k times per task.
It prints how often each interval covers the true mean rate, and the mean
widths (ratio clustered / plain, measured in the same run). Target for the
clustered interval: 0.93-0.97; plain Wilson under-covers as ``icc`` grows.

    .venv/bin/python bench/cluster_coverage.py [--reps 2000] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_failmodes.stats import clustered_interval, wilson_interval  # noqa: E402

CASES = [
    # (name, tasks, trials per task, mean fail rate, intra-cluster correlation)
    ("50 tasks x 4 trials, rate 0.30, icc 0.3", 50, 4, 0.30, 0.3),
    ("50 tasks x 4 trials, rate 0.10, icc 0.3", 50, 4, 0.10, 0.3),
    ("50 tasks x 4 trials, rate 0.30, icc 0.6", 50, 4, 0.30, 0.6),
    ("100 tasks x 8 trials, rate 0.20, icc 0.4", 100, 8, 0.20, 0.4),
    ("30 tasks x 4 trials, rate 0.30, icc 0.3", 30, 4, 0.30, 0.3),
    # no clustering at all: the clustered interval must not cost much width
    ("200 tasks x 1 trial, rate 0.20 (independent)", 200, 1, 0.20, 0.0),
]


def draw(rng: np.random.Generator, tasks: int, trials: int, rate: float, icc: float) -> list[tuple[int, int]]:
    if icc <= 0:
        probs = np.full(tasks, rate)
    else:
        # Beta(a, b) with mean rate and icc = 1 / (a + b + 1)
        total = 1 / icc - 1
        probs = rng.beta(rate * total, (1 - rate) * total, size=tasks)
    fails = rng.binomial(trials, probs)
    return [(int(f), trials) for f in fails]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{args.reps} repetitions per case; target for the clustered interval: coverage 0.93-0.97\n")
    print(f"{'case':48} {'plain Wilson':>13} {'clustered':>10} {'width ratio':>12} {'mean deff':>10}  clustered")
    for name, tasks, trials, rate, icc in CASES:
        plain_hits = cl_hits = 0
        plain_w = cl_w = deff = 0.0
        for _ in range(args.reps):
            counts = draw(rng, tasks, trials, rate, icc)
            fails = sum(f for f, _n in counts)
            n = tasks * trials
            lo, hi = wilson_interval(fails, n)  # type: ignore[misc]
            plain_hits += lo <= rate <= hi
            plain_w += hi - lo
            ci = clustered_interval(counts)
            assert ci is not None
            cl_hits += ci.low <= rate <= ci.high
            cl_w += ci.high - ci.low
            deff += ci.design_effect
        cover = cl_hits / args.reps
        verdict = "PASS" if 0.93 <= cover <= 0.97 else "MISS"
        if icc <= 0:
            verdict = "(reference: no clusters)"
        print(
            f"{name:48} {plain_hits / args.reps:13.3f} {cover:10.3f} {cl_w / plain_w:12.2f} "
            f"{deff / args.reps:10.2f}  {verdict}"
        )


if __name__ == "__main__":
    main()
