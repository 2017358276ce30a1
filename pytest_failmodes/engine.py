"""The evaluation engine: load -> select -> detect -> aggregate -> gate.

It knows nothing of pytest. One pass over a suite's dataset evaluates every
selected mode; traces are streamed and dropped, only compact per-trace
verdicts (one byte each) and their reasons for non-passes are kept.
"""

from __future__ import annotations

import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol

from .compact import CohortMembers, ComboTraces, Details, StrColumn, index_array
from .stats import wilson_interval
from .seen import DIRECT_FIELDS, Need, Seen
from .trace import MISSING, Trace
from .values import MISSING_VALUE, cohort_part, split_cohort, value_text
from .verdict import ERROR, FAIL, PASS, SKIP, Verdict, to_verdict

if TYPE_CHECKING:
    from .dataset import DatasetSpec
    from .detectors import Detector
    from .detectors.python import FixtureRef, PythonRef
    from .judge import ModelContext
    from .labels import HumanLabels
    from .target import TargetSpec
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
    "DerivedCohort",
    "cluster_of",
    "pair_of",
    "trial_summary",
]

ALL = "all"
#: a labelled trace during a pass: (index, human verdict, note, role, cohort keys)
Labelled = tuple[int, str, str, str, list[str]]
#: an empty list (a trace that called no tool, for ``tools``)
NONE_VALUE = "(none)"
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
    #: a mode whose every trace was skipped passes its gate (otherwise it fails it: nothing was checked)
    allow_empty: bool = False

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
            "allow_empty": self.allow_empty,
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
    #: the fields, tool names and values it reads, checked against the data after the pass
    needs: tuple[Need, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.source}::{self.name}"


@dataclass(frozen=True)
class Suite:
    """A definition file: a dataset, cohort fields and failure modes."""

    source: str
    dataset: DatasetSpec
    cohorts: tuple[tuple[str | DerivedCohort, ...], ...]
    modes: tuple[ModeSpec, ...]
    #: the application that produces the traces from the dataset's inputs, if any
    target: TargetSpec | None = None
    #: consistency probes (pytest_failmodes.probes.run.ProbeSpec); a file of probes alone has no dataset
    probes: tuple[Any, ...] = ()
    #: what every mode reads (cohort fields, ``dataset.fields`` columns), checked like a mode's needs
    needs: tuple[Need, ...] = ()

    #: traces with the same value here are one cluster (repeated trials of one task)
    cluster_by: str | None = None
    #: fields that pair a trace with its baseline counterpart (default: the id)
    pair_by: tuple[str, ...] = ()
    #: ``pipeline:``, the states in pipeline order (read by ``failmodes steps``; kind ``step``)
    pipeline: tuple[Need, ...] = ()


    def check_names(self, traces: Iterable[Trace], only: Iterable[str] | None = None) -> dict[str, tuple[str | None, list[str]]]:
        """mode name -> (why it is broken or None, notes) for names that match nothing in ``traces``
        (all of them: a name is missing only if no trace has it)."""
        wanted = set(only) if only is not None else None
        modes = [m for m in self.modes if wanted is None or m.name in wanted]
        seen = Seen([*self.needs, *(n for m in modes for n in m.needs)])
        for trace in traces:
            seen.observe(trace)
        return {m.name: name_problems(seen, self, m) for m in modes}


def name_problems(seen: Seen, suite: Suite, mode: ModeSpec) -> tuple[str | None, list[str]]:
    """A mode's (broken reason, notes) from a finished :class:`Seen`."""
    errors, notes = seen.problems([*suite.needs, *mode.needs])
    if not errors:
        return None, notes
    more = f" (and {len(errors) - 1} more: {'; '.join(errors[1:3])})" if len(errors) > 1 else ""
    return errors[0] + more, notes


def cluster_of(trace: Trace, cluster_by: str | None) -> str | None:
    """The trace's cluster (``None`` without ``cluster_by``; a trace lacking the field
    is its own cluster, marked so that the run can say how many did)."""
    if cluster_by is None:
        return None
    value = trace.get(cluster_by)
    if value is MISSING or value is None or value == "":
        return LONE_CLUSTER + trace.id
    return _value_text(value)


def pair_of(trace: Trace, pair_by: tuple[str, ...]) -> str | None:
    """The key that pairs the trace with its baseline counterpart (``None``: its id)."""
    if not pair_by:
        return None
    return " & ".join(f"{name}={_value_text(trace.get(name))}" for name in pair_by)


#: how the cluster of a trace without the ``cluster_by`` field begins
LONE_CLUSTER = "(missing) "


@dataclass(frozen=True)
class DerivedCohort:
    """A cohort field computed from a trace's value: its numeric bin, or whether a list has an item.

    Bins ``(0, 500, 2000)`` give ``field=[-inf, 0)``, ``field=[0, 500)``, ``field=[500, 2000)``
    and ``field=[2000, inf)``; ``has`` gives ``field has item=true`` or ``=false``.
    """

    field: str
    bins: tuple[float, ...] = ()
    has: str | None = None

    def __str__(self) -> str:
        return f"{self.field} has {self.has}" if self.has is not None else self.field

    def value(self, trace: Trace) -> str:
        value = trace.get(self.field)
        if value is MISSING or value is None:
            return MISSING_VALUE
        if self.has is not None:
            items = value if isinstance(value, (list, tuple)) else [value]
            return "true" if any(_value_text(v) == self.has for v in items) else "false"
        from .where import _num

        x = _num(value)
        if x is None:
            return "(not a number)"
        edges = self.bins
        # half-open intervals, the outer two unbounded: no `=` or `<` to quote in a label
        if x < edges[0]:
            return f"[-inf, {edges[0]:g})"
        for low, high in zip(edges, edges[1:]):
            if x < high:
                return f"[{low:g}, {high:g})"
        return f"[{edges[-1]:g}, inf)"




def cohort_keys(trace: Trace, cohorts: Iterable[tuple[Any, ...]]) -> list[str]:
    """The cohort labels a trace belongs to: ``all`` plus ``field=value`` per grouping.

    Values print canonically (``reward=1`` for 1, 1.0 and "1") and are quoted where
    they would make a label ambiguous (see :func:`pytest_failmodes.values.cohort_part`);
    a list prints as its values joined (``tools=lookup,refund``), never a Python repr.
    """
    keys = [ALL]
    for group in cohorts:
        if len(group) == 1:
            name = group[0]
            keys.append(_cohort_part(trace, name))
        else:
            keys.append(" & ".join([_cohort_part(trace, name) for name in group]))
    return keys


def _cohort_part(trace: Trace, name: str | DerivedCohort) -> str:
    if type(name) is str:
        value = trace.get(name)
        if isinstance(value, (list, tuple)):
            value = ",".join(value_text(v) for v in value) if value else NONE_VALUE
        return cohort_part(name, value)
    derived = name.value(trace)  # type: ignore[union-attr]
    return cohort_part(str(name), None if derived == MISSING_VALUE else derived)


def _value_text(value: Any) -> str:
    # a cluster's or pair's key: the canonical text of a value, a list joined
    if isinstance(value, (list, tuple)):
        return ",".join(value_text(v) for v in value) if value else NONE_VALUE
    return value_text(value)


def detect_one(detector: Callable[[Trace], Any], trace: Trace) -> Verdict:
    """Run a detector on one trace; an exception becomes an error verdict."""
    try:
        return to_verdict(detector(trace))
    except Exception as exc:  # noqa: BLE001 - any detector failure is reported as an error
        return _raised(exc)


def _raised(exc: BaseException) -> Verdict:
    """The error verdict of a detector that raised: the exception and where it was raised."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    return Verdict.error(f"{type(exc).__name__}: {exc}{where}")


def _clustered(counts: Mapping[str, list[int]]) -> dict[str, Any] | None:
    from .stats import clustered_interval

    ci = clustered_interval((f, n) for n, f in counts.values())
    if ci is None:
        return None
    return {
        "ci_low": ci.low, "ci_high": ci.high, "clusters": ci.clusters,
        "design_effect": round(ci.design_effect, 4), "effective_n": round(ci.effective_n, 2),
    }


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
    #: with ``cluster_by``: the cluster-aware interval (ci_low, ci_high, clusters, design_effect, effective_n)
    clustered: dict[str, Any] | None = None

    @property
    def rate(self) -> float | None:
        return self.fails / self.n if self.n else None

    @property
    def ci(self) -> tuple[float, float] | None:
        if self.clustered is not None:
            return self.clustered["ci_low"], self.clustered["ci_high"]
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
            **({"clustered": self.clustered} if self.clustered is not None else {}),
        }


class Aggregator:
    """Counts per cohort label: [passes, fails, errors]. Order of first sight is kept.

    Given a trace's cluster, it also counts [decided, fails] per cohort and
    cluster, for the cluster-aware interval."""

    __slots__ = ("counts", "skipped", "clusters")

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}
        self.skipped = 0
        self.clusters: dict[str, dict[str, list[int]]] = {}

    def add(self, keys: Iterable[str], status: str, cluster: str | None = None) -> None:
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
            if cluster is not None and slot < 2:
                per = self.clusters.setdefault(key, {}).setdefault(cluster, [0, 0])
                per[0] += 1
                per[1] += slot

    def add_counts(self, keys: Iterable[str], counts: list[int]) -> None:
        """Add ``[passes, fails, errors]`` counted for traces that all have these cohort keys."""
        rows = self.counts
        for key in keys:
            row = rows.get(key)
            if row is None:
                rows[key] = list(counts)
            else:
                row[0] += counts[0]
                row[1] += counts[1]
                row[2] += counts[2]

    def add_clusters(self, keys: Iterable[str], slot: int, cluster: str) -> None:
        """Count one decided trace (slot 0 pass, 1 fail) in its cluster of every cohort."""
        for key in keys:
            per = self.clusters.setdefault(key, {}).setdefault(cluster, [0, 0])
            per[0] += 1
            per[1] += slot

    def rows(self, gate: Gate, *, apply: bool = True) -> list[CohortRow]:
        """Cohort rows with gate decisions: ``all`` first, then cohorts by field and value."""
        out = []
        # a mode whose every trace was skipped still has its `all` row (n=0): reports show it as empty
        counts = self.counts if ALL in self.counts else {ALL: [0, 0, 0], **self.counts}
        for key in sorted(counts, key=_row_order):
            p, f, e = counts[key]
            n = p + f
            limit = gate.limit_for(key)
            small = key != ALL and n < gate.min_cohort_size
            gated = apply and limit is not None and not small and n > 0
            clustered = _clustered(self.clusters[key]) if key in self.clusters else None
            row = CohortRow(key, n, f, e, limit, small, gated, None, clustered=clustered)
            row.breach = "limit" if gated and _over(row, limit, gate.gate_on) else None  # type: ignore[arg-type]
            out.append(row)
        return out


def _row_order(key: str) -> tuple[int, str, tuple[int, float, str]]:
    if key == ALL:
        return (0, "", (0, 0.0, ""))
    fields = " & ".join(name for name, _value in split_cohort(key))
    return (1, fields, _bin_order(key))


def _bin_order(key: str) -> tuple[int, float, str]:
    # the bins of a derived cohort sort by their lower edge ([-inf, 0), [0, 5), [5, inf)), not as text
    value = key.split("=", 1)[1] if " & " not in key and "=" in key else ""
    if value.startswith("[") and value.endswith(")"):
        try:
            return (1, float(value[1:].split(",", 1)[0]), key)
        except ValueError:
            pass
    return (1, 0.0, key)


def _over(row: CohortRow, limit: float, gate_on: str) -> bool:
    if gate_on == "point":
        return row.fails / row.n > limit
    ci = row.ci
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
    #: per-trace verdicts in dataset order: ids (a list, or a compact StrColumn) and one status code each
    ids: Sequence[str]
    codes: str
    #: index -> [reason, evidence] for non-passing verdicts (a dict, or compact Details)
    details: MutableMapping[int, list[Any]]
    broken: str | None = None  # a reason the mode could not be evaluated at all
    #: things the user should know that are not failures (say, a cohort limit that matched nothing)
    notes: list[str] = field(default_factory=list)
    fingerprint: str = ""
    #: cohort -> indices (into ids) of its evaluated traces; kept only to compare with a baseline
    members: Mapping[str, Sequence[int]] | None = None
    #: trace id -> {"input", "output"} excerpts of the first failing or erroring traces,
    #: kept only for reports that show them (the HTML report)
    samples: dict[str, dict[str, Any]] | None = None
    #: the detector measured against human labels (calibration.measure), if the mode has labels
    calibration: dict[str, Any] | None = None
    #: with ``cluster_by``: each trace's cluster, parallel to ``ids``
    clusters: list[str] | None = None
    #: with ``pair_by``: each trace's pairing key, parallel to ``ids``
    pairs: list[str] | None = None
    #: with ``cluster_by``: repeated trials per cluster (see :func:`trial_summary`)
    trials: dict[str, Any] | None = None

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
    def empty(self) -> bool:
        """Every trace was skipped (``where:``, a label no trace has): the mode checked nothing."""
        if self.broken is not None or self.partial:
            return False
        return not self.rows or (self.rows[0].n == 0 and self.rows[0].errors == 0)

    @property
    def empty_breach(self) -> bool:
        """Empty, and the definition does not say ``allow_empty: true``."""
        return self.empty and not self.gate.allow_empty

    @property
    def status(self) -> str:
        """``broken``, ``empty``, ``breached`` or ``ok`` (a baseline regression is decided later)."""
        if self.broken is not None:
            return "broken"
        if self.empty:
            return "empty"
        return "ok" if self.passed else "breached"

    @property
    def passed(self) -> bool:
        return self.broken is None and not self.error_breach and not self.breached_rows and not self.empty_breach

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
            "ids": list(self.ids),
            "codes": self.codes,
            "details": {str(k): v for k, v in self.details.items()},
            "broken": self.broken,
            "notes": self.notes,
            "fingerprint": self.fingerprint,
            "members": {k: list(v) for k, v in self.members.items()} if self.members is not None else None,
            "samples": self.samples,
            "calibration": self.calibration,
            "clusters": self.clusters,
            "pairs": self.pairs,
            "trials": self.trials,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModeResult:
        rows = [
            CohortRow(
                r["cohort"], r["n"], r["fails"], r["errors"], r["limit"], r["small"], r["gated"], r["breach"],
                r.get("corrected"), r.get("clustered"),
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
            # compact columns, as the engine keeps them: a controller gathers every worker's traces
            ids=StrColumn(d["ids"]),
            codes=d["codes"],
            details=Details((int(k), list(v)) for k, v in d["details"].items()),
            broken=d.get("broken"),
            notes=list(d.get("notes", [])),
            fingerprint=d.get("fingerprint", ""),
            members={k: index_array(v) for k, v in d["members"].items()} if d.get("members") is not None else None,
            samples=d.get("samples"),
            calibration=d.get("calibration"),
            clusters=d.get("clusters"),
            pairs=d.get("pairs"),
            trials=d.get("trials"),
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
    ids: Sequence[str],
    codes: str,
    details: MutableMapping[int, list[Any]],
    broken: str | None = None,
    partial: tuple[int, int] | None = None,
    members: Mapping[str, Sequence[int]] | None = None,
    samples: dict[str, dict[str, Any]] | None = None,
    labelled: list[Labelled] | None = None,
    calibrate_only: bool = False,
    clusters: list[str] | None = None,
    pairs: list[str] | None = None,
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
    notes.extend(_fine_cohorts(rows))
    trials = None
    if clusters is not None and broken is None:
        lone = sum(1 for c, code in zip(clusters, codes) if code != "S" and c.startswith(LONE_CLUSTER))
        if lone:
            notes.append(
                f"cluster_by: {lone} trace(s) lack the field and count as clusters of their own"
                + (" (every trace: is the field name right?)" if lone == sum(code != "S" for code in codes) else "")
            )
        trials = trial_summary(clusters, codes)
        if trials is not None:
            notes.append(trials["note"])
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
        clusters=clusters,
        pairs=pairs,
        trials=trials,
    )


#: below this many traces a cohort field is not warned about for having many values
FINE_COHORT_MIN_TRACES = 10


def _fine_cohorts(rows: list[CohortRow]) -> list[str]:
    """A cohort field with more distinct values than half the traces says little per value
    (often it is an id or a free-text field given by mistake)."""
    total = next((r.n + r.errors for r in rows if r.cohort == ALL), 0)
    if total < FINE_COHORT_MIN_TRACES:
        return []
    values: dict[str, int] = {}
    for row in rows:
        if row.cohort != ALL:
            group = _row_order(row.cohort)[1]
            values[group] = values.get(group, 0) + 1
    return [
        f"cohort {group} has {count} distinct values over {total} traces, more than half: "
        "each holds too few traces to say anything (is it an id?)"
        for group, count in values.items()
        if count > total / 2
    ]


def trial_summary(clusters: list[str], codes: str) -> dict[str, Any] | None:
    """pass^k and fail-any-of-k over clusters of repeated trials (``None``: no cluster has 2).

    ``pass^k`` is the chance that k trials of a task, drawn from its trials,
    all pass (the failure is absent in every one), estimated per task without
    bias as C(passes, k) / C(trials, k) and averaged over tasks (Yao et al.
    2024, tau-bench); fail-any-of-k is 1 - pass^k. k runs up to the fewest
    decided trials of any cluster; errors and skips are not trials.
    """
    from math import comb

    per: dict[str, list[int]] = {}
    for cluster, code in zip(clusters, codes):
        if code in ("P", "F"):
            slot = per.setdefault(cluster, [0, 0])
            slot[0] += 1
            slot[1] += code == "P"
    if not per:
        return None
    k_max = min(n for n, _p in per.values())
    if k_max < 2:
        return None
    pass_k = {str(k): sum(comb(p, k) / comb(n, k) for n, p in per.values()) / len(per) for k in range(1, k_max + 1)}
    k = str(k_max)
    return {
        "clusters": len(per),
        "min_trials": k_max,
        "max_trials": max(n for n, _p in per.values()),
        "pass_hat_k": pass_k,
        "fail_any_of_k": {key: 1 - value for key, value in pass_k.items()},
        "note": (
            f"repeated trials: {len(per)} clusters of {k_max}+ trials; pass^{k} = {pass_k[k]:.1%} "
            f"(all {k} trials pass), fail-any-of-{k} = {1 - pass_k[k]:.1%}, pass^1 = {pass_k['1']:.1%}"
        ),
    }


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
    up to that many failing or erroring traces per mode (:func:`trace_excerpt`),
    for reports that show them.

    Modes with human labels record which traces are labelled, to measure their
    detector; ``calibrate_only`` judges only those traces.
    """
    from .dataset import iter_traces
    from .malloc import hold_mmap_threshold

    hold_mmap_threshold()  # a long pass's buffers must not fragment the heap (see malloc.py)
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
    ids = StrColumn()
    cohorts = suite.cohorts
    combo_of = _Combos(cohorts, track_members)
    pending: deque[tuple[_Live, int, int, Future[Verdict], Trace | None, str | None, list[tuple[str, ...]]]] = deque()
    window = ctx.window([lv.detector for lv in live]) if ctx else 64
    done = submitted = 0
    # map(itemgetter): the traces without a generator frame of our own per trace
    source = traces if traces is not None else map(itemgetter(1), iter_traces(suite.dataset))
    seen = Seen([*suite.needs, *(n for lv in live for n in lv.mode.needs)])
    cluster_by, pair_by = getattr(suite, "cluster_by", None), getattr(suite, "pair_by", ())
    clusters: list[str] | None = [] if cluster_by else None
    pairs: list[str] | None = [] if pair_by else None
    # a cluster's key is held once however many traces share it
    shared: dict[str, str] = {}
    empty: list[str] = []  # the first ids of traces whose output is empty
    n_empty = 0
    idx = -1
    add_id = ids.append
    for trace in source:
        idx += 1
        add_id(trace.id)
        if seen.busy:  # once every needed name is seen, the call is all that observe() would cost
            seen.observe(trace)
        if not trace.output:
            n_empty += 1
            if len(empty) < 3:
                empty.append(trace.id)
        combo = combo_of(trace)
        cluster = None
        if clusters is not None:
            cluster = cluster_of(trace, cluster_by)
            cluster = shared.setdefault(cluster, cluster)  # type: ignore[arg-type]
            clusters.append(cluster)  # type: ignore[arg-type]
        if pairs is not None:
            pairs.append(pair_of(trace, pair_by))  # type: ignore[arg-type]
        unproduced = failed.get(trace.id) if failed else None
        for lv in live:
            if lv.where is not None and not lv.where(trace):
                lv.agg.skipped += 1
                lv.codes.append(_SKIP)
                continue
            if lv.labels is not None and not lv.label(idx, trace, combo_of.keys[combo]) and calibrate_only:
                lv.agg.skipped += 1
                lv.codes.append(_SKIP)
                continue
            if unproduced is not None:
                lv.record(idx, combo, Verdict.error(f"target failed: {unproduced}"), trace=trace, cluster=cluster, keys=combo_of.keys)
                continue
            if lv.ctx is None:
                # detect_one inlined: this runs for every trace and mode
                try:
                    verdict = lv.detector(trace)
                    if verdict is not _PASS_VERDICT:
                        verdict = to_verdict(verdict)
                except Exception as exc:  # noqa: BLE001 - any detector failure is reported as an error
                    verdict = _raised(exc)
                if verdict is _PASS_VERDICT and idx not in lv.keep:
                    # the common case: a pass needs a count and a code, nothing else
                    lv.codes.append(_PASS_CODE)
                    row = lv.counts.get(combo)
                    if row is None:
                        row = lv.counts[combo] = [0, 0, 0]
                    row[0] += 1
                    if cluster is not None:
                        lv.agg.add_clusters(combo_of.keys[combo], 0, cluster)
                    continue
                lv.record(idx, combo, verdict, trace=trace, cluster=cluster, keys=combo_of.keys)
                continue
            lv.codes.append(_WAIT)
            call = lv.ctx.runner.submit(lv.detector.ajudge(trace, lv.ctx))  # type: ignore[attr-defined]
            # the trace is held until its verdict only when an excerpt may be wanted
            pending.append((lv, idx, combo, call, trace if lv.want else None, cluster, combo_of.keys))
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
    seen.traces = len(ids)
    results = {}
    # the traces of each cohort combination, once for the run: every mode's members are read from it
    by_combo = ComboTraces(combo_of.combos, combo_of.keys) if combo_of.combos is not None else None
    combo_of.combos = None
    for lv in live:
        lv.fold(combo_of.keys)
        # decided over every trace of the pass: a name some trace has is not a typo
        why, notes = name_problems(seen, suite, lv.mode)
        if why is not None:
            results[lv.mode.name] = finish_mode(lv.mode, Aggregator(), [], "", {}, broken=why)
            continue
        codes = lv.codes.decode("ascii")
        lv.codes = bytearray()
        results[lv.mode.name] = finish_mode(
            lv.mode, lv.agg, ids, codes, lv.details,
            members=CohortMembers(by_combo, codes) if by_combo is not None and lv.track else None,
            samples=lv.samples if lv.want else None,
            labelled=lv.labelled, calibrate_only=calibrate_only, clusters=clusters, pairs=pairs,
        )
        results[lv.mode.name].notes.extend(notes)
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
_PASS_VERDICT = Verdict.pass_()


class _Combos:
    """Each trace's cohort keys, interned: traces with the same cohort values share one
    tuple of keys and its number (a "combo"), so a pass counts per combo, not per key."""

    __slots__ = ("cohorts", "fields", "from_metadata", "keys", "index", "by_values", "combos")

    def __init__(self, cohorts: tuple[tuple[Any, ...], ...], track: bool = False) -> None:
        self.cohorts = cohorts
        names = [name for group in cohorts for name in group]
        # plain fields: a trace's raw values find its combo without building the labels
        self.fields = tuple(dict.fromkeys(names)) if all(type(n) is str for n in names) else None
        #: plain names, none a trace field: what Trace.get finds in metadata, in one C call
        self.from_metadata: Callable[[dict[str, Any]], tuple[Any, ...]] | None = None
        if self.fields and all("." not in n and n not in DIRECT_FIELDS for n in self.fields):
            getter = itemgetter(*self.fields)
            self.from_metadata = getter if len(self.fields) > 1 else lambda md: (getter(md),)
        self.keys: list[tuple[str, ...]] = []
        self.index: dict[tuple[str, ...], int] = {}
        self.by_values: dict[tuple[Any, ...], int] = {}
        #: with ``track``: each trace's combo, in dataset order (for the cohorts' members)
        self.combos = index_array() if track else None

    def __call__(self, trace: Trace) -> int:
        key: tuple[Any, ...] | None = None
        combo = -1
        if self.fields is not None:
            values = None
            if self.from_metadata is not None:
                try:
                    values = self.from_metadata(trace.metadata)
                except KeyError:  # a field not in metadata: Trace.get looks further
                    pass
            if values is None:
                get = trace.get
                values = tuple([get(name) for name in self.fields])
            # the types too: 1 and True are equal keys but different labels
            key = (values, tuple(map(type, values)))
            try:
                combo = self.by_values.get(key, -1)
            except TypeError:  # a list value is not hashable: build the labels
                key = None
        if combo < 0:
            keys = tuple(cohort_keys(trace, self.cohorts))
            found = self.index.get(keys)
            if found is None:
                found = self.index[keys] = len(self.keys)
                self.keys.append(keys)
            combo = found
            if key is not None:
                self.by_values[key] = combo
        if self.combos is not None:
            self.combos.append(combo)
        return combo


class _Live:
    """One mode during a pass: its detector and what it has found so far."""

    __slots__ = (
        "mode", "where", "detector", "ctx", "agg", "codes", "details", "track", "want", "samples",
        "labels", "labelled", "keep", "counts",
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
        self.details = Details()
        self.track = track
        self.want = samples
        self.samples: dict[str, dict[str, Any]] = {}
        self.labels = getattr(mode, "labels", None)
        self.labelled: list[Labelled] = []
        self.keep: set[int] = set()  # labelled traces: their reasons are kept even when they pass
        #: combo -> [passes, fails, errors], folded into ``agg`` per cohort key after the pass
        self.counts: dict[int, list[int]] = {}

    def label(self, idx: int, trace: Trace, keys: tuple[str, ...]) -> bool:
        """Record the trace's human label, if it has one."""
        assert self.labels is not None
        human, note = self.labels.human(trace)
        if human is None:
            return False
        self.labelled.append((idx, human, note, self.labels.role(trace), list(keys)))
        self.keep.add(idx)
        return True

    def record(
        self, idx: int, combo: int, verdict: Verdict, *, placed: bool = False, trace: Trace | None = None,
        cluster: str | None = None, keys: list[tuple[str, ...]] | None = None,
    ) -> None:
        status = verdict.status
        if status == SKIP:
            self.agg.skipped += 1
        else:
            slot = 0 if status == PASS else 1 if status == FAIL else 2
            row = self.counts.get(combo)
            if row is None:
                row = self.counts[combo] = [0, 0, 0]
            row[slot] += 1
            if cluster is not None and slot < 2:
                assert keys is not None
                self.agg.add_clusters(keys[combo], slot, cluster)
        code = _PASS_CODE if status == PASS else ord(CODE_OF_STATUS[status])
        if placed:
            self.codes[idx] = code  # one code per trace, in dataset order
        else:
            self.codes.append(code)
        if status != PASS or idx in self.keep:
            self.details[idx] = [verdict.reason, verdict.evidence]
            if trace is not None and status in (FAIL, ERROR) and len(self.samples) < self.want:
                self.samples[trace.id] = trace_excerpt(trace)

    def fold(self, keys: list[tuple[str, ...]]) -> None:
        """Turn the counts per combo into counts per cohort key (the Aggregator's)."""
        for combo, counts in self.counts.items():
            self.agg.add_counts(keys[combo], counts)
        self.counts = {}


#: how much of each text in a trace a report keeps with a failing verdict
SAMPLE_CHARS = 4000
#: how many messages and steps of a trace a report keeps; how deep it follows nested values
SAMPLE_ITEMS = 400
SAMPLE_DEPTH = 12


def trace_excerpt(trace: Trace) -> dict[str, Any]:
    """A failing trace as the HTML report's trace view shows it: its JSON
    (``Trace.model_dump(mode="json")``: input, output, messages, steps, metadata)
    with every text cut to SAMPLE_CHARS, lists to SAMPLE_ITEMS and nesting to
    SAMPLE_DEPTH, so one hostile trace cannot make the report unbounded."""

    def cut(value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return value if len(value) <= SAMPLE_CHARS else value[:SAMPLE_CHARS] + f" … [{len(value) - SAMPLE_CHARS} more characters]"
        if isinstance(value, dict | list) and depth >= SAMPLE_DEPTH:
            return f"[{type(value).__name__} nested deeper than {SAMPLE_DEPTH} levels, not kept]"
        if isinstance(value, dict):
            return {str(k)[:SAMPLE_CHARS]: cut(v, depth + 1) for k, v in list(value.items())[:SAMPLE_ITEMS]}
        if isinstance(value, list):
            return [cut(v, depth + 1) for v in value[:SAMPLE_ITEMS]]
        return value

    data = trace.model_dump(mode="json", exclude={"labels"})
    kept: dict[str, Any] = cut(data, 0)
    dropped = {k: len(data[k]) - SAMPLE_ITEMS for k in ("messages", "steps") if len(data.get(k) or ()) > SAMPLE_ITEMS}
    if dropped:
        kept["dropped"] = dropped  # the view says what it does not show
    return kept


def _settle(
    lv: _Live, idx: int, combo: int, future: Future[Verdict], trace: Trace | None = None, cluster: str | None = None,
    keys: list[tuple[str, ...]] | None = None,
) -> None:
    try:
        verdict = future.result()
    except BaseException as exc:  # noqa: BLE001 - a call that died is an error, never a verdict
        if isinstance(exc, KeyboardInterrupt):
            raise
        verdict = Verdict.error(f"{type(exc).__name__}: {exc}")
    lv.record(idx, combo, verdict, placed=True, trace=trace, cluster=cluster, keys=keys)
