"""Streaming dataset loaders: JSONL, JSON array, CSV.

Rows are read one at a time and turned into :class:`Trace` objects; nothing
keeps a second copy of the dataset. Every error names file, line and field.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import DatasetError, strip_union_tags
from .trace import MISSING, TRACE_FIELDS, Trace, _dig

__all__ = ["DatasetSpec", "iter_traces", "iter_rows", "FORMATS", "MAX_DEPTH", "MAX_CSV_CELL"]

FORMATS = ("jsonl", "json", "csv")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}
# CSV cells that hold structured trace fields are JSON text
_STRUCTURED = ("messages", "steps", "metadata", "labels")
#: deepest nesting of objects and arrays in a row: every consumer (rules, the
#: HTML report, JSON writers) can walk this far without hitting Python's stack limit
MAX_DEPTH = 200
#: longest CSV cell, in characters (the csv module's default is 131,072)
MAX_CSV_CELL = 16 * 1024 * 1024


@dataclass(frozen=True)
class DatasetSpec:
    """Where the traces are and how a row maps onto a :class:`Trace`."""

    path: Path
    #: trace field -> dotted path in the row (``{"input": "request.query"}``)
    fields: Mapping[str, str] = field(default_factory=dict)
    format: str | None = None
    #: rows need no output: a target produces it (``target:`` in the definition)
    inputs_only: bool = False
    #: file-level ``where:``: only the traces it keeps are evaluated (a :class:`~pytest_failmodes.where.Where`)
    where: Callable[[Trace], bool] | None = None

    @property
    def resolved_format(self) -> str:
        if self.format:
            return self.format
        fmt = _SUFFIXES.get(self.path.suffix.lower())
        if fmt is None:
            raise DatasetError(
                f"cannot tell the format from the suffix {self.path.suffix!r}; "
                f"use .jsonl, .json or .csv, or set dataset.format",
                file=self.path,
            )
        return fmt


def iter_traces(spec: DatasetSpec) -> Iterator[tuple[int, Trace]]:
    """Yield ``(line, trace)`` for every row; raise :class:`DatasetError` on bad input."""
    seen: dict[str, int] = {}
    mapper = _RowMapper(spec)
    count = kept = 0
    for line, row in iter_rows(spec.path, spec.resolved_format):
        trace = mapper(line, row)
        # by id, not by line: a one-line JSON array puts every row on line 1
        first = seen.get(trace.id)
        if first is not None:
            raise DatasetError(
                f"duplicate id {trace.id!r} (first seen on line {first})",
                file=spec.path,
                line=line,
                key=mapper.source_name("id"),
            )
        seen[trace.id] = line
        count += 1
        if spec.where is not None and not spec.where(trace):
            continue
        kept += 1
        yield line, trace
    if count == 0:
        raise DatasetError("dataset is empty: no traces found", file=spec.path)
    if kept == 0:
        # a filter that keeps nothing would make every rate 0/0: say so instead
        raise DatasetError(f"where: {spec.where!r} matched none of the {count} traces", file=spec.path)


def iter_rows(path: Path, fmt: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, parsed row)`` from a dataset file, without building traces."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise DatasetError(f"cannot open dataset: {exc.strerror or exc}", file=path) from None
    if not stat.S_ISREG(mode):
        # a FIFO blocks the run forever, /dev/zero reads without end, a directory is a typo
        raise DatasetError(f"not a regular file ({_file_kind(mode)}); give the path of a dataset file", file=path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise DatasetError(f"cannot open dataset: {exc.strerror or exc}", file=path) from None
    with handle:
        if fmt == "jsonl":
            yield from _jsonl_rows(handle, path)
        elif fmt == "json":
            yield from _json_rows(_decode(handle.read(), path), path)
        elif fmt == "csv":
            yield from _csv_rows(handle, path)
        else:  # pragma: no cover - validated with the definition
            raise DatasetError(f"unknown format {fmt!r}", file=path)


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


def _decode(data: bytes, path: Path, line: int | None = None) -> str:
    # the BOM is skipped by hand: with "utf-8-sig" the error's offsets do not
    # count it, and the byte and line named would be the wrong ones
    skip = len(codecs.BOM_UTF8) if line in (None, 1) and data.startswith(codecs.BOM_UTF8) else 0
    try:
        return str(memoryview(data)[skip:], "utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start + skip
        where = line if line is not None else data.count(b"\n", 0, start) + 1
        raise DatasetError(
            f"not valid UTF-8 (byte 0x{data[start]:02x}); save the file as UTF-8",
            file=path,
            line=where,
        ) from None


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests objects/arrays more than :data:`MAX_DEPTH` levels (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _deep_error(path: Path, line: int, key: str | None = None) -> DatasetError:
    return DatasetError(f"nested more than {MAX_DEPTH} levels deep; flatten the row", file=path, line=line, key=key)


def _jsonl_rows(handle: io.BufferedReader, path: Path) -> Iterator[tuple[int, Any]]:
    loads = json.loads
    for line, raw in enumerate(handle, 1):
        if not raw.strip():
            continue
        # without its line break, an error at the end of the row gets the row's
        # column rather than "column 1" of a line that does not exist
        text = _decode(raw, path, line).rstrip("\r\n")
        try:
            yield line, loads(text)
        except RecursionError:
            raise _deep_error(path, line) from None
        except ValueError as exc:
            msg = getattr(exc, "msg", str(exc))
            col = getattr(exc, "colno", None)
            raise DatasetError(
                f"malformed JSON: {msg}" + (f" at column {col}" if col else ""),
                file=path,
                line=line,
            ) from None


def _json_rows(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    # raw_decode element by element, so each row knows its line
    decoder = json.JSONDecoder()
    n = len(text)

    def skip_ws(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    def fail(msg: str, i: int) -> DatasetError:
        return DatasetError(msg, file=path, line=text.count("\n", 0, i) + 1)

    pos = skip_ws(0)
    if pos >= n or text[pos] != "[":
        raise fail("expected a JSON array of traces", pos)
    pos = skip_ws(pos + 1)
    line, counted = 1, 0
    if pos < n and text[pos] == "]":
        return
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            row, end = decoder.raw_decode(text, pos)
        except RecursionError:
            raise _deep_error(path, line) from None
        except ValueError as exc:
            raise fail(f"malformed JSON: {getattr(exc, 'msg', exc)}", getattr(exc, "pos", pos)) from None
        yield line, row
        pos = skip_ws(end)
        if pos < n and text[pos] == ",":
            pos = skip_ws(pos + 1)
            continue
        if pos < n and text[pos] == "]":
            if skip_ws(pos + 1) < n:
                raise fail("unexpected content after the closing ']'", skip_ws(pos + 1))
            return
        raise fail("malformed JSON: expected ',' or ']' between traces", pos)


def _csv_rows(handle: io.BufferedReader, path: Path) -> Iterator[tuple[int, Any]]:
    # surrogateescape: the wrapper decodes in chunks, so a decode error would
    # point at the wrong line; undecodable bytes are found per row instead.
    # ``with`` closes the wrapper before it is dropped (no ResourceWarning).
    # process-wide, and only ever raised: a long answer in one cell is a valid row
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CSV_CELL))
    with io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="") as text:
        reader = csv.DictReader(text, strict=True)
        start = 1
        try:
            header = reader.fieldnames
            if header is None:
                return
            _check_utf8(header, path, start)
            if len(set(header)) != len(header):
                dup = next(h for h in header if header.count(h) > 1)
                raise DatasetError(f"duplicate column {dup!r} in the header", file=path, line=1)
            start = reader.reader.line_num + 1
            for row in reader:
                if None in row:
                    raise DatasetError(
                        f"row has {len(header) + len(row[None])} cells; the header has {len(header)}",  # type: ignore[index]
                        file=path,
                        line=start,
                    )
                if any(v is None for v in row.values()):
                    missing = next(k for k, v in row.items() if v is None)
                    raise DatasetError(
                        f"row has too few cells; no value for column {missing!r}",
                        file=path,
                        line=start,
                        key=missing,
                    )
                _check_utf8(row.values(), path, start)
                yield start, row
                start = reader.reader.line_num + 1
        except csv.Error as exc:
            # DictReader.line_num lags behind on errors; an unclosed quote runs
            # to the end of the file, so the row where it opened is more useful
            line = start if "unexpected end of data" in str(exc) else reader.reader.line_num
            if "field larger than field limit" in str(exc):
                raise DatasetError(
                    f"a cell is longer than {csv.field_size_limit():,} characters, the limit for CSV cells; "
                    "use JSONL for larger values",
                    file=path,
                    line=max(start, 1),
                ) from None
            raise DatasetError(f"malformed CSV: {exc}", file=path, line=max(line, 1)) from None


_UNDECODED = re.compile("[\udc80-\udcff]")


def _check_utf8(cells: Iterable[str], path: Path, line: int) -> None:
    for cell in cells:
        m = _UNDECODED.search(cell)
        if m is not None:
            raise DatasetError(
                f"not valid UTF-8 (byte 0x{ord(m.group()) - 0xDC00:02x}); save the file as UTF-8",
                file=path,
                line=line + cell.count("\n", 0, m.start()),
            )
        line += cell.count("\n")  # quoted cells can span lines


class _RowMapper:
    """Turns a raw row into a Trace according to ``fields:``."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.path = spec.path
        self.fields = dict(spec.fields)
        self.is_csv = spec.resolved_format == "csv"
        self.inputs_only = spec.inputs_only
        # a column mapped onto a trace field is not also metadata
        self.consumed = {src for src in self.fields.values() if "." not in src}

    def source_name(self, trace_field: str) -> str:
        return self.fields.get(trace_field, trace_field)

    def __call__(self, line: int, row: Any) -> Trace:
        if not isinstance(row, dict):
            raise DatasetError(
                f"expected an object with trace fields, got {_kind(row)}", file=self.path, line=line
            )
        data: dict[str, Any] = {}
        for name in TRACE_FIELDS:
            src = self.fields.get(name, name)
            value = _dig(row, src) if src not in row else row[src]
            if value is not MISSING:
                data[name] = value
        metadata: dict[str, Any] = {
            k: v for k, v in row.items() if k not in self.consumed and k not in TRACE_FIELDS
        }
        if self.is_csv:
            for name in _STRUCTURED:
                data[name] = self._json_cell(line, name, data.get(name))
                if _too_deep(data[name]):
                    raise _deep_error(self.path, line, self.source_name(name))
            metadata = {k: v for k, v in metadata.items() if v != ""}
        else:
            deep = next((k for k, v in row.items() if _too_deep(v)), None)
            if deep is not None:
                raise _deep_error(self.path, line, str(deep))
        for name in _STRUCTURED:  # null means absent
            if name in data and data[name] is None:
                del data[name]
        given = data.get("metadata")
        if isinstance(given, dict):
            metadata.update(given)
            data["metadata"] = metadata
        elif given is None or given is MISSING:
            data["metadata"] = metadata
        if "id" not in data or data["id"] in (None, ""):
            raise DatasetError(
                "missing id" + (f" (mapped from {self.fields['id']!r})" if "id" in self.fields else ""),
                file=self.path,
                line=line,
                key=self.source_name("id"),
            )
        if self.inputs_only and "input" not in data and "messages" not in data:
            raise DatasetError(
                "missing input: a target needs each row's input"
                + (f" (mapped from {self.fields['input']!r})" if "input" in self.fields else ""),
                file=self.path,
                line=line,
                key=self.source_name("input"),
            )
        if self.inputs_only:
            data.setdefault("output", "")
        try:
            return Trace.model_validate(data)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            loc = [str(p) for p in strip_union_tags(err["loc"])]
            key = self.source_name(loc[0]) + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc[1:]) if loc else None
            raise DatasetError(_pydantic_msg(err), file=self.path, line=line, key=key) from None

    def _json_cell(self, line: int, name: str, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value == "":
            return None
        try:
            return json.loads(value)
        except RecursionError:
            raise _deep_error(self.path, line, self.source_name(name)) from None
        except ValueError:
            raise DatasetError(
                "expected JSON in this CSV cell", file=self.path, line=line, key=self.source_name(name)
            ) from None


_KINDS = {
    list: "an array",
    str: "a string",
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), f"a {type(value).__name__}")


def _pydantic_msg(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "missing":
        return "required field is missing"
    if err["type"] == "value_error":  # pydantic prefixes our own messages with "Value error, "
        msg = str(err["ctx"]["error"]) if "error" in err.get("ctx", {}) else msg
    return msg[0].lower() + msg[1:] if msg else msg
