"""Which inputs put a mode at risk (``failmodes predict``).

A small, interpretable classifier — L2 logistic regression on one-hot metadata
values, binned-free numeric fields (standardised) and simple input features
(length, words, digits, non-ASCII share) — predicts whether a trace fails the
mode. It is reported with its cross-validated ROC AUC (stratified folds, or
grouped folds when repeated trials of one task must not be split) and the
features that weigh most, so a team sees which inputs carry risk. An AUC
near 0.5 says the inputs do not predict the failure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import FailmodesError, did_you_mean
from .report_data import Outcomes, field_names

__all__ = ["Prediction", "input_features", "predict_failure", "prediction_lines"]


@dataclass
class Prediction:
    mode: str
    n: int
    fails: int
    features: list[str]
    folds: int
    grouped_by: str | None
    auc: float | None
    auc_folds: list[float]
    #: (feature, weight on the log-odds of failing per one-hot value or per standard deviation)
    top: list[tuple[str, float]]
    skipped_fields: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "n": self.n, "fails": self.fails, "features": self.features, "folds": self.folds,
            "grouped_by": self.grouped_by, "auc": self.auc, "auc_folds": self.auc_folds,
            "top": [{"feature": f, "weight": w} for f, w in self.top], "skipped_fields": self.skipped_fields,
            "warnings": self.warnings,
        }


def input_features(text: str | None) -> dict[str, float]:
    """Simple features of an input: its length in characters and words, digits, non-ASCII share."""
    t = text or ""
    return {
        "input.chars": float(len(t)),
        "input.words": float(len(t.split())),
        "input.has_digits": float(any(c.isdigit() for c in t)),
        "input.non_ascii": (sum(ord(c) > 127 for c in t) / len(t)) if t else 0.0,
    }


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def predict_failure(
    out: Outcomes,
    fields: Sequence[str] | None = None,
    *,
    inputs: Mapping[str, str | None] | None = None,
    groups: str | None = None,
    folds: int = 5,
    seed: int = 0,
    max_values: int = 20,
    top: int = 10,
) -> Prediction:
    """Cross-validated AUC and top weights of a logistic regression predicting ``out.fails``."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    known = field_names(out.metadata)
    names = list(fields) if fields is not None else [k for k in known if k != groups]
    for name in [*names, *([groups] if groups else [])]:
        if name not in known:
            raise FailmodesError(f"field {name!r} is in no trace{did_you_mean(name, known)}", key="--fields" if name != groups else "--groups")
    y = np.array(out.fails, dtype=int)
    res = Prediction(out.mode, len(y), int(y.sum()), [], folds, groups, None, [], [])
    columns: list[list[float]] = []
    for name in names:
        values = [m.get(name) for m in out.metadata]
        present = [v for v in values if v is not None]
        if any(isinstance(v, (list, dict)) for v in present):
            res.skipped_fields[name] = "holds lists or objects"
            continue
        if present and all(_is_number(v) for v in present):
            mean = float(np.mean(present))
            columns.append([float(v) if v is not None else mean for v in values])
            res.features.append(name)
            continue
        text = ["(missing)" if v is None else str(v) for v in values]
        distinct = sorted(set(text))
        if len(distinct) > max_values:
            res.skipped_fields[name] = f"{len(distinct)} distinct values (more than {max_values})"
            continue
        if len(distinct) < 2:
            res.skipped_fields[name] = "one value in every trace"
            continue
        for value in distinct:
            columns.append([float(t == value) for t in text])
            res.features.append(f"{name}={value}")
    if inputs is not None:
        feats = [input_features(inputs.get(t)) for t in out.ids]
        for key in feats[0] if feats else ():
            columns.append([f[key] for f in feats])
            res.features.append(key)
    if not columns:
        raise FailmodesError("no usable feature: give --fields with metadata fields, or --dataset for input features", key="--fields")
    x = np.array(columns, dtype=float).T
    if res.fails < folds or res.n - res.fails < folds:
        res.warnings.append(f"too few traces of one class ({res.fails} fail, {res.n - res.fails} pass) for {folds} folds: no AUC")
        return res
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced"))
    scores = np.zeros(len(y))
    if groups:
        g = np.array([str(m.get(groups)) for m in out.metadata])
        n_groups = len(set(g))
        if n_groups < folds:
            raise FailmodesError(f"--groups {groups!r} has {n_groups} groups, fewer than {folds} folds", key="--groups")
        splitter: Any = GroupKFold(n_splits=folds)
        splits = list(splitter.split(x, y, g))
    else:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = list(splitter.split(x, y))
    for train, test in splits:
        if len(set(y[train])) < 2:
            continue
        model.fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
        if len(set(y[test])) == 2:
            res.auc_folds.append(float(roc_auc_score(y[test], scores[test])))
    res.auc = float(roc_auc_score(y, scores))
    model.fit(x, y)
    coef = model[-1].coef_[0]
    order = sorted(range(len(coef)), key=lambda i: (-abs(coef[i]), res.features[i]))
    res.top = [(res.features[i], float(coef[i])) for i in order[:top]]
    if res.auc < 0.6:
        res.warnings.append(f"cross-validated AUC {res.auc:.2f}: these features barely predict the failure")
    return res


def prediction_lines(p: Prediction) -> list[str]:
    from tabulate import tabulate

    how = f"{p.folds}-fold cross-validation" + (f", grouped by {p.grouped_by}" if p.grouped_by else ", stratified")
    auc = "-" if p.auc is None else f"{p.auc:.3f}"
    spread = f" (folds {min(p.auc_folds):.2f}-{max(p.auc_folds):.2f})" if p.auc_folds else ""
    lines = [f"mode {p.mode}: {p.fails}/{p.n} fail; logistic regression on {len(p.features)} features; {how}: AUC {auc}{spread}"]
    for name, why in p.skipped_fields.items():
        lines.append(f"  skipped field {name}: {why}")
    lines.extend(f"  warning: {w}" for w in p.warnings)
    if p.top:
        lines.append("  features that weigh most (log-odds of failing, per value or per standard deviation):")
        table = [[f, f"{w:+.3f}", "more failures" if w > 0 else "fewer failures"] for f, w in p.top]
        lines.extend("  " + line for line in tabulate(table, headers=["feature", "weight", ""], disable_numparse=True).splitlines())
    return lines
