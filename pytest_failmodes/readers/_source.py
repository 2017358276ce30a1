"""Where records come from: files, folders, globs, gzip; JSONL, JSON and CSV.

A *record* is one parsed JSON value (a row, a span, an export document) with
the file and line it came from. Readers turn records into traces; this module
knows nothing of traces. JSONL and CSV stream row by row; a JSON document is
read whole (it is one value), so very large exports belong in JSONL.
"""

from __future__ import annotations

import codecs
import csv
import glob
import gzip
import io
import json
import json.scanner
import os
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from ..errors import DatasetError

__all__ = [
    "Record", "Archive", "CONTAINERS", "SUFFIXES", "MAX_DEPTH", "MAX_CSV_CELL", "container_of", "dataset_files", "is_data_path",
    "iter_records", "iter_rows", "too_deep", "deep_error",
]

CONTAINERS = ("jsonl", "json", "csv")
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".eval": "archive"}
_GLOB = re.compile(r"[*?\[]")
#: deepest nesting of objects and arrays in a row: every consumer (rules, the
#: HTML report, JSON writers) can walk this far without hitting Python's stack limit
MAX_DEPTH = 200
#: longest CSV cell, in characters (the csv module's default is 131,072)
MAX_CSV_CELL = 16 * 1024 * 1024


class Record(NamedTuple):
    """One parsed value and where it was read."""

    file: Path
    line: int
    value: Any


class Archive(NamedTuple):
    """A file that only its format's own library reads (an Inspect AI ``.eval`` zip):
    the record of such a file holds this instead of a parsed value."""

    path: Path


def data_suffix(path: Path) -> str:
    """The suffix that names the container, looking through a ``.gz``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def container_of(path: Path, declared: str | None) -> str:
    """``jsonl``, ``json`` or ``csv`` for one file: the declared one, else from the suffix."""
    if declared in CONTAINERS:
        return declared
    fmt = SUFFIXES.get(data_suffix(path))
    if fmt is None:
        raise DatasetError(
            f"cannot tell the format from the suffix {path.suffix!r}; "
            f"use .jsonl, .json or .csv, or set dataset.format",
            file=path,
        )
    return fmt


def is_data_path(path: Path) -> bool:
    """Whether a dataset path's type is known without ``format:``: a folder, a
    glob, or a file with a data suffix (optionally gzip'd)."""
    return bool(_GLOB.search(str(path))) or path.is_dir() or data_suffix(path) in SUFFIXES


def dataset_files(path: Path) -> list[Path]:
    """The files a dataset path names: itself, a folder's data files, or a glob's matches.

    A folder contributes its files whose suffix names a container (``.jsonl``,
    ``.json``, ``.csv``, each optionally ``.gz``), sorted by name so runs are
    repeatable; other files in it are ignored, and a folder with none is an error.
    """
    text = str(path)
    if _GLOB.search(path.name) or any(_GLOB.search(p) for p in path.parts[:-1]):
        found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not found:
            raise DatasetError("the glob matches no file", file=path)
        return found
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and data_suffix(p) in SUFFIXES)
        if not found:
            seen = sorted(p.name for p in path.iterdir())[:5]
            raise DatasetError(
                "the folder holds no .jsonl, .json or .csv file (optionally .gz)"
                + (f"; it has: {', '.join(seen)}" if seen else "; it is empty"),
                file=path,
            )
        return found
    return [path]


def open_binary(path: Path) -> IO[bytes]:
    """Open a data file for reading bytes, decompressing gzip (by suffix or magic bytes).

    Only regular files: a FIFO would block the run forever, /dev/zero reads without end.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise DatasetError(f"cannot open dataset: {exc.strerror or exc}", file=path) from None
    if not stat.S_ISREG(mode):
        raise DatasetError(f"not a regular file ({_file_kind(mode)}); give the path of a dataset file", file=path)
    try:
        handle: IO[bytes] = open(path, "rb")
    except OSError as exc:
        raise DatasetError(f"cannot open dataset: {exc.strerror or exc}", file=path) from None
    if path.suffix.lower() == ".gz" or handle.peek(2)[:2] == b"\x1f\x8b":  # type: ignore[attr-defined]
        handle.close()
        # opened by name, the gzip file owns (and closes) the file it reads
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return handle


_new_tuple = tuple.__new__


def iter_records(paths: Iterable[Path], declared: str | None) -> Iterator[Record]:
    """Every record of every file, in order, streaming where the container allows."""
    # the containers check each row's depth as they parse it (iter_rows)
    for path in paths:
        fmt = container_of(path, declared)
        for line, value in iter_rows(path, fmt):
            # tuple.__new__: a NamedTuple's own __new__ is a Python function, called for every row
            yield _new_tuple(Record, (path, line, value))


def iter_rows(path: Path, fmt: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, parsed row)`` from a dataset file, without building traces.

    A row nested more than :data:`MAX_DEPTH` levels deep is an error (CSV rows are flat).
    """
    if fmt == "archive":
        open_binary(path).close()  # the same checks as any data file: it exists, it is a regular file
        yield 1, Archive(path)
        return
    handle = open_binary(path)
    try:
        with handle:
            if fmt == "jsonl":
                yield from _jsonl_rows(handle, path)
            elif fmt == "json":
                yield from _json_rows(_decode(handle.read(), path), path)
            elif fmt == "csv":
                yield from _csv_rows(handle, path)
            else:  # pragma: no cover - validated with the definition
                raise DatasetError(f"unknown format {fmt!r}", file=path)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        # a truncated or corrupt .gz surfaces mid-read
        raise DatasetError(f"cannot read the compressed file: {exc}", file=path) from None


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


def too_deep(value: Any) -> bool:
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


def deep_error(path: Path, line: int, key: str | None = None) -> DatasetError:
    return DatasetError(f"nested more than {MAX_DEPTH} levels deep; flatten the row", file=path, line=line, key=key)


def _check_depth(path: Path, line: int, value: Any, brackets: int) -> None:
    # a row with at most MAX_DEPTH opening brackets in its text cannot nest deeper:
    # counting them (in C) spares walking every row, which cost more than parsing it
    if brackets > MAX_DEPTH and isinstance(value, (dict, list)) and too_deep(value):
        key = next((str(k) for k, v in value.items() if too_deep(v)), None) if isinstance(value, dict) else None
        raise deep_error(path, line, key)


def _jsonl_rows(handle: IO[bytes], path: Path) -> Iterator[tuple[int, Any]]:
    loads = json.loads
    scan = _SCAN
    fast = _FAST_ROW
    for line, raw in enumerate(handle, 1):
        if fast is not None:
            # the common row, to pydantic-core's JSON parser (jiter), about twice as fast
            # as json's and sharing short strings (the keys repeated on every row)
            # between rows. It takes what json takes, refuses the rest (a BOM, an
            # encoded or escaped lone surrogate, a parse error), and those rows take
            # the paths below, unchanged. Wrapped in one more array, a row it accepts
            # nests at most MAX_DEPTH levels (see _fast_row), so no depth check here.
            try:
                wrapped = fast(b"[" + raw + b"]")
            except ValueError:
                pass
            else:
                if len(wrapped) == 1:
                    yield line, wrapped[0]
                    continue
        # without the fast parser, or a row it refused (one nested too deep for it, an
        # escaped lone surrogate), straight to json's C scanner: json.loads would detect
        # the encoding, decode and match whitespace in Python around the same
        # scan. Strict UTF-8 refuses what json's "surrogatepass" would let through;
        # anything unusual (a BOM, padding, a parse error) takes the paths below.
        try:
            text = raw.decode()
            value, end = scan(text, 0)
        except RecursionError:
            raise deep_error(path, line) from None
        except (ValueError, StopIteration):  # UnicodeDecodeError is a ValueError
            pass
        else:
            if end == len(text) or text[end:] in _EOL:
                _check_depth(path, line, value, text.count("{") + text.count("["))
                yield line, value
                continue
        # bytes to json.loads, as json reads them (a BOM, whitespace around the
        # value); the strict path below explains a line that fails. json decodes
        # bytes with "surrogatepass", so a line that may hold an encoded
        # surrogate (0xED lead byte) takes the strict path too.
        if b"\xed" not in raw:
            try:
                value = loads(raw)
            except RecursionError:
                raise deep_error(path, line) from None
            except (ValueError, UnicodeDecodeError):
                pass
            else:
                brackets = raw.count(b"{") + raw.count(b"[")
                if brackets > MAX_DEPTH:  # _check_depth's own first test, without its call per row
                    _check_depth(path, line, value, brackets)
                yield line, value
                continue
        if not raw.strip():
            continue
        # without its line break, an error at the end of the row gets the row's
        # column rather than "column 1" of a line that does not exist
        text = _decode(raw, path, line).rstrip("\r\n")
        try:
            value = loads(text)
        except RecursionError:
            raise deep_error(path, line) from None
        except ValueError as exc:
            msg = getattr(exc, "msg", str(exc))
            col = getattr(exc, "colno", None)
            raise DatasetError(
                f"malformed JSON: {msg}" + (f" at column {col}" if col else ""),
                file=path,
                line=line,
            ) from None
        _check_depth(path, line, value, raw.count(b"{") + raw.count(b"["))
        yield line, value


#: json's own C scanner (what json.loads runs under its Python wrappers)
_SCAN = json.scanner.make_scanner(json.JSONDecoder())
_EOL = ("\n", "\r\n")


def _fast_row() -> Any:
    """pydantic-core's ``from_json`` where it can stand in for ``json.loads`` on a row,
    else None (the rows are then read with json alone).

    It parses the same values (numbers, ``NaN``/``Infinity``, the last of duplicate
    keys) and refuses more (lone surrogates, a BOM); the rows it refuses are read
    as before. It stops at a fixed nesting depth: a row wrapped in one more array
    parses only if the row nests at most :data:`MAX_DEPTH` levels, checked here on
    this version (a version that lets deeper rows through is not used).
    """
    try:
        from pydantic_core import from_json
    except ImportError:  # pragma: no cover - pydantic v2 always has pydantic-core
        return None
    deepest = MAX_DEPTH + 2  # a row one level too deep, in its wrapper
    try:
        from_json(b"[" * deepest + b"]" * deepest)
    except ValueError:
        pass
    else:  # pragma: no cover - depends on the installed pydantic-core
        return None
    try:  # and it reads what json reads, on a row that has a bit of everything
        probe = b'[{"a": [1, -0.5e-3, "\\u00e9\\ud83d\\ude00", true, null], "a": NaN, "b": {}}]'
        if repr(from_json(probe)) != repr(json.loads(probe)):  # pragma: no cover
            return None
    except ValueError:  # pragma: no cover
        return None
    return from_json


_FAST_ROW = _fast_row()


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
    if pos < n and text[pos] == "{":
        # one document per file: a trace, an export, a log
        try:
            doc, end = decoder.raw_decode(text, pos)
        except RecursionError:
            raise deep_error(path, text.count("\n", 0, pos) + 1) from None
        except ValueError as exc:
            raise fail(f"malformed JSON: {getattr(exc, 'msg', exc)}", getattr(exc, "pos", pos)) from None
        if skip_ws(end) < n:
            raise fail("unexpected content after the closing '}'", skip_ws(end))
        line = text.count("\n", 0, pos) + 1
        _check_depth(path, line, doc, text.count("{", pos, end) + text.count("[", pos, end))
        yield line, doc
        return
    if pos >= n or text[pos] != "[":
        raise fail("expected a JSON array of traces (or one JSON object)", pos)
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
            raise deep_error(path, line) from None
        except ValueError as exc:
            raise fail(f"malformed JSON: {getattr(exc, 'msg', exc)}", getattr(exc, "pos", pos)) from None
        _check_depth(path, line, row, text.count("{", pos, end) + text.count("[", pos, end))
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


def _csv_rows(handle: IO[bytes], path: Path) -> Iterator[tuple[int, Any]]:
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
