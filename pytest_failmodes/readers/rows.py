"""Flat rows (``id``/``input``/``output`` + metadata, mapped by ``fields:``) and
OpenAI Chat Completions ``messages``: the format every other chat dialect is
converted into before it becomes a trace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import DatasetError, strip_union_tags
from ..trace import MISSING, TRACE_FIELDS, Trace, _dig, assemble_trace, plain_fields, trace_from_fields
from . import Options, Record, kind_of
from ._source import data_suffix, deep_error, too_deep

__all__ = ["RowMapper", "RowsReader", "READERS"]

# CSV cells that hold structured trace fields are JSON text
_STRUCTURED = ("messages", "steps", "metadata", "labels")
_FIELD_SET = frozenset(TRACE_FIELDS)
# fields that must be objects; a same-named column of another type is kept as metadata
_OBJECTS = ("metadata", "labels")


class RowMapper:
    """Turns a raw row into a Trace according to ``fields:``."""

    def __init__(self, options: Options) -> None:
        self.fields: dict[str, str | list[str]] = dict(options.fields)
        self.inputs_only = options.inputs_only
        self._csv: dict[Path, bool] = {}
        self._last_path: Path | None = None
        self._last_csv = False
        #: rows are read as they are (no ``fields:``, no target): :func:`_plain_row` may build them
        self.plain = not self.fields and not self.inputs_only
        # a column mapped onto a trace field is not also metadata; the columns a composite
        # id is built from are (task_id, trial: what cluster_by and pair_by name)
        self.consumed = {value for value in self.fields.values() if isinstance(value, str) and "." not in value}

    def source_name(self, trace_field: str) -> str:
        src = self.fields.get(trace_field, trace_field)
        return src if isinstance(src, str) else "+".join(src)

    def __call__(self, rec: Record, row: Any | None = None) -> Trace:
        row = rec.value if row is None else row
        path, line = rec.file, rec.line
        if not isinstance(row, dict):
            raise DatasetError(f"expected an object with trace fields, got {kind_of(row)}", file=path, line=line)
        if path is self._last_path:  # rows come file by file: not even the Path's hash per row
            is_csv = self._last_csv
        else:
            found = self._csv.get(path)
            if found is None:  # once per file: Path.suffixes is not free
                found = self._csv[path] = data_suffix(path) == ".csv"
            is_csv = self._last_csv = found
            self._last_path = path
        if self.plain and not is_csv:
            trace = _plain_row(row)
            if trace is not None:
                return trace
        data: dict[str, Any]
        if not self.fields:
            # no mapping: each trace field is the row's key of that name (what _mapped does, in one step)
            data = {name: row[name] for name in TRACE_FIELDS if name in row}
            metadata: dict[str, Any] = {k: v for k, v in row.items() if k not in _FIELD_SET}
        else:
            data = {}
            metadata = self._mapped(row, data)
        if is_csv:
            for name in _STRUCTURED:
                data[name] = self._json_cell(rec, name, data.get(name))
            metadata = {k: v for k, v in metadata.items() if v != ""}
        for name in _STRUCTURED:  # null means absent
            if name in data and data[name] is None:
                del data[name]
        for name in _OBJECTS:
            # a column that merely shares the name (a free-text "labels" column)
            # is data like any other, not the trace's labels; a mapped one is meant
            if name in data and not isinstance(data[name], dict) and name not in self.fields:
                metadata[name] = data.pop(name)
        given = data.get("metadata")
        if isinstance(given, dict):
            metadata.update(given)
            data["metadata"] = metadata
        elif given is None or given is MISSING:
            data["metadata"] = metadata
        if "id" not in data or data["id"] in (None, ""):
            raise DatasetError(
                "missing id" + (f" (mapped from {self.source_name('id')!r})" if "id" in self.fields else ""),
                file=path,
                line=line,
                key=self.source_name("id"),
            )
        if self.inputs_only and "input" not in data and "messages" not in data:
            raise DatasetError(
                "missing input: a target needs each row's input"
                + (f" (mapped from {self.source_name('input')!r})" if "input" in self.fields else ""),
                file=path,
                line=line,
                key=self.source_name("input"),
            )
        if self.inputs_only:
            data.setdefault("output", "")
        trace = trace_from_fields(data)
        if trace is not None:
            return trace
        try:
            return Trace.model_validate(data)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            loc = [str(p) for p in strip_union_tags(err["loc"])]
            key = self.source_name(loc[0]) + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc[1:]) if loc else None
            raise DatasetError(_pydantic_msg(err), file=path, line=line, key=key) from None

    def _mapped(self, row: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """Fill ``data`` with the trace fields that ``fields:`` maps; the row's other keys (its metadata)."""
        for name in TRACE_FIELDS:
            src = self.fields.get(name, name)
            if isinstance(src, list):
                # fields: {id: [task_id, trial]}: one value from several columns
                parts = [_dig(row, s) if s not in row else row[s] for s in src]
                value = "/".join(str(p) for p in parts) if all(p not in (MISSING, None, "") for p in parts) else MISSING
            else:
                value = _dig(row, src) if src not in row else row[src]
            if value is not MISSING:
                data[name] = value
        return {k: v for k, v in row.items() if k not in self.consumed and k not in TRACE_FIELDS}

    def _json_cell(self, rec: Record, name: str, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value == "":
            return None
        try:
            parsed = json.loads(value)
        except RecursionError:
            raise deep_error(rec.file, rec.line, self.source_name(name)) from None
        except ValueError:
            if name in _OBJECTS and name not in self.fields and value.lstrip()[:1] not in ("{", "["):
                return value  # plain text in a column called "labels": kept as metadata
            raise DatasetError(
                "expected JSON in this CSV cell", file=rec.file, line=rec.line, key=self.source_name(name)
            ) from None
        if too_deep(parsed):
            raise deep_error(rec.file, rec.line, self.source_name(name))
        return parsed


class RowsReader:
    """One row per trace: flat fields, or an OpenAI ``messages`` list."""

    name = "rows"

    def sniff(self, value: Any) -> int:
        return 1 if isinstance(value, dict) and ("output" in value or "messages" in value) else 0

    def read(self, records: Iterator[Record], options: Options) -> Iterator[tuple[Record, Trace]]:
        mapper = RowMapper(options)
        for rec in records:
            yield rec, mapper(rec)


def _plain_row(row: dict[str, Any]) -> Trace | None:
    """The trace :meth:`RowMapper.__call__` builds of a JSON row without ``fields:``
    whose keys are all trace fields, in one step; None for any other row (the
    general path then reads it, and words its errors).

    Most rows of a large dataset have this shape, and the general path's
    intermediate dicts were a good part of a rule run's cost. What it does to
    such a row, done here too: a null ``messages`` / ``steps`` / ``metadata`` /
    ``labels`` is absent, and the trace always has ``metadata`` set."""
    if not row.keys() <= _FIELD_SET:
        return None  # other keys are metadata
    values = plain_fields(row, None)
    if values is None:
        return None
    # the fields the general path's data holds: nulls of structured fields dropped, metadata always
    fields_set = {k for k, v in row.items() if v is not None or k not in _STRUCTURED}
    fields_set.add("metadata")
    return assemble_trace(*values, fields_set)


def _pydantic_msg(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "missing":
        return "required field is missing"
    if err["type"] == "value_error":  # pydantic prefixes our own messages with "Value error, "
        msg = str(err["ctx"]["error"]) if "error" in err.get("ctx", {}) else msg
    return msg[0].lower() + msg[1:] if msg else msg


READERS = {"rows": RowsReader()}
