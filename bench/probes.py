"""Consistency probes: how fast variants are generated and compared, and how close a
probe against a slow target comes to the ideal concurrent bound.

    .venv/bin/python bench/probes.py            # full run, about a minute
    .venv/bin/python bench/probes.py --quick    # smoke run

(a) throughput: ``run_probe`` (the engine, no pytest) over ``--inputs`` synthetic
    support messages x 4 kinds x ``--variants``, against an in-process target
    (a small rule-based decision function), in variants generated and
    compared per second; against a plain loop in the same run that generates
    the same variants and calls the target and the comparator directly, one
    after the other (no runner, no threads, no reports).
(b) concurrency: the same probe against a target that calls a model through
    litellm, served by ``tests/fakellm.py`` in a separate process with
    ``--latency-ms`` (default 50), with ``Runner(max_concurrency=--concurrency)``.
    Figure: the ideal bound ``calls x latency / concurrency`` divided by the
    measured wall time (1.0 = no overhead). Reference, same run: the same probe
    against an in-process async target that sleeps the same latency, which
    isolates our scheduling from litellm's client cost.

Nothing here asserts on time; the figures are ratios measured in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from pytest_failmodes.engine import Gate  # noqa: E402
from pytest_failmodes.judge import ModelContext  # noqa: E402
from pytest_failmodes.llm import Runner, load_litellm  # noqa: E402
from pytest_failmodes.probes import compare  # noqa: E402
from pytest_failmodes.probes.run import ProbeInput, ProbeSpec, plan_variants, run_probe  # noqa: E402

FAKELLM = ROOT / "tests" / "fakellm.py"
KINDS = ("typo", "case", "contraction", "filler")
REPLY = "REFUND APPROVED (defective)."

OPENINGS = ["Hi,", "Hello.", "Good morning.", "Hey,", ""]
ASKS = [
    "I'd like a refund for order HG-{n}.",
    "Can I get my money back for HG-{n}?",
    "Requesting a refund on HG-{n}, please.",
    "I can't find my order HG-{n} and I want a refund.",
]
PROBLEMS = [
    "The desk lamp arrived damaged.",
    "The kettle won't switch on.",
    "The skillet has a crack in it.",
    "The towels aren't what I expected.",
    "It's missing parts and I don't know what to do.",
]


def messages(n: int, seed: int) -> list[ProbeInput]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = " ".join(p for p in (rng.choice(OPENINGS), rng.choice(ASKS).format(n=100000 + i), rng.choice(PROBLEMS)) if p)
        out.append(ProbeInput(f"m{i}", text))
    return out


def decide(text: str) -> str:
    """The in-process target: a few keyword checks, like a rule-based triage step."""
    t = text.lower()
    if "refund" not in t and "money back" not in t:
        return "NO REFUND REQUESTED."
    if any(w in t for w in ("damaged", "crack", "switch on", "missing parts")):
        return "REFUND APPROVED (defective)."
    return "REFUND NEEDS REVIEW."


def spec(variants: int) -> ProbeSpec:
    return ProbeSpec(
        name="bench", source="bench", target="app", kinds=KINDS, variants=variants,
        comparator=compare.extract(r"^(REFUND \w+|NO REFUND)"), gate=Gate(max_fail_rate=1.0, max_errors=10**9),
    )


def plain_loop(probe: ProbeSpec, inputs: Sequence[ProbeInput]) -> tuple[float, int]:
    """The same variants and comparisons, one after the other, with nothing around them."""
    cmp = probe.comparator
    assert isinstance(cmp, compare.Comparator)
    started = time.perf_counter()
    cases = plan_variants(probe, inputs)
    originals = {inp.text: decide(inp.text) for inp in inputs}
    changed = 0
    for case in cases:
        if not cmp(originals[inputs[case.input].text], decide(case.variant.text)).same:
            changed += 1
    return time.perf_counter() - started, len(cases)


def timed_probe(probe: ProbeSpec, app: Callable[[str], Any], inputs: Sequence[ProbeInput], concurrency: int) -> tuple[float, int, int]:
    with Runner(max_concurrency=concurrency, timeout=60.0, max_retries=0) as runner:
        ctx = ModelContext(runner, None)
        started = time.perf_counter()
        result = run_probe(probe, app, ctx, inputs, probe.comparator)  # type: ignore[arg-type]
        wall = time.perf_counter() - started
        calls = sum(s["calls"] for s in runner.stats_dict().values())
    errors = result.rows[0].errors if result.rows else 0
    return wall, len(result.ids), calls if not errors else -errors


class Server:
    """tests/fakellm.py as a child process (its threads would compete with ours for the GIL)."""

    def __init__(self, latency_ms: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKELLM), "--port", "0", "--latency-ms", str(latency_ms), "--reply", REPLY, "--max-seconds", "900"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        if not first.startswith("base_url="):
            self.proc.kill()
            raise SystemExit(f"error: fakellm did not start: {first!r}")
        self.base_url = first.split("=", 1)[1]

    def stop(self) -> str:
        self.proc.send_signal(2)
        out, _ = self.proc.communicate(timeout=30)
        return out.strip().splitlines()[-1] if out.strip() else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--inputs", type=int, default=200, help="inputs of the throughput probe (default 200)")
    parser.add_argument("--variants", type=int, default=5, help="variants per input and kind (default 5)")
    parser.add_argument("--slow-inputs", type=int, default=60, help="inputs of the slow-target probe (default 60)")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each measurement; the median is shown (default 3)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.inputs, args.slow_inputs, args.reps = 40, 20, 1

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    probe = spec(args.variants)

    # (a) throughput against an in-process target
    inputs = messages(args.inputs, args.seed)
    timed_probe(probe, decide, inputs[:5], args.concurrency)  # warm-up: imports, thread pool
    ours, loop = [], []
    for _ in range(args.reps):
        wall, variants, _calls = timed_probe(probe, decide, inputs, args.concurrency)
        ours.append(wall)
        base, n = plain_loop(probe, inputs)
        loop.append(base)
        assert n == variants, (n, variants)
    ours_t, loop_t = sorted(ours)[len(ours) // 2], sorted(loop)[len(loop) // 2]
    print(f"\n(a) throughput: {args.inputs} inputs x {len(KINDS)} kinds x {args.variants} variants = {variants} variants, in-process target")
    print(f"    run_probe:  {ours_t:7.3f} s  {variants / ours_t:9.0f} variants/s")
    print(f"    plain loop: {loop_t:7.3f} s  {variants / loop_t:9.0f} variants/s  (same variants, direct calls)")
    print(f"    ratio run_probe / plain loop: {ours_t / loop_t:.1f}x the time")

    # (b) a 50 ms target: through litellm against the loopback server, and in-process asyncio.sleep
    latency = args.latency_ms / 1000.0
    slow_inputs = messages(args.slow_inputs, args.seed + 1)
    litellm = load_litellm()
    server = Server(args.latency_ms)
    try:
        base_url = server.base_url

        async def llm_app(text: str) -> str:
            reply = await litellm.acompletion(
                model="openai/fake-target", api_base=base_url, api_key="sk-bench",
                messages=[{"role": "user", "content": text}], max_retries=0,
            )
            return str(reply.choices[0].message.content)

        async def sleepy_app(text: str) -> str:
            await asyncio.sleep(latency)
            return decide(text)

        timed_probe(probe, llm_app, slow_inputs[:3], args.concurrency)  # warm-up: litellm's client, connections
        results: dict[str, list[tuple[float, int]]] = {"litellm -> fakellm": [], "async sleep (reference)": []}
        for _ in range(args.reps):
            for label, app in (("litellm -> fakellm", llm_app), ("async sleep (reference)", sleepy_app)):
                wall, variants_b, calls = timed_probe(probe, app, slow_inputs, args.concurrency)
                if calls < 0:
                    raise SystemExit(f"error: {label}: {-calls} target errors")
                results[label].append((wall, calls))
    finally:
        summary = server.stop()
    print(f"\n(b) a target with {args.latency_ms:.0f} ms latency, concurrency {args.concurrency}: "
          f"{args.slow_inputs} inputs, {variants_b} variants")
    for label, runs in results.items():
        wall, calls = sorted(runs)[len(runs) // 2]
        ideal = calls * latency / args.concurrency
        print(f"    {label:24s} {calls} calls  wall {wall:6.2f} s  ideal {ideal:5.2f} s  "
              f"fraction of ideal {ideal / wall:.2f}  ({calls / wall:.0f} calls/s)")
    print(f"    server: {summary}")
    print(f"\nload at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
