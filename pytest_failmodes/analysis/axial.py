"""Axial coding: fail notes grouped into draft binary failure modes (``failmodes axial``).

Offline (the default): notes with tags group by tag; the rest are clustered
(:mod:`.textcluster`). Each group becomes a draft mode with a name, a one-line
"FAIL when ..." definition, its member notes and traces, counts per cohort, and
a suggested detector: a rule where the members' traces share a checkable
pattern (a tool never called, a tool always called, a phrase in every output)
that the traces noted pass do not, else a judge with examples from the notes.
The output is a draft a person edits: a YAML file ``pytest --failmodes`` can
run as written (judge modes skip until a model is set).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .notes import Note

__all__ = ["DraftMode", "AxialResult", "axial_offline", "suggest_detector", "draft_yaml", "axial_lines"]

#: a mode matching more notes than this share is too generic to gate on; fewer, too rare
GENERIC_SHARE = 0.75
RARE_SHARE = 0.05


@dataclass
class DraftMode:
    """One proposed failure mode."""

    name: str
    definition: str
    notes: list[Note]
    #: where it came from: ``tag:<tag>``, ``cluster`` or ``model``
    source: str
    terms: tuple[str, ...] = ()
    share: float = 0.0
    cohorts: dict[str, int] = field(default_factory=dict)
    #: the suggested ``rule:`` or ``judge:`` entry
    detector: dict[str, Any] = field(default_factory=dict)
    #: how well the suggested rule separates the notes (empty for a judge)
    detector_fit: str = ""
    flags: list[str] = field(default_factory=list)

    @property
    def trace_ids(self) -> list[str]:
        return sorted({n.trace_id for n in self.notes})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "definition": self.definition,
            "source": self.source,
            "terms": list(self.terms),
            "share": self.share,
            "trace_ids": self.trace_ids,
            "notes": [{"trace_id": n.trace_id, "reviewer": n.reviewer, "note": n.note, "tags": list(n.tags)} for n in self.notes],
            "cohorts": self.cohorts,
            "detector": self.detector,
            "detector_fit": self.detector_fit,
            "flags": self.flags,
        }


@dataclass
class AxialResult:
    """The draft taxonomy: modes, the fail notes no mode covers, and how it was made."""

    modes: list[DraftMode]
    uncovered: list[Note]
    engine: str
    fail_notes: int
    detail: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "detail": self.detail,
            "fail_notes": self.fail_notes,
            "modes": [m.to_dict() for m in self.modes],
            "uncovered": [{"trace_id": n.trace_id, "reviewer": n.reviewer, "note": n.note} for n in self.uncovered],
            "warnings": self.warnings,
        }


_WORD = re.compile(r"[a-z][a-z0-9_]*")


def snake_name(words: Sequence[str], taken: set[str], fallback: str = "mode") -> str:
    """A snake_case mode name from characteristic words, unique among ``taken``."""
    parts: list[str] = []
    for w in words:
        for token in _WORD.findall(w.lower()):
            if token not in parts:
                parts.append(token)
    base = "_".join(parts[:3])[:48].strip("_") or fallback
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def definition_from(note: str) -> str:
    """``FAIL when <the group's most central note>.`` — a draft sentence for the user to sharpen."""
    text = " ".join(note.split())
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(".!? ")
    if not first:
        return "FAIL when <describe the failure>."
    if not first[:2].isupper():
        first = first[0].lower() + first[1:]
    # the note's own words: the user turns them into a condition, the tool does not guess one
    return f"FAIL when: {first}."


def axial_offline(notes: Sequence[Note], *, k_max: int = 12, seed: int = 0, min_size: int = 2) -> AxialResult:
    """Group the fail notes: by tag first, then the untagged ones by text."""
    from .textcluster import cluster_texts

    fails = [n for n in notes if n.verdict == "fail"]
    result = AxialResult([], [], "offline", len(fails))
    if not fails:
        result.warnings.append("no note has verdict 'fail': nothing to group")
        return result
    taken: set[str] = set()
    by_tag: dict[str, list[Note]] = {}
    for n in fails:
        for t in n.tags:
            by_tag.setdefault(t, []).append(n)
    for tag in sorted(by_tag, key=lambda t: (-len(by_tag[t]), t)):
        members = by_tag[tag]
        result.modes.append(DraftMode(snake_name([tag], taken), definition_from(_central(members)), members, f"tag:{tag}"))
    untagged = [n for n in fails if not n.tags]
    texts = [n.note for n in untagged if n.note.strip()]
    empty = [n for n in untagged if not n.note.strip()]
    result.uncovered.extend(empty)
    with_text = [n for n in untagged if n.note.strip()]
    if len(with_text) >= 2:
        c = cluster_texts(texts, k_max=k_max, seed=seed)
        result.detail = f"{len(with_text)} untagged notes in {c.k} groups" + (
            f" (silhouette {c.silhouette:.3f}, best in 2..{min(k_max, len(with_text) - 1)})" if c.silhouette is not None else ""
        )
        for g in range(c.k):
            members = [with_text[i] for i, lab in enumerate(c.labels) if lab == g]
            if len(members) < min_size:
                result.uncovered.extend(members)
                continue
            medoid = with_text[c.medoids[g]].note
            result.modes.append(DraftMode(snake_name(c.terms[g] or ("mode",), taken), definition_from(medoid), members, "cluster", c.terms[g]))
    else:
        result.uncovered.extend(with_text)
    _shares(result)
    return result


def _central(members: Sequence[Note]) -> str:
    """The note of a tag group whose words are most shared with the others (first on ties)."""
    bags = [set(_WORD.findall(n.note.lower())) for n in members]
    best, score = members[0].note, -1
    for n, bag in zip(members, bags):
        s = sum(len(bag & other) for other in bags)
        if n.note.strip() and s > score:
            best, score = n.note, s
    return best


def flag_same_detector(result: AxialResult) -> None:
    """Modes whose suggested rules are the same likely describe one failure: say so."""
    first: dict[str, str] = {}
    for m in result.modes:
        if "rule" not in m.detector:
            continue
        key = json.dumps(m.detector, sort_keys=True)
        if key in first:
            m.flags.append(f"same suggested rule as {first[key]}: probably one mode; merge them")
        else:
            first[key] = m.name


def _shares(result: AxialResult) -> None:
    total = len({n.trace_id for m in result.modes for n in m.notes} | {n.trace_id for n in result.uncovered}) or 1
    for m in result.modes:
        m.share = len(m.trace_ids) / total
        if m.share >= GENERIC_SHARE:
            m.flags.append(f"too generic: matches {m.share:.0%} of fail notes (>= {GENERIC_SHARE:.0%})")
        elif m.share < RARE_SHARE:
            m.flags.append(f"rare: matches {m.share:.0%} of fail notes (< {RARE_SHARE:.0%})")


# --------------------------------------------------------------------------- detectors


def _tools(trace: Any) -> set[str]:
    return {c.name for c in trace.tool_calls}


def _phrases(text: str, longest: int = 3) -> set[str]:
    words = _WORD.findall(text.lower())
    out = set()
    for size in range(1, longest + 1):
        for i in range(len(words) - size + 1):
            out.add(" ".join(words[i : i + size]))
    return out


def suggest_detector(
    members: Sequence[Any], others: Sequence[Any], *, max_false: float = 0.1, alpha: float = 0.05
) -> tuple[dict[str, Any], str] | None:
    """A rule that fails on every member trace and on at most ``max_false`` of ``others``.

    Candidates: a tool no member called, a tool every member called, a phrase (1-3
    words) in every member's output. With a few traces some phrase always fits by
    chance, so a candidate is kept only when its fit is unlikely by chance across all
    the candidates tried: one-sided Fisher p times the number of candidates (Bonferroni)
    at most ``alpha``. The one with the fewest false fails wins (a tool before a phrase
    on ties). ``None`` when no candidate is good enough.
    """
    if not members or not others:
        return None
    from scipy.stats import hypergeom

    m, k = len(members), len(others)
    fits: list[tuple[int, int, str, dict[str, Any]]] = []

    member_tools = [_tools(t) for t in members]
    other_tools = [_tools(t) for t in others]
    every = set.intersection(*member_tools)
    anywhere = set.union(*member_tools)
    for tool in sorted(set.union(set(), *other_tools) - anywhere):
        fits.append((sum(tool not in o for o in other_tools), 0, tool, {"tool_called": {"name": tool, "present": False}}))
    for tool in sorted(every):
        fits.append((sum(tool in o for o in other_tools), 1, tool, {"tool_called": tool}))
    member_phrases = [_phrases(t.output or "") for t in members]
    shared = set.intersection(*member_phrases) if member_phrases else set()
    if shared:
        other_text = [(o.output or "").lower() for o in others]
        member_text = [(t.output or "").lower() for t in members]
        for phrase in sorted(shared, key=lambda p: (len(p.split()), -len(p), p))[:300]:
            pattern = r"\b" + r"\W+".join(re.escape(w) for w in phrase.split()) + r"\b"
            rx = re.compile(pattern)
            # the rule that runs is the regex, not the word bag: it must fail on every member itself
            if all(rx.search(t) for t in member_text):
                fits.append((sum(bool(rx.search(t)) for t in other_text), 2, phrase, {"regex": "(?i)" + pattern, "field": "output"}))
    tried = len(fits)
    good = []
    for false, order, key, rule in fits:
        if false > max_false * k:
            continue
        p = float(hypergeom.sf(m - 1, m + k, m + false, m))
        if p * tried <= alpha:
            good.append((false, order, len(key.split()), -len(key), key, rule, p))
    if not good:
        return None
    false, _, _, _, _, rule, p = min(good, key=lambda f: f[:5])
    fit = (
        f"the rule fails on {m}/{m} member traces and on {false}/{k} traces noted pass "
        f"(Fisher p = {p:.2g}, {tried} candidates tried)"
    )
    return rule, fit


def attach_detectors(
    result: AxialResult,
    traces: Mapping[str, Any] | None,
    notes: Sequence[Note],
    cohort_fields: Sequence[str] = (),
) -> None:
    """Per mode: cohort counts, then a rule where one separates the members, else a judge."""
    pass_ids = sorted({n.trace_id for n in notes if n.verdict == "pass"} - {n.trace_id for n in notes if n.verdict == "fail"})
    missing = set()
    if traces is not None:
        missing = ({n.trace_id for n in notes} - set(traces))
        if missing:
            result.warnings.append(
                f"{len(missing)} noted trace(s) are not in the dataset (e.g. {sorted(missing)[0]!r}); they give no rule evidence"
            )
    for m in result.modes:
        if traces is not None and cohort_fields:
            counts: Counter[str] = Counter()
            for tid in m.trace_ids:
                t = traces.get(tid)
                if t is None:
                    continue
                for f in cohort_fields:
                    v = t.metadata.get(f)
                    counts[f"{f}={'(missing)' if v is None else v}"] += 1
            m.cohorts = dict(sorted(counts.items()))
        member_traces = [traces[t] for t in m.trace_ids if traces is not None and t in traces]
        other_traces = [traces[t] for t in pass_ids if traces is not None and t in traces]
        rule = suggest_detector(member_traces, other_traces) if len(member_traces) >= 2 else None
        if rule is not None:
            m.detector, m.detector_fit = {"rule": rule[0]}, rule[1]
            continue
        examples: list[dict[str, str]] = []
        for tid in m.trace_ids[:2]:
            if traces is not None and tid in traces:
                note = next(n for n in m.notes if n.trace_id == tid)
                examples.append({"input": traces[tid].input or "", "output": traces[tid].output or "", "verdict": "fail", "why": note.note})
        for tid in pass_ids[:2]:
            if traces is not None and tid in traces:
                note = next(n for n in notes if n.trace_id == tid and n.verdict == "pass")
                examples.append({"input": traces[tid].input or "", "output": traces[tid].output or "", "verdict": "pass", "why": note.note})
        m.detector = {"judge": {"examples": examples} if examples else {}}
        if traces is None:
            m.detector_fit = "no dataset given (--dataset): no rule could be checked and the judge has no examples"
        elif len(member_traces) < 2:
            m.detector_fit = "fewer than two member traces in the dataset: no rule could be checked"
        elif not other_traces:
            m.detector_fit = "no trace noted pass: a rule cannot be checked against passing traces"
        else:
            m.detector_fit = "no tool or phrase separates the members from the traces noted pass beyond chance"
    flag_same_detector(result)


# --------------------------------------------------------------------------- output


def _q(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def _flow(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _comment(text: str) -> str:
    return " ".join(text.split())


def draft_yaml(result: AxialResult, *, source: str, dataset: str | None, cohorts: Sequence[str] = ()) -> str:
    """The draft definition file. Sorted and free of timestamps: two runs give the same bytes."""
    lines = [
        f"# DRAFT failure modes written by `failmodes axial` from {source}",
        f"# ({result.fail_notes} fail notes; engine: {result.engine}{'; ' + result.detail if result.detail else ''}).",
        "# Nothing here is final. Read every mode: rename it, sharpen its FAIL-when definition,",
        "# check its suggested detector, drop or merge modes. Judge modes are skipped by",
        "# `pytest --failmodes` until a model is set (judge: {model: ...} or FAILMODES_JUDGE_MODEL).",
    ]
    for w in result.warnings:
        lines.append(f"# warning: {_comment(w)}")
    if result.uncovered:
        lines.append(f"# {len(result.uncovered)} fail note(s) no mode covers:")
        for n in result.uncovered:
            lines.append(f"#   {n.trace_id}: {_comment(n.note)[:100]}")
    if dataset is not None:
        lines.append(f"dataset: {_q(dataset)}")
    if cohorts:
        lines.append(f"cohorts: {_flow(list(cohorts))}")
    if not result.modes:
        lines.append("failure_modes: []")
        return "\n".join(lines) + "\n"
    lines.append("failure_modes:")
    for m in result.modes:
        lines.append("")
        lines.append(f"  # {len(m.trace_ids)} trace(s), {m.share:.0%} of fail notes; from {m.source}"
                     + (f"; terms: {', '.join(m.terms)}" if m.terms else ""))
        for flag in m.flags:
            lines.append(f"  # FLAG {flag}")
        if m.cohorts:
            lines.append("  # per cohort: " + ", ".join(f"{k} {v}" for k, v in m.cohorts.items()))
        lines.append(f"  # traces: {', '.join(m.trace_ids)}")
        for n in m.notes[:5]:
            lines.append(f"  #   note ({n.trace_id}): {_comment(n.note)[:100]}")
        if len(m.notes) > 5:
            lines.append(f"  #   ... and {len(m.notes) - 5} more notes")
        if m.detector_fit:
            lines.append(f"  # detector: {_comment(m.detector_fit)}")
        lines.append(f"  - name: {m.name}")
        lines.append(f"    description: {_q(m.definition)}")
        kind, body = next(iter(m.detector.items()))
        if kind == "rule":
            lines.append(f"    rule: {_flow(body)}")
        else:
            lines.append("    judge:")
            examples = body.get("examples", [])
            if not examples:
                lines.append("      examples: []")
            else:
                lines.append("      examples:")
                for ex in examples:
                    lines.append(f"        - {_flow(ex)}")
    return "\n".join(lines) + "\n"


def axial_lines(result: AxialResult) -> list[str]:
    """The terminal summary: one row per mode."""
    from tabulate import tabulate

    rows = [
        [m.name, len(m.trace_ids), f"{m.share:.0%}", next(iter(m.detector), "-"), "; ".join(m.flags) or "", m.definition[:70]]
        for m in result.modes
    ]
    head = f"{result.fail_notes} fail notes -> {len(result.modes)} draft modes ({result.engine}{'; ' + result.detail if result.detail else ''})"
    out = [head]
    out.extend(f"warning: {w}" for w in result.warnings)
    if rows:
        out.extend(tabulate(rows, headers=["mode", "traces", "share", "detector", "flags", "definition"], disable_numparse=True).splitlines())
    if result.uncovered:
        out.append(f"{len(result.uncovered)} fail note(s) no mode covers: " + ", ".join(n.trace_id for n in result.uncovered[:20]))
    return out
