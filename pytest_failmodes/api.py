"""``@failure_mode``: a failure mode written as a pytest test function."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["failure_mode", "SPEC_ATTR"]

F = TypeVar("F", bound=Callable[..., Any])

#: attribute under which the decorator stores its arguments
SPEC_ATTR = "__failmodes_spec__"


def failure_mode(
    *,
    dataset: str,
    fields: Mapping[str, str] | None = None,
    cohorts: Sequence[str | Sequence[str]] | None = None,
    where: Mapping[str, Any] | None = None,
    max_fail_rate: float | None = None,
    gate: Mapping[str, Any] | None = None,
    description: str | None = None,
    allow_empty: bool | None = None,
) -> Callable[[F], F]:
    """Turn a test function taking ``trace`` into a failure mode.

    The function is called once per trace of ``dataset`` (a path relative to
    the test file); an ``AssertionError`` means the failure is present, any
    other exception is an error. Other parameters are pytest fixtures.
    A mode whose every trace is skipped fails its gate unless ``allow_empty=True``.
    Collected only under ``pytest --failmodes``::

        @failure_mode(dataset="data/traces.jsonl", cohorts=["route"], max_fail_rate=0.02)
        def test_no_apology_loop(trace):
            assert trace.output.lower().count("sorry") < 3
    """
    spec = {
        "dataset": dataset,
        "fields": dict(fields) if fields else None,
        "cohorts": [c if isinstance(c, str) else list(c) for c in cohorts] if cohorts else None,
        "where": dict(where) if where else None,
        "max_fail_rate": max_fail_rate,
        "gate": dict(gate) if gate else None,
        "description": description,
        "allow_empty": allow_empty,
    }

    def mark(func: F) -> F:
        setattr(func, SPEC_ATTR, spec)
        # plain pytest must not collect it: it needs a trace, which only --failmodes supplies
        func.__test__ = False  # type: ignore[attr-defined]
        return func

    return mark
