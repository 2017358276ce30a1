"""Which traces to read, in which order: ``--sample`` of ``failmodes review``.

Every method is deterministic given its seed. A method that needs data the
run does not have (an outcome field no trace carries, a report that shares
no trace id with the dataset) is an error, never an empty queue.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FailmodesError, did_you_mean
from .errors import UsageError
from ..trace import MISSING, Trace

__all__ = [
    "METHODS",
    "Outcome",
    "ReportVerdict",
    "load_reports",
    "sample",
    "HEDGES",
]

METHODS = ("all", "random", "stratified", "failures", "unexplained", "disagreements", "uncertain")
#: outcome values that mean "this trace failed" unless ``--outcome FIELD=V1,V2`` says otherwise
DEFAULT_FAIL_VALUES = ("1", "true", "fail", "failed", "failure", "error", "yes")
#: words with which a judge says it is not sure
HEDGES = re.compile(
    r"(?i)\b(may|might|possibly|perhaps|unclear|not (?:entirely |fully )?(?:sure|clear|certain)|uncertain|ambiguous|"
    r"seems?|appears?|likely|hard to (?:tell|say)|cannot (?:determine|tell)|can't (?:determine|tell)|borderline|arguably)\b"
)


@dataclass(frozen=True)
class Outcome:
    """``--outcome FIELD[=V1,V2]``: a dataset field whose value says the run failed."""

    field: str
    fail_values: tuple[str, ...] = DEFAULT_FAIL_VALUES

    @classmethod
    def parse(cls, text: str) -> Outcome:
        name, eq, values = text.partition("=")
        if not name.strip():
            raise UsageError(f"--outcome takes FIELD or FIELD=VALUE,...; got {text!r}")
        if eq:
            vals = tuple(v.strip().lower() for v in values.split(",") if v.strip())
            if not vals:
                raise UsageError(f"--outcome {text!r} names no failing value after '='")
            return cls(name.strip(), vals)
        return cls(name.strip())

    def failed(self, trace: Trace) -> bool | None:
        """True/False, or None when the trace has no such field."""
        value = trace.get(self.field)
        if value is MISSING or value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value).strip().lower() in self.fail_values


@dataclass(frozen=True)
class ReportVerdict:
    """One mode's verdict on one trace, from one JSON report."""

    mode: str
    verdict: str
    reason: str
    detector: str
    report: str

    def to_json(self) -> dict[str, str]:
        return {"mode": self.mode, "verdict": self.verdict, "reason": self.reason, "detector": self.detector, "report": self.report}


@dataclass
class Reports:
    """Verdicts of one or more JSON reports, by trace id."""

    by_trace: dict[str, list[ReportVerdict]] = field(default_factory=dict)
    modes: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def failed_modes(self, trace_id: str) -> set[str]:
        return {v.mode for v in self.by_trace.get(trace_id, ()) if v.verdict == "fail"}


def load_reports(paths: Sequence[Path]) -> Reports:
    """Read ``pytest --failmodes --failmodes-report`` files (docs/report-schema.md)."""
    out = Reports()
    for path in paths:
        shown = str(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FailmodesError("no such report; write one with pytest --failmodes --failmodes-report=PATH", file=shown) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise FailmodesError(f"cannot read the report: {exc}", file=shown) from None
        except ValueError as exc:
            raise FailmodesError(f"not a JSON report: {getattr(exc, 'msg', exc)}", file=shown, line=getattr(exc, "lineno", None)) from None
        if not isinstance(data, dict) or data.get("schema") != "pytest-failmodes/report":
            raise FailmodesError("not a pytest-failmodes JSON report (no \"schema\": \"pytest-failmodes/report\")", file=shown)
        modes = data.get("modes")
        if not isinstance(modes, list):
            raise FailmodesError("the report has no 'modes' list", file=shown, key="modes")
        out.paths.append(shown)
        for i, mode in enumerate(modes):
            if not isinstance(mode, dict) or not isinstance(mode.get("traces"), list):
                raise FailmodesError("a mode without a 'traces' list", file=shown, key=f"modes[{i}]")
            name = str(mode.get("name") or mode.get("key") or f"mode {i}")
            if name not in out.modes:
                out.modes.append(name)
            for t in mode["traces"]:
                if not isinstance(t, dict) or "id" not in t or "verdict" not in t:
                    raise FailmodesError("a trace entry needs 'id' and 'verdict'", file=shown, key=f"modes[{i}].traces")
                out.by_trace.setdefault(str(t["id"]), []).append(
                    ReportVerdict(name, str(t["verdict"]), str(t.get("reason") or ""), str(mode.get("detector") or ""), shown)
                )
    return out


def _need(what: str, ok: bool, hint: str) -> None:
    if not ok:
        raise UsageError(f"--sample {what} needs {hint}")


def sample(
    traces: Sequence[Trace],
    method: str = "all",
    *,
    seed: int = 0,
    by: Sequence[str] = (),
    outcome: Outcome | None = None,
    reports: Reports | None = None,
    human: Mapping[str, str] | None = None,
    skip: Iterable[str] = (),
    limit: int | None = None,
) -> list[int]:
    """Positions in ``traces`` to review, in order.

    ``human`` maps trace ids to a person's pass/fail (notes already written);
    ``skip`` lists trace ids already reviewed (left out: resuming starts where
    the reviewer stopped).
    """
    if method not in METHODS:
        raise UsageError(f"unknown --sample {method!r}{did_you_mean(method, METHODS)}; choose from {', '.join(METHODS)}")
    rng = random.Random(seed)
    order = list(range(len(traces)))
    if method == "stratified":
        _need("stratified", bool(by), "--by FIELD (one or more metadata fields)")
        _check_fields(traces, by)
        order = _stratified(traces, by, rng)
    elif method == "random":
        rng.shuffle(order)
    elif method in ("failures", "unexplained", "disagreements", "uncertain"):
        order = _by_verdicts(traces, method, rng, outcome, reports, human or {})
    skipped = set(skip)
    order = [i for i in order if traces[i].id not in skipped]
    return order[:limit] if limit is not None else order


def _check_fields(traces: Sequence[Trace], fields: Iterable[str]) -> None:
    for name in fields:
        if not any(t.get(name) is not MISSING for t in traces):
            seen = sorted({k for t in traces[:1000] for k in t.metadata} | {k for t in traces[:1000] for k in t.labels})
            raise UsageError(
                f"no trace has a field {name!r}{did_you_mean(name, seen)}"
                + (f" (fields: {', '.join(seen[:12])}{', ...' if len(seen) > 12 else ''})" if seen else "")
            )


def _stratum(trace: Trace, by: Sequence[str]) -> tuple[str, ...]:
    out = []
    for name in by:
        value = trace.get(name)
        out.append("(missing)" if value is MISSING else json.dumps(value, sort_keys=True, default=str))
    return tuple(out)


def _stratified(traces: Sequence[Trace], by: Sequence[str], rng: random.Random) -> list[int]:
    """Round robin over the strata (each shuffled): the first k traces cover as many strata as they can."""
    strata: dict[tuple[str, ...], list[int]] = {}
    for i, t in enumerate(traces):
        strata.setdefault(_stratum(t, by), []).append(i)
    groups = [strata[k] for k in sorted(strata)]
    for g in groups:
        rng.shuffle(g)
    rng.shuffle(groups)
    order: list[int] = []
    depth = 0
    while len(order) < len(traces):
        for g in groups:
            if depth < len(g):
                order.append(g[depth])
        depth += 1
    return order


def _by_verdicts(
    traces: Sequence[Trace],
    method: str,
    rng: random.Random,
    outcome: Outcome | None,
    reports: Reports | None,
    human: Mapping[str, str],
) -> list[int]:
    if reports is not None and reports.by_trace and not any(t.id in reports.by_trace for t in traces):
        some = ", ".join(list(reports.by_trace)[:3])
        raise UsageError(f"no trace id of the dataset is in {', '.join(reports.paths)} (it has ids like {some}); was it written for another dataset?")
    if outcome is not None:
        _check_fields(traces, [outcome.field])
    picked: list[int] = []
    if method == "failures":
        _need("failures", outcome is not None or reports is not None, "--outcome FIELD or --report r.json")
        for i, t in enumerate(traces):
            if (outcome is not None and outcome.failed(t)) or (reports is not None and reports.failed_modes(t.id)):
                picked.append(i)
    elif method == "unexplained":
        _need("unexplained", outcome is not None and reports is not None, "--outcome FIELD and --report r.json")
        assert outcome is not None and reports is not None
        picked = [i for i, t in enumerate(traces) if outcome.failed(t) and not reports.failed_modes(t.id)]
    elif method == "disagreements":
        _need("disagreements", reports is not None, "--report r.json (the judge's verdicts)")
        _need("disagreements", outcome is not None or bool(human), "--outcome FIELD or existing notes (the human verdicts)")
        assert reports is not None
        for i, t in enumerate(traces):
            person = human.get(t.id)
            if person is None and outcome is not None:
                failed = outcome.failed(t)
                person = None if failed is None else ("fail" if failed else "pass")
            if person not in ("pass", "fail") or t.id not in reports.by_trace:
                continue
            judged = "fail" if reports.failed_modes(t.id) else "pass"
            if judged != person:
                picked.append(i)
    else:  # uncertain
        _need("uncertain", reports is not None, "--report r.json (give it twice to compare two runs)")
        assert reports is not None
        for i, t in enumerate(traces):
            verdicts = reports.by_trace.get(t.id, [])
            per_mode: dict[str, set[str]] = {}
            for v in verdicts:
                per_mode.setdefault(v.mode, set()).add(v.verdict)
            changed = any(len(s) > 1 for s in per_mode.values())
            hedged = any(v.verdict == "error" or HEDGES.search(v.reason) for v in verdicts)
            if changed or hedged:
                picked.append(i)
    if not picked:
        raise UsageError(f"--sample {method}: no trace qualifies" + _why_none(traces, outcome))
    rng.shuffle(picked)
    return picked


def _why_none(traces: Sequence[Trace], outcome: Outcome | None) -> str:
    if outcome is None:
        return ""
    values = sorted({str(t.get(outcome.field)) for t in traces[:1000] if t.get(outcome.field) is not MISSING})
    return (
        f" (values of {outcome.field!r}: {', '.join(values[:8])}; failing values: {', '.join(outcome.fail_values)}"
        f" — say which with --outcome {outcome.field}=VALUE)"
    )

