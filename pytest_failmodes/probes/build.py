"""``probes:`` of a definition file (validated ProbeDefs) -> ProbeSpecs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..gate_layers import merge_gate
from ..patterns import compile_pattern
from . import compare
from .models import EquivalenceSpec, ParaphraseSpec
from .run import ProbeInput, ProbeSpec

if TYPE_CHECKING:
    from ..definitions import FileDef, ProbeDef, SameWhenDef

__all__ = ["build_probes"]


def build_probes(fdef: FileDef, source: str, line_of: Callable[[Any], int | None], first_order: int) -> tuple[ProbeSpec, ...]:
    from ..where import compile_where

    out = []
    for i, p in enumerate(fdef.probes):
        where = None
        if p.inputs_from_dataset and p.inputs.get("where") is not None:
            where = compile_where(p.inputs["where"])
        inputs = () if p.inputs_from_dataset else tuple(ProbeInput(f"in{j + 1}", text) for j, text in enumerate(p.inputs))
        out.append(
            ProbeSpec(
                name=p.name,
                source=source,
                target=p.target,
                kinds=tuple(p.perturb),
                inputs=inputs,
                from_dataset=p.inputs_from_dataset,
                where=where,
                variants=p.variants,
                max_edits=p.max_edits,
                protected=tuple(compile_pattern(x["regex"]) if isinstance(x, dict) else x for x in p.protect),
                number_range=tuple(p.number_range) if p.number_range else None,  # type: ignore[arg-type]
                paraphrase=_paraphrase(p, fdef) if p.paraphrase is not None else None,
                comparator=_comparator(p.same_when, fdef),
                expect=p.expect,
                direction=p.direction,
                gate=merge_gate(fdef.gate, p),
                seed=p.seed,
                description=p.description,
                line=line_of(("probes", i)) or 1,
                order=first_order + i,
                fingerprint=_fingerprint(p),
            )
        )
    return tuple(out)


def _call_params(own: Any, fdef: FileDef, defaults: dict[str, Any]) -> dict[str, Any]:
    """model, temperature, max_tokens, api_base, params: the probe's, else the file's judge:, else defaults."""
    values: dict[str, Any] = {}
    for key in ("model", "temperature", "max_tokens", "api_base"):
        value = getattr(own, key)
        if value is None:
            value = getattr(fdef.judge, key)
        values[key] = defaults.get(key) if value is None else value
    values["params"] = {**fdef.judge.params, **own.params}
    return values


def _paraphrase(p: ProbeDef, fdef: FileDef) -> ParaphraseSpec:
    own = p.paraphrase
    assert own is not None
    # a paraphrase wants variety: the file's judge temperature (0 for verdicts) is not inherited
    values = _call_params(own, fdef, {"temperature": 0.7, "max_tokens": 800})
    if own.temperature is None:
        values["temperature"] = 0.7
    return ParaphraseSpec(n=own.n, style=own.style, **values)


def _comparator(same: SameWhenDef, fdef: FileDef) -> compare.Comparator | EquivalenceSpec | str:
    if same.exact:
        return compare.exact()
    if same.normalized:
        return compare.normalized()
    if same.numeric is not None:
        return compare.numeric(same.numeric.tolerance, same.numeric.relative, same.numeric.pattern)
    if same.extract is not None:
        return compare.extract(same.extract.pattern, same.extract.group)
    if same.json_field is not None:
        return compare.json_field(same.json_field)
    if same.judge is not None:
        values = _call_params(same.judge, fdef, {"temperature": 0.0, "max_tokens": 300})
        if same.judge.question:
            values["question"] = same.judge.question
        return EquivalenceSpec(**values)
    assert same.fixture is not None
    return same.fixture


def _fingerprint(p: ProbeDef) -> str:
    data = p.model_dump(mode="json", exclude={"max_fail_rate", "gate"})
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
