"""Agent traces step by step (``failmodes steps``): where failing traces first break.

For each failing trace, its first failing step comes from a reviewer's note
(``first_failing_step``), else from the first step whose status is ``error``.
The transition from the last successful step to that first failure is counted,
and every count is divided by its **exposure**: how many traces (passing or
failing) reached the state it starts from, with a Wilson interval, so a state
that every trace passes through is not blamed for being frequent. Spectrum-based
suspiciousness (Ochiai) ranks each step name by how much more it appears in
failing traces than in passing ones.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..stats import wilson_interval

__all__ = ["StepView", "trace_steps", "StepAnalysis", "analyse_steps", "ochiai", "step_lines", "START"]

#: the state before the first step
START = "(start)"


@dataclass(frozen=True)
class StepView:
    """What the analysis needs of a step: its id, state name and whether it failed."""

    id: str
    name: str
    failed: bool


def trace_steps(trace: Any) -> list[StepView]:
    """A trace's steps as states: :attr:`Trace.steps` (which a chat trace derives from its
    messages: an ``llm`` step per assistant turn, a ``tool`` step per call), less the LLM
    turns that only called tools; a tool step fails on an error status, or, where the
    format gives none, on a result that starts with ``Error``."""
    # an LLM turn that only called tools is not a state of its own: its calls are
    return [
        StepView(s.id, s.name or s.kind, _failed(s))
        for s in trace.steps
        if not (s.kind == "llm" and not str(s.output or "").strip())
    ]


def _failed(step: Any) -> bool:
    # a chat tool result that reads as an error already has status "error" (trace.py
    # derives it with the steps), so rules and this analysis agree on what failed
    return bool(step.status == "error")


def ochiai(ef: int, ep: int, nf: int) -> float:
    """Ochiai suspiciousness: ``ef / sqrt(nf * (ef + ep))`` (0 when undefined)."""
    denom = math.sqrt(nf * (ef + ep))
    return ef / denom if denom else 0.0


@dataclass
class Transition:
    """Last successful state -> first failing state, over the traces that reached the former."""

    src: str
    dst: str
    count: int
    exposure: int
    rate: float
    ci: tuple[float, float]


@dataclass
class StateFailure:
    """How often a state is where traces first fail, among the traces that reached it."""

    state: str
    first_failures: int
    reached: int
    rate: float
    ci: tuple[float, float]


@dataclass
class Suspicion:
    name: str
    ef: int
    ep: int
    score: float


@dataclass
class StepAnalysis:
    traces: int
    fails: int
    localised: int
    #: failing traces whose first failing step is not known (no note, no error step)
    unlocalised: list[str]
    #: trace id -> (step id, state) of its first failing step
    first_failing: dict[str, tuple[str, str]]
    states: list[str]
    transitions: list[Transition]
    state_failures: list[StateFailure]
    suspicion: list[Suspicion]
    warnings: list[str] = field(default_factory=list)

    def matrix(self) -> tuple[list[str], list[str], dict[tuple[str, str], Transition]]:
        """Rows (last success), columns (first failure) in state order, and the cells."""
        cells = {(t.src, t.dst): t for t in self.transitions}
        rows = [s for s in [START, *self.states] if any(t.src == s for t in self.transitions)]
        cols = [s for s in self.states if any(t.dst == s for t in self.transitions)]
        return rows, cols, cells

    def to_dict(self) -> dict[str, Any]:
        return {
            "traces": self.traces,
            "fails": self.fails,
            "localised": self.localised,
            "unlocalised": self.unlocalised,
            "first_failing": {k: {"step": v[0], "state": v[1]} for k, v in sorted(self.first_failing.items())},
            "states": self.states,
            "transitions": [t.__dict__ | {"ci": list(t.ci)} for t in self.transitions],
            "state_failures": [s.__dict__ | {"ci": list(s.ci)} for s in self.state_failures],
            "suspicion": [s.__dict__ for s in self.suspicion],
            "warnings": self.warnings,
        }


def analyse_steps(
    steps: Mapping[str, Sequence[StepView]],
    fails: Mapping[str, bool],
    noted: Mapping[str, str] | None = None,
    order: Sequence[str] | None = None,
) -> StepAnalysis:
    """The first failing step per failing trace, the exposure-normalised transition
    matrix and Ochiai scores.

    ``steps``: trace id -> its steps; ``fails``: trace id -> failed (traces not in it are
    left out); ``noted``: trace id -> a reviewer's first failing step (a step id, a
    state name, or a 1-based position); ``order``: pipeline order of the states.
    """
    noted = noted or {}
    ids = [t for t in fails if t in steps]
    warnings: list[str] = []
    missing = [t for t in fails if t not in steps]
    if missing:
        warnings.append(f"{len(missing)} trace(s) with an outcome are not in the dataset (e.g. {missing[0]!r}); left out")
    seen_order: dict[str, None] = {}
    for t in ids:
        for s in steps[t]:
            seen_order.setdefault(s.name, None)
    if order:
        unknown = [o for o in order if o not in seen_order]
        if unknown:
            from ..errors import FailmodesError, did_you_mean

            raise FailmodesError(f"state {unknown[0]!r} is no step of any trace{did_you_mean(unknown[0], seen_order)}", key="--order")
        states = list(order) + sorted(s for s in seen_order if s not in order)
    else:
        states = list(seen_order)
    first: dict[str, tuple[str, str, int]] = {}
    unlocalised: list[str] = []
    for t in ids:
        if not fails[t]:
            continue
        seq = steps[t]
        pos = None
        mark = noted.get(t)
        if mark is not None:
            pos = next((i for i, s in enumerate(seq) if s.id == mark), None)
            if pos is None:
                pos = next((i for i, s in enumerate(seq) if s.name == mark), None)
            if pos is None and mark.isdigit() and 1 <= int(mark) <= len(seq):
                pos = int(mark) - 1
            if pos is None:
                warnings.append(f"trace {t!r}: the noted first failing step {mark!r} is none of its steps")
        if pos is None:
            pos = next((i for i, s in enumerate(seq) if s.failed), None)
        if pos is None:
            unlocalised.append(t)
            continue
        first[t] = (seq[pos].id, seq[pos].name, pos)
    # exposure: traces that reached a state, i.e. completed a step in it before failing
    # (for a failing trace, only steps before its first failure count as reached)
    reached: Counter[str] = Counter()
    reached_fail_state: Counter[str] = Counter()
    for t in ids:
        seq = steps[t]
        cut = first[t][2] if t in first else len(seq)
        before = {s.name for s in seq[:cut]}
        reached.update(before | {START})
        reached_fail_state.update({s.name for s in seq[: cut + 1]} if t in first else {s.name for s in seq})
    pairs: Counter[tuple[str, str]] = Counter()
    at: Counter[str] = Counter()
    for t, (_, name, pos) in first.items():
        prior = steps[t][pos - 1].name if pos > 0 else START
        pairs[(prior, name)] += 1
        at[name] += 1
    rank = {s: i for i, s in enumerate([START, *states])}
    transitions = []
    for (src, dst), n in sorted(pairs.items(), key=lambda kv: (rank[kv[0][0]], rank[kv[0][1]])):
        exp = reached[src]
        ci = wilson_interval(n, exp) or (0.0, 1.0)
        transitions.append(Transition(src, dst, n, exp, n / exp, ci))
    state_failures = []
    for state in states:
        exp = reached_fail_state[state]
        if exp:
            ci = wilson_interval(at[state], exp) or (0.0, 1.0)
            state_failures.append(StateFailure(state, at[state], exp, at[state] / exp, ci))
    nf = sum(1 for t in ids if fails[t])
    ef: Counter[str] = Counter()
    ep: Counter[str] = Counter()
    for t in ids:
        names = {s.name for s in steps[t]}
        (ef if fails[t] else ep).update(names)
    suspicion = sorted(
        (Suspicion(s, ef[s], ep[s], ochiai(ef[s], ep[s], nf)) for s in states),
        key=lambda x: (-x.score, -x.ef, x.name),
    )
    if nf and len(unlocalised) == nf:
        warnings.append(
            "no failing trace has a known first failing step (no note's first_failing_step, no step with an error status): "
            "the matrix is empty; note first_failing_step in failmodes review"
        )
    return StepAnalysis(
        len(ids), nf, len(first), unlocalised, {t: (v[0], v[1]) for t, v in first.items()}, states, transitions,
        state_failures, suspicion, warnings,
    )


def step_lines(a: StepAnalysis, top: int = 12) -> list[str]:
    """The terminal view: the matrix (count/exposure and rate), per-state rates, Ochiai."""
    from tabulate import tabulate

    lines = [
        f"{a.traces} traces, {a.fails} failing; first failing step known for {a.localised} "
        f"({len(a.unlocalised)} not localised)"
    ]
    lines.extend(f"warning: {w}" for w in a.warnings)
    rows, cols, cells = a.matrix()
    if cells:
        lines.append("")
        lines.append("last success -> first failure: failures / traces that reached the row's state (rate)")
        table = []
        for r in rows:
            line = [r]
            for c in cols:
                t = cells.get((r, c))
                line.append(f"{t.count}/{t.exposure} ({t.rate:.0%})" if t else "")
            table.append(line)
        lines.extend(tabulate(table, headers=["last success \\ first failure", *cols], disable_numparse=True).splitlines())
    if a.state_failures:
        lines.append("")
        lines.append("first failures at each state, over the traces that reached it (95% Wilson):")
        shown = sorted(a.state_failures, key=lambda s: (-s.rate, s.state))
        table2 = [[s.state, s.first_failures, s.reached, f"{s.rate:.1%}", f"[{s.ci[0]:.1%}, {s.ci[1]:.1%}]"] for s in shown if s.first_failures][:top]
        lines.extend(tabulate(table2, headers=["state", "first fails", "reached", "rate", "95% CI"], disable_numparse=True).splitlines())
    if a.suspicion:
        lines.append("")
        lines.append("suspiciousness (Ochiai: in failing traces / sqrt(failing * containing)):")
        table3 = [[s.name, s.ef, s.ep, f"{s.score:.3f}"] for s in a.suspicion[:top]]
        lines.extend(tabulate(table3, headers=["step", "in failing", "in passing", "ochiai"], disable_numparse=True).splitlines())
    return lines
