"""Which failure modes travel together (``failmodes cooccur``).

For every two modes of a report, over the traces decided (pass or fail) in
both: how many traces fail both, the Jaccard index of their fail sets, the
lift (how much more often they fail together than if independent), and a
one-sided Fisher exact p-value of a positive association, Benjamini–Hochberg
corrected over all pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .report_data import ModeVerdicts

__all__ = ["Pair", "CooccurResult", "cooccur", "cooccur_lines"]


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    #: traces decided in both modes
    n: int
    both: int
    a_only: int
    b_only: int
    jaccard: float
    lift: float | None
    p_value: float
    q_value: float = 1.0
    significant: bool = False


@dataclass
class CooccurResult:
    modes: list[str]
    fails: dict[str, int]
    pairs: list[Pair]
    q: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"modes": self.modes, "fails": self.fails, "q": self.q, "pairs": [asdict(p) for p in self.pairs], "warnings": self.warnings}


def cooccur(modes: Sequence[ModeVerdicts], q: float = 0.1) -> CooccurResult:
    """Counts, Jaccard, lift and BH-corrected Fisher p for every two modes."""
    from scipy.stats import hypergeom

    decided = {m.name: {t: v == "fail" for t, v in zip(m.ids, m.verdicts) if v in ("pass", "fail")} for m in modes}
    names = [m.name for m in modes]
    res = CooccurResult(names, {n: sum(decided[n].values()) for n in names}, [], q)
    if len(names) < 2:
        res.warnings.append("fewer than two modes: nothing co-occurs")
        return res
    raw: list[Pair] = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = [t for t in decided[a] if t in decided[b]]
            n = len(common)
            both = sum(decided[a][t] and decided[b][t] for t in common)
            fa = sum(decided[a][t] for t in common)
            fb = sum(decided[b][t] for t in common)
            union = fa + fb - both
            lift = (both * n) / (fa * fb) if fa and fb else None
            p = float(hypergeom.sf(both - 1, n, fa, fb)) if n else 1.0
            raw.append(Pair(a, b, n, both, fa - both, fb - both, both / union if union else 0.0, lift, min(1.0, max(0.0, p))))
            if n == 0:
                res.warnings.append(f"{a} and {b} share no decided trace")
    from ..regression import adjust

    qs = adjust([p.p_value for p in raw], "bh")
    res.pairs = sorted(
        (Pair(**{**asdict(p), "q_value": float(qv), "significant": float(qv) <= q}) for p, qv in zip(raw, qs)),  # type: ignore[arg-type]
        key=lambda p: (p.q_value, -p.jaccard, p.a, p.b),
    )
    return res


def cooccur_lines(res: CooccurResult) -> list[str]:
    """The terminal table: pairs by corrected p."""
    from tabulate import tabulate

    out = [f"{len(res.modes)} modes, {len(res.pairs)} pairs tested; one-sided Fisher, BH q = {res.q:g}"]
    out.extend(f"warning: {w}" for w in res.warnings)
    rows = [
        [p.a, p.b, p.n, p.both, p.a_only, p.b_only, f"{p.jaccard:.2f}", "-" if p.lift is None else f"{p.lift:.2f}",
         f"{p.p_value:.2g}", f"{p.q_value:.2g}", "yes" if p.significant else ""]
        for p in res.pairs
    ]
    if rows:
        out.extend(tabulate(rows, headers=["mode A", "mode B", "n", "both", "A only", "B only", "jaccard", "lift", "p", "q", "together"], disable_numparse=True).splitlines())
    return out
