"""Hypothesis strategies for consistency tests in your own test functions.

::

    from hypothesis import given, settings
    from pytest_failmodes.strategies import variants

    @settings(derandomize=True, database=None)   # the same examples on every run, in CI too
    @given(v=variants("I can't get a refund for order 1234", kinds=["typo", "contraction"], max_edits=3,
                      protected=["order 1234"]))
    def test_refund_decision_is_stable(v):
        assert decision(v.text) == decision(v.original), v.describe()

A drawn value is a :class:`~pytest_failmodes.probes.Variant`: ``text``, ``original``
and the ``edits`` that made it. A variant is drawn as a list of edit choices
(kind, site, option), so Hypothesis shrinks a failure toward fewer edits, the
earlier kinds of ``kinds``, earlier sites in the text and the first option of
each: the falsifying example it prints is the smallest edit that breaks the test.

Importing this module imports Hypothesis; the pytest plugin never does.
Hypothesis comes with the ``probes`` extra: ``pip install 'pytest-failmodes[probes]'``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

try:
    from hypothesis import strategies as st
except ModuleNotFoundError as exc:
    if exc.name != "hypothesis":
        raise
    # one line that says what to do, not a traceback into our own import
    raise ModuleNotFoundError(
        "pytest_failmodes.strategies needs Hypothesis, which is not installed: pip install 'pytest-failmodes[probes]'",
        name="hypothesis",
    ) from None

from .patterns import UserPattern
from .probes.perturb import KINDS, Variant, parse_kinds, realize, site_table

__all__ = ["variants", "paraphrases", "KINDS"]

#: option indices drawn per site; Site.edit wraps them onto its own options
_OPTIONS = 64


def variants(
    text: str,
    kinds: Iterable[str] | str | None = None,
    *,
    max_edits: int = 1,
    protected: Iterable[str | re.Pattern[str] | UserPattern] = (),
    number_range: tuple[float, float] | None = None,
) -> st.SearchStrategy[Variant]:
    """Variants of ``text`` with 1 to ``max_edits`` edits of the given kinds.

    ``kinds``: names from :data:`KINDS` (default: every meaning-preserving
    kind). ``protected``: strings (matched case-insensitively) or compiled regexes
    whose text is never edited (order numbers, product names).
    ``number_range``: for the ``number`` kind, draw replacements in this range
    instead of within ±20%. Raises ``ValueError`` when none of the kinds can
    edit ``text``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("variants() needs a non-empty text")
    if max_edits < 1:
        raise ValueError(f"max_edits must be at least 1, got {max_edits}")
    chosen = parse_kinds(kinds)
    table = site_table(text, chosen, tuple(protected), number_range)
    if not table:
        raise ValueError(f"none of the kinds {', '.join(chosen)} can edit {text!r}")
    choice = st.one_of(
        [st.tuples(st.just(kind), st.integers(0, len(found) - 1), st.integers(0, _OPTIONS - 1)) for kind, found in table.items()]
    )

    edits = st.lists(choice, min_size=1, max_size=max_edits)

    # composite rather than .map: Hypothesis then prints a failing example as the
    # Variant's repr (its text and edits) instead of the edit choices it was built from
    @st.composite
    def variant(draw: st.DrawFn) -> Variant:
        return realize(text, [table[kind][site].edit(option) for kind, site, option in draw(edits)])

    return variant()


def paraphrases(
    text: str,
    n: int = 5,
    *,
    style: str | None = None,
    model: str | None = None,
    api_base: str | None = None,
    temperature: float = 0.7,
    params: Mapping[str, Any] | None = None,
    cache_dir: str | None = None,
) -> st.SearchStrategy[Variant]:
    """One of ``n`` LLM paraphrases of ``text`` (a :class:`Variant` with ``source="paraphrase"``).

    The paraphrases are generated once, on the first draw, through the same
    litellm machinery as judges (retries, concurrency limit) and cached on
    disk in ``cache_dir`` (default: ``.failmodes`` in the working directory),
    so re-runs make no call. ``model`` defaults to ``FAILMODES_PARAPHRASE_MODEL``,
    then ``FAILMODES_JUDGE_MODEL``. ``style``: ``terse``, ``non-native``,
    ``voice``, ``formal``, ``casual`` or your own description. A call that
    fails raises :class:`~pytest_failmodes.llm.ModelError` in the test.
    Hypothesis shrinks toward the first paraphrase.
    """
    from .probes.models import ParaphraseSpec

    if not isinstance(text, str) or not text.strip():
        raise ValueError("paraphrases() needs a non-empty text")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    spec = ParaphraseSpec(
        n=n, style=style, model=model, api_base=api_base, temperature=temperature, params=dict(params or {})
    )

    def generate() -> st.SearchStrategy[Variant]:
        texts = _generate(text, spec, cache_dir)
        return st.sampled_from([Variant(text, t, source="paraphrase") for t in texts])

    return st.deferred(generate)


def _generate(text: str, spec: Any, cache_dir: str | None) -> list[str]:
    from .probes.models import paraphrase

    ctx = _context(cache_dir)
    result: list[str] = ctx.runner.submit(paraphrase(ctx, text, spec)).result()
    return result


_CONTEXTS: dict[str, Any] = {}


def _context(cache_dir: str | None) -> Any:
    """One runner and cache per cache directory for the process (closed at exit)."""
    import atexit
    from pathlib import Path

    directory = str(Path(cache_dir or ".failmodes").resolve())
    ctx = _CONTEXTS.get(directory)
    if ctx is None:
        from .cache import ResultCache
        from .judge import ModelContext
        from .llm import Runner

        runner = Runner(max_concurrency=8)
        ctx = _CONTEXTS[directory] = ModelContext(runner, ResultCache(Path(directory)))
        atexit.register(_close, directory)
    return ctx


def _close(directory: str) -> None:
    ctx = _CONTEXTS.pop(directory, None)
    if ctx is not None:
        try:
            ctx.runner.close()
        finally:
            if ctx.cache is not None:
                ctx.cache.close()
