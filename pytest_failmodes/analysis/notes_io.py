"""Reading ``notes.jsonl`` (written by ``failmodes review``): one note per trace and reviewer.

Each line: ``{trace_id, verdict: pass|fail|defer, note, tags, first_failing_step,
reviewer, ts, source_fingerprint}``. A later line for the same (trace_id,
reviewer) replaces an earlier one: a reviewer who changes their mind appends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FailmodesError, did_you_mean

__all__ = ["Note", "read_notes", "NOTE_KEYS", "VERDICTS"]

VERDICTS = ("pass", "fail", "defer")
NOTE_KEYS = ("trace_id", "verdict", "note", "tags", "first_failing_step", "reviewer", "ts", "source_fingerprint")


@dataclass(frozen=True)
class Note:
    """One reviewer's latest note on one trace."""

    trace_id: str
    verdict: str
    note: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    first_failing_step: str | None = None
    reviewer: str = ""
    ts: str = ""
    source_fingerprint: str = ""
    #: where it was read (file line), for messages
    line: int = 0


def read_notes(path: Path) -> list[Note]:
    """The latest note per (trace_id, reviewer), in the order their traces were first noted.

    A malformed line is a :class:`FailmodesError` naming the file, line and key.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FailmodesError("no such notes file", file=path) from None
    except OSError as exc:
        raise FailmodesError(f"cannot read: {exc.strerror or exc}", file=path) from None
    latest: dict[tuple[str, str], Note] = {}
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise FailmodesError("not valid UTF-8", file=path, line=number) from None
        except ValueError as exc:
            raise FailmodesError(f"not valid JSON ({getattr(exc, 'msg', exc)})", file=path, line=number) from None
        if not isinstance(row, dict):
            raise FailmodesError("expected a JSON object", file=path, line=number)
        for key in row:
            if key not in NOTE_KEYS:
                raise FailmodesError(f"unknown key{did_you_mean(key, NOTE_KEYS)}", file=path, line=number, key=key)
        tid = row.get("trace_id")
        if not isinstance(tid, (str, int)) or isinstance(tid, bool) or tid == "":
            raise FailmodesError("required: the trace's id", file=path, line=number, key="trace_id")
        verdict = row.get("verdict")
        if verdict not in VERDICTS:
            raise FailmodesError(f"must be one of {', '.join(VERDICTS)}, got {verdict!r}", file=path, line=number, key="verdict")
        tags = row.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise FailmodesError("must be a list of strings", file=path, line=number, key="tags")
        for key in ("note", "reviewer", "ts", "source_fingerprint"):
            if row.get(key) is not None and not isinstance(row[key], str):
                raise FailmodesError("must be a string", file=path, line=number, key=key)
        step = row.get("first_failing_step")
        if step is not None and not isinstance(step, (str, int)):
            raise FailmodesError("must be a step's id or name", file=path, line=number, key="first_failing_step")
        note = Note(
            str(tid), verdict, row.get("note") or "", tuple(t.strip() for t in tags if t.strip()),
            None if step is None else str(step), row.get("reviewer") or "", row.get("ts") or "",
            row.get("source_fingerprint") or "", number,
        )
        key2 = (note.trace_id, note.reviewer)
        latest.pop(key2, None)  # re-inserted: a changed note keeps its place by its latest line
        latest[key2] = note
    return sorted(latest.values(), key=lambda n: n.line)
