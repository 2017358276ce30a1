"""The JSON report. Schema: docs/report-schema.md. Adding an optional field keeps SCHEMA_VERSION;
removing, renaming or changing the meaning of one bumps it (readers check it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine import ModeResult
from ..values import split_cohort
from ..verdict import step_of
from .safe import json_text, write_atomically

if TYPE_CHECKING:
    from ..baseline import BaselineComparison
    from ..regression import Comparison

__all__ = ["SCHEMA", "SCHEMA_VERSION", "build_report", "write_report", "write_atomically"]

SCHEMA = "pytest-failmodes/report"
SCHEMA_VERSION = 1


def build_report(
    results: Sequence[ModeResult], *, interrupted: bool = False, comparison: BaselineComparison | None = None
) -> dict[str, Any]:
    """``interrupted``: the run stopped early (a collection error, Ctrl-C), so
    ``modes`` may be incomplete and the report must not claim ``passed``.
    ``comparison``: the run compared with a baseline (figures per cohort row)."""
    from .. import __version__

    found = comparison.comparisons if comparison else {}
    modes = []
    regressed = False
    for r in results:
        breaches = [f"limit:{row.cohort}" for row in r.breached_rows]
        if r.error_breach:
            breaches.append("errors")
        if r.empty_breach:
            breaches.append("empty")
        cohorts = []
        # positions in this mode's "traces" list (skips are not in it)
        position: dict[int, int] = {}
        if r.members is not None:
            position = {i: p for p, i in enumerate(i for i, code in enumerate(r.codes) if code != "S")}
        for row in r.rows:
            entry = row.to_dict()
            if row.cohort != "all":
                # the label quotes awkward values; readers get them as data too
                entry["values"] = dict(split_cohort(row.cohort))
            if r.members is not None and row.cohort != "all" and row.cohort in r.members:
                entry["members"] = [position[i] for i in r.members[row.cohort]]
            c = found.get((r.key, row.cohort))
            if c is not None:
                entry["baseline"] = _baseline_figures(c)
                if c.regression:
                    breaches.append(f"regression:{row.cohort}")
            cohorts.append(entry)
        mode_regressed = any(b.startswith("regression:") for b in breaches)
        regressed = regressed or mode_regressed
        status = r.status if r.status in ("broken", "empty") else ("ok" if r.passed and not mode_regressed else "breached")
        modes.append(
            {
                "key": r.key,
                "name": r.name,
                "file": r.source,
                "line": r.line,
                "description": r.description,
                "detector": r.detector,
                "gate": r.gate.to_dict(),
                "status": status,
                "breaches": breaches,
                "broken": r.broken,
                "notes": r.notes,
                "fingerprint": r.fingerprint,
                "skipped": r.skipped,
                "cohorts": cohorts,
                "calibration": r.calibration,
                "traces": _traces(r),
                **({"trials": {k: v for k, v in r.trials.items() if k != "note"}} if r.trials else {}),
            }
        )
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "generator": f"pytest-failmodes {__version__}",
        "passed": not interrupted and not regressed and all(r.passed for r in results),
        "baseline": comparison.baseline if comparison else None,
        # the baseline's modes this run lacks: nothing checked them for regressions
        "baseline_missing": list(comparison.missing) if comparison else [],
        "modes": modes,
    }


def _traces(r: ModeResult) -> list[dict[str, Any]]:
    """Per-trace verdicts; with ``cluster_by`` / ``pair_by`` each names its cluster / pairing key."""
    out = [{"id": tid, "verdict": st, "reason": reason, "evidence": ev} for tid, st, reason, ev in r.verdicts()]
    for entry in out:
        # a verdict that names the step it failed at (Verdict.fail(step_id=...)) says so beside its evidence
        at = step_of(entry["evidence"]) if entry["verdict"] == "fail" else None
        if at is not None:
            entry["step_id"], entry["step_index"] = at
    if r.clusters is None and r.pairs is None:
        return out
    decided = [i for i, code in enumerate(r.codes) if code != "S"]
    for entry, i in zip(out, decided):
        if r.clusters is not None:
            entry["cluster"] = r.clusters[i]
        if r.pairs is not None:
            entry["pair"] = r.pairs[i]
    return out


def _baseline_figures(c: Comparison) -> dict[str, Any]:
    return {
        "base_fails": c.base_fails,
        "base_n": c.base_n,
        "base_rate": c.base_fails / c.base_n if c.base_n else None,
        "delta": c.delta,
        "paired": c.paired,
        "discordant": list(c.discordant) if c.discordant else None,
        "test": c.test,
        "p_value": c.p_value,
        "p_adjusted": c.p_adjusted,
        "regression": c.regression,
        "improvement": c.improvement,
    }


def write_report(
    path: Path,
    results: Sequence[ModeResult],
    *,
    interrupted: bool = False,
    comparison: BaselineComparison | None = None,
) -> None:
    """Write the JSON report to ``path``, atomically (any string in it survives: see report/safe.py)."""
    report = build_report(results, interrupted=interrupted, comparison=comparison)
    write_atomically(path, json_text(report) + "\n")
