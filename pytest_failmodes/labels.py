"""Human labels for measuring a detector: where they come from and which ones count.

A mode's labels come from a dataset column (``labels:`` in the mode, the
vocabulary of the ``label`` detector) or from a labels file named at file
level (rows ``{id, mode, verdict, note?}``). Labels of traces that are the
judge's few-shot examples, or that fall outside the measured split, are
kept out of the measurement.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import DefinitionError, did_you_mean, read_definition_text
from .trace import MISSING, Trace
from .values import value_text

__all__ = ["HumanLabels", "load_labels_file", "split_of", "SPLITS", "MEASURE"]

SPLITS: tuple[Literal["train", "dev", "test"], ...] = ("train", "dev", "test")
#: the role of a labelled trace that is measured
MEASURE = "measure"


def split_of(trace_id: str, shares: tuple[float, float, float]) -> str:
    """``train``, ``dev`` or ``test`` for a trace id: a hash of the id, so the same on every run and machine."""
    digest = hashlib.sha256(trace_id.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name, share in zip(SPLITS, shares):
        edge += share
        if u < edge:
            return name
    return SPLITS[-1]


def _text(value: object) -> str:
    # canonical, as fail_values are stored: 0, 0.0 and "0" are one label (docs/definitions.md)
    return value_text(value)


def content_key(input_text: str | None, output: str | None) -> tuple[str, str]:
    """How a labelled trace is matched with a few-shot example: input and output, stripped."""
    return ((input_text or "").strip(), (output or "").strip())


@dataclass(frozen=True, eq=False)
class HumanLabels:
    """The human verdicts of one mode, and which labelled traces are measured."""

    #: where they come from, for messages: "field human_refund" or "labels.jsonl"
    source: str
    field: str | None = None
    fail_values: frozenset[str] = frozenset()
    pass_values: frozenset[str] | None = None
    #: trace id -> (verdict, note), from a labels file
    by_id: Mapping[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    #: (input, output) of the judge's few-shot examples
    examples: frozenset[tuple[str, str]] = frozenset()
    split: tuple[float, float, float] | None = None
    use: tuple[str, ...] = SPLITS
    resamples: int = 2000
    seed: int = 0

    def human(self, trace: Trace) -> tuple[str | None, str]:
        """``(verdict, note)``: ``fail``, ``pass``, ``None`` (not labelled) or ``invalid``."""
        if self.field is None:
            return self.by_id.get(trace.id, (None, ""))
        value = trace.get(self.field)
        if value is MISSING or value is None or value == "":
            return None, ""
        text = _text(value)
        if text in self.fail_values:
            return "fail", ""
        if self.pass_values is not None and text not in self.pass_values:
            return "invalid", f"{self.field}={text!r}"
        return "pass", ""

    def role(self, trace: Trace) -> str:
        """``measure``, ``example`` (a few-shot example of the judge) or the unused split's name."""
        if self.examples and content_key(trace.input, trace.output) in self.examples:
            return "example"
        if self.split is not None:
            part = split_of(trace.id, self.split)
            if part not in self.use:
                return part
        return MEASURE

    def __repr__(self) -> str:
        return f"labels({self.source})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, so the spec can travel from an xdist worker to the controller."""
        return {
            "source": self.source,
            "field": self.field,
            "fail_values": sorted(self.fail_values),
            "pass_values": sorted(self.pass_values) if self.pass_values is not None else None,
            "by_id": {k: list(v) for k, v in self.by_id.items()},
            "examples": [list(e) for e in sorted(self.examples)],
            "split": list(self.split) if self.split is not None else None,
            "use": list(self.use),
            "resamples": self.resamples,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HumanLabels:
        return cls(
            source=d["source"],
            field=d["field"],
            fail_values=frozenset(d["fail_values"]),
            pass_values=frozenset(d["pass_values"]) if d["pass_values"] is not None else None,
            by_id={k: (v[0], v[1]) for k, v in d["by_id"].items()},
            examples=frozenset((e[0], e[1]) for e in d["examples"]),
            split=tuple(d["split"]) if d["split"] is not None else None,  # type: ignore[arg-type]
            use=tuple(d["use"]),
            resamples=d["resamples"],
            seed=d["seed"],
        )


def load_labels_file(path: Path, shown: str, modes: Mapping[str, Any]) -> dict[str, dict[str, tuple[str, str]]]:
    """Read a labels file (JSONL or JSON list): mode -> trace id -> (verdict, note).

    Every bad row is a DefinitionError naming the file, the line and the field.
    ``modes`` are the names a row may name.
    """
    text = read_definition_text(path, shown, " labels file")
    out: dict[str, dict[str, tuple[str, str]]] = {}
    seen: dict[tuple[str, str], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue

        def error(message: str, key: str | None = None, at: int = number) -> DefinitionError:
            return DefinitionError(message, file=shown, line=at, key=key)

        try:
            row = json.loads(line)
        except RecursionError:
            raise error("nested too deeply: a label row is a flat {id, mode, verdict, note?}") from None
        except ValueError as exc:
            raise error(f"invalid JSON: {exc.args[0].split(':')[0] if exc.args else exc}") from None
        if not isinstance(row, dict):
            raise error(f"expected an object {{id, mode, verdict, note?}}, got {type(row).__name__}")
        for key in row:
            if key not in ("id", "mode", "verdict", "note"):
                raise error(f"unknown key {key!r}{did_you_mean(str(key), ['id', 'mode', 'verdict', 'note'])}", str(key))
        for key in ("id", "mode", "verdict"):
            if key not in row:
                raise error("required key is missing", key)
        tid, mode, verdict, note = row["id"], row["mode"], row["verdict"], row.get("note", "")
        if isinstance(tid, bool) or not isinstance(tid, (str, int)) or str(tid) == "":
            raise error("a trace id is a non-empty string or a number", "id")
        if not isinstance(mode, str) or mode not in modes:
            hint = did_you_mean(str(mode), list(modes)) if isinstance(mode, str) else ""
            raise error(f"no failure mode named {mode!r} in this definition file{hint}", "mode")
        if verdict not in ("fail", "pass"):
            raise error(f"verdict must be 'fail' or 'pass', got {verdict!r}", "verdict")
        if not isinstance(note, str):
            raise error("a note is a string", "note")
        tid = str(tid)
        if (mode, tid) in seen:
            raise error(f"trace {tid!r} is labelled for {mode!r} twice (first on line {seen[(mode, tid)]})", "id")
        seen[(mode, tid)] = number
        out.setdefault(mode, {})[tid] = (verdict, note)
    return out


def measure_mode(
    labels: HumanLabels,
    labelled: list[tuple[int, str, str, str, list[str]]],
    ids: Sequence[str],
    codes: str,
    details: Mapping[int, list[Any]],
    rows: list[Any],
    *,
    calibrate_only: bool = False,
) -> dict[str, Any]:
    """Measure a mode's verdicts against its human labels (JSON-safe, see calibration.measure).

    Sets ``corrected`` on the cohort rows; the returned dict holds ``notes``
    for the mode's notes (popped by the caller).
    """
    from .calibration import Pair, measure

    pairs = []
    excluded: dict[str, int] = {}
    invalid: list[str] = []
    for idx, human, note, role, keys in labelled:
        if human == "invalid":
            invalid.append(f"{ids[idx]} ({note})")
            continue
        if role != MEASURE:
            excluded[role] = excluded.get(role, 0) + 1
            continue
        code = codes[idx] if idx < len(codes) else "E"
        if code not in ("P", "F"):
            excluded["not judged"] = excluded.get("not judged", 0) + 1  # an error: no verdict to compare
            continue
        reason = details.get(idx, ["", None])[0] or ""
        pairs.append(Pair(ids[idx], human, "fail" if code == "F" else "pass", reason, note, tuple(keys)))
    counts = {row.cohort: (row.n, row.fails) for row in rows}
    out = measure(pairs, counts, resamples=labels.resamples, seed=labels.seed, correct=not calibrate_only)
    for row in rows:
        entry = out["corrected"].get(row.cohort)
        if entry is not None:
            row.corrected = entry
    out["source"] = labels.source
    out["excluded"] = excluded
    out["split"] = (
        {"shares": dict(zip(SPLITS, labels.split)), "use": list(labels.use)} if labels.split is not None else None
    )
    out["calibrate_only"] = calibrate_only
    notes = []
    if invalid:
        allowed = sorted(labels.fail_values | (labels.pass_values or frozenset()))
        notes.append(
            f"labels: {len(invalid)} labels are in neither fail_values nor pass_values {allowed} "
            f"and were not used: {', '.join(invalid[:5])}{' …' if len(invalid) > 5 else ''}"
        )
    if labels.by_id:
        seen = set(ids)
        unknown = sorted(t for t in labels.by_id if t not in seen)
        if unknown:
            notes.append(
                f"labels: {len(unknown)} labels in {labels.source} name traces that are not in the dataset: "
                f"{', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}"
            )
    out["notes"] = notes
    return out
