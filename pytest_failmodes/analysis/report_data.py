"""What the analysis verbs read: a JSON report's verdicts, or a dataset with an outcome field.

Both end as :class:`Outcomes`: per trace an id, fail or pass, the reason, and the
metadata fields known about it. A report knows the values of its cohort fields
(through each cohort row's ``members``); a dataset given beside it adds every
metadata field of its rows, joined by trace id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DatasetError, FailmodesError, did_you_mean

__all__ = [
    "ModeVerdicts",
    "ReportData",
    "Outcomes",
    "load_report",
    "is_report",
    "load_metadata",
    "outcomes_from_report",
    "outcomes_from_dataset",
    "is_fail_value",
]

REPORT_SCHEMA = "pytest-failmodes/report"


@dataclass(frozen=True)
class ModeVerdicts:
    """One mode of a report: its traces' verdicts and reasons, and its cohorts' members."""

    name: str
    key: str
    ids: tuple[str, ...]
    verdicts: tuple[str, ...]
    reasons: tuple[str, ...]
    #: cohort label (``route=billing``) -> positions in ``ids``
    cohorts: Mapping[str, tuple[int, ...]]
    #: per trace, the step its fail names: ``(step_id, step_index)``, or None (empty: none does)
    steps: tuple[tuple[str | None, int | None] | None, ...] = ()
    #: the definition file, as the report names it
    file: str = ""

    def step_at(self, i: int) -> tuple[str | None, int | None] | None:
        """The step the ``i``-th trace's verdict names, if any."""
        return self.steps[i] if self.steps else None

    def cohort_values(self) -> dict[str, list[str | None]]:
        """Per single-field cohort field, each trace's value (``None`` where no row lists it)."""
        out: dict[str, list[str | None]] = {}
        for label, members in self.cohorts.items():
            if label == "all" or " & " in label or "=" not in label:
                continue
            name, _, value = label.partition("=")
            column = out.setdefault(name, [None] * len(self.ids))
            for i in members:
                column[i] = value
        return out


@dataclass(frozen=True)
class ReportData:
    """A JSON report as the analysis verbs see it."""

    path: str
    modes: tuple[ModeVerdicts, ...]

    def names(self) -> list[str]:
        return [m.name for m in self.modes]

    def mode(self, name: str) -> ModeVerdicts:
        """The mode called ``name`` (its name or its key); an error naming the nearest one otherwise."""
        for m in self.modes:
            if name in (m.name, m.key):
                return m
        raise FailmodesError(
            f"no mode {name!r} in this report{did_you_mean(name, self.names())} "
            f"(modes: {', '.join(self.names()) or 'none'})",
            file=self.path,
            key="--mode",
        )

    def select(self, names: Sequence[str] | None) -> list[ModeVerdicts]:
        return [self.mode(n) for n in names] if names else list(self.modes)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FailmodesError("no such file", file=path) from None
    except UnicodeDecodeError:
        raise FailmodesError("not valid UTF-8", file=path) from None
    except OSError as exc:
        raise FailmodesError(f"cannot read: {exc.strerror or exc}", file=path) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise FailmodesError(f"not valid JSON ({getattr(exc, 'msg', exc)})", file=path, line=getattr(exc, "lineno", None)) from None


def is_report(path: Path) -> bool:
    """The file is a JSON report (rather than a dataset)."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return REPORT_SCHEMA.encode() in head


def load_report(path: Path) -> ReportData:
    """Read a JSON report (``docs/report-schema.md``); one-line errors for anything else."""
    data = _read_json(path)
    if not isinstance(data, dict) or data.get("schema") != REPORT_SCHEMA:
        raise FailmodesError(
            "not a pytest-failmodes JSON report (no \"schema\": \"pytest-failmodes/report\"); "
            "write one with pytest --failmodes --failmodes-report=PATH",
            file=path,
        )
    modes = data.get("modes")
    if not isinstance(modes, list):
        raise FailmodesError("'modes' must be a list", file=path, key="modes")
    out = []
    for i, m in enumerate(modes):
        where = f"modes[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("traces"), list):
            raise FailmodesError("a mode needs a 'traces' list", file=path, key=where)
        ids, verdicts, reasons = [], [], []
        steps: list[tuple[str | None, int | None] | None] = []
        for j, t in enumerate(m["traces"]):
            if not isinstance(t, dict) or not isinstance(t.get("id"), str) or t.get("verdict") not in ("pass", "fail", "error"):
                raise FailmodesError("a trace needs an 'id' and a 'verdict' of pass, fail or error", file=path, key=f"{where}.traces[{j}]")
            ids.append(t["id"])
            verdicts.append(t["verdict"])
            reason = t.get("reason")
            reasons.append(reason if isinstance(reason, str) else "")
            steps.append(_step_of_entry(t, path, f"{where}.traces[{j}]"))
        cohorts: dict[str, tuple[int, ...]] = {}
        for row in m.get("cohorts") or ():
            members = row.get("members") if isinstance(row, dict) else None
            if isinstance(members, list) and isinstance(row.get("cohort"), str):
                if not all(isinstance(k, int) and 0 <= k < len(ids) for k in members):
                    raise FailmodesError("'members' must list positions in 'traces'", file=path, key=f"{where}.cohorts")
                cohorts[row["cohort"]] = tuple(members)
        given = m.get("name")
        name = given if isinstance(given, str) else str(m.get("key", f"mode{i}"))
        out.append(ModeVerdicts(
            name, str(m.get("key", name)), tuple(ids), tuple(verdicts), tuple(reasons), cohorts,
            tuple(steps) if any(steps) else (), m["file"] if isinstance(m.get("file"), str) else "",
        ))
    return ReportData(str(path), tuple(out))


def _step_of_entry(t: Mapping[str, Any], path: Path, key: str) -> tuple[str | None, int | None] | None:
    """A trace entry's ``step_id`` / ``step_index`` (optional fields of a fail)."""
    sid, index = t.get("step_id"), t.get("step_index")
    if sid is not None and not isinstance(sid, str):
        raise FailmodesError("'step_id' must be a string", file=path, key=f"{key}.step_id")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
        raise FailmodesError("'step_index' must be a whole number >= 0", file=path, key=f"{key}.step_index")
    return None if sid is None and index is None else (sid, index)


def load_metadata(path: Path) -> dict[str, dict[str, Any]]:
    """Trace id -> metadata of every row of a dataset (what ``pytest --failmodes`` sees as metadata)."""
    return {tid: meta for _, tid, meta in iter_row_metadata(path)}


_FAIL_WORDS = {"fail", "failed", "true", "yes", "1"}
_PASS_WORDS = {"pass", "passed", "false", "no", "0", "ok"}


def is_fail_value(value: Any) -> bool | None:
    """An outcome cell read as fail (True), pass (False) or unreadable (None)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _FAIL_WORDS:
            return True
        if low in _PASS_WORDS:
            return False
    return None


@dataclass
class Outcomes:
    """Decided traces (pass or fail) of one mode, with what is known about each."""

    mode: str
    ids: list[str]
    fails: list[bool]
    reasons: list[str] = field(default_factory=list)
    #: one dict per trace: field -> value
    metadata: list[dict[str, Any]] = field(default_factory=list)
    #: traces left out: error verdicts, or unreadable outcome cells
    errors: int = 0


def outcomes_from_report(mode: ModeVerdicts, metadata: Mapping[str, Mapping[str, Any]] | None = None) -> Outcomes:
    """The decided traces of a report's mode; metadata from its cohorts, then from the dataset."""
    columns = mode.cohort_values()
    out = Outcomes(mode.name, [], [])
    for i, (tid, verdict) in enumerate(zip(mode.ids, mode.verdicts)):
        if verdict == "error":
            out.errors += 1
            continue
        meta: dict[str, Any] = {name: col[i] for name, col in columns.items() if col[i] is not None}
        if metadata is not None and tid in metadata:
            meta.update(metadata[tid])
        out.ids.append(tid)
        out.fails.append(verdict == "fail")
        out.reasons.append(mode.reasons[i])
        out.metadata.append(meta)
    if metadata is not None and out.ids and not any(tid in metadata for tid in out.ids):
        raise FailmodesError(
            f"no trace id of mode {mode.name!r} is in the dataset (report ids look like {out.ids[0]!r}); "
            "is it the dataset the report was made from?",
            key="--dataset",
        )
    return out


def iter_row_metadata(path: Path) -> Any:
    """``(line, id, metadata)`` per dataset row, without building traces: the metadata the
    loader would give (every column but the trace fields, plus a ``metadata`` object's
    keys). Slicing 100k rows needs no message validation."""
    from ..dataset import DatasetSpec, iter_rows
    from ..trace import TRACE_FIELDS

    spec = DatasetSpec(path)
    is_csv = spec.resolved_format == "csv"
    seen: dict[str, int] = {}
    for line, row in iter_rows(path, spec.resolved_format):
        if not isinstance(row, dict):
            raise DatasetError("expected an object with trace fields", file=path, line=line)
        tid = row.get("id")
        if tid in (None, "") or isinstance(tid, (dict, list, bool)):
            raise DatasetError("missing id", file=path, line=line, key="id")
        tid = str(tid)
        if tid in seen:
            raise DatasetError(f"duplicate id {tid!r} (first seen on line {seen[tid]})", file=path, line=line, key="id")
        seen[tid] = line
        meta = {k: v for k, v in row.items() if k not in TRACE_FIELDS and not (is_csv and v == "")}
        nested = row.get("metadata")
        if is_csv and isinstance(nested, str) and nested:
            try:
                nested = json.loads(nested)
            except ValueError:
                raise DatasetError("expected JSON in this CSV cell", file=path, line=line, key="metadata") from None
        if isinstance(nested, dict):
            meta.update(nested)
        yield line, tid, meta
    if not seen:
        raise DatasetError("dataset is empty: no traces found", file=path)


def outcomes_from_dataset(path: Path, outcome: str) -> Outcomes:
    """A dataset whose ``outcome`` field says fail or pass (``failed: 1``, ``verdict: fail`` …)."""
    out = Outcomes(outcome, [], [])
    seen_field = False
    known: dict[str, None] = {}
    for line, tid, meta in iter_row_metadata(path):
        value = meta.pop(outcome, None)
        if value is None:
            known.update(dict.fromkeys(meta))
            out.errors += 1
            continue
        seen_field = True
        verdict = is_fail_value(value)
        if verdict is None:
            raise DatasetError(
                f"cannot read {value!r} as an outcome; use 1/0, true/false or fail/pass", file=path, line=line, key=outcome
            )
        out.ids.append(tid)
        out.fails.append(verdict)
        out.metadata.append(meta)
    out.reasons = [""] * len(out.ids)
    if not seen_field:
        raise DatasetError(f"no row has the outcome field {outcome!r}{did_you_mean(outcome, known)}", file=path, key="--outcome")
    return out


def field_names(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every field named in any row, in first-seen order."""
    from itertools import chain

    return list(dict.fromkeys(chain.from_iterable(rows)))
