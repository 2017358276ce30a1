"""The JSON report. Schema: docs/report-schema.md. Adding an optional field keeps SCHEMA_VERSION;
removing, renaming or changing the meaning of one bumps it (readers check it)."""

from __future__ import annotations

import json
from array import array
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine import STATUS_OF_CODE, ModeResult
from ..values import split_cohort
from ..verdict import step_of
from .safe import JsonArray, _indented, write_atomically, write_json_atomically

if TYPE_CHECKING:
    from ..baseline import BaselineComparison
    from ..regression import Comparison

__all__ = [
    "SCHEMA", "SCHEMA_VERSION", "build_report", "listed_members", "report_document", "trace_records", "write_report",
    "write_atomically",
]

SCHEMA = "pytest-failmodes/report"
SCHEMA_VERSION = 1


def build_report(
    results: Sequence[ModeResult],
    *,
    interrupted: bool = False,
    comparison: BaselineComparison | None = None,
    verdicts: Container[str] | None = None,
    members: bool = True,
    limit: int | None = None,
) -> dict[str, Any]:
    """``interrupted``: the run stopped early (a collection error, Ctrl-C), so
    ``modes`` may be incomplete and the report must not claim ``passed``.
    ``comparison``: the run compared with a baseline (figures per cohort row).
    ``verdicts``: list only the traces with these verdicts (say ``("fail", "error")``
    for a page that shows failures), not every trace. ``members=False`` leaves out the
    cohorts' ``members`` lists (a page that does not compare runs has no use for them).
    ``limit``: list only the first ``limit`` traces of each verdict (the counts stay in
    the cohort rows).

    The whole report as one document; :func:`write_report` streams the same
    bytes to a file without ever holding it (use that for large runs)."""
    document = report_document(results, interrupted=interrupted, comparison=comparison)
    if not members:
        for mode in document["modes"]:
            for cohort in mode["cohorts"]:
                cohort.pop("members", None)
    return _materialise(document, verdicts, limit)


def report_document(
    results: Sequence[ModeResult], *, interrupted: bool = False, comparison: BaselineComparison | None = None
) -> dict[str, Any]:
    """The report with each per-trace list (``traces``, a cohort's ``members``) left as a
    :class:`~.safe.JsonArray` that yields its entries on demand; see :func:`build_report`."""
    from .. import __version__

    found = comparison.comparisons if comparison else {}
    modes = []
    regressed = False
    for r in results:
        breaches = [f"limit:{row.cohort}" for row in r.breached_rows]
        if r.error_breach:
            breaches.append("errors")
        if r.empty_breach:
            breaches.append("empty")
        cohorts = []
        # positions in this mode's "traces" list (skips are not in it), built once when a list is written
        position = _Positions(r.codes)
        for row in r.rows:
            entry = row.to_dict()
            if row.cohort != "all":
                # the label quotes awkward values; readers get them as data too
                entry["values"] = dict(split_cohort(row.cohort))
            if r.members is not None and row.cohort != "all" and row.cohort in r.members:
                entry["members"] = JsonArray(_member_positions(r.members, row.cohort, position), _int_json)
            c = found.get((r.key, row.cohort))
            if c is not None:
                entry["baseline"] = _baseline_figures(c)
                if c.regression:
                    breaches.append(f"regression:{row.cohort}")
            cohorts.append(entry)
        mode_regressed = any(b.startswith("regression:") for b in breaches)
        regressed = regressed or mode_regressed
        status = r.status if r.status in ("broken", "empty") else ("ok" if r.passed and not mode_regressed else "breached")
        modes.append(
            {
                "key": r.key,
                "name": r.name,
                "file": r.source,
                "line": r.line,
                "description": r.description,
                "detector": r.detector,
                "gate": r.gate.to_dict(),
                "status": status,
                "breaches": breaches,
                "broken": r.broken,
                "notes": r.notes,
                "fingerprint": r.fingerprint,
                "skipped": r.skipped,
                "cohorts": cohorts,
                "calibration": r.calibration,
                "traces": JsonArray(_trace_rows(r), _trace_json),
                **({"trials": {k: v for k, v in r.trials.items() if k != "note"}} if r.trials else {}),
            }
        )
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "generator": f"pytest-failmodes {__version__}",
        "passed": not interrupted and not regressed and all(r.passed for r in results),
        "baseline": comparison.baseline if comparison else None,
        # the baseline's modes this run lacks: nothing checked them for regressions
        "baseline_missing": list(comparison.missing) if comparison else [],
        "modes": modes,
    }


def trace_records(result: ModeResult, statuses: Container[str] = ("fail", "error")) -> Iterator[dict[str, Any]]:
    """The report's per-trace entries of one mode (``id``, ``verdict``, ``reason``, ``evidence``,
    and ``cluster`` / ``pair`` where the run has them) whose verdict is in ``statuses``,
    in dataset order, one at a time (a report of failing traces need not hold the passes)."""
    for row in _trace_rows(result):
        if row[1] in statuses:
            yield _trace_dict(row)


def listed_members(
    result: ModeResult, verdicts: Container[str] = ("fail", "error"), limit: int | None = None
) -> dict[str, array[int]]:
    """Each cohort's members (``build_report``'s ``members``) as positions in the mode's list
    of traces with these verdicts, at most ``limit`` of each (``build_report(verdicts=...,
    limit=...)``), the members not in that list left out: what a page of failing traces
    needs to filter them by cohort, in 4 bytes a listed member rather than the whole
    report's lists."""
    if not result.members:
        return {}
    listed = {code for code, status in STATUS_OF_CODE.items() if status in verdicts}
    at: dict[int, int] = {}
    seen: dict[str, int] = {}
    for i, code in enumerate(result.codes):
        if code in listed:
            if limit is not None:
                if seen.get(code, 0) >= limit:
                    continue
                seen[code] = seen.get(code, 0) + 1
            at[i] = len(at)
    out: dict[str, array[int]] = {}
    for cohort, indices in result.members.items():
        if cohort == "all":  # every listed trace: the report writes no members for it either
            continue
        column = array("i", [at[i] for i in indices if i in at])
        if column:
            out[cohort] = column
    return out


def _member_positions(members: Mapping[str, Sequence[int]], cohort: str, position: _Positions) -> Iterator[int]:
    """A cohort's members as positions, read only when its list is written: a mode's members
    may be derived per cohort (compact.CohortMembers), and then no two lists are held at once."""
    yield from position.of(members[cohort])


class _Positions:
    """Trace index -> position among the mode's decided traces (skips are not listed)."""

    __slots__ = ("codes", "_at")

    def __init__(self, codes: str) -> None:
        self.codes = codes
        self._at: array[int] | None = None

    def of(self, indices: Iterable[int]) -> Iterator[int]:
        if self._at is None:
            at, p = array("i"), 0
            for code in self.codes:
                at.append(p)
                p += code != "S"
            self._at = at
        at = self._at
        return (at[i] for i in indices)


#: one per-trace entry: (id, verdict, reason, evidence, cluster or _NONE, pair or _NONE)
_Row = tuple[str, str, Any, Any, Any, Any]
_NONE: Any = object()


def _trace_rows(r: ModeResult) -> Iterator[_Row]:
    """Per-trace verdicts; with ``cluster_by`` / ``pair_by`` each names its cluster / pairing key."""
    details, clusters, pairs = r.details, r.clusters, r.pairs
    none = ("", None)
    for i, (tid, code) in enumerate(zip(r.ids, r.codes)):
        if code == "S":
            continue
        reason, evidence = details.get(i, none)
        yield (
            tid, STATUS_OF_CODE[code], reason, evidence,
            clusters[i] if clusters is not None else _NONE, pairs[i] if pairs is not None else _NONE,
        )


def _trace_dict(row: _Row) -> dict[str, Any]:
    out = {"id": row[0], "verdict": row[1], "reason": row[2], "evidence": row[3]}
    # a verdict that names the step it failed at (Verdict.fail(step_id=...)) says so beside its evidence
    at = step_of(row[3]) if row[1] == "fail" else None
    if at is not None:
        out["step_id"], out["step_index"] = at
    if row[4] is not _NONE:
        out["cluster"] = row[4]
    if row[5] is not _NONE:
        out["pair"] = row[5]
    return out


def _int_json(value: int, _depth: int) -> str:
    return str(value)


_string = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _trace_json(row: _Row, depth: int) -> str:
    """One per-trace entry as ``json_text`` would write it at ``depth`` (the common shapes by hand:
    this runs once per trace and mode)."""
    tid, verdict, reason, evidence, cluster, pair = row
    if type(tid) is not str or type(reason) is not str or (cluster is not _NONE and type(cluster) is not str) or (
        pair is not _NONE and type(pair) is not str
    ) or (verdict == "fail" and type(evidence) is dict):  # evidence that may name a step
        return _indented(_trace_dict(row), depth)
    if evidence is None:
        ev = "null"
    elif type(evidence) is str:
        ev = _string(evidence)
    elif type(evidence) is int:
        ev = str(evidence)
    else:
        ev = _indented(evidence, depth + 1)
    pad = "\n" + " " * (depth + 1)
    out = f'{{{pad}"id": {_string(tid)},{pad}"verdict": "{verdict}",{pad}"reason": {_string(reason)},{pad}"evidence": {ev}'
    if cluster is not _NONE:
        out += f',{pad}"cluster": {_string(cluster)}'
    if pair is not _NONE:
        out += f',{pad}"pair": {_string(pair)}'
    return out + "\n" + " " * depth + "}"


def _materialise(value: Any, verdicts: Container[str] | None = None, limit: int | None = None) -> Any:
    if isinstance(value, JsonArray):
        if value.encode is _trace_json:
            return [_trace_dict(row) for row in _first(value.items, verdicts, limit)]
        return list(value.items)
    if isinstance(value, dict):
        return {k: _materialise(v, verdicts, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_materialise(v, verdicts, limit) for v in value]
    return value


def _first(rows: Iterable[_Row], verdicts: Container[str] | None, limit: int | None) -> Iterator[_Row]:
    """The rows with these verdicts, at most ``limit`` of each verdict."""
    seen: dict[str, int] = {}
    for row in rows:
        if verdicts is not None and row[1] not in verdicts:
            continue
        if limit is not None:
            count = seen.get(row[1], 0)
            if count >= limit:
                continue
            seen[row[1]] = count + 1
        yield row


def _baseline_figures(c: Comparison) -> dict[str, Any]:
    return {
        "base_fails": c.base_fails,
        "base_n": c.base_n,
        "base_rate": c.base_fails / c.base_n if c.base_n else None,
        "delta": c.delta,
        "paired": c.paired,
        "discordant": list(c.discordant) if c.discordant else None,
        "test": c.test,
        "p_value": c.p_value,
        "p_adjusted": c.p_adjusted,
        "regression": c.regression,
        "improvement": c.improvement,
    }


def write_report(
    path: Path,
    results: Sequence[ModeResult],
    *,
    interrupted: bool = False,
    comparison: BaselineComparison | None = None,
) -> None:
    """Write the JSON report to ``path``, atomically (any string in it survives: see report/safe.py)."""
    write_json_atomically(path, report_document(results, interrupted=interrupted, comparison=comparison))
