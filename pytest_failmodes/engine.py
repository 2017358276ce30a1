"""The evaluation engine: load -> select -> detect -> aggregate -> gate.

It knows nothing of pytest. One pass over a suite's dataset evaluates every
selected mode; traces are streamed and dropped, only compact per-trace
verdicts (one byte each) and their reasons for non-passes are kept.
"""

from __future__ import annotations

import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .stats import wilson_interval
from .trace import MISSING
from .verdict import ERROR, FAIL, PASS, SKIP, Verdict, to_verdict

if TYPE_CHECKING:
    from .dataset import DatasetSpec
    from .detectors import Detector
    from .detectors.python import FixtureRef, PythonRef
    from .judge import ModelContext
    from .labels import HumanLabels
    from .target import TargetSpec
    from .trace import Trace
    from .where import Where

__all__ = [
    "Gate",
    "ModeSpec",
    "Suite",
    "Aggregator",
    "CohortRow",
    "ModeResult",
    "SuiteResult",
    "evaluate",
    "detect_one",
    "cohort_keys",
]

ALL = "all"
#: a labelled trace during a pass: (index, human verdict, note, role, cohort keys)
Labelled = tuple[int, str, str, str, list[str]]
MISSING_VALUE = "(missing)"
#: one status byte per trace in ModeResult.codes
CODE_OF_STATUS = {PASS: "P", FAIL: "F", ERROR: "E", SKIP: "S"}
STATUS_OF_CODE = {v: k for k, v in CODE_OF_STATUS.items()}


@dataclass(frozen=True)
class Gate:
    """When does a mode fail the run?"""

    max_fail_rate: float | None = None
    gate_on: str = "point"
    max_errors: int = 0
    min_cohort_size: int = 0
    cohort_limits: Mapping[str, float] = field(default_factory=dict)
    #: a regression against a baseline needs at least this absolute increase (None: the run's default)
    min_increase: float | None = None
    #: gate on the judge-error-corrected rate where the mode has one (human labels)
    gate_on_corrected: bool = False

    def limit_for(self, cohort: str) -> float | None:
        return self.cohort_limits.get(cohort, self.max_fail_rate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_fail_rate": self.max_fail_rate,
            "gate_on": self.gate_on,
            "max_errors": self.max_errors,
            "min_cohort_size": self.min_cohort_size,
            "cohort_limits": dict(self.cohort_limits),
            "min_increase": self.min_increase,
            "gate_on_corrected": self.gate_on_corrected,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gate:
        return cls(**data)


@dataclass(frozen=True)
class ModeSpec:
    """One failure mode, ready to evaluate."""

    name: str
    source: str
    detector: Detector | FixtureRef | PythonRef
    description: str = ""
    line: int = 1
    where: Where | None = None
    gate: Gate = field(default_factory=Gate)
    order: int = 0
    #: hash of the mode's definition: a baseline of another definition is not compared
    fingerprint: str = ""
    #: human verdicts that measure the detector (calibration), if any
    labels: HumanLabels | None = None

    @property
    def key(self) -> str:
        return f"{self.source}::{self.name}"


@dataclass(frozen=True)
class Suite:
    """A definition file: a dataset, cohort fields and failure modes."""

    source: str
    dataset: DatasetSpec
    cohorts: tuple[tuple[str, ...], ...]
    modes: tuple[ModeSpec, ...]
    #: the application that produces the traces from the dataset's inputs, if any
    target: TargetSpec | None = None
    #: consistency probes (pytest_failmodes.probes.run.ProbeSpec); a file of probes alone has no dataset
    probes: tuple[Any, ...] = ()


def cohort_keys(trace: Trace, cohorts: Iterable[tuple[str, ...]]) -> list[str]:
    """The cohort labels a trace belongs to: ``all`` plus ``field=value`` per grouping."""
    keys = [ALL]
    get = trace.get
    for group in cohorts:
        if len(group) == 1:
            name = group[0]
            keys.append(f"{name}={_value_text(get(name))}")
        else:
            keys.append(" & ".join([f"{name}={_value_text(get(name))}" for name in group]))
    return keys


def _value_text(value: Any) -> str:
    # runs for every trace and cohort field: plain strings take the short path
    if type(value) is str:
        return value or MISSING_VALUE
    if value is MISSING or value is None or value == "":
        return MISSING_VALUE
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def detect_one(detector: Callable[[Trace], Any], trace: Trace) -> Verdict:
    """Run a detector on one trace; an exception becomes an error verdict."""
    try:
        return to_verdict(detector(trace))
    except Exception as exc:  # noqa: BLE001 - any detector failure is reported as an error
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" ({tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
        return Verdict.error(f"{type(exc).__name__}: {exc}{where}")


@dataclass
class CohortRow:
    """Figures for one mode in one cohort."""

    cohort: str
    n: int  # passes + fails (errors are not in the denominator)
    fails: int
    errors: int
    limit: float | None
    small: bool
    gated: bool
    breach: str | None  # None, "limit"
    #: the judge-error-corrected rate of a mode with human labels: rate, ci_low, ci_high, reason
    corrected: dict[str, Any] | None = None

    @property
    def rate(self) -> float | None:
        return self.fails / self.n if self.n else None

    @property
    def ci(self) -> tuple[float, float] | None:
        return wilson_interval(self.fails, self.n)

    def to_dict(self) -> dict[str, Any]:
        ci = self.ci
        return {
            "cohort": self.cohort,
            "n": self.n,
            "fails": self.fails,
            "errors": self.errors,
            "rate": self.rate,
            "ci_low": ci[0] if ci else None,
            "ci_high": ci[1] if ci else None,
            "limit": self.limit,
            "small": self.small,
            "gated": self.gated,
            "breach": self.breach,
            **({"corrected": self.corrected} if self.corrected is not None else {}),
        }


class Aggregator:
    """Counts per cohort label: [passes, fails, errors]. Order of first sight is kept."""

    __slots__ = ("counts", "skipped")

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}
        self.skipped = 0

    def add(self, keys: Iterable[str], status: str) -> None:
        if status == SKIP:
            self.skipped += 1
            return
        slot = 0 if status == PASS else 1 if status == FAIL else 2
        counts = self.counts
        for key in keys:
            row = counts.get(key)
            if row is None:
                row = counts[key] = [0, 0, 0]
            row[slot] += 1

    def rows(self, gate: Gate, *, apply: bool = True) -> list[CohortRow]:
        """Cohort rows with gate decisions: ``all`` first, then cohorts by field and value."""
        out = []
        for key in sorted(self.counts, key=_row_order):
            p, f, e = self.counts[key]
            n = p + f
            limit = gate.limit_for(key)
            small = key != ALL and n < gate.min_cohort_size
            gated = apply and limit is not None and not small and n > 0
            breach = "limit" if gated and _over(f, n, limit, gate.gate_on) else None  # type: ignore[arg-type]
            out.append(CohortRow(key, n, f, e, limit, small, gated, breach))
        return out


def _row_order(key: str) -> tuple[int, str, str]:
    if key == ALL:
        return (0, "", "")
    fields = " & ".join(part.split("=", 1)[0] for part in key.split(" & "))
    return (1, fields, key)


def _over(fails: int, n: int, limit: float, gate_on: str) -> bool:
    if gate_on == "point":
        return fails / n > limit
    ci = wilson_interval(fails, n)
    assert ci is not None
    return (ci[1] if gate_on == "upper" else ci[0]) > limit


@dataclass
class ModeResult:
    """A mode's outcome; JSON-safe through :meth:`to_dict` (it crosses xdist)."""

    key: str
    name: str
    source: str
    line: int
    order: int
    description: str
    detector: str
    gate: Gate
    rows: list[CohortRow]
    skipped: int
    #: per-trace verdicts in dataset order: ids and one status code each
    ids: list[str]
    codes: str
    #: index -> [reason, evidence] for non-passing verdicts
    details: dict[int, list[Any]]
    broken: str | None = None  # a reason the mode could not be evaluated at all
    #: things the user should know that are not failures (say, a cohort limit that matched nothing)
    notes: list[str] = field(default_factory=list)
    fingerprint: str = ""
    #: cohort -> indices (into ids) of its evaluated traces; kept only to compare with a baseline
    members: dict[str, list[int]] | None = None
    #: trace id -> {"input", "output"} excerpts of the first failing or erroring traces,
    #: kept only for reports that show them (the HTML report)
    samples: dict[str, dict[str, str]] | None = None
    #: the detector measured against human labels (calibration.measure), if the mode has labels
    calibration: dict[str, Any] | None = None

    @property
    def errors(self) -> int:
        return self.rows[0].errors if self.rows else 0

    @property
    def error_breach(self) -> bool:
        return self.errors > self.gate.max_errors

    @property
    def breached_rows(self) -> list[CohortRow]:
        return [r for r in self.rows if r.breach]

    @property
    def partial(self) -> bool:
        """Only some of the mode's traces ran (``-k`` / ``--lf`` on per-trace items)."""
        return any(note.startswith(PARTIAL_NOTE) for note in self.notes)

    @property
    def passed(self) -> bool:
        return self.broken is None and not self.error_breach and not self.breached_rows

    def verdicts(self) -> Iterator[tuple[str, str, str, Any]]:
        """``(id, status, reason, evidence)`` for every evaluated trace (skips omitted)."""
        for i, (tid, code) in enumerate(zip(self.ids, self.codes)):
            if code == "S":
                continue
            reason, evidence = self.details.get(i, ("", None))
            yield tid, STATUS_OF_CODE[code], reason, evidence

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "source": self.source,
            "line": self.line,
            "order": self.order,
            "description": self.description,
            "detector": self.detector,
            "gate": self.gate.to_dict(),
            "rows": [r.to_dict() for r in self.rows],
            "skipped": self.skipped,
            "ids": self.ids,
            "codes": self.codes,
            "details": {str(k): v for k, v in self.details.items()},
            "broken": self.broken,
            "notes": self.notes,
            "fingerprint": self.fingerprint,
            "members": self.members,
            "samples": self.samples,
            "calibration": self.calibration,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModeResult:
        rows = [
            CohortRow(
                r["cohort"], r["n"], r["fails"], r["errors"], r["limit"], r["small"], r["gated"], r["breach"],
                r.get("corrected"),
            )
            for r in d["rows"]
        ]
        return cls(
            key=d["key"],
            name=d["name"],
            source=d["source"],
            line=d["line"],
            order=d["order"],
            description=d["description"],
            detector=d["detector"],
            gate=Gate.from_dict(d["gate"]),
            rows=rows,
            skipped=d["skipped"],
            ids=list(d["ids"]),
            codes=d["codes"],
            details={int(k): list(v) for k, v in d["details"].items()},
            broken=d.get("broken"),
            notes=list(d.get("notes", [])),
            fingerprint=d.get("fingerprint", ""),
            members=d.get("members"),
            samples=d.get("samples"),
            calibration=d.get("calibration"),
        )


#: how the note of a partial run begins (see finish_mode)
PARTIAL_NOTE = "partial run: "


class _ModeFields(Protocol):
    """What finish_mode reads of a mode: a ModeSpec, or one rebuilt from a report."""

    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def order(self) -> int: ...
    @property
    def description(self) -> str: ...
    @property
    def detector(self) -> object: ...
    @property
    def gate(self) -> Gate: ...


def finish_mode(
    mode: _ModeFields,
    agg: Aggregator,
    ids: list[str],
    codes: str,
    details: dict[int, list[Any]],
    broken: str | None = None,
    partial: tuple[int, int] | None = None,
    members: dict[str, list[int]] | None = None,
    samples: dict[str, dict[str, str]] | None = None,
    labelled: list[Labelled] | None = None,
    calibrate_only: bool = False,
) -> ModeResult:
    """Aggregate counts into rows and gate decisions (shared by every way of running).

    ``partial`` = (traces run, traces the mode applies to) when only some of a
    mode's traces ran (``-k`` or ``--lf`` on per-trace items): a rate over a
    hand-picked subset says nothing about the mode, so its gates are not applied.
    ``labelled``: the mode's human-labelled traces, measured against its verdicts
    (``calibrate_only``: only they were judged, so there is no rate to gate).
    """
    rows = agg.rows(mode.gate, apply=partial is None and not calibrate_only) if broken is None else []
    notes = []
    if partial is not None:
        notes.append(f"{PARTIAL_NOTE}{partial[0]} of {partial[1]} traces ran, so the gates were not applied")
    if calibrate_only and broken is None:
        notes.append("calibration run: only the labelled traces were judged; the rates are theirs, and the gates were not applied")
    calibration = None
    labels = getattr(mode, "labels", None)
    if labels is not None and broken is None:
        from .labels import measure_mode

        calibration = measure_mode(labels, labelled or [], ids, codes, details, rows, calibrate_only=calibrate_only)
        notes.extend(calibration.pop("notes"))
        if mode.gate.gate_on_corrected and not calibrate_only:
            notes.extend(_gate_on_corrected(mode.gate, rows))
    seen = {row.cohort for row in rows}
    for cohort in mode.gate.cohort_limits:
        if broken is None and cohort not in seen:
            notes.append(f"cohort_limits names {cohort!r}, which matched no trace")
    return ModeResult(
        key=mode.key,
        name=mode.name,
        source=mode.source,
        line=mode.line,
        order=mode.order,
        description=mode.description,
        detector=repr(mode.detector),
        gate=mode.gate,
        rows=rows,
        skipped=agg.skipped,
        ids=ids,
        codes=codes,
        details=details,
        broken=broken,
        notes=notes,
        fingerprint=getattr(mode, "fingerprint", ""),
        members=members,
        samples=samples,
        calibration=calibration,
    )


def _gate_on_corrected(gate: Gate, rows: list[CohortRow]) -> list[str]:
    """Decide the gated rows on the corrected rate; a row without one keeps the observed rate, and says so."""
    notes = []
    for row in rows:
        if not row.gated:
            continue
        c = row.corrected or {}
        figure = c.get("rate") if gate.gate_on == "point" else c.get("ci_high" if gate.gate_on == "upper" else "ci_low")
        if figure is None:
            why = c.get("reason") or "the labels allow no corrected rate"
            notes.append(f"gate_on_corrected: {row.cohort} is gated on the observed rate ({why})")
            continue
        row.breach = "corrected limit" if figure > row.limit else None  # type: ignore[operator]
    return notes


@dataclass
class SuiteResult:
    modes: dict[str, ModeResult]
    traces: int


def evaluate(
    suite: Suite,
    detectors: Mapping[str, Callable[[Trace], Any]],
    *,
    only: Iterable[str] | None = None,
    broken: Mapping[str, str] | None = None,
    ctx: ModelContext | None = None,
    traces: Iterable[Trace] | None = None,
    failed: Mapping[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    track_members: bool = False,
    samples: int = 0,
    calibrate_only: bool = False,
) -> SuiteResult:
    """Evaluate the suite's modes over its dataset in one streaming pass.

    ``detectors`` maps mode name -> detector. Modes named in ``broken`` (a
    detector that could not be built, say) are reported as broken without
    being run. ``only`` restricts the pass to some modes. ``traces`` replaces
    the dataset (traces a target produced); ``failed`` maps the ids of traces
    the target could not produce to why: every mode records an error for them.

    Model-backed detectors (``is_async``, LLM judges) need ``ctx``: their
    calls for every trace and mode are submitted as the pass streams, run
    concurrently under the runner's limit, and folded in as they finish;
    ``progress(done, submitted)`` is called as they do.

    ``track_members`` records which traces make each cohort; ``samples`` keeps
    the input and output (cut to :data:`SAMPLE_CHARS`) of up to that many
    failing or erroring traces per mode, for reports that show them.

    Modes with human labels record which traces are labelled, to measure their
    detector; ``calibrate_only`` judges only those traces.
    """
    from .dataset import iter_traces

    wanted = set(only) if only is not None else None
    broken = dict(broken or {})
    modes = [m for m in suite.modes if wanted is None or m.name in wanted]
    live = []
    for m in modes:
        if m.name in broken:
            continue
        det = detectors[m.name]
        if getattr(det, "is_async", False) and ctx is None:
            broken[m.name] = f"{det!r} needs a model runner; evaluate() was given none"
            continue
        live.append(_Live(m, det, ctx if getattr(det, "is_async", False) else None, track_members, samples))
    ids: list[str] = []
    cohorts = suite.cohorts
    pending: deque[tuple[_Live, int, list[str], Future[Verdict], Trace | None]] = deque()
    window = max(64, (ctx.runner.max_concurrency if ctx else 1) * 16)
    done = submitted = 0
    source = traces if traces is not None else (t for _line, t in iter_traces(suite.dataset))
    empty: list[str] = []  # the first ids of traces whose output is empty
    n_empty = 0
    for trace in source:
        idx = len(ids)
        ids.append(trace.id)
        if not trace.output:
            n_empty += 1
            if len(empty) < 3:
                empty.append(trace.id)
        keys = cohort_keys(trace, cohorts)
        unproduced = failed.get(trace.id) if failed else None
        for lv in live:
            if lv.where is not None and not lv.where(trace):
                lv.agg.skipped += 1
                lv.codes.append(_SKIP)
                continue
            if lv.labels is not None and not lv.label(idx, trace, keys) and calibrate_only:
                lv.agg.skipped += 1
                lv.codes.append(_SKIP)
                continue
            if unproduced is not None:
                lv.record(idx, keys, Verdict.error(f"target failed: {unproduced}"), trace=trace)
                continue
            if lv.ctx is None:
                lv.record(idx, keys, detect_one(lv.detector, trace), trace=trace)
                continue
            lv.codes.append(_WAIT)
            call = lv.ctx.runner.submit(lv.detector.ajudge(trace, lv.ctx))  # type: ignore[attr-defined]
            # the trace is held until its verdict only when an excerpt may be wanted
            pending.append((lv, idx, keys, call, trace if lv.want else None))
            submitted += 1
            while len(pending) > window:  # bound the memory held by calls not yet made
                _settle(*pending.popleft())
                done += 1
                if progress:
                    progress(done, submitted)
    while pending:
        _settle(*pending.popleft())
        done += 1
        if progress:
            progress(done, submitted)
    results = {}
    for lv in live:
        results[lv.mode.name] = finish_mode(
            lv.mode, lv.agg, ids, lv.codes.decode("ascii"), lv.details, members=lv.members,
            samples=lv.samples if lv.want else None,
            labelled=lv.labelled, calibrate_only=calibrate_only,
        )
    if n_empty:
        note = empty_output_note(empty, n_empty, len(ids))
        for result in results.values():
            result.notes.append(note)
    for mode in modes:
        if mode.name in broken:
            results[mode.name] = finish_mode(mode, Aggregator(), [], "", {}, broken=broken[mode.name])
    return SuiteResult(results, len(ids))


def empty_output_note(first: list[str], count: int, total: int) -> str:
    """The run's warning that some traces have no output: what an output rule checks there is ''."""
    shown = ", ".join(repr(i) for i in first) + (", ..." if count > len(first) else "")
    return (
        f"{count} of {total} traces have an empty output (first: {shown}); "
        "checks on the output see '' there: map the output with dataset.fields or check the format"
    )


_SKIP, _PASS_CODE, _WAIT = ord("S"), ord("P"), ord("?")


class _Live:
    """One mode during a pass: its detector and what it has found so far."""

    __slots__ = (
        "mode", "where", "detector", "ctx", "agg", "codes", "details", "members", "want", "samples",
        "labels", "labelled", "keep",
    )

    def __init__(
        self,
        mode: ModeSpec,
        detector: Callable[[Trace], Any],
        ctx: ModelContext | None,
        track: bool = False,
        samples: int = 0,
    ) -> None:
        self.mode = mode
        self.where = mode.where
        self.detector = detector
        self.ctx = ctx
        self.agg = Aggregator()
        self.codes = bytearray()
        self.details: dict[int, list[Any]] = {}
        self.members: dict[str, list[int]] | None = {} if track else None
        self.want = samples
        self.samples: dict[str, dict[str, str]] = {}
        self.labels = getattr(mode, "labels", None)
        self.labelled: list[Labelled] = []
        self.keep: set[int] = set()  # labelled traces: their reasons are kept even when they pass

    def label(self, idx: int, trace: Trace, keys: list[str]) -> bool:
        """Record the trace's human label, if it has one."""
        assert self.labels is not None
        human, note = self.labels.human(trace)
        if human is None:
            return False
        self.labelled.append((idx, human, note, self.labels.role(trace), keys))
        self.keep.add(idx)
        return True

    def record(
        self, idx: int, keys: list[str], verdict: Verdict, *, placed: bool = False, trace: Trace | None = None
    ) -> None:
        status = verdict.status
        self.agg.add(keys, status)
        if self.members is not None and status in (PASS, FAIL):
            for key in keys:
                self.members.setdefault(key, []).append(idx)
        code = _PASS_CODE if status == PASS else ord(CODE_OF_STATUS[status])
        if placed:
            self.codes[idx] = code  # one code per trace, in dataset order
        else:
            self.codes.append(code)
        if status != PASS or idx in self.keep:
            self.details[idx] = [verdict.reason, verdict.evidence]
            if trace is not None and status in (FAIL, ERROR) and len(self.samples) < self.want:
                self.samples[trace.id] = trace_excerpt(trace)


#: how much of a trace's input and output a report keeps with a failing verdict
SAMPLE_CHARS = 4000


def trace_excerpt(trace: Trace) -> dict[str, str]:
    """A trace's input and output as a report shows them, each cut to SAMPLE_CHARS."""

    def cut(text: str) -> str:
        return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + f" … [{len(text) - SAMPLE_CHARS} more characters]"

    return {"input": cut(str(trace.input or "")), "output": cut(str(trace.output or ""))}


def _settle(lv: _Live, idx: int, keys: list[str], future: Future[Verdict], trace: Trace | None = None) -> None:
    try:
        verdict = future.result()
    except BaseException as exc:  # noqa: BLE001 - a call that died is an error, never a verdict
        if isinstance(exc, KeyboardInterrupt):
            raise
        verdict = Verdict.error(f"{type(exc).__name__}: {exc}")
    lv.record(idx, keys, verdict, placed=True, trace=trace)
