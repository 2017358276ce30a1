"""Which failure modes travel together (``failmodes cooccur``).

For every two modes of a report, over the traces decided (pass or fail) in
both: how many traces fail both, the Jaccard index of their fail sets, the
lift (how much more often they fail together than if independent), and a
one-sided Fisher exact p-value of a positive association, Benjamini–Hochberg
corrected over all pairs.

Where both modes' fails name the step they failed at (the report's
``step_index``: step rules, a regex's last LLM step), the traces failing both
say which came first: A's step before B's, after it, or the same step. A
two-sided sign test (binomial, ties left out) asks whether one tends to come
first, Benjamini–Hochberg corrected over the pairs that have an order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
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
    #: traces failing both whose fails both name a step: A's step first, B's first, the same step
    a_first: int = 0
    b_first: int = 0
    same_step: int = 0
    #: the two-sided sign test of a_first against b_first (None: no trace with an order)
    order_p: float | None = None
    order_q: float | None = None
    #: the mode that tends to come first, when order_q <= q
    first: str | None = None

    @property
    def ordered(self) -> int:
        return self.a_first + self.b_first + self.same_step


@dataclass
class CooccurResult:
    modes: list[str]
    fails: dict[str, int]
    pairs: list[Pair]
    q: float
    warnings: list[str] = field(default_factory=list)
    #: the modes whose fails name the step they failed at
    with_steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "modes": self.modes, "fails": self.fails, "q": self.q, "pairs": [asdict(p) for p in self.pairs],
            "warnings": self.warnings, "with_steps": self.with_steps,
        }

    def order_rows(self) -> list[Pair]:
        """Pairs with an order (both failed in a trace, at known steps), by corrected p."""
        return sorted((p for p in self.pairs if p.ordered), key=lambda p: (p.order_q if p.order_q is not None else 2.0, p.a, p.b))


def cooccur(modes: Sequence[ModeVerdicts], q: float = 0.1) -> CooccurResult:
    """Counts, Jaccard, lift and BH-corrected Fisher p for every two modes."""
    from scipy.stats import binomtest, hypergeom

    decided = {m.name: {t: v == "fail" for t, v in zip(m.ids, m.verdicts) if v in ("pass", "fail")} for m in modes}
    # where each mode's fail happened: its step's position in the trace
    place = {m.name: _fail_steps(m) for m in modes}
    names = [m.name for m in modes]
    res = CooccurResult(names, {n: sum(decided[n].values()) for n in names}, [], q)
    res.with_steps = [n for n in names if place[n]]
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
            before = after = same = 0
            for t in common:
                ia, ib = place[a].get(t), place[b].get(t)
                if ia is None or ib is None or not (decided[a][t] and decided[b][t]):
                    continue
                before, after, same = before + (ia < ib), after + (ia > ib), same + (ia == ib)
            order_p = float(binomtest(before, before + after, 0.5).pvalue) if before + after else None
            raw.append(Pair(
                a, b, n, both, fa - both, fb - both, both / union if union else 0.0, lift, min(1.0, max(0.0, p)),
                a_first=before, b_first=after, same_step=same, order_p=order_p,
            ))
            if n == 0:
                res.warnings.append(f"{a} and {b} share no decided trace")
    from ..regression import adjust

    qs = adjust([p.p_value for p in raw], "bh")
    ordered = [i for i, p in enumerate(raw) if p.order_p is not None]
    order_q = dict(zip(ordered, adjust([raw[i].order_p for i in ordered], "bh"))) if ordered else {}  # type: ignore[misc]
    pairs = []
    for i, (p, qv) in enumerate(zip(raw, qs)):
        oq = float(order_q[i]) if i in order_q else None
        first = None
        if oq is not None and oq <= q and p.a_first != p.b_first:
            first = p.a if p.a_first > p.b_first else p.b
        pairs.append(replace(p, q_value=float(qv), significant=float(qv) <= q, order_q=oq, first=first))
    res.pairs = sorted(pairs, key=lambda p: (p.q_value, -p.jaccard, p.a, p.b))
    return res


def _fail_steps(mode: ModeVerdicts) -> dict[str, int]:
    """Trace id -> the ``step_index`` its fail names (fails that name no index are left out)."""
    out = {}
    for i, (tid, verdict) in enumerate(zip(mode.ids, mode.verdicts)):
        ref = mode.step_at(i)
        if verdict == "fail" and ref is not None and ref[1] is not None:
            out[tid] = ref[1]
    return out


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
    order = res.order_rows()
    if len(res.modes) > 1 and len(res.with_steps) < 2:
        out.append(
            f"which comes first: not known ({_fewer(res.with_steps)}; rules over steps and regexes over the output "
            "name the step they failed at, judges and labels do not)"
        )
    elif res.pairs and not order:
        out.append("which comes first: no trace fails two modes that name their steps")
    if order:
        out.append("")
        out.append("which comes first, in the traces failing both at known steps (two-sided sign test, ties left out, BH):")
        out.extend(tabulate(
            [[p.a, p.b, p.ordered, p.a_first, p.b_first, p.same_step, _num(p.order_p), _num(p.order_q), p.first or ""] for p in order],
            headers=["mode A", "mode B", "traces", "A first", "B first", "same step", "p", "q", "first"],
            disable_numparse=True,
        ).splitlines())
    return out


def _fewer(names: list[str]) -> str:
    if not names:
        return "no mode's fails name the step they failed at"
    return f"only {names[0]}'s fails name the step they failed at"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2g}"
