"""What every span format shares: grouping spans into traces as they stream,
ordering each trace's spans into a tree, and turning LLM messages into the
OpenAI shape the rest of the package speaks.

Grouping keeps memory bounded by assuming what exporters do: the spans of one
trace are close together in the file (Phoenix and LangSmith export trace by
trace; an OpenTelemetry batch exporter writes a trace's spans as they end,
children before their root). A trace is complete once its root span (no
parent) has arrived and ``window`` more spans have been read; a span that
arrives for a trace already complete is an error naming both lines, never a
second, partial trace. Traces whose root never arrives are held until the end
of the input, up to ``max_pending`` spans (then an error names the oldest).
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from ..trace import Step
from . import Record

__all__ = ["SpanGrouper", "Group", "preorder", "iso_ms", "message_text"]

#: spans read after a trace's root before the trace is complete
WINDOW = 2_000
#: spans held for traces whose root has not arrived
MAX_PENDING = 500_000
#: completed traces remembered to name a late span's trace
CLOSED = 100_000


@dataclass
class Group:
    """The spans of one trace read so far."""

    trace_id: str
    first: Record
    steps: list[Step] = field(default_factory=list)
    #: how many spans had been read when the root arrived
    root_at: int | None = None
    root_record: Record | None = None


class SpanGrouper:
    """Collects steps into traces by trace id, yielding each trace once complete."""

    def __init__(self, window: int | None = None, max_pending: int | None = None) -> None:
        self.window = WINDOW if window is None else window
        self.max_pending = MAX_PENDING if max_pending is None else max_pending
        self.open: dict[str, Group] = {}
        #: trace id -> where its root was, for the traces yielded most recently
        #: (where only: a record holds its whole span); an older trace's late span
        #: starts a second trace with the same id, which the dataset reports as a duplicate
        self.closed: OrderedDict[str, tuple[Path, int]] = OrderedDict()
        self.read = 0
        self.pending = 0  # spans held in traces without a root
        #: traces whose root has arrived, in the order it did
        self.rooted: deque[Group] = deque()

    def add(self, rec: Record, trace_id: str, step: Step) -> Sequence[Group]:
        """Add one span's step; the traces this completes (most spans complete none)."""
        # a list, not a generator: one generator per span cost more than the rest of add
        self.read += 1
        group = self.open.get(trace_id)
        if group is None:
            done = self.closed.get(trace_id)
            if done is not None:
                raise DatasetError(
                    f"span {step.id!r} of trace {trace_id!r} arrives after its trace was complete "
                    f"(root span at {done[0]}:{done[1]}, more than {self.window} spans earlier); "
                    f"the spans of one trace must be near each other: sort the file by trace id",
                    file=rec.file,
                    line=rec.line,
                    key="parent_id" if step.parent_id else None,
                )
            group = self.open[trace_id] = Group(trace_id, rec)
        group.steps.append(step)
        if step.parent_id is None and group.root_at is None:
            group.root_at = self.read
            group.root_record = rec
            self.pending -= len(group.steps) - 1
            self.rooted.append(group)
        elif group.root_at is None:
            self.pending += 1
            if self.pending > self.max_pending:
                oldest = next(g for g in self.open.values() if g.root_at is None)
                raise DatasetError(
                    f"{self.pending} spans are waiting for their trace's root span (a span without a parent); "
                    f"trace {oldest.trace_id!r}, first seen here, has none so far",
                    file=oldest.first.file,
                    line=oldest.first.line,
                )
        # roots arrive in reading order, so the traces to close are at the front
        rooted = self.rooted
        if not rooted or self.read - rooted[0].root_at < self.window:  # type: ignore[operator]
            return ()
        done = []
        while rooted and self.read - rooted[0].root_at >= self.window:  # type: ignore[operator]
            done.append(self._close(rooted.popleft()))
        return done

    def finish(self) -> Iterator[Group]:
        """Every trace still open, at the end of the input, in the order they began."""
        self.rooted.clear()
        for g in list(self.open.values()):
            yield self._close(g)

    def _close(self, group: Group) -> Group:
        del self.open[group.trace_id]
        if group.root_at is None:
            self.pending -= len(group.steps)
        where = group.root_record or group.first
        self.closed[group.trace_id] = (where.file, where.line)
        if len(self.closed) > CLOSED:
            self.closed.popitem(last=False)
        return group


def preorder(steps: list[Step]) -> list[Step]:
    """Steps as a tree in pre-order: parents before children, siblings by start time.

    A span whose parent is not in the trace (an exporter dropped it) is a root.
    """
    if len(steps) < 2:
        return steps
    # one stable sort of all the steps (in C, by start time when every step has one)
    # leaves each parent's children in start order, ties in file order
    try:
        ordered = sorted(steps, key=_START_MS)
    except TypeError:  # a step without a start time (None does not compare with a number)
        ordered = sorted(steps, key=_start)
    ids = {s.id for s in steps}
    children: dict[str, list[Step]] = {}
    roots: list[Step] = []
    for s in ordered:
        parent = s.parent_id
        if parent is None or parent not in ids:
            roots.append(s)
        else:
            kids = children.get(parent)
            if kids is None:
                children[parent] = [s]
            else:
                kids.append(s)
    out: list[Step] = []
    roots.reverse()
    stack = roots
    seen: set[str] = set()
    while stack:
        s = stack.pop()
        sid = s.id
        if sid in seen:  # a cycle in parent ids: each span once
            continue
        seen.add(sid)
        out.append(s)
        kids = children.get(sid)
        if kids is not None:
            stack.extend(reversed(kids))
    if len(out) < len(steps):  # spans on a parent cycle with no root: kept, in file order
        out.extend(s for s in steps if s.id not in seen)
    return out


_START_MS = attrgetter("start_ms")


def _start(step: Step) -> tuple[int, float]:
    return (0, step.start_ms) if step.start_ms is not None else (1, 0.0)


def iso_ms(value: Any) -> float | None:
    """Epoch milliseconds from an ISO 8601 time (``...Z`` or with an offset) or epoch seconds/ns."""
    if type(value) is str and value[-1:] == "Z":  # noqa: E721 - the common case first: "...Z"
        try:
            return _fromiso(value if _READS_Z else value[:-1] + "+00:00").timestamp() * 1000
        except ValueError:
            return None
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        v = float(value)
        # seconds, milliseconds, microseconds or nanoseconds since the epoch
        return v * 1000 if v < 1e11 else v if v < 1e14 else v / 1000 if v < 1e17 else v / 1e6
    text = value if isinstance(value, str) else str(value)
    try:
        if text[-1] == "Z":
            text = text[:-1] + "+00:00"
        return _fromiso(text).timestamp() * 1000
    except ValueError:
        return None


_fromiso = datetime.fromisoformat
#: Python 3.11's fromisoformat reads a trailing "Z" itself
_READS_Z = sys.version_info >= (3, 11)


def message_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") in ("text", "output_text", "input_text"):
                parts.append(str(part.get("text", part.get("content", ""))))
        return "\n".join(p for p in parts if p)
    return json.dumps(content) if isinstance(content, dict) else str(content)
