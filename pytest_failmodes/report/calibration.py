"""The judge report: each labelled mode's detector against the human labels."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..engine import ModeResult
from .terminal import pct

__all__ = ["calibration_lines", "interval"]


def interval(ci: Sequence[float] | None) -> str:
    return f"[{pct(ci[0])}, {pct(ci[1])}]" if ci else "-"


def _row(name: str, cohort: str, c: Mapping[str, Any]) -> list[str]:
    m = c["confusion"]
    return [
        name, cohort, str(m["tp"] + m["fn"] + m["tn"] + m["fp"]), f"{m['tp'] + m['fn']}/{m['tn'] + m['fp']}",
        str(m["tp"]), str(m["fn"]), str(m["fp"]), str(m["tn"]),
        pct(c["tpr"]), interval(c["tpr_ci"]), pct(c["tnr"]), interval(c["tnr_ci"]),
    ]


def calibration_lines(results: Sequence[ModeResult], max_examples: int) -> Iterator[str]:
    """Confusion counts, TPR and TNR per mode (and cohort), then warnings and disagreements."""
    from tabulate import tabulate

    calibrated = [r for r in results if r.calibration is not None]
    if not calibrated:
        return
    rows = []
    for r in calibrated:
        c = r.calibration
        assert c is not None
        rows.append(_row(r.name, "all", c))
        rows.extend(_row(r.name, k["cohort"], k) for k in c["cohorts"])
    header = ["mode", "cohort", "labels", "human F/P", "TP", "FN", "FP", "TN", "TPR", "95% CI", "TNR", "95% CI"]
    align = ["left", "left"] + ["right"] * 6 + ["right", "left", "right", "left"]
    yield "judge calibration: detector verdicts against human labels (TPR: human FAILs it calls FAIL; TNR: human PASSes it calls PASS)"
    yield from tabulate(rows, headers=header, tablefmt="simple", disable_numparse=True, colalign=align).splitlines()
    for r in calibrated:
        c = r.calibration
        assert c is not None
        what = f"{r.name}: {r.detector} against {c['labelled']} labels from {c['source']}"
        if c["excluded"]:
            what += " (not measured: " + ", ".join(f"{n} {_role(k)}" for k, n in sorted(c["excluded"].items(), key=_role_order)) + ")"
        yield what
        for w in c["warnings"]:
            yield f"  warning: {w}"
        if c["calibrate_only"]:
            yield "  only the labelled traces were judged (--failmodes-calibrate): no fail rate, no gate"
        elif c["correctable"]:
            entry = c["corrected"].get("all")
            if entry and entry["rate"] is not None:
                yield (
                    f"  corrected fail rate (all): {pct(entry['rate'])} {interval(_ci(entry))} "
                    f"(observed {pct(_observed(r))}; bootstrap, {c['resamples']} resamples of labelled and unlabelled traces)"
                )
            elif entry:
                yield f"  corrected fail rate (all): none: {entry['reason']}"
        dis = c["disagreements"]
        if dis and max_examples:
            shown = dis[:max_examples]
            more = f" (first {len(shown)} of {len(dis)})" if len(dis) > len(shown) else ""
            yield f"  disagreements{more}:"
            for d in shown:
                note = f" [note: {d['note']}]" if d["note"] else ""
                yield f"    {d['id']}: human {d['human']}, detector {d['judge']}: {d['reason'] or '(no reason)'}{note}"


def _ci(entry: Mapping[str, Any]) -> tuple[float, float] | None:
    return (entry["ci_low"], entry["ci_high"]) if entry.get("ci_low") is not None else None


def _observed(r: ModeResult) -> float | None:
    return r.rows[0].rate if r.rows else None


def _role_order(item: tuple[str, int]) -> int:
    order = ["example", "train", "dev", "test", "not judged"]
    return order.index(item[0]) if item[0] in order else len(order)


def _role(role: str) -> str:
    return {"example": "few-shot examples", "not judged": "without a verdict"}.get(role, f"in the {role} split")
