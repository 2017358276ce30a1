"""A gate from its layers in a definition file (the file's ``gate:``, a mode's or
probe's own). Below :mod:`definitions`, which uses it for modes and probes alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .engine import Gate
from .values import canonical_cohort


class _GateLayer(Protocol):
    """What a ``gate:`` (definitions.GateDef) gives: the Gate's fields, None where unset."""

    @property
    def cohort_limits(self) -> Mapping[str, float]: ...


class _Gated(Protocol):
    """A mode or probe as written (definitions.ModeDef, definitions.ProbeDef)."""

    @property
    def gate(self) -> Any: ...

    @property
    def max_fail_rate(self) -> float | None: ...

__all__ = ["merge_gate"]


def merge_gate(file_gate: _GateLayer, mode: _Gated) -> Gate:
    """A mode's or probe's :class:`Gate`: the file's ``gate:``, then its own ``gate:``, then its ``max_fail_rate``."""
    # typed here by what is read, so this module needs nothing of definitions (which imports it)
    layers: list[_GateLayer] = [file_gate] + ([mode.gate] if mode.gate else [])
    values: dict[str, Any] = {}
    limits: dict[str, float] = {}
    for layer in layers:
        for key in ("max_fail_rate", "gate_on", "max_errors", "min_cohort_size", "min_increase", "gate_on_corrected", "allow_empty"):
            v = getattr(layer, key)
            if v is not None:
                values[key] = v
        # as the run spells cohorts: `reward=1.0` names the cohort `reward=1`
        limits.update({canonical_cohort(k): v for k, v in layer.cohort_limits.items()})
    if mode.max_fail_rate is not None:
        values["max_fail_rate"] = mode.max_fail_rate
    allow_empty = getattr(mode, "allow_empty", None)  # a probe has it only in its gate
    if allow_empty is not None:
        values["allow_empty"] = allow_empty
    return Gate(cohort_limits=limits, **values)
