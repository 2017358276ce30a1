"""Measuring a detector against human labels, and correcting fail rates for its errors.

Pure statistics (numpy; no pytest). A *pair* is one labelled trace: the
human verdict and the detector's verdict. From the pairs come the confusion
matrix, TPR (the share of human FAILs the detector calls FAIL) and TNR (the
share of human PASSes it calls PASS), with Wilson intervals.

The corrected (Rogan-Gladen) fail rate of a set of judged traces is
``theta = (p_obs + TNR - 1) / (TPR + TNR - 1)``, clipped to [0, 1], where
``p_obs`` is the detector's fail rate over all of them. Its interval comes
from a stratified bootstrap: each resample draws the labelled pairs again
(so TPR, TNR and the labelled traces' share of ``p_obs`` move together) and
the remaining, unlabelled verdicts again (a binomial draw per cohort: the
count of fails in a resample of them), then recomputes TPR, TNR, ``p_obs`` and
``theta``. Resampling only the labelled pairs with ``p_obs`` fixed (as the
judgy library does) leaves out the sampling error of ``p_obs`` and gives
intervals that are too narrow; bench/calibration_coverage.py measures both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .stats import wilson_interval

__all__ = [
    "CalibrationError",
    "Pair",
    "rogan_gladen",
    "corrected_rate",
    "bootstrap_theta",
    "measure",
    "MIN_CLASS_LABELS",
    "RESAMPLES",
]

#: below this many labels in a class, its rate gets a warning
MIN_CLASS_LABELS = 20
#: bootstrap resamples by default
RESAMPLES = 2000
FAIL, PASS = "fail", "pass"


class CalibrationError(ValueError):
    """The labels do not allow the computation; the message says why in the user's terms."""


@dataclass(frozen=True)
class Pair:
    """One labelled trace that the detector judged: human and detector verdicts."""

    id: str
    human: str  # "fail" | "pass"
    judge: str  # "fail" | "pass"
    reason: str = ""  # the detector's reason
    note: str = ""  # the labeller's note
    cohorts: tuple[str, ...] = ("all",)


def rates(tp: int, fn: int, tn: int, fp: int) -> tuple[float, float]:
    """TPR and TNR; CalibrationError when a class has no labels."""
    if tp + fn == 0:
        raise CalibrationError("no trace is labelled FAIL by a person, so TPR cannot be measured")
    if tn + fp == 0:
        raise CalibrationError("no trace is labelled PASS by a person, so TNR cannot be measured")
    return tp / (tp + fn), tn / (tn + fp)


def rogan_gladen(p_obs: float, tpr: float, tnr: float) -> float:
    """The corrected rate ``(p_obs + TNR - 1) / (TPR + TNR - 1)`` clipped to [0, 1].

    CalibrationError when TPR + TNR <= 1: such a detector is no better than a
    coin on the labels, and no correction can undo it.
    """
    youden = tpr + tnr - 1
    if youden <= 0:
        raise CalibrationError(
            f"TPR + TNR = {tpr + tnr:.3f} <= 1: the detector does no better than chance on the labels, "
            "so its fail rate cannot be corrected"
        )
    return min(1.0, max(0.0, (p_obs + tnr - 1) / youden))


def corrected_rate(fails: int, n: int, tp: int, fn: int, tn: int, fp: int) -> float:
    """Point estimate from counts: ``fails`` of ``n`` judged traces, and the confusion matrix."""
    if n <= 0:
        raise CalibrationError("no judged traces, so there is no observed rate to correct")
    tpr, tnr = rates(tp, fn, tn, fp)
    return rogan_gladen(fails / n, tpr, tnr)


def _confusion(human: Any, judge: Any) -> tuple[int, int, int, int]:
    import numpy as np

    h = np.asarray(human, dtype=bool)
    j = np.asarray(judge, dtype=bool)
    return int((h & j).sum()), int((h & ~j).sum()), int((~h & ~j).sum()), int((~h & j).sum())


def bootstrap_theta(
    human: Sequence[bool] | Any,
    judge: Sequence[bool] | Any,
    unlabelled_fails: int,
    unlabelled_n: int,
    *,
    in_cohort: Sequence[bool] | Any | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
    draws: Any = None,
) -> tuple[Any, int]:
    """Bootstrap draws of the corrected rate: ``(thetas, dropped)``.

    ``human``/``judge``: the labelled pairs (True = FAIL). ``unlabelled_*``:
    the detector's verdicts on the other traces of the cohort. ``in_cohort``
    marks the pairs that belong to the cohort (all of them by default): they
    count in ``p_obs`` too. ``draws`` (:func:`labelled_draws`) lets cohorts
    share one resampling of the labelled set. Resamples where a class
    drew no label, or TPR + TNR <= 1, have no estimate and are dropped; their
    number is returned so the caller can say so.
    """
    import numpy as np

    h = np.asarray(human, dtype=bool)
    j = np.asarray(judge, dtype=bool)
    member = np.ones_like(h) if in_cohort is None else np.asarray(in_cohort, dtype=bool)
    rng = np.random.default_rng(seed)
    if draws is None:
        draws = labelled_draws(len(h), resamples, rng)
    count = _counter(draws)
    tp = count(h & j)
    pos = count(h)
    tn = count(~h & ~j)
    neg = count(~h)
    lab_fail = count(member & j)
    lab_n = count(member)
    rows = draws.shape[0]
    if unlabelled_n > 0:
        # drawing the unlabelled verdicts again with replacement: the fails among them are binomial
        unl_fail = rng.binomial(unlabelled_n, unlabelled_fails / unlabelled_n, size=rows)
    else:
        unl_fail = np.zeros(rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = tp / pos
        tnr = tn / neg
        p_obs = (lab_fail + unl_fail) / (lab_n + unlabelled_n)
        youden = tpr + tnr - 1
        theta = np.clip((p_obs + tnr - 1) / youden, 0.0, 1.0)
    ok = (pos > 0) & (neg > 0) & (youden > 0) & ((lab_n + unlabelled_n) > 0)
    return theta[ok], int((~ok).sum())


def labelled_draws(n: int, resamples: int, rng: Any) -> Any:
    """Indices of the labelled pairs drawn with replacement: one row of ``n`` per resample."""
    return rng.integers(0, max(n, 1), size=(resamples, n))


def _counter(draws: Any) -> Any:
    """``count(mask)``: per resample, how many drawn pairs have ``mask`` set."""

    def count(mask: Any) -> Any:
        if draws.shape[1] == 0:
            return draws.sum(axis=1).astype(float)
        return mask[draws].sum(axis=1).astype(float)

    return count


def percentile_interval(draws: Any, level: float = 0.95) -> tuple[float, float]:
    import numpy as np

    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def measure(
    pairs: Sequence[Pair],
    cohort_counts: Mapping[str, tuple[int, int]],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    correct: bool = True,
    min_class: int = MIN_CLASS_LABELS,
) -> dict[str, Any]:
    """The calibration of one mode, JSON-safe.

    ``pairs``: the labelled traces the detector judged (pass or fail).
    ``cohort_counts``: cohort -> (n judged, fails) over all judged traces,
    labelled or not, as in the mode's cohort rows. ``correct=False`` measures
    TPR/TNR only (a run that judged only the labelled traces).
    """
    import numpy as np

    human = np.array([p.human == FAIL for p in pairs], dtype=bool)
    judge = np.array([p.judge == FAIL for p in pairs], dtype=bool)
    tp, fn, tn, fp = _confusion(human, judge)
    out: dict[str, Any] = {
        "labelled": len(pairs),
        "human_fail": tp + fn,
        "human_pass": tn + fp,
        "confusion": {"tp": tp, "fn": fn, "tn": tn, "fp": fp},
        **_rate_fields(tp, fn, tn, fp),
        "cohorts": [],
        "disagreements": [
            {"id": p.id, "human": p.human, "judge": p.judge, "reason": p.reason, "note": p.note}
            for p in pairs
            if p.human != p.judge
        ],
        "warnings": [],
        "correctable": False,
        "reason": None,
        "resamples": resamples,
        "seed": seed,
        "corrected": {},
    }
    warnings: list[str] = out["warnings"]
    for cls, count in ((FAIL, tp + fn), (PASS, tn + fp)):
        if 0 < count < min_class:
            which = "TPR" if cls == FAIL else "TNR"
            warnings.append(
                f"only {count} traces labelled {cls.upper()} (fewer than {min_class}): {which} is imprecise"
            )
    try:
        tpr, tnr = rates(tp, fn, tn, fp)
        rogan_gladen(0.5, tpr, tnr)  # raises when TPR + TNR <= 1
    except CalibrationError as exc:
        out["reason"] = str(exc)
        warnings.append(f"{exc}; no corrected rate is reported")
        correct = False
    else:
        out["correctable"] = True
    # per cohort TPR/TNR, for cohorts whose labels cover both classes
    labelled_in = {c for p in pairs for c in p.cohorts}
    for cohort in cohort_counts:
        if cohort == "all" or cohort not in labelled_in:
            continue
        m = np.array([cohort in p.cohorts for p in pairs], dtype=bool)
        ctp, cfn, ctn, cfp = _confusion(human[m], judge[m])
        out["cohorts"].append({"cohort": cohort, "confusion": {"tp": ctp, "fn": cfn, "tn": ctn, "fp": cfp},
                               **_rate_fields(ctp, cfn, ctn, cfp)})
    if not correct:
        return out
    rng = np.random.default_rng(seed)
    draws = labelled_draws(len(pairs), resamples, rng)
    for i, (cohort, (n, fails)) in enumerate(cohort_counts.items()):
        member = np.array([cohort in p.cohorts for p in pairs], dtype=bool)
        lab_n = int(member.sum())
        lab_fail = int((member & judge).sum())
        unl_n, unl_fail = n - lab_n, fails - lab_fail
        entry: dict[str, Any] = {"rate": None, "ci_low": None, "ci_high": None, "reason": None, "dropped": 0}
        out["corrected"][cohort] = entry
        if n <= 0:
            entry["reason"] = "no judged traces"
            continue
        if unl_n <= 0:
            # the human labels are the measurement here: correcting the detector adds nothing
            entry["reason"] = (
                f"every judged trace is labelled: read the human fail rate, "
                f"{int((member & human).sum())}/{lab_n}"
            )
            continue
        entry["rate"] = corrected_rate(fails, n, tp, fn, tn, fp)
        thetas, dropped = bootstrap_theta(
            human, judge, unl_fail, unl_n, in_cohort=member, draws=draws, seed=seed + 1 + i
        )
        entry["dropped"] = dropped
        if len(thetas) < resamples / 2:
            entry["reason"] = (
                f"{dropped} of {resamples} resamples had no estimate (a class drew no label, or TPR + TNR <= 1): "
                "too few labels for an interval"
            )
            continue
        entry["ci_low"], entry["ci_high"] = percentile_interval(thetas)
    return out


def _rate_fields(tp: int, fn: int, tn: int, fp: int) -> dict[str, Any]:
    tpr_ci = wilson_interval(tp, tp + fn)
    tnr_ci = wilson_interval(tn, tn + fp)
    return {
        "tpr": tp / (tp + fn) if tp + fn else None,
        "tpr_ci": list(tpr_ci) if tpr_ci else None,
        "tnr": tn / (tn + fp) if tn + fp else None,
        "tnr_ci": list(tnr_ci) if tnr_ci else None,
    }
