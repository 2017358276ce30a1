"""Agent traces step by step (``failmodes steps``): where failing traces first break.

For each failing trace, its first failing step comes from a reviewer's note
(``first_failing_step``), else from the earliest of its first step whose status
is ``error`` and the steps its failing modes name (a report's ``step_id`` /
``step_index``: a step rule's match, a regex's last LLM step).
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

__all__ = ["StepView", "trace_steps", "StepAnalysis", "analyse_steps", "ochiai", "step_lines", "START", "message_step"]

#: the state before the first step
START = "(start)"


@dataclass(frozen=True)
class StepView:
    """What the analysis needs of a step: its id, state name and whether it failed."""

    id: str
    name: str
    failed: bool
    #: position in the trace's steps (what a verdict's ``step_index`` counts); -1 when unknown
    index: int = -1


def trace_steps(trace: Any) -> list[StepView]:
    """A trace's steps as states: :attr:`Trace.steps` (which a chat trace derives from its
    messages: an ``llm`` step per assistant turn, a ``tool`` step per call), less the LLM
    turns that only called tools; a tool step fails on an error status, or, where the
    format gives none, on a result that starts with ``Error``."""
    # an LLM turn that only called tools is not a state of its own: its calls are
    return [
        StepView(s.id, s.name or s.kind, _failed(s), i)
        for i, s in enumerate(trace.steps)
        if not (s.kind == "llm" and not str(s.output or "").strip())
    ]


def message_step(trace: Any, mark: str) -> str:
    """A reviewer's mark on a chat trace, ``message:N`` (the review page marks messages),
    as the id of the first step at or after message N; other marks are returned as given."""
    head, _, tail = mark.partition(":")
    if head != "message" or not tail.isdigit():
        return mark
    for k in range(int(tail), len(trace.messages)):
        m = trace.messages[k]
        if m.role == "assistant":
            if str(m.text or "").strip():
                return f"msg{k}"
            if m.tool_calls:
                return m.tool_calls[0].id or f"msg{k}.0"
        elif m.role == "tool" and m.tool_call_id:
            return str(m.tool_call_id)
    return mark


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
    #: trace id -> what told its first failing step: ``note``, ``error status`` or ``mode NAME``
    sources: dict[str, str] = field(default_factory=dict)

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
            "first_failing": {
                k: {"step": v[0], "state": v[1], "source": self.sources.get(k, "")} for k, v in sorted(self.first_failing.items())
            },
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
    marked: Mapping[str, Sequence[tuple[str, tuple[str | None, int | None]]]] | None = None,
) -> StepAnalysis:
    """The first failing step per failing trace, the exposure-normalised transition
    matrix and Ochiai scores.

    ``steps``: trace id -> its steps; ``fails``: trace id -> failed (traces not in it are
    left out); ``noted``: trace id -> a reviewer's first failing step (a step id, a
    state name, or a 1-based position); ``order``: pipeline order of the states;
    ``marked``: trace id -> ``(mode, (step_id, step_index))`` for each failing mode that
    names the step it failed at. A note wins; else the earliest of the first step with
    an error status and the marked steps.
    """
    noted = noted or {}
    marked = marked or {}
    ids = [t for t in fails if t in steps]
    warnings: list[str] = []
    missing = [t for t in fails if t not in steps]
    if missing:
        warnings.append(f"{len(missing)} trace(s) with an outcome are not in the dataset (e.g. {missing[0]!r}); left out")
    seen_order = dict.fromkeys(state_names(steps, ids))
    if order:
        unknown = [o for o in order if o not in seen_order]
        if unknown:
            from ..errors import FailmodesError, did_you_mean

            raise FailmodesError(f"state {unknown[0]!r} is no step of any trace{did_you_mean(unknown[0], seen_order)}", key="--order")
        states = list(order) + sorted(s for s in seen_order if s not in order)
    else:
        states = list(seen_order)
    first: dict[str, tuple[str, str, int]] = {}
    sources: dict[str, str] = {}
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
        source = "note"
        if pos is None:
            candidates: list[tuple[int, str]] = []
            err = next((i for i, s in enumerate(seq) if s.failed), None)
            if err is not None:
                candidates.append((err, "error status"))
            for mode, ref in marked.get(t, ()):
                at = _find_step(seq, ref)
                if at is None:
                    warnings.append(f"trace {t!r}: mode {mode!r} names step {ref[0] or ref[1]!r}, which is none of its steps")
                else:
                    candidates.append((at, f"mode {mode}"))
            if candidates:
                pos, source = min(candidates)
        if pos is None:
            unlocalised.append(t)
            continue
        first[t] = (seq[pos].id, seq[pos].name, pos)
        sources[t] = source
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
            "no failing trace has a known first failing step (no note's first_failing_step, no step with an error status, "
            "no mode that names a step): the matrix is empty; note first_failing_step in failmodes review"
        )
    return StepAnalysis(
        len(ids), nf, len(first), unlocalised, {t: (v[0], v[1]) for t, v in first.items()}, states, transitions,
        state_failures, suspicion, warnings, sources,
    )


def state_names(steps: Mapping[str, Sequence[StepView]], ids: Sequence[str] | None = None) -> list[str]:
    """Every state (step name) of these traces, in first-seen order."""
    seen: dict[str, None] = {}
    for t in steps if ids is None else ids:
        for s in steps[t]:
            seen.setdefault(s.name, None)
    return list(seen)


def _find_step(seq: Sequence[StepView], ref: tuple[str | None, int | None]) -> int | None:
    """Where a verdict's ``(step_id, step_index)`` is among a trace's states: by id, else by
    index; a step that is no state of its own (an LLM turn that only called tools) is
    where the next state is."""
    sid, index = ref
    if sid is not None:
        pos = next((i for i, s in enumerate(seq) if s.id == sid), None)
        if pos is not None:
            return pos
    if index is not None and seq and seq[-1].index >= index:
        return next(i for i, s in enumerate(seq) if s.index >= index)
    return None


def step_lines(a: StepAnalysis, top: int = 12) -> list[str]:
    """The terminal view: the matrix (count/exposure and rate), per-state rates, Ochiai."""
    from tabulate import tabulate

    lines = [
        f"{a.traces} traces, {a.fails} failing; first failing step known for {a.localised} "
        f"({len(a.unlocalised)} not localised)"
    ]
    if a.sources:
        told = Counter("mode" if v.startswith("mode ") else v for v in a.sources.values())
        parts = [f"{told[k]} by {what}" for k, what in (("note", "a note"), ("error status", "an error status"), ("mode", "a mode's step")) if told[k]]
        lines.append("first failing step told " + ", ".join(parts))
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
