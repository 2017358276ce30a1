"""Rule-based perturbations: small edits of an input that should (or, for DIR
tests, should not) leave the application's answer alone.

A perturbation kind finds the **sites** of a text it can edit (a word, a
number, a gap between words ...), each with a list of replacement options.
A variant is the original text with some sites replaced: it is fully
described by its edits, so the same choices always give the same variant,
and "fewer edits, lower indices" is what Hypothesis shrinks toward.
Text inside a protected span (an order number, a product name) is never edited.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from ..patterns import UserPattern

__all__ = [
    "INVARIANT_KINDS",
    "COUNTERFACTUAL_KINDS",
    "KINDS",
    "Edit",
    "Site",
    "Variant",
    "sites",
    "apply_edits",
    "realize",
    "perturb",
    "protected_spans",
]

#: edits that keep the meaning: the answer should not change
INVARIANT_KINDS = ("typo", "case", "whitespace", "punctuation", "contraction", "synonym", "filler")
#: edits of who, where and how much (a fair answer does not depend on a name or a city);
#: ``negation`` flips the meaning, for directional tests
COUNTERFACTUAL_KINDS = ("name", "location", "number", "negation")
KINDS = INVARIANT_KINDS + COUNTERFACTUAL_KINDS


@lru_cache(maxsize=1)
def lexicon() -> dict[str, Any]:
    """The word lists shipped as package data (synonyms, names, locations ...)."""
    text = resources.files(__package__).joinpath("lexicon.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@dataclass(frozen=True)
class Edit:
    """One replacement of ``text[start:end]`` (``before``) by ``after``."""

    kind: str
    start: int
    end: int
    before: str
    after: str
    how: str = ""

    def describe(self) -> str:
        if self.start == self.end:
            text = f"{self.kind}: inserted {self.after!r}"
        elif not self.after:
            text = f"{self.kind}: removed {self.before!r}"
        else:
            text = f"{self.kind}: {self.before!r} -> {self.after!r}"
        return f"{text} ({self.how})" if self.how else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "before": self.before,
            "after": self.after,
            "how": self.how,
        }


@dataclass(frozen=True)
class Site:
    """A span a kind can edit and what it can put there: ``(replacement, how)`` pairs."""

    kind: str
    start: int
    end: int
    before: str
    options: tuple[tuple[str, str], ...]

    def edit(self, option: int) -> Edit:
        after, how = self.options[option % len(self.options)]
        return Edit(self.kind, self.start, self.end, self.before, after, how)


@dataclass(frozen=True)
class Variant:
    """A perturbed input: its text and the edits that made it from ``original``."""

    original: str
    text: str
    edits: tuple[Edit, ...] = ()
    #: how it was made when it is not a rule-based edit ("paraphrase", ...)
    source: str = "edit"

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.kind for e in self.edits)) or (self.source,)

    def describe(self) -> str:
        if not self.edits:
            return self.source
        return "; ".join(e.describe() for e in self.edits)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        # what Hypothesis prints for a falsifying example: the text and the edits, not offsets
        return f"Variant({self.text!r}, edits=[{self.describe()}])"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis prints falsifying examples with its pretty printer, which would spell out offsets
        printer.text(repr(self))


# -- finding sites ------------------------------------------------------------------------


def protected_spans(text: str, protected: Iterable[str | re.Pattern[str] | UserPattern]) -> list[tuple[int, int]]:
    """Every occurrence of each protected string (case-insensitive) or match of a compiled regex."""
    spans: list[tuple[int, int]] = []
    lowered = text.lower()
    for entity in protected:
        if isinstance(entity, (re.Pattern, UserPattern)):
            spans.extend(m.span() for m in entity.finditer(text) if m.end() > m.start())
            continue
        needle = entity.lower()
        if not needle:
            continue
        start = lowered.find(needle)
        while start != -1:
            spans.append((start, start + len(needle)))
            start = lowered.find(needle, start + 1)
    return spans


def _touches(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    for s, e in spans:
        if start == end:
            if s < start < e:  # an insertion inside a protected span splits it
                return True
        elif start < e and s < end:
            return True
    return False


_WORD = re.compile(r"[A-Za-z]+")
_CASE_WORD = re.compile(r"[A-Za-z][A-Za-z']*")
_SPACE = re.compile(r"(?<=\S)[ ]+(?=\S)")
_PUNCT = re.compile(r"[.,!?;:]")
_NUMBER = re.compile(r"(?<![\w.\-/])\d+(?:\.\d+)?(?![\w\-/]|\.\d)")

#: QWERTY neighbours, for keyboard-slip typos
_KEYBOARD = {
    "q": "wa", "w": "qes", "e": "wrd", "r": "etf", "t": "ryg", "y": "tuh", "u": "yij", "i": "uok",
    "o": "ipl", "p": "ol", "a": "qsz", "s": "adw", "d": "sfe", "f": "dgr", "g": "fht", "h": "gjy",
    "j": "hku", "k": "jli", "l": "ko", "z": "xa", "x": "zcs", "c": "xvd", "v": "cbf", "b": "vng",
    "n": "bmh", "m": "nj",
}


def _match_case(model: str, word: str) -> str:
    if model[:1].isupper() and not word[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _typo_options(word: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for i in range(len(word) - 1):
        if word[i] != word[i + 1]:
            out.append((word[:i] + word[i + 1] + word[i] + word[i + 2 :], "adjacent swap"))
    for i in range(1, len(word)):  # the first letter stays: readers rely on it, and so do typists
        out.append((word[:i] + word[i + 1 :], "dropped letter"))
    for i, ch in enumerate(word):
        for near in _KEYBOARD.get(ch.lower(), ""):
            out.append((word[:i] + (near.upper() if ch.isupper() else near) + word[i + 1 :], "keyboard slip"))
    return tuple(dict.fromkeys(out))


def _phrase_pattern(phrases: Iterable[str]) -> re.Pattern[str]:
    alts = sorted({p for p in phrases if p}, key=len, reverse=True)
    return re.compile(r"(?<![\w'])(" + "|".join(re.escape(p) for p in alts) + r")(?![\w'])", re.IGNORECASE)


@lru_cache(maxsize=1)
def _tables() -> dict[str, Any]:
    lx = lexicon()
    synonyms: dict[str, list[str]] = {}
    for group in lx["synonyms"]:
        for word in group:
            synonyms.setdefault(word.lower(), [])
            for other in group:
                if other.lower() != word.lower() and other not in synonyms[word.lower()]:
                    synonyms[word.lower()].append(other)
    groups = [lx["names"]["female"], lx["names"]["male"], lx["names"]["neutral"]]
    # interleaved, so the first options of any name already cross genders and cultures
    names: list[str] = []
    for i in range(max(len(g) for g in groups)):
        names.extend(g[i] for g in groups if i < len(g))
    contractions = {k.lower(): v for k, v in lx["contractions"].items()}
    negations = {k.lower(): v for k, v in lx["negations"].items()}
    return {
        "synonyms": synonyms,
        "synonym_re": _phrase_pattern(synonyms),
        "names": names,
        "name_re": re.compile(r"(?<!\w)(" + "|".join(sorted(names, key=len, reverse=True)) + r")(?!\w)"),
        "cities": lx["locations"]["cities"],
        "countries": lx["locations"]["countries"],
        "location_re": re.compile(
            r"(?<!\w)("
            + "|".join(re.escape(p) for p in sorted(lx["locations"]["cities"] + lx["locations"]["countries"], key=len, reverse=True))
            + r")(?!\w)"
        ),
        "contractions": contractions,
        "contraction_re": _phrase_pattern(lx["contractions"]),
        "negations": negations,
        "negation_re": _phrase_pattern(lx["negations"]),
        "prefix": lx["fillers"]["prefix"],
        "suffix": lx["fillers"]["suffix"],
    }


def _contraction_how(before: str, after: str) -> str:
    if "'" in before and after.lower() == before.replace("'", "").lower():
        return "apostrophe dropped"
    return "expanded" if len(after) > len(before) else "contracted"


def _number_options(token: str, number_range: tuple[float, float] | None) -> tuple[tuple[str, str], ...]:
    decimals = len(token.split(".", 1)[1]) if "." in token else 0
    value = float(token)

    def fmt(x: float) -> str:
        return f"{x:.{decimals}f}" if decimals else str(int(round(x)))

    if number_range is None:
        factors = (0.9, 1.1, 0.8, 1.2, 0.95, 1.05, 0.85, 1.15)
        values = [(fmt(value * f), f"{(f - 1) * 100:+.0f}%") for f in factors]
    else:
        lo, hi = number_range
        values = [(fmt(lo + (hi - lo) * i / 7), f"in [{lo:g}, {hi:g}]") for i in range(8)]
    seen: dict[str, str] = {}
    for text, how in values:
        if text != token and text not in seen:
            seen[text] = how
    return tuple(seen.items())


def sites(
    text: str,
    kind: str,
    protected: Iterable[str | re.Pattern[str] | UserPattern] = (),
    *,
    number_range: tuple[float, float] | None = None,
) -> list[Site]:
    """Where ``kind`` can edit ``text``, in text order; protected spans are left out."""
    if kind not in KINDS:
        raise ValueError(f"unknown perturbation kind {kind!r}; choose from {', '.join(KINDS)}")
    guard = protected_spans(text, protected)
    return [s for s in _sites(text, kind, number_range) if s.options and not _touches(s.start, s.end, guard)]


def _sites(text: str, kind: str, number_range: tuple[float, float] | None) -> Iterable[Site]:
    t = _tables()
    if kind == "typo":
        for m in _WORD.finditer(text):
            if len(m.group()) >= 3:
                yield Site(kind, m.start(), m.end(), m.group(), _typo_options(m.group()))
    elif kind == "case":
        for m in _CASE_WORD.finditer(text):
            w = m.group()
            opts = [(w.lower(), "lower case"), (w.upper(), "upper case"), (w[:1].upper() + w[1:].lower(), "capitalised")]
            yield Site(kind, m.start(), m.end(), w, tuple((o, h) for o, h in dict(opts).items() if o != w))
    elif kind == "whitespace":
        for m in _SPACE.finditer(text):
            yield Site(kind, m.start(), m.end(), m.group(), (("  ", "double space"), ("\n", "line break"), ("   ", "extra spaces")))
        yield Site(kind, len(text), len(text), "", ((" ", "trailing space"), ("\n", "trailing line break")))
    elif kind == "punctuation":
        for m in _PUNCT.finditer(text):
            p = m.group()
            opts = [("", "removed"), (p * 2 if p in "!?" else p + p, "doubled")]
            opts += [(q, "replaced") for q in ".!?" if q != p and p in ".!?"]
            yield Site(kind, m.start(), m.end(), p, tuple(opts))
        stripped = text.rstrip()
        if stripped and stripped[-1] not in ".!?":
            yield Site(kind, len(stripped), len(stripped), "", (("?", "added"), (".", "added"), ("!", "added")))
    elif kind == "contraction":
        for m in t["contraction_re"].finditer(text):
            w = m.group()
            opts = t["contractions"].get(w.lower(), [])
            yield Site(kind, m.start(), m.end(), w, tuple((_match_case(w, o), _contraction_how(w, o)) for o in opts))
    elif kind == "synonym":
        for m in t["synonym_re"].finditer(text):
            w = m.group()
            yield Site(kind, m.start(), m.end(), w, tuple((_match_case(w, o), "synonym") for o in t["synonyms"][w.lower()]))
    elif kind == "filler":
        yield Site(kind, 0, 0, "", tuple((p, "prefix") for p in t["prefix"]))
        end = len(text.rstrip())
        yield Site(kind, end, end, "", tuple((s, "suffix") for s in t["suffix"]))
    elif kind == "name":
        for m in t["name_re"].finditer(text):
            w = m.group()
            yield Site(kind, m.start(), m.end(), w, tuple((n, "name swap") for n in t["names"] if n != w))
    elif kind == "location":
        for m in t["location_re"].finditer(text):
            w = m.group()
            pool = t["cities"] if w in t["cities"] else t["countries"]
            yield Site(kind, m.start(), m.end(), w, tuple((p, "location swap") for p in pool if p != w))
    elif kind == "number":
        for m in _NUMBER.finditer(text):
            yield Site(kind, m.start(), m.end(), m.group(), _number_options(m.group(), number_range))
    elif kind == "negation":
        for m in t["negation_re"].finditer(text):
            w = m.group()
            after = t["negations"][w.lower()]
            end = m.end()
            if not after:  # "not" goes with the space after it
                while end < len(text) and text[end] == " ":
                    end += 1
            yield Site(kind, m.start(), end, text[m.start() : end], ((_match_case(w, after), "negated" if len(after) > len(w) else "negation removed"),))


# -- making variants ----------------------------------------------------------------------


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """``text`` with every (non-overlapping) edit applied."""
    out = text
    for e in sorted(edits, key=lambda e: (e.start, e.end), reverse=True):
        out = out[: e.start] + e.after + out[e.end :]
    return out


def _overlaps(edit: Edit, chosen: Iterable[Edit]) -> bool:
    for c in chosen:
        if edit.start == edit.end or c.start == c.end:
            if edit.start == c.start and edit.end == c.end:
                return True
            if (edit.start == edit.end and c.start < edit.start < c.end) or (c.start == c.end and edit.start < c.start < edit.end):
                return True
        elif edit.start < c.end and c.start < edit.end:
            return True
    return False


def realize(text: str, edits: Iterable[Edit]) -> Variant:
    """A variant from candidate edits: an edit overlapping an earlier one is dropped."""
    chosen: list[Edit] = []
    for edit in edits:
        if not _overlaps(edit, chosen):
            chosen.append(edit)
    ordered = tuple(sorted(chosen, key=lambda e: (e.start, e.end)))
    return Variant(text, apply_edits(text, ordered), ordered)


def perturb(
    text: str,
    kind: str,
    rng: random.Random | int,
    protected: Iterable[str | re.Pattern[str] | UserPattern] = (),
    *,
    max_edits: int = 1,
    number_range: tuple[float, float] | None = None,
) -> Variant | None:
    """A random variant with 1..max_edits edits of ``kind``; ``None`` when it has nowhere to edit.

    ``rng`` is a :class:`random.Random` or a seed: the same seed gives the same variant.
    """
    r = random.Random(rng) if isinstance(rng, int) else rng
    found = sites(text, kind, protected, number_range=number_range)
    if not found:
        return None
    count = r.randint(1, max(1, min(max_edits, len(found))))
    picked = r.sample(found, count)
    return realize(text, [s.edit(r.randrange(len(s.options))) for s in picked])


def parse_kinds(kinds: Iterable[str] | str | None) -> tuple[str, ...]:
    """Validate kind names (``None``: every invariant kind)."""
    if kinds is None:
        return INVARIANT_KINDS
    if isinstance(kinds, str):
        kinds = [kinds]
    out = tuple(kinds)
    for kind in out:
        if kind not in KINDS:
            from ..errors import did_you_mean

            raise ValueError(f"unknown perturbation kind {kind!r}{did_you_mean(kind, KINDS)}; choose from {', '.join(KINDS)}")
    if not out:
        raise ValueError("give at least one perturbation kind")
    return out


def site_table(
    text: str, kinds: Sequence[str], protected: Iterable[str | re.Pattern[str] | UserPattern] = (), number_range: tuple[float, float] | None = None
) -> Mapping[str, list[Site]]:
    """Sites of each kind (kinds with none are left out)."""
    prot = tuple(protected)
    table = {k: sites(text, k, prot, number_range=number_range) for k in kinds}
    return {k: v for k, v in table.items() if v}
