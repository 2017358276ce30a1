"""Calibration of the regression gate, by simulation: false alarms when nothing changed, and power.

Every simulated run pair goes through ``pytest_failmodes.regression.compare``,
the code the gate uses, with ``alpha = 0.05`` and ``min_increase = 0``.

A run has 40 cohorts x 3 modes = 120 comparisons. Each run pair draws, per
cohort, a size n uniform in [20, 400] and, per mode and cohort, a true fail
rate uniform in [2%, 15%].

* **paired**: the same traces are evaluated in both runs. A trace's failure
  follows a latent liability: trace i fails in a run when
  ``sqrt(rho) * Z_i + sqrt(1 - rho) * E_run,i < Phi^-1(rate)``, with Z_i the
  trace's own persistent difficulty and E a fresh draw per run; ``rho`` is
  the correlation of the liability across runs. rho = 0 is two unrelated
  runs; rho = 1 is a deterministic app.
* **unpaired**: two independent samples of traces (each with its own n drawn
  uniform in [20, 400]); the counts are binomial.

Figures (each with its target and PASS or MISS, and a Wilson 95% interval for
the Monte Carlo error):

(a) A/A: both runs have the same true rates. The fraction of run pairs in
    which any of the 120 comparisons is declared a regression, with
    Tarone-Holm (the default: Holm's step-down counting only the comparisons
    whose exact test can still reach significance), plain Holm,
    Benjamini-Hochberg, and no correction; paired and unpaired.
(b) power: one comparison's true rate goes from 5% to 10% with n = 400 in both
    runs, the other 119 as in (a). The fraction of run pairs in which it is
    declared a regression (Tarone-Holm; plain Holm beside it), paired at ``--rho`` and over a sweep of rho,
    and unpaired. Also the fraction that flags any of the 119 unchanged rows.
(c) the A/A figure of a naive rule, "the rate went up by more than 2 points",
    on the same simulated data.

Boschloo's test (the gate's default for unpaired rows) costs seconds per
table at n = 400 through scipy. The script measures it on tables drawn like
those of (a) and runs the unpaired simulations with Fisher's test; see the
note it prints. Run::

    .venv/bin/python bench/gate_calibration.py            # full run, 500 run pairs each (a few minutes)
    .venv/bin/python bench/gate_calibration.py --quick    # smoke run, 60 run pairs each
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_failmodes.regression import BOSCHLOO_MAX_CELLS, DEFAULT_CORRECTION, compare
from pytest_failmodes.stats import wilson_interval

SEED = 20240604
COHORTS = 40
MODES = 3
N_RANGE = (20, 400)
RATE_RANGE = (0.02, 0.15)
ALPHA = 0.05
NAIVE_POINTS = 0.02
POWER_BASE, POWER_NEW, POWER_N = 0.05, 0.10, 400
#: the headline pairing correlation; see RHO_WHY
RHO = 0.9
RHO_SWEEP = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
RHO_WHY = (
    "rho = {rho}: a trace that failed at a 5% rate fails again in the other run with probability {again:.2f},\n"
    "  and {flip:.1%} of traces flip verdict between two runs of an unchanged app at that rate. Why: the traces\n"
    "  are the same inputs and the detectors are deterministic, so what varies between runs is the model's\n"
    "  sampling; most failures of an LLM app follow the input (an ambiguous request, a missing tool result,\n"
    "  a policy edge case) and recur when it is asked again. The sweep shows how power falls when pairing is\n"
    "  weaker, down to rho = 0 (unrelated runs); measure your own app's flip rate with an A/A re-run."
)
CORRECTIONS = ("tarone-holm", "holm", "bh", "none")
DEFAULT = DEFAULT_CORRECTION
TARGET_AA = 0.05
TARGET_POWER = 0.80


@dataclass
class Tally:
    """Run pairs counted and hits per named figure."""

    runs: int = 0

    def __post_init__(self) -> None:
        self.hits: dict[str, int] = {}

    def add(self, name: str, hit: bool) -> None:
        self.hits[name] = self.hits.get(name, 0) + int(hit)

    def fraction(self, name: str) -> float:
        return self.hits.get(name, 0) / self.runs


# --------------------------------------------------------------------------------------
# simulation
# --------------------------------------------------------------------------------------


def _threshold(rate: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(rate))


def _ids(n: int) -> list[str]:
    return [f"t{i:03d}" for i in range(n)]


#: n of the "what it takes" lines of (b)
POWER_N_LARGE = 800
IDS = _ids(max(N_RANGE[1], POWER_N_LARGE))


def paired_rows(rng: np.random.Generator, rho: float, power: bool, power_n: int = POWER_N) -> list[dict[str, Any]]:
    """One simulated pair of runs over the same traces: rows with per-trace verdict maps."""
    sizes = rng.integers(N_RANGE[0], N_RANGE[1] + 1, size=COHORTS)
    rates = rng.uniform(*RATE_RANGE, size=(MODES, COHORTS))
    keep, fresh = math.sqrt(rho), math.sqrt(1.0 - rho)
    rows = []
    for m in range(MODES):
        for k in range(COHORTS):
            n = int(sizes[k])
            base_rate = new_rate = float(rates[m, k])
            if power and m == 0 and k == 0:
                n, base_rate, new_rate = power_n, POWER_BASE, POWER_NEW
            difficulty = keep * rng.standard_normal(n)
            base_fail = difficulty + fresh * rng.standard_normal(n) < _threshold(base_rate)
            new_fail = difficulty + fresh * rng.standard_normal(n) < _threshold(new_rate)
            ids = IDS[:n]
            rows.append(
                {
                    "mode": f"mode{m}",
                    "cohort": f"cohort={k}",
                    "base_verdicts": dict(zip(ids, np.where(base_fail, "fail", "pass").tolist())),
                    "new_verdicts": dict(zip(ids, np.where(new_fail, "fail", "pass").tolist())),
                }
            )
    return rows


def unpaired_rows(rng: np.random.Generator, power: bool, power_n: int = POWER_N) -> list[dict[str, Any]]:
    """One simulated pair of runs over two independent samples of traces: counts only."""
    base_sizes = rng.integers(N_RANGE[0], N_RANGE[1] + 1, size=COHORTS)
    new_sizes = rng.integers(N_RANGE[0], N_RANGE[1] + 1, size=COHORTS)
    rates = rng.uniform(*RATE_RANGE, size=(MODES, COHORTS))
    rows = []
    for m in range(MODES):
        for k in range(COHORTS):
            base_n, new_n = int(base_sizes[k]), int(new_sizes[k])
            base_rate = new_rate = float(rates[m, k])
            if power and m == 0 and k == 0:
                base_n = new_n = power_n
                base_rate, new_rate = POWER_BASE, POWER_NEW
            rows.append(
                {
                    "mode": f"mode{m}",
                    "cohort": f"cohort={k}",
                    "base_fails": int(rng.binomial(base_n, base_rate)),
                    "base_n": base_n,
                    "new_fails": int(rng.binomial(new_n, new_rate)),
                    "new_n": new_n,
                }
            )
    return rows


def run_scenario(
    reps: int,
    rng: np.random.Generator,
    make_rows: Callable[[np.random.Generator], list[dict[str, Any]]],
    power: bool,
    corrections: Sequence[str] = CORRECTIONS,
) -> Tally:
    tally = Tally()
    for _ in range(reps):
        rows = make_rows(rng)
        tally.runs += 1
        for correction in corrections:
            results = compare(rows, alpha=ALPHA, correction=correction, unpaired_method="fisher")
            others = results[1:] if power else results
            tally.add(f"any:{correction}", any(c.regression for c in others))
            if power:
                tally.add(f"target:{correction}", results[0].regression)
        tally.add("naive", any(c.delta is not None and c.delta > NAIVE_POINTS + 1e-12 for c in others))
        if power:
            tally.add("target_naive", results[0].delta is not None and results[0].delta > NAIVE_POINTS + 1e-12)
    return tally


# --------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------


def figure(label: str, hits: int, runs: int, target: str | None) -> str:
    value = hits / runs
    ci = wilson_interval(hits, runs)
    assert ci is not None
    text = f"  {label:<58} {value:6.3f}  [{ci[0]:.3f}, {ci[1]:.3f}]"
    if target is None:
        return text + "  (for reference)"
    op, bound = target.split()
    ok = value <= float(bound) if op == "<=" else value >= float(bound)
    return text + f"  target {op} {bound}  {'PASS' if ok else 'MISS'}"


def pairing_facts(rho: float, rate: float = 0.05) -> tuple[float, float]:
    """(P(fail again | failed), share of traces that flip) for an unchanged app at ``rate``."""
    from scipy.stats import multivariate_normal

    t = _threshold(rate)
    both = float(multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]]).cdf([t, t])) if rho < 1 else rate
    return both / rate, 2 * (rate - both)


def boschloo_cost(rng: np.random.Generator, samples: int) -> tuple[list[tuple[int, int, float]], float]:
    """Seconds per scipy Boschloo call on tables drawn like the unpaired A/A rows, and the mean."""
    from scipy import stats

    timings = []
    for _ in range(samples):
        base_n, new_n = (int(x) for x in rng.integers(N_RANGE[0], N_RANGE[1] + 1, size=2))
        rate = float(rng.uniform(*RATE_RANGE))
        table = [[int(rng.binomial(new_n, rate)), int(rng.binomial(base_n, rate))]]
        table.append([new_n - table[0][0], base_n - table[0][1]])
        start = time.perf_counter()
        stats.boschloo_exact(table, alternative="greater")
        timings.append((base_n, new_n, time.perf_counter() - start))
    return timings, sum(t for _, _, t in timings) / len(timings)


def boschloo_fixed(sizes: Sequence[int]) -> list[tuple[int, float, float]]:
    from scipy import stats

    out = []
    for n in sizes:
        table = [[n // 10, n // 20], [n - n // 10, n - n // 20]]
        start = time.perf_counter()
        stats.boschloo_exact(table, alternative="greater")
        boschloo = time.perf_counter() - start
        start = time.perf_counter()
        stats.fisher_exact(table, alternative="greater")
        out.append((n, boschloo, time.perf_counter() - start))
    return out


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=None, help="run pairs per scenario (default 500; 60 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer run pairs, a shorter rho sweep")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of every random draw (default {SEED})")
    parser.add_argument("--rho", type=float, default=RHO, help=f"headline pairing correlation (default {RHO})")
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = 60 if args.quick else 500
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    if not 0.0 <= args.rho < 1.0:
        parser.error("--rho must be in [0, 1)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows while it runs
    import scipy

    reps = args.reps
    seeds = np.random.SeedSequence(args.seed).spawn(8)
    rng = [np.random.default_rng(s) for s in seeds]
    started = time.perf_counter()
    print("gate calibration: pytest_failmodes.regression.compare, alpha = 0.05, min_increase = 0")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"{os.cpu_count()} cpus; seed {args.seed}; {reps} run pairs per scenario"
        + (" (--quick: the figures are rough)" if args.quick else "")
    )
    print(
        f"a run: {COHORTS} cohorts x {MODES} modes = {COHORTS * MODES} comparisons; n per cohort uniform in "
        f"[{N_RANGE[0]}, {N_RANGE[1]}], true rate per mode x cohort uniform in "
        f"[{RATE_RANGE[0]:.0%}, {RATE_RANGE[1]:.0%}]"
    )
    again, flip = pairing_facts(args.rho)
    print(RHO_WHY.format(rho=args.rho, again=again, flip=flip))
    print(f"load average at start: {_load()}")
    print()

    # -- Boschloo's cost --------------------------------------------------------------
    t0 = time.perf_counter()
    print("Boschloo's cost (scipy.stats.boschloo_exact, one call, one-sided):")
    for n, boschloo, fisher in boschloo_fixed((20, 100, 200, 400) if not args.quick else (20, 100, 200)):
        print(f"  n = {n:>3} vs {n:>3}: Boschloo {boschloo:7.3f} s, Fisher {fisher * 1000:6.2f} ms")
    timings, mean = boschloo_cost(rng[0], 3 if args.quick else 8)
    total = mean * reps * COHORTS * MODES
    print(
        f"  {len(timings)} tables drawn like the unpaired A/A rows: mean {mean:.2f} s per call -> "
        f"{reps} x {COHORTS * MODES} calls ~ {total / 3600:.1f} h"
    )
    print(
        "  so the unpaired simulations below use Fisher's exact test (compare(unpaired_method='fisher')).\n"
        "  Boschloo's p-value is never above Fisher's (it uses Fisher's p as its statistic without conditioning\n"
        "  on the margins), and Holm rejects more when p-values fall: with plain Holm the unpaired power below is\n"
        "  a lower bound for Boschloo, and so is the unpaired A/A figure; Holm keeps Boschloo's A/A rate <= 0.05\n"
        "  all the same, as Boschloo is an exact (level-alpha) test. Tarone-Holm may go either way: a Fisher row\n"
        "  whose margins cannot reach significance costs nothing, while a Boschloo row (unconditional: no margins\n"
        "  to condition on) always counts in full. compare() itself switches to Fisher above\n"
        f"  BOSCHLOO_MAX_CELLS = {BOSCHLOO_MAX_CELLS:,} table cells, e.g. for n = 400 vs 400 "
        f"({401 * 401:,} cells), as in (b).  [{time.perf_counter() - t0:.0f} s]"
    )
    print()

    # -- (a) and (c): A/A ---------------------------------------------------------------
    t0 = time.perf_counter()
    aa_paired = run_scenario(reps, rng[1], lambda g: paired_rows(g, args.rho, power=False), power=False)
    aa_unpaired = run_scenario(reps, rng[2], lambda g: unpaired_rows(g, power=False), power=False)
    print(f"(a) A/A, same true rates in both runs: fraction of run pairs declaring any regression of {COHORTS * MODES}")
    names = {
        "tarone-holm": "Tarone-Holm (default)",
        "holm": "Holm",
        "bh": "Benjamini-Hochberg",
        "none": "no correction",
    }
    for label, tally in ((f"paired, rho = {args.rho}", aa_paired), ("unpaired, Fisher", aa_unpaired)):
        for correction in CORRECTIONS:
            target = f"<= {TARGET_AA}" if correction == DEFAULT else None
            print(figure(f"{label}, {names[correction]}", tally.hits[f"any:{correction}"], tally.runs, target))
    print(
        "  (with every null true, BH's false discovery rate equals this figure, so BH must stay <= 0.05 here too;\n"
        "  where it differs from Holm is (b)'s false alarms beside a real regression)"
    )
    print(f"  [{time.perf_counter() - t0:.0f} s]")
    print()

    # -- (b): power ---------------------------------------------------------------------
    t0 = time.perf_counter()
    print(
        f"(b) power: one comparison {POWER_BASE:.0%} -> {POWER_NEW:.0%} with n = {POWER_N} in both runs, "
        f"the other {COHORTS * MODES - 1} unchanged: fraction detected ({names[DEFAULT]})"
    )
    sweep = (0.0, 0.7, 0.9) if args.quick else RHO_SWEEP
    if args.rho not in sweep:
        sweep = tuple(sorted({*sweep, args.rho}))
    power_tallies = {}
    for rho in sweep:
        corrections = CORRECTIONS if rho == args.rho else (DEFAULT, "holm")
        power_tallies[rho] = run_scenario(
            reps, rng[3], lambda g, r=rho: paired_rows(g, r, power=True), power=True, corrections=corrections
        )
    unpaired_power = run_scenario(reps, rng[4], lambda g: unpaired_rows(g, power=True), power=True)
    large = POWER_N_LARGE
    paired_large = run_scenario(
        reps, rng[5], lambda g: paired_rows(g, args.rho, power=True, power_n=large), power=True, corrections=(DEFAULT,)
    )
    unpaired_large = run_scenario(
        reps, rng[6], lambda g: unpaired_rows(g, power=True, power_n=large), power=True, corrections=(DEFAULT,)
    )
    headline = power_tallies[args.rho]
    power_target = f">= {TARGET_POWER}"
    print(figure(f"paired, rho = {args.rho} (headline)", headline.hits[f"target:{DEFAULT}"], headline.runs, power_target))
    print(figure("unpaired, Fisher", unpaired_power.hits[f"target:{DEFAULT}"], unpaired_power.runs, power_target))
    print("  paired, by pairing correlation (P(fail again | failed) at 5%; share of traces flipping A/A at 5%):")
    for rho in sweep:
        again, flip = pairing_facts(rho)
        tally = power_tallies[rho]
        label = f"  rho = {rho:<4} ({again:.2f}; {flip:.1%})"
        print(figure(label, tally.hits[f"target:{DEFAULT}"], tally.runs, power_target))
        print(figure("      the same with plain Holm", tally.hits["target:holm"], tally.runs, None))
    print(f"  what it takes: the same move with n = {large} in both runs, for reference:")
    print(figure(f"paired, rho = {args.rho}, n = {large}", paired_large.hits[f"target:{DEFAULT}"], paired_large.runs, None))
    print(figure(f"unpaired, Fisher, n = {large}", unpaired_large.hits[f"target:{DEFAULT}"], unpaired_large.runs, None))
    print("  the same, with plain Holm, BH and no correction, for reference:")
    for label, tally in ((f"paired, rho = {args.rho}", headline), ("unpaired, Fisher", unpaired_power)):
        for correction in ("holm", "bh", "none"):
            print(figure(f"{label}, {names[correction]}", tally.hits[f"target:{correction}"], tally.runs, None))
    print(f"  false alarms beside it: fraction of run pairs flagging any of the {COHORTS * MODES - 1} unchanged rows")
    for label, tally in ((f"paired, rho = {args.rho}", headline), ("unpaired, Fisher", unpaired_power)):
        for correction in CORRECTIONS:
            target = f"<= {TARGET_AA}" if correction == DEFAULT else None
            print(figure(f"{label}, {names[correction]}", tally.hits[f"any:{correction}"], tally.runs, target))
    print(f"  [{time.perf_counter() - t0:.0f} s]")
    print()

    # -- (c): the naive rule ------------------------------------------------------------
    print(
        f"(c) naive rule 'the rate went up by more than {NAIVE_POINTS * 100:.0f} points' on the A/A data of (a): "
        "fraction of run pairs declaring any regression"
    )
    print(figure(f"paired, rho = {args.rho}", aa_paired.hits["naive"], aa_paired.runs, f"<= {TARGET_AA}"))
    print(figure("unpaired", aa_unpaired.hits["naive"], aa_unpaired.runs, f"<= {TARGET_AA}"))
    print("  and its power on (b)'s planted regression, for reference:")
    print(figure(f"paired, rho = {args.rho}", headline.hits["target_naive"], headline.runs, None))
    print(figure("unpaired", unpaired_power.hits["target_naive"], unpaired_power.runs, None))
    print()
    print(
        f"total {time.perf_counter() - started:.0f} s wall, {time.process_time():.0f} s CPU; "
        f"load average at end: {_load()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
