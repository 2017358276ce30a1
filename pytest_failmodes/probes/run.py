"""Running a probe: variants of each input through the application, compared
with the original's answer, counted per perturbation kind and cohort.

It knows nothing of pytest. The result is an ordinary :class:`ModeResult`
(one "trace" per variant), so the summary table, the JSON, Markdown, JUnit
and HTML reports and baselines treat a probe like any failure mode.

The rate is measured on a seeded, uniform sample of variants (``variants``
per kind and input), not on a search: a search finds failures, a sample says
how often they happen. Then each failing input's failing variant with the
fewest edits is **shrunk**: its edits alone, then with one edit left out,
until no smaller variant still fails. Every round of candidates runs
concurrently.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..engine import ALL, Aggregator, Gate, ModeResult, ModeSpec, finish_mode
from .compare import CannotCompare, Comparator, Comparison, exact
from .perturb import Edit, Variant, perturb, realize, sites

if TYPE_CHECKING:
    from ..judge import ModelContext
    from ..where import Where
    from .models import EquivalenceSpec, ParaphraseSpec

__all__ = ["ProbeInput", "ProbeSpec", "run_probe", "failure_lines"]


@dataclass(frozen=True)
class ProbeInput:
    id: str
    text: str
    #: cohort labels of the input ("route=billing"), from the dataset's metadata
    cohorts: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProbeSpec:
    """One probe of a definition file, ready to run."""

    name: str
    source: str
    target: str
    kinds: tuple[str, ...] = ()
    inputs: tuple[ProbeInput, ...] = ()
    from_dataset: bool = False
    where: Where | None = None
    variants: int = 5
    max_edits: int = 1
    #: texts (case-insensitive) and compiled regexes never edited
    protected: tuple[Any, ...] = ()
    number_range: tuple[float, float] | None = None
    paraphrase: ParaphraseSpec | None = None
    #: a Comparator, an EquivalenceSpec (LLM judge) or the name of a fixture (default: exact)
    comparator: Comparator | EquivalenceSpec | str | None = None
    expect: str = "same"
    direction: str | None = None
    gate: Gate = field(default_factory=Gate)
    seed: int = 0
    description: str = ""
    line: int = 1
    order: int = 0
    fingerprint: str = ""

    @property
    def key(self) -> str:
        return f"{self.source}::{self.name}"

    def describe(self) -> str:
        what = list(self.kinds) + ([f"paraphrase x{self.paraphrase.n}"] if self.paraphrase else [])
        if self.comparator is None or isinstance(self.comparator, Comparator):
            cmp = repr(self.comparator or exact())
        elif isinstance(self.comparator, str):
            cmp = f"fixture({self.comparator})"
        else:
            cmp = "judge"
        expect = self.expect + (f" ({self.direction})" if self.direction else "")
        return f"probe({', '.join(what)}; {cmp}; expect {expect})"

    def mode(self) -> ModeSpec:
        """The probe as a failure mode, for the engine's aggregation and reports."""
        return ModeSpec(
            name=self.name,
            source=self.source,
            detector=_Repr(self.describe()),  # type: ignore[arg-type]
            description=self.description or _default_description(self),
            line=self.line,
            gate=self.gate,
            order=self.order,
            fingerprint=self.fingerprint,
        )


def _default_description(spec: ProbeSpec) -> str:
    if spec.expect == "same":
        return "FAIL when a perturbed input gets a different answer than the original."
    return "FAIL when a perturbed input does not change the answer" + (
        f" ({'up' if spec.direction == 'up' else 'down'})." if spec.direction else "."
    )


class _Repr:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


@dataclass
class _Case:
    """One variant of one input, and what became of it."""

    input: int
    kind: str
    variant: Variant
    id: str
    status: str = ""
    reason: str = ""
    #: the comparison's account of a failure, without the edits
    why: str = ""
    evidence: Any = None
    output: str | None = None


Compare = Callable[[str, str], "Future[Comparison] | Comparison"]


class _Outputs:
    """The application's output per input text: each text run once, batches concurrently,
    under the runner's limit and retries like a target's calls (stats as ``target:<fixture>``)."""

    def __init__(self, spec: ProbeSpec, app: Callable[[str], Any], ctx: ModelContext) -> None:
        from ..target import app_caller

        self.label = f"target:{spec.target}"
        self.call = app_caller(app)
        self.ctx = ctx
        self.known: dict[str, tuple[bool, str]] = {}

    async def _one(self, text: str) -> str:
        from ..target import output_of

        return output_of(await self.ctx.runner.guarded(self.label, lambda: self.call(text)))

    def fetch(self, texts: Iterable[str]) -> None:
        todo = list(dict.fromkeys(t for t in texts if t not in self.known))
        if not todo:
            return
        # one hop to the runner's loop for the whole batch: a future per call from this
        # thread cost more than a fast in-process app (bench/probes.py)
        runner = self.ctx.runner
        results = runner.submit(_gather([self._one(t) for t in todo], _window(runner))).result()
        for text, result in zip(todo, results):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # KeyboardInterrupt, cancellation: not an answer of the app
                self.known[text] = (False, f"{type(result).__name__}: {result}"[:500])
            else:
                self.known[text] = (True, result)

    def get(self, text: str) -> tuple[bool, str]:
        return self.known[text]


def _comparer(comparator: Comparator | EquivalenceSpec, ctx: ModelContext) -> Callable[[Sequence[tuple[str, str]]], list[Comparison | Exception]]:
    """Compare many (original, variant) output pairs; a judge asks them concurrently."""
    if isinstance(comparator, Comparator):

        def sync(pairs: Sequence[tuple[str, str]]) -> list[Comparison | Exception]:
            out: list[Comparison | Exception] = []
            for a, b in pairs:
                try:
                    out.append(comparator(a, b))
                except Exception as exc:  # noqa: BLE001 - a comparator that fails is an error for that variant
                    out.append(exc)
            return out

        return sync
    from .models import equivalent

    spec = comparator

    def judged(pairs: Sequence[tuple[str, str]]) -> list[Comparison | Exception]:
        if not pairs:
            return []
        results = ctx.runner.submit(_gather([equivalent(ctx, a, b, spec) for a, b in pairs], _window(ctx.runner))).result()
        out: list[Comparison | Exception] = []
        for result in results:
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                out.append(result)  # an unreachable judge is an error, never a verdict
            else:
                out.append(Comparison(result[0], f"judge: {result[1]}"))
        return out

    return judged


def _window(runner: Any) -> int:
    return max(256, 4 * runner.max_concurrency)


async def _gather(coros: list[Any], window: int) -> list[Any]:
    """Every coroutine's result or exception, in order. At most ``window`` are started at
    once: thousands of tasks queued on the runner's limit cost more than they save."""
    pending = iter(coros)
    results: list[Any] = [None] * len(coros)
    index = 0

    async def worker() -> None:
        nonlocal index
        for coro in pending:
            i = index
            index += 1
            try:
                results[i] = await coro
            except BaseException as exc:  # noqa: BLE001 - returned to the caller, which decides
                results[i] = exc

    await asyncio.gather(*(worker() for _ in range(min(window, len(coros)))))
    return results


def _judge_outcome(spec: ProbeSpec, cmp: Comparison) -> tuple[bool, str]:
    """(failed, why) for the probe's expectation."""
    if spec.expect == "same":
        return (not cmp.same), ("answer changed: " + cmp.detail if not cmp.same else cmp.detail)
    if spec.direction:
        moved = cmp.delta is not None and not cmp.same and (cmp.delta > 0 if spec.direction == "up" else cmp.delta < 0)
        return (not moved), (cmp.detail if moved else f"answer did not go {spec.direction}: {cmp.detail}")
    return cmp.same, ("answer did not change: " + cmp.detail if cmp.same else cmp.detail)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, CannotCompare):
        return f"cannot compare: {exc}"
    return f"{type(exc).__name__}: {exc}"[:500]


def plan_variants(spec: ProbeSpec, inputs: Sequence[ProbeInput]) -> list[_Case]:
    """The seeded sample: up to ``spec.variants`` distinct variants per kind and input."""
    cases = []
    for i, inp in enumerate(inputs):
        for kind in spec.kinds:
            rng = random.Random(f"{spec.seed}:{inp.id}:{kind}")
            seen: set[str] = {inp.text}
            for v in _sample(spec, inp.text, kind, rng):
                if v.text not in seen:
                    seen.add(v.text)
                    cases.append(_Case(i, kind, v, f"{inp.id}~{kind}.{len(seen) - 1}"))
    return cases


def _sample(spec: ProbeSpec, text: str, kind: str, rng: random.Random) -> list[Variant]:
    if spec.max_edits == 1:
        # single edits: drawn without replacement, so a small space is covered whole
        found = sites(text, kind, spec.protected, number_range=spec.number_range)
        singles = [(s, o) for s in found for o in range(len(s.options))]
        if len(singles) > spec.variants:
            picked = sorted(rng.sample(range(len(singles)), spec.variants))
            singles = [singles[j] for j in picked]
        return [realize(text, [s.edit(o)]) for s, o in singles]
    out = []
    for _ in range(spec.variants * 4):  # draws that repeat a variant are dropped: try a few more
        v = perturb(text, kind, rng, spec.protected, max_edits=spec.max_edits, number_range=spec.number_range)
        if v is None:
            break
        out.append(v)
        if len({x.text for x in out}) >= spec.variants:
            break
    return out


def run_probe(
    spec: ProbeSpec,
    app: Callable[[str], Any],
    ctx: ModelContext,
    inputs: Sequence[ProbeInput],
    comparator: Comparator | EquivalenceSpec,
    progress: Callable[[int, int], None] | None = None,
) -> ModeResult:
    """Run the probe over ``inputs`` with the application ``app``; its result as a failure mode."""
    cases = plan_variants(spec, inputs)
    if spec.paraphrase is not None:
        cases.extend(_paraphrase_cases(spec, ctx, inputs))
    outputs = _Outputs(spec, app, ctx)
    outputs.fetch([inp.text for inp in inputs] + [c.variant.text for c in cases if c.status == ""])
    compare = _comparer(comparator, ctx)
    _settle(spec, inputs, cases, outputs, compare)
    _shrink_failures(spec, inputs, cases, outputs, compare)

    agg = Aggregator()
    details: dict[int, list[Any]] = {}
    codes = []
    code_of = {"pass": "P", "fail": "F", "error": "E"}
    for idx, case in enumerate(cases):
        agg.add([ALL, f"perturbation={case.kind}", *inputs[case.input].cohorts], case.status)
        codes.append(code_of[case.status])
        if case.status != "pass":
            details[idx] = [case.reason, case.evidence]
    result = finish_mode(spec.mode(), agg, [c.id for c in cases], "".join(codes), details)
    if not cases:
        result.notes.append("no input had anything to perturb: the probe measured nothing")
    return result


def _paraphrase_cases(spec: ProbeSpec, ctx: ModelContext, inputs: Sequence[ProbeInput]) -> list[_Case]:
    from .models import paraphrase

    assert spec.paraphrase is not None
    futures = [ctx.runner.submit(paraphrase(ctx, inp.text, spec.paraphrase)) for inp in inputs]
    cases = []
    for i, (inp, fut) in enumerate(zip(inputs, futures)):
        try:
            texts = fut.result()
        except Exception as exc:  # noqa: BLE001 - no paraphrases: an error, never a pass
            case = _Case(i, "paraphrase", Variant(inp.text, inp.text, source="paraphrase"), f"{inp.id}~paraphrase")
            case.status, case.reason = "error", f"paraphrasing failed: {_error_text(exc)}"
            cases.append(case)
            continue
        for j, text in enumerate(texts, 1):
            cases.append(_Case(i, "paraphrase", Variant(inp.text, text, source="paraphrase"), f"{inp.id}~paraphrase.{j}"))
    return cases


def _settle(
    spec: ProbeSpec,
    inputs: Sequence[ProbeInput],
    cases: list[_Case],
    outputs: _Outputs,
    compare: Callable[[Sequence[tuple[str, str]]], list[Comparison | Exception]],
) -> None:
    pending: list[tuple[_Case, str, str]] = []
    for case in cases:
        if case.status:
            continue
        ok_a, out_a = outputs.get(inputs[case.input].text)
        ok_b, out_b = outputs.get(case.variant.text)
        if not ok_a:
            case.status, case.reason = "error", f"target failed on the original input: {out_a}"
        elif not ok_b:
            case.status, case.reason = "error", f"target failed on the variant: {out_b}"
        else:
            case.output = out_b
            pending.append((case, out_a, out_b))
    results = compare([(a, b) for _, a, b in pending])
    for (case, out_a, out_b), cmp in zip(pending, results):
        evidence = _evidence(inputs[case.input].text, case.variant, out_a, out_b)
        if isinstance(cmp, Exception):
            case.status, case.reason, case.evidence = "error", _error_text(cmp), evidence
            continue
        failed, why = _judge_outcome(spec, cmp)
        case.status = "fail" if failed else "pass"
        case.why = why
        case.reason = f"{why} [{case.variant.describe()}]" if failed else ""
        case.evidence = evidence if failed else None


def _evidence(original: str, variant: Variant, out_a: str, out_b: str) -> dict[str, Any]:
    return {
        "input": original,
        "variant": variant.text,
        "edits": [e.describe() for e in variant.edits] or [variant.source],
        "output": out_a,
        "variant_output": out_b,
    }


def _shrink_failures(
    spec: ProbeSpec,
    inputs: Sequence[ProbeInput],
    cases: list[_Case],
    outputs: _Outputs,
    compare: Callable[[Sequence[tuple[str, str]]], list[Comparison | Exception]],
) -> None:
    """For each input, the failing variant with fewest edits, shrunk; kept as ``evidence["minimal"]``."""
    first: dict[int, _Case] = {}
    for case in cases:
        if case.status != "fail":
            continue
        best = first.get(case.input)
        if best is None or len(case.variant.edits) < len(best.variant.edits):
            first[case.input] = case
    states = {i: _Shrink(c) for i, c in first.items()}
    while True:
        active = [s for s in states.values() if s.candidates]
        if not active:
            break
        texts = [inputs[s.case.input].text for s in active]
        outputs.fetch(v.text for s in active for v in s.candidates)
        pairs: list[tuple[_Shrink, Variant, str, str]] = []
        for s, original in zip(active, texts):
            ok_a, out_a = outputs.get(original)
            for v in s.candidates:
                ok_b, out_b = outputs.get(v.text)
                if ok_a and ok_b:
                    pairs.append((s, v, out_a, out_b))
        results = compare([(a, b) for _, _, a, b in pairs])
        failing: dict[int, tuple[Variant, str, str, str]] = {}
        for (s, v, a, b), cmp in zip(pairs, results):
            if isinstance(cmp, Exception) or id(s) in failing:
                continue
            failed, why = _judge_outcome(spec, cmp)
            if failed:
                failing[id(s)] = (v, a, b, why)
        for s in active:
            s.advance(failing.get(id(s)))
    for s in states.values():
        v, a, b, why = s.best
        ev = s.case.evidence
        ev["minimal"] = {**_evidence(ev["input"], v, a, b), "why": why, "shrunk_from": len(s.case.variant.edits)}


class _Shrink:
    """Delta debugging over a failing variant's edits: singles first, then one edit left out."""

    def __init__(self, case: _Case) -> None:
        self.case = case
        ev = case.evidence
        self.best: tuple[Variant, str, str, str] = (case.variant, ev["output"], ev["variant_output"], case.why)
        self.phase = "singles"
        self.candidates: list[Variant] = self._next()

    def _edits(self) -> tuple[Edit, ...]:
        return self.best[0].edits

    def _next(self) -> list[Variant]:
        edits = self._edits()
        if len(edits) <= 1:
            return []
        original = self.case.variant.original
        if self.phase == "singles":
            return [realize(original, [e]) for e in edits]
        return [realize(original, [e for e in edits if e is not skip]) for skip in edits]

    def advance(self, found: tuple[Variant, str, str, str] | None) -> None:
        if found is not None:
            self.best = found
            self.phase = "singles"
        elif self.phase == "singles":
            self.phase = "drop-one"
        else:
            self.candidates = []
            return
        self.candidates = self._next()


def failure_lines(result: ModeResult, limit: int) -> list[str]:
    """Per failing input: the minimal failing variant, its edits and both outputs."""
    shown = []
    for _tid, status, _reason, evidence in result.verdicts():
        if status == "fail" and isinstance(evidence, dict) and "minimal" in evidence:
            shown.append(evidence["minimal"])
    if not shown or limit == 0:
        return []
    out = [f"minimal failing variants ({min(limit, len(shown))} of {len(shown)} failing inputs):"]
    for m in shown[:limit]:
        out.append(f"  input:          {m['input']!r}")
        out.append(f"  variant:        {m['variant']!r}")
        edits = "; ".join(m["edits"])
        shrunk = f" (shrunk from {m['shrunk_from']} edits)" if m["shrunk_from"] > len(m["edits"]) and m["edits"] != ["paraphrase"] else ""
        out.append(f"  edit:           {edits}{shrunk}")
        out.append(f"  output:         {m['output']!r}")
        out.append(f"  variant output: {m['variant_output']!r}")
        out.append(f"  why:            {m['why']}")
    return out
