"""Streaming dataset loading: which files, which format, one pass of traces.

Records are read one at a time and turned into :class:`Trace` objects by the
dataset's reader (:mod:`.readers`); nothing keeps a second copy of the
dataset. Every error names file, line and field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DatasetError
from .readers import FORMAT_NAMES, read_traces
from .readers._source import MAX_CSV_CELL, MAX_DEPTH, container_of, iter_rows
from .trace import Trace

__all__ = ["DatasetSpec", "iter_traces", "iter_rows", "FORMATS", "MAX_DEPTH", "MAX_CSV_CELL"]

#: the values ``dataset.format:`` accepts
FORMATS = FORMAT_NAMES


@dataclass(frozen=True)
class DatasetSpec:
    """Where the traces are and how a row maps onto a :class:`Trace`."""

    path: Path
    #: trace field -> dotted path in the row (``{"input": "request.query"}``), or
    #: a list of paths joined with ``/`` (``{"id": ["task_id", "trial"]}``)
    fields: Mapping[str, str | list[str]] = field(default_factory=dict)
    format: str | None = None
    #: rows need no output: a target produces it (``target:`` in the definition)
    inputs_only: bool = False
    #: file-level ``where:``: only the traces it keeps are evaluated (a :class:`~pytest_failmodes.where.Where`)
    where: Callable[[Trace], bool] | None = None

    @property
    def resolved_format(self) -> str:
        """The file type (``jsonl``, ``json``, ``csv``) of a single-file dataset."""
        return container_of(self.path, self.format)


def iter_traces(spec: DatasetSpec) -> Iterator[tuple[int, Trace]]:
    """Yield ``(line, trace)`` for every row; raise :class:`DatasetError` on bad input."""
    from .compact import FirstSeen

    seen = FirstSeen()  # compact: a dict of every id was most of a large run's memory
    count = kept = 0
    for rec, trace in read_traces(spec):
        # by id, not by line: a one-line JSON array puts every row on line 1
        first = seen.add(trace.id, rec.file, rec.line)
        if first is not None:
            where = f"line {first[1]}" if first[0] == rec.file else f"{first[0]}:{first[1]}"
            raise DatasetError(
                f"duplicate id {trace.id!r} (first seen on {where})",
                file=rec.file,
                line=rec.line,
                key=_id_source(spec),
            )
        count += 1
        if spec.where is not None and not spec.where(trace):
            continue
        kept += 1
        yield rec.line, trace
    if count == 0:
        raise DatasetError("dataset is empty: no traces found", file=spec.path)
    if kept == 0:
        # a filter that keeps nothing would make every rate 0/0: say so instead
        raise DatasetError(f"where: {spec.where!r} matched none of the {count} traces", file=spec.path)


def _id_source(spec: DatasetSpec) -> str:
    src = spec.fields.get("id", "id")
    return src if isinstance(src, str) else "+".join(src)
