"""Review notes: an append-only ``notes.jsonl``, where the latest line per (trace, reviewer) wins.

Every change a reviewer makes is one more line, written and flushed at once, so
a crash or a closed tab loses at most the keystrokes of the last half second.
Nothing is ever rewritten: undo appends the earlier state again.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FailmodesError, did_you_mean

__all__ = [
    "VERDICTS",
    "Note",
    "NotesFile",
    "read_notes",
    "latest_notes",
    "decided_notes",
    "cohen_kappa",
    "agreement",
    "KAPPA_MIN_COMMON",
]

#: what a reviewer can say about a trace; ``None`` while only a note is typed
VERDICTS = ("pass", "fail", "defer")
#: agreement is shown once two reviewers share this many decided traces
KAPPA_MIN_COMMON = 20
_KEYS = ("trace_id", "verdict", "note", "tags", "first_failing_step", "reviewer", "ts", "source_fingerprint", "retracted")


@dataclass(frozen=True)
class Note:
    """One line of ``notes.jsonl``: what one reviewer thinks of one trace, at ``ts``."""

    trace_id: str
    reviewer: str = ""
    verdict: str | None = None
    note: str = ""
    tags: tuple[str, ...] = ()
    first_failing_step: str | None = None
    ts: float = 0.0
    #: the trace content's digest when the note was written (a changed trace shows)
    source_fingerprint: str = ""
    #: an undo that took the reviewer's only note away
    retracted: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: the line of the notes file it was read from (0 when written in this session)
    line: int = field(default=0, compare=False)

    @property
    def done(self) -> bool:
        """The reviewer gave a verdict (a typed note alone is a draft)."""
        return self.verdict is not None and not self.retracted

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tags"] = list(self.tags)
        extra = data.pop("extra")
        del data["line"]
        if not self.retracted:
            del data["retracted"]
        return {**extra, **data}


def _note_from_row(row: Any, shown: str, line: int) -> Note:
    def bad(msg: str, key: str | None = None) -> FailmodesError:
        return FailmodesError(msg, file=shown, line=line, key=key)

    if not isinstance(row, dict):
        raise bad("expected a JSON object (one note per line)")
    for key in row:
        # other keys are kept (a team may add its own), but a near-miss of ours is a typo
        # that would silently drop what it holds
        hint = "" if key in _KEYS else did_you_mean(key, _KEYS)
        if hint:
            raise bad(f"unknown key{hint}", key)
    trace_id = row.get("trace_id")
    if isinstance(trace_id, int) and not isinstance(trace_id, bool):
        trace_id = str(trace_id)  # hand-written notes may give numeric ids
    if not isinstance(trace_id, str) or not trace_id:
        hint = "" if "trace_id" in row else did_you_mean("trace_id", [k for k in row if k not in _KEYS])
        raise bad(f"required, a non-empty string{hint}", "trace_id")
    # `failmodes review` always names the reviewer; hand-written notes may not
    reviewer = row.get("reviewer", "")
    if not isinstance(reviewer, str):
        raise bad("must be a string", "reviewer")
    verdict = row.get("verdict")
    if verdict is not None and verdict not in VERDICTS:
        raise bad(f"must be one of {', '.join(VERDICTS)} or null, got {verdict!r}{did_you_mean(str(verdict), VERDICTS)}", "verdict")
    tags = row.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise bad("must be a list of strings", "tags")
    note = row.get("note", "")
    if not isinstance(note, str):
        raise bad("must be a string", "note")
    step = row.get("first_failing_step")
    if step is not None and not isinstance(step, str):
        raise bad("must be a string (a step id) or null", "first_failing_step")
    ts = row.get("ts", 0.0)
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        raise bad("must be a number (epoch seconds)", "ts")
    return Note(
        trace_id=trace_id,
        reviewer=reviewer,
        verdict=verdict,
        note=note,
        tags=tuple(tags),
        first_failing_step=step,
        ts=float(ts),
        source_fingerprint=str(row.get("source_fingerprint", "")),
        retracted=bool(row.get("retracted", False)),
        extra={k: v for k, v in row.items() if k not in _KEYS},
        line=line,
    )


def read_notes(path: Path, shown: str | None = None) -> Iterator[Note]:
    """Every line of a notes file, in order; a bad line is a FailmodesError naming it.

    A last line cut short by a crash (no newline, not valid JSON) is skipped:
    that keystroke was never acknowledged to the reviewer.
    """
    shown = shown or str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise FailmodesError(f"cannot read notes: {exc.strerror or exc}", file=shown) from None
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise FailmodesError("not valid UTF-8", file=shown, line=number) from None
        except ValueError as exc:
            if number == len(lines):  # torn final write
                continue
            raise FailmodesError(f"malformed JSON: {getattr(exc, 'msg', exc)}", file=shown, line=number) from None
        yield _note_from_row(row, shown, number)


def latest_notes(notes: Iterable[Note]) -> dict[tuple[str, str], Note]:
    """The note that counts per (trace_id, reviewer): the last line written (retractions dropped)."""
    out: dict[tuple[str, str], Note] = {}
    for note in notes:
        out[(note.trace_id, note.reviewer)] = note
    return {k: v for k, v in out.items() if not v.retracted}


def decided_notes(path: Path, shown: str | None = None) -> list[Note]:
    """The notes the analysis tools read: the latest per (trace, reviewer) that has a
    verdict, ordered by the line that made it the latest. A missing file is an error."""
    if not path.exists():
        raise FailmodesError("no such notes file", file=shown or str(path))
    latest: dict[tuple[str, str], Note] = {}
    for note in read_notes(path, shown):
        key = (note.trace_id, note.reviewer)
        latest.pop(key, None)  # re-inserted: a changed note takes the place of its latest line
        latest[key] = note
    return sorted((n for n in latest.values() if n.done), key=lambda n: n.line)


class NotesFile:
    """A notes file open for one review session: appends are flushed and fsynced one by one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.notes: list[Note] = list(read_notes(path))
        self.latest = latest_notes(self.notes)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()

    def _repair_torn_tail(self) -> None:
        # a line cut short by a crash (no final newline) was never acknowledged to the
        # reviewer; cut it off, or the next append would glue itself onto it
        if self.path.exists() and self.path.stat().st_size:
            data = self.path.read_bytes()
            if not data.endswith(b"\n"):
                with open(self.path, "r+b") as handle:
                    handle.truncate(data.rfind(b"\n") + 1)

    def append(self, note: Note) -> Note:
        """Write one line now (fsynced) and make it the latest for its trace and reviewer."""
        if not note.ts:
            note = Note(**{**note.__dict__, "ts": time.time()})
        line = json.dumps(note.to_json(), ensure_ascii=False) + "\n"
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self.notes.append(note)
            key = (note.trace_id, note.reviewer)
            if note.retracted:
                self.latest.pop(key, None)
            else:
                self.latest[key] = note
        return note

    def get(self, trace_id: str, reviewer: str) -> Note | None:
        return self.latest.get((trace_id, reviewer))

    def of_reviewer(self, reviewer: str) -> list[Note]:
        """The reviewer's current notes, in the order they were first written."""
        with self._lock:
            return [n for (_, r), n in self.latest.items() if r == reviewer]


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two raters' labels for the same items; ``None`` when undefined
    (no items, or both raters gave one and the same label throughout)."""
    if len(a) != len(b):
        raise ValueError("the two raters must label the same items")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    labels = set(a) | set(b)
    expected = sum((a.count(lab) / n) * (b.count(lab) / n) for lab in labels)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


@dataclass(frozen=True)
class Agreement:
    """Two reviewers on the traces both decided (pass or fail; deferrals left out)."""

    reviewer: str
    other: str
    common: int
    agree: int
    kappa: float | None
    #: kappa is shown only from :data:`KAPPA_MIN_COMMON` common traces on
    shown: bool


def agreement(latest: Mapping[tuple[str, str], Note], reviewer: str) -> list[Agreement]:
    """``reviewer`` against every other reviewer in the notes."""
    mine: dict[str, str] = {}
    others: dict[str, dict[str, str]] = {}
    for (t, r), n in latest.items():
        if n.verdict in ("pass", "fail"):
            (mine if r == reviewer else others.setdefault(r, {}))[t] = n.verdict
    out = []
    for other, theirs in sorted(others.items()):
        common = sorted(set(mine) & set(theirs))
        a = [mine[t] for t in common]
        b = [theirs[t] for t in common]
        out.append(
            Agreement(
                reviewer, other, len(common), sum(x == y for x, y in zip(a, b)),
                cohen_kappa(a, b), len(common) >= KAPPA_MIN_COMMON,
            )
        )
    return out
