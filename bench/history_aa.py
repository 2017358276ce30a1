"""The sustained-shift test of ``failmodes history``, by simulation: false alarms when nothing changed, and detection.

Every simulated dashboard goes through ``pytest_failmodes.history.find_shifts``,
the code ``failmodes history`` runs, with its defaults (the last 3 runs against
up to 10 before them, alpha 0.05 over the dashboard).

A dashboard is ``--modes`` x ``--cohorts`` series (default 50 x 40 = 2,000)
over ``--runs`` runs (default 30). Each series draws a cohort size n uniform in
[20, 400] (the same every run, as when one dataset is evaluated again) and a
true fail rate uniform in [2%, 30%]; each run's fails are binomial.

Figures (each with a Wilson 95% interval for the Monte Carlo error):

(a) A/A, binomial: no rate changes. False alarms per series (flagged series /
    all series) and per dashboard (dashboards with any flag).
(b) A/A, overdispersed: each run's true rate is the series' rate times
    exp(N(0, 0.25)) (a judge or an app that varies from run to run more than
    sampling explains). Same two figures.
(c) a single outlier: in one series per dashboard the latest run alone has
    three times the rate (at most 95%). How often that series is flagged (the
    test must not fire on one noisy run).
(d) detection of a planted step: in one series per dashboard the rate rises
    from 5% to 10% or 15% for the last 3 (or 5) runs, at n = 100 and n = 400;
    how often that series is flagged (the other 1,999 series unchanged).

Run::

    .venv/bin/python bench/history_aa.py            # 200 dashboards per figure (several minutes on a busy machine)
    .venv/bin/python bench/history_aa.py --quick    # 30 dashboards per figure
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pytest_failmodes.history import Point, Series, ShiftTest, find_shifts
from pytest_failmodes.stats import wilson_interval


def _series(rng: np.random.Generator, runs: int, n: int, rates: np.ndarray, name: str) -> Series:
    fails = rng.binomial(n, np.clip(rates, 0.0, 1.0))
    points = [
        Point(run=i, n=n, fails=int(f), errors=0, ci_low=None, ci_high=None, limit=None, breach=False, fingerprint="f", baseline=None)
        for i, f in enumerate(fails)
    ]
    return Series(mode=name, name=name, cohort="c", points=points)


def _dashboard(
    rng: np.random.Generator, args: argparse.Namespace, *, jitter: float = 0.0
) -> list[Series]:
    count = args.modes * args.cohorts
    # drawn for the whole dashboard at once: the simulation's own cost must not dwarf the test's
    sizes = rng.integers(20, 401, size=count)
    rates = np.repeat(rng.uniform(0.02, 0.30, size=count)[:, None], args.runs, axis=1)
    if jitter:
        rates = rates * np.exp(rng.normal(0.0, jitter, size=rates.shape))
    fails = rng.binomial(sizes[:, None], np.clip(rates, 0.0, 1.0)).tolist()
    out = []
    for k, (n, row) in enumerate(zip(sizes.tolist(), fails)):
        points = [
            Point(run=i, n=n, fails=f, errors=0, ci_low=None, ci_high=None, limit=None, breach=False, fingerprint="f", baseline=None)
            for i, f in enumerate(row)
        ]
        out.append(Series(mode=f"s{k}", name=f"s{k}", cohort="c", points=points))
    return out


def _interval(hits: int, total: int) -> str:
    ci = wilson_interval(hits, total)
    assert ci is not None
    return f"{hits / total:.4%}  [{ci[0]:.4%}, {ci[1]:.4%}]  ({hits}/{total})"


def _aa(rng: np.random.Generator, args: argparse.Namespace, test: ShiftTest, jitter: float) -> tuple[int, int, int]:
    flagged_series = 0
    flagged_dashboards = 0
    for _ in range(args.dashboards):
        series = _dashboard(rng, args, jitter=jitter)
        flagged = find_shifts(series, test)
        flagged_series += flagged
        flagged_dashboards += flagged > 0
    return flagged_series, args.dashboards * args.modes * args.cohorts, flagged_dashboards


def _planted(
    rng: np.random.Generator, args: argparse.Namespace, test: ShiftTest, *, n: int, before: float, after: float, last: int,
    outlier: bool = False,
) -> tuple[int, int]:
    found = 0
    others = 0
    for _ in range(args.dashboards):
        series = _dashboard(rng, args)
        rates = np.full(args.runs, before)
        if outlier:
            rates[-1] = min(0.95, 3 * before)
        else:
            rates[-last:] = after
        target = _series(rng, args.runs, n, rates, "planted")
        series[0] = target
        find_shifts(series, test)
        found += bool(target.shift and target.shift.flagged)
        others += sum(bool(s.shift and s.shift.flagged) for s in series[1:])
    return found, others


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dashboards", type=int, default=200)
    parser.add_argument("--modes", type=int, default=50)
    parser.add_argument("--cohorts", type=int, default=40)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--quick", action="store_true", help="30 dashboards per figure")
    args = parser.parse_args()
    if args.quick:
        args.dashboards = 30
    test = ShiftTest()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    print(
        f"{args.dashboards} dashboards per figure, each {args.modes} x {args.cohorts} series over {args.runs} runs; "
        f"test: last {test.min_run} runs vs up to {test.window} before, alpha {test.alpha} per dashboard"
    )
    for label, jitter in (("(a) A/A, binomial", 0.0), ("(b) A/A, overdispersed (rate x exp(N(0, 0.25)) per run)", 0.25)):
        fs, total, fd = _aa(rng, args, test, jitter)
        print(label)
        print(f"    false alarms per series:    {_interval(fs, total)}")
        print(f"    false alarms per dashboard: {_interval(fd, args.dashboards)}   target <= {test.alpha:.0%}")
    found, others = _planted(rng, args, test, n=200, before=0.10, after=0.10, last=1, outlier=True)
    print("(c) one outlier (latest run at 3x the rate of 10%, n = 200)")
    print(f"    that series flagged:        {_interval(found, args.dashboards)}")
    print("(d) detection of a planted step (one series per dashboard)")
    for n in (100, 400):
        for after in (0.10, 0.15):
            for last in (3, 5):
                found, others = _planted(rng, args, test, n=n, before=0.05, after=after, last=last)
                print(
                    f"    5% -> {after:.0%}, n = {n}, last {last} runs: detected {_interval(found, args.dashboards)}; "
                    f"other series flagged {others}"
                )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
