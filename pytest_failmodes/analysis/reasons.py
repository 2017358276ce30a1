"""Clusters of a detector's reasons within one mode (``failmodes reasons``).

Only the reason text is embedded (:mod:`.textcluster`: batch and deterministic,
unlike online clustering that drifts with arrival order). Cluster ids are kept
stable across runs: given the previous run's JSON, each new cluster takes the id
of the previous cluster whose members it shares most (Jaccard of trace ids, at
least ``min_jaccard``); the rest get new ids.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FailmodesError
from .report_data import ModeVerdicts

__all__ = ["ReasonCluster", "ReasonsResult", "cluster_reasons", "match_previous", "read_previous", "reason_lines"]


@dataclass
class ReasonCluster:
    id: int
    size: int
    share: float
    terms: tuple[str, ...]
    trace_ids: list[str]
    #: up to three (trace id, reason), the most central first
    examples: list[tuple[str, str]]
    #: cohort -> (members in it, decided traces in it, rate)
    cohorts: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    #: the previous run's cluster this one continues, and their Jaccard
    previous: tuple[int, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "size": self.size, "share": self.share, "terms": list(self.terms), "trace_ids": self.trace_ids,
            "examples": [{"trace_id": t, "reason": r} for t, r in self.examples],
            "cohorts": {k: {"members": v[0], "n": v[1], "rate": v[2]} for k, v in self.cohorts.items()},
            "previous": None if self.previous is None else {"id": self.previous[0], "jaccard": self.previous[1]},
        }


@dataclass
class ReasonsResult:
    mode: str
    verdict: str
    reasons: int
    clusters: list[ReasonCluster]
    detail: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "verdict": self.verdict, "reasons": self.reasons, "detail": self.detail,
                "clusters": [c.to_dict() for c in self.clusters], "warnings": self.warnings}


def read_previous(path: Path) -> dict[int, set[str]]:
    """Cluster id -> member trace ids, from a JSON written by ``failmodes reasons --json``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {int(c["id"]): set(c["trace_ids"]) for c in data["clusters"]}
    except FileNotFoundError:
        raise FailmodesError("no such file", file=path, key="--previous") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise FailmodesError(
            f"not a result of failmodes reasons --json ({type(exc).__name__}: {exc})", file=path, key="--previous"
        ) from None


def match_previous(new: Sequence[set[str]], previous: Mapping[int, set[str]], min_jaccard: float = 0.3) -> list[tuple[int, float | None]]:
    """An id per new cluster: the best-matching previous cluster's (greedy by Jaccard), else a fresh one."""
    scored = []
    for i, members in enumerate(new):
        for pid, old in previous.items():
            union = len(members | old)
            j = len(members & old) / union if union else 0.0
            if j >= min_jaccard:
                scored.append((-j, i, pid))
    out: list[tuple[int, float | None] | None] = [None] * len(new)
    used: set[int] = set()
    for neg, i, pid in sorted(scored):
        if out[i] is None and pid not in used:
            out[i] = (pid, -neg)
            used.add(pid)
    fresh = max(previous, default=-1) + 1
    final: list[tuple[int, float | None]] = []
    for slot in out:
        if slot is None:
            final.append((fresh, None))
            fresh += 1
        else:
            final.append(slot)
    return final


def cluster_reasons(
    mode: ModeVerdicts,
    *,
    verdict: str = "fail",
    previous: Mapping[int, set[str]] | None = None,
    k_max: int = 10,
    seed: int = 0,
) -> ReasonsResult:
    """Group the reasons of ``mode``'s traces with ``verdict``."""
    from .textcluster import cluster_texts

    picked = [(t, r) for t, v, r in zip(mode.ids, mode.verdicts, mode.reasons) if v == verdict]
    res = ReasonsResult(mode.name, verdict, len(picked), [])
    with_text = [(t, r) for t, r in picked if r.strip()]
    if len(with_text) < len(picked):
        res.warnings.append(f"{len(picked) - len(with_text)} {verdict} verdict(s) have no reason text; left out")
    if not with_text:
        res.warnings.append(f"no {verdict} verdict with a reason in mode {mode.name!r}")
        return res
    c = cluster_texts([r for _, r in with_text], k_max=k_max, seed=seed)
    res.detail = f"{len(with_text)} reasons in {c.k} clusters" + (f" (silhouette {c.silhouette:.3f})" if c.silhouette is not None else "")
    groups = [[i for i, lab in enumerate(c.labels) if lab == g] for g in range(c.k)]
    ids = match_previous([{with_text[i][0] for i in g} for g in groups], previous or {})
    position = {t: i for i, t in enumerate(mode.ids)}
    for g, members in enumerate(groups):
        tids = [with_text[i][0] for i in members]
        medoid = c.medoids[g]
        ordered = [medoid] + [i for i in members if i != medoid]
        cohorts: dict[str, tuple[int, int, float]] = {}
        for label, positions in sorted(mode.cohorts.items()):
            decided = [p for p in positions if mode.verdicts[p] in ("pass", "fail")]
            inside = sum(1 for t in tids if position[t] in set(decided))
            if decided:
                cohorts[label] = (inside, len(decided), inside / len(decided))
        cid, jac = ids[g]
        res.clusters.append(ReasonCluster(
            cid, len(members), len(members) / len(with_text), c.terms[g], sorted(tids),
            [with_text[i] for i in ordered[:3]], cohorts, None if jac is None else (cid, jac),
        ))
    res.clusters.sort(key=lambda x: (-x.size, x.id))
    return res


def reason_lines(res: ReasonsResult) -> list[str]:
    """The terminal view: one block per cluster."""
    from tabulate import tabulate

    out = [f"mode {res.mode}: {res.reasons} {res.verdict} reasons; {res.detail}"]
    out.extend(f"warning: {w}" for w in res.warnings)
    rows = [
        [c.id, c.size, f"{c.share:.0%}", ", ".join(c.terms[:4]), c.examples[0][1][:70] if c.examples else "",
         "new" if c.previous is None else f"was {c.previous[0]} (J={c.previous[1]:.2f})"]
        for c in res.clusters
    ]
    if rows:
        out.extend(tabulate(rows, headers=["id", "size", "share", "terms", "example", "previous run"], disable_numparse=True).splitlines())
    for c in res.clusters:
        if c.cohorts:
            out.append(f"cluster {c.id} per cohort: " + ", ".join(f"{k} {m}/{n} ({r:.0%})" for k, (m, n, r) in c.cohorts.items()))
    return out
