"""Agreement between reviewers on pass/fail (Cohen's kappa), reported by ``failmodes axial``.

Modes drawn from notes are only as good as the verdicts behind them: when two
reviewers noted the same traces, their kappa says how far the verdicts agree
beyond chance (1 is perfect, 0 is chance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from .notes import Note, cohen_kappa

__all__ = ["Agreement", "cohen_kappa", "reviewer_agreement"]


@dataclass(frozen=True)
class Agreement:
    a: str
    b: str
    #: traces both reviewers decided (pass or fail)
    n: int
    agree: int
    kappa: float | None


def reviewer_agreement(notes: Sequence[Note]) -> list[Agreement]:
    """Per pair of reviewers, over the traces both decided: agreement and kappa."""
    by: dict[str, dict[str, str]] = {}
    for n in notes:
        if n.verdict in ("pass", "fail"):
            by.setdefault(n.reviewer, {})[n.trace_id] = n.verdict
    out = []
    for a, b in combinations(sorted(by), 2):
        common = sorted(set(by[a]) & set(by[b]))
        if not common:
            continue
        x = [by[a][t] for t in common]
        y = [by[b][t] for t in common]
        out.append(Agreement(a, b, len(common), sum(p == q for p, q in zip(x, y)), cohen_kappa(x, y)))
    return out
