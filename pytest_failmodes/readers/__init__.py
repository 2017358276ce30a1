"""Trace formats: one reader per format behind one small protocol.

A dataset is a stream of *records* (rows, spans, export documents; see
:mod:`._source`). A :class:`Reader` says how sure it is that a record is in
its format (:meth:`Reader.sniff`) and turns the record stream into traces
(:meth:`Reader.read`). ``dataset.format:`` names the reader; without it, the
first record decides: the most confident reader wins, a tie is an error that
names both, and a file nothing recognises gets the flat-rows reader's errors
(which name the keys it expected).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol

from ..errors import DatasetError
from ..trace import Trace
from ._source import CONTAINERS, Record, dataset_files, iter_records

__all__ = ["Reader", "Options", "Record", "READER_NAMES", "FORMAT_NAMES", "get_reader", "read_traces", "detect"]


class Options(Protocol):
    """What a reader needs to know of the dataset (``DatasetSpec`` satisfies it)."""

    @property
    def path(self) -> Path: ...
    @property
    def fields(self) -> Mapping[str, str | list[str]]: ...
    @property
    def format(self) -> str | None: ...
    @property
    def inputs_only(self) -> bool: ...


class Reader(Protocol):
    """A trace format."""

    #: the name ``dataset.format:`` uses
    name: str

    def sniff(self, value: Any) -> int:
        """How sure the reader is that this first record is its format: 0 (no) to 100."""
        ...

    def read(self, records: Iterator[Record], options: Options) -> Iterator[tuple[Record, Trace]]:
        """Traces from the records, each with the record it starts at (for errors and lines)."""
        ...


#: reader name -> module defining ``READER``; imported only when used
_MODULES = {
    "rows": "rows",
    "openinference": "openinference",
    "otlp": "otlp",
    "anthropic": "chat",
    "responses": "chat",
    "multiagent": "multiagent",
    "langsmith": "langsmith",
    "langfuse": "langfuse",
    "inspect": "inspectlogs",
}
READER_NAMES = tuple(_MODULES)
#: every value ``dataset.format:`` accepts: a container (rows in that file
#: type, as before readers existed), a reader, and ``openai`` (rows with messages)
FORMAT_NAMES = CONTAINERS + ("openai",) + READER_NAMES


def get_reader(name: str) -> Reader:
    """The reader called ``name`` (``openai`` is the rows reader: messages are rows)."""
    if name == "openai":
        name = "rows"
    module = import_module(f".{_MODULES[name]}", __name__)
    readers: dict[str, Reader] = module.READERS
    return readers[name]


#: a sniff score from which a reader is sure: two such readers make detection ambiguous
SURE = 50


def detect(first: Record) -> Reader:
    """The reader for a dataset whose first record is ``first``."""
    scored = sorted(((get_reader(n).sniff(first.value), n) for n in READER_NAMES if n != "rows"), reverse=True)
    best, name = scored[0] if scored else (0, "rows")
    if best <= 0:
        return get_reader("rows")
    # two readers both sure of themselves: guessing would read it wrong half the time
    ties = [n for s, n in scored if s == best or s >= SURE]
    if len(ties) > 1:
        raise DatasetError(
            f"the first record looks like {' and '.join(repr(t) for t in ties)}; "
            f"set dataset.format to one of them",
            file=first.file,
            line=first.line,
        )
    return get_reader(name)


def read_traces(options: Options) -> Iterator[tuple[Record, Trace]]:
    """Every trace of the dataset, with the record it starts at."""
    files = dataset_files(options.path)
    declared = options.format if options.format in CONTAINERS else None
    records = iter_records(files, declared)
    first = next(records, None)
    if first is None:
        return
    fmt = options.format
    if fmt is not None and fmt not in CONTAINERS:
        reader = get_reader(fmt)
    elif options.fields:
        reader = get_reader("rows")  # a field mapping is the rows reader's
    else:
        reader = detect(first)
    yield from reader.read(itertools.chain((first,), records), options)


def tag(value: Any) -> str | None:
    """``value`` when it is a string, else None: a format's type and name tags are looked up
    in sets, and any JSON value (an array, say) may stand where a tag should be."""
    return value if isinstance(value, str) else None


def kind_of(value: Any) -> str:
    """How an error names the JSON type of a value."""
    return _KINDS.get(type(value), f"a {type(value).__name__}")


_KINDS = {
    list: "an array",
    dict: "an object",
    str: "a string",
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}
