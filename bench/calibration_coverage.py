"""Coverage of the judge-corrected fail rate's 95% interval, by simulation.

Each repetition draws a population of traces with a true fail rate, a judge
with a given TPR and TNR, and a random subset of the traces labelled by a
person; ``p_obs`` is the judge's rate over all judged traces, as in a run.
Two intervals for the Rogan-Gladen rate are computed from the same draws:

- ours (pytest_failmodes.calibration.bootstrap_theta): ``p_obs`` over every
  judged trace; resamples the labelled pairs *and* the unlabelled verdicts;
- the judgy method (its ``estimate_success_rate``): ``p_obs`` over the
  unlabelled verdicts, held fixed; resamples only the labelled pairs.

It prints how often each covers the true rate, and the mean widths (and the
ratio of the widths, ours / judgy, measured in the same run).

    .venv/bin/python bench/calibration_coverage.py [--reps 1000] [--resamples 2000] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_failmodes.calibration import bootstrap_theta, labelled_draws, percentile_interval  # noqa: E402

CASES = [
    # (name, true rate, TPR, TNR, labelled, unlabelled)
    ("100 labelled + 1,000 unlabelled", 0.20, 0.85, 0.90, 100, 1000),
    ("50 labelled + 200 unlabelled", 0.20, 0.85, 0.90, 50, 200),
    # not in the list: many labels next to few unlabelled traces, where the
    # sampling error of p_obs is as large as that of TPR and TNR
    ("400 labelled + 400 unlabelled", 0.20, 0.85, 0.90, 400, 400),
]


def judgy_interval(human: np.ndarray, judge: np.ndarray, p_obs: float, resamples: int, rng: np.random.Generator) -> tuple[float, float] | None:
    """Resample the labelled pairs only; ``p_obs`` (over the unlabelled verdicts) fixed."""
    draws = labelled_draws(len(human), resamples, rng)
    h, j = human[draws], judge[draws]
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = (h & j).sum(axis=1) / h.sum(axis=1)
        tnr = (~h & ~j).sum(axis=1) / (~h).sum(axis=1)
        youden = tpr + tnr - 1
        theta = np.clip((p_obs + tnr - 1) / youden, 0.0, 1.0)
    ok = np.isfinite(theta) & (youden > 0)
    if ok.sum() < resamples / 2:
        return None
    return percentile_interval(theta[ok])


def simulate(rate: float, tpr: float, tnr: float, n_lab: int, n_unl: int, reps: int, resamples: int, seed: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {"ours_cover": [], "ours_width": [], "judgy_cover": [], "judgy_width": [],
                                   "ours_none": [], "judgy_none": []}
    n = n_lab + n_unl
    for rep in range(reps):
        human_all = rng.random(n) < rate
        judge_all = np.where(human_all, rng.random(n) < tpr, rng.random(n) >= tnr)
        labelled = rng.permutation(n)[:n_lab]  # a random subset of the traces gets a person's label
        mask = np.zeros(n, dtype=bool)
        mask[labelled] = True
        human, judge = human_all[mask], judge_all[mask]
        unl_fail, unl_n = int(judge_all[~mask].sum()), int((~mask).sum())
        # judgy's estimate_success_rate(test_labels, test_preds, unlabeled_preds) takes the
        # observed rate over the unlabelled verdicts and holds it fixed while it resamples
        p_obs_unlabelled = unl_fail / unl_n

        thetas, _dropped = bootstrap_theta(human, judge, unl_fail, unl_n, resamples=resamples, seed=seed * 100_003 + rep)
        if len(thetas) >= resamples / 2:
            low, high = percentile_interval(thetas)
            out["ours_cover"].append(float(low <= rate <= high))
            out["ours_width"].append(high - low)
        else:
            out["ours_none"].append(1.0)
        judgy = judgy_interval(human, judge, p_obs_unlabelled, resamples, rng)
        if judgy is not None:
            out["judgy_cover"].append(float(judgy[0] <= rate <= judgy[1]))
            out["judgy_width"].append(judgy[1] - judgy[0])
        else:
            out["judgy_none"].append(1.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"{args.reps} repetitions, {args.resamples} resamples each, seed {args.seed}; target coverage 0.93-0.97")
    print(f"{'case':34} {'method':28} {'coverage':>9} {'mean width':>11} {'no interval':>12}")
    for name, rate, tpr, tnr, n_lab, n_unl in CASES:
        start = time.perf_counter()
        r = simulate(rate, tpr, tnr, n_lab, n_unl, args.reps, args.resamples, args.seed)
        label = f"{name} (rate {rate:.0%}, TPR {tpr}, TNR {tnr})"
        print(label)
        for method, key in (("ours (labelled + unlabelled)", "ours"), ("judgy (labelled only)", "judgy")):
            cover = np.mean(r[f"{key}_cover"]) if r[f"{key}_cover"] else float("nan")
            width = np.mean(r[f"{key}_width"]) if r[f"{key}_width"] else float("nan")
            print(f"{'':34} {method:28} {cover:9.3f} {width:11.3f} {len(r[f'{key}_none']):12d}")
        ratio = np.mean(r["ours_width"]) / np.mean(r["judgy_width"])
        print(f"{'':34} width ratio ours/judgy: {ratio:.2f}   ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
