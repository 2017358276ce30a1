"""Saturation: has reading more traces stopped teaching anything new?

The Good–Turing estimate of the chance that the next trace shows a tag not
seen yet is the share of observations that are singletons: tags seen in
exactly one note, divided by the number of notes. When it falls under a
threshold (5% by default), more reading mostly repeats what is known.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..stats import wilson_interval
from .notes import Note

__all__ = ["Saturation", "saturation", "normalise_tag", "DEFAULT_THRESHOLD", "WINDOW"]

#: suggest stopping when the chance of a new tag is under this
DEFAULT_THRESHOLD = 0.05
#: "new tags in the last N notes"
WINDOW = 20


def normalise_tag(tag: str) -> str:
    """Tags compare case- and space-insensitively: ``"Wrong tool "`` is ``"wrong tool"``."""
    return " ".join(tag.split()).lower()


@dataclass(frozen=True)
class Saturation:
    """Where a reviewer (or a team) stands after ``notes`` decided traces."""

    notes: int
    tags: dict[str, int]
    singletons: int
    #: Good–Turing chance that the next trace shows an unseen tag (None before any note)
    p_new: float | None
    #: a 95% Wilson interval around ``p_new``, treating singletons / notes as a proportion
    interval: tuple[float, float] | None
    #: tags first seen within the last :data:`WINDOW` notes
    new_recent: list[str]
    window: int
    threshold: float

    @property
    def suggest_stop(self) -> bool:
        """The estimate is under the threshold after at least a window of notes
        (before that, a run of familiar traces says little)."""
        return self.p_new is not None and self.notes >= self.window and self.p_new < self.threshold

    def to_json(self) -> dict[str, object]:
        return {
            "notes": self.notes,
            "tags": self.tags,
            "singletons": self.singletons,
            "p_new": self.p_new,
            "interval": list(self.interval) if self.interval else None,
            "new_recent": self.new_recent,
            "window": self.window,
            "threshold": self.threshold,
            "suggest_stop": self.suggest_stop,
        }


def saturation(notes: Iterable[Note], *, threshold: float = DEFAULT_THRESHOLD, window: int = WINDOW) -> Saturation:
    """Saturation over the decided notes (drafts left out), in the order they were written."""
    decided: Sequence[Note] = sorted((n for n in notes if n.done), key=lambda n: n.ts)
    counts: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    for i, note in enumerate(decided):
        for tag in {normalise_tag(t) for t in note.tags if t.strip()}:
            counts[tag] += 1
            first_seen.setdefault(tag, i)
    n = len(decided)
    singletons = sum(1 for c in counts.values() if c == 1)
    # several tags on one note can make singletons exceed notes; the chance is capped at 1
    capped = min(singletons, n)
    p_new = capped / n if n else None
    start = max(0, n - window)
    return Saturation(
        notes=n,
        tags=dict(counts.most_common()),
        singletons=singletons,
        p_new=p_new,
        interval=wilson_interval(capped, n),
        new_recent=sorted(t for t, i in first_seen.items() if i >= start),
        window=window,
        threshold=threshold,
    )
