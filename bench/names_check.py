"""Benchmark: what does checking a definition's names against the data cost?

Every mode's fields, tool names and values are checked during the one pass
over the data (pytest_failmodes.seen). Measured in one run, each figure
against a baseline measured in the same run:

(a) evaluate() of a suite (cohorts, where:, a label, a tool_called rule, a
    rule field) over N in-memory traces, with its names checked, against the
    same suite with the check switched off (its needs removed);
(b) the worst case: names occur in no trace, so the vocabulary for
    "did you mean" is collected over every trace; each trace also carries a
    metadata key of its own (unbounded distinct names), and the peak memory
    of the check (tracemalloc) shows the cap holding.

    .venv/bin/python bench/names_check.py [--traces 50000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_failmodes.definitions import suite_from_mapping  # noqa: E402
from pytest_failmodes.detectors import merge_rule_kinds  # noqa: E402
from pytest_failmodes.detectors.rules import BUILTIN_RULE_KINDS  # noqa: E402
from pytest_failmodes.engine import Suite, evaluate  # noqa: E402
from pytest_failmodes.seen import MAX_NAMES, Seen  # noqa: E402
from pytest_failmodes.trace import Trace  # noqa: E402

KINDS = merge_rule_kinds([BUILTIN_RULE_KINDS])


def definition(tool: str, field: str) -> dict[str, Any]:
    return {
        "dataset": "unused.jsonl",
        "cohorts": ["route", ["route", "tier"]],
        "failure_modes": [
            {"name": "low_reward", "label": {"field": "reward", "fail_values": [0.0], "pass_values": [1]}},
            {"name": "handoff", "where": {"route": ["billing", "shipping"]}, "rule": {"tool_called": tool}},
            {"name": "leak", "rule": {"regex": "LEAK", "field": field}},
        ],
    }


def traces(n: int, unique_keys: bool) -> list[Trace]:
    out = []
    for i in range(n):
        meta: dict[str, Any] = {"route": ("billing", "shipping", "returns")[i % 3], "tier": i % 4, "reward": float(i % 2),
                                "note": "fine"}
        if unique_keys:
            meta[f"k{i}"] = i  # a key of its own: the vocabulary must not grow with it
        messages = [
            {"role": "user", "content": "help"},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c", "type": "function", "function": {"name": "transfer_to_human", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "ok"},
            {"role": "assistant", "content": "done"},
        ]
        out.append(Trace(id=f"t{i}", messages=messages, metadata=meta))
    return out


def without_check(suite: Suite) -> Suite:
    return dataclasses.replace(suite, needs=(), modes=tuple(dataclasses.replace(m, needs=()) for m in suite.modes))


def timed(suite: Suite, data: list[Trace], repeat: int) -> tuple[float, dict[str, Any]]:
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = evaluate(suite, {m.name: m.detector for m in suite.modes}, traces=data)  # type: ignore[misc]
        times.append(time.perf_counter() - start)
    assert result is not None
    return statistics.median(times), {k: (r.broken is not None) for k, r in result.modes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(f"{args.traces:,} traces, median of {args.repeat} runs")
    for title, tool, field, unique in (
        ("(a) every name found early", "transfer_to_human", "metadata.note", False),
        ("(b) a tool and a field in no trace, a metadata key per trace", "transfer_to_humans", "metadata.notes", True),
    ):
        data = traces(args.traces, unique)
        suite = suite_from_mapping(definition(tool, field), Path("bench.failmodes.yaml"), KINDS)
        base, _ = timed(without_check(suite), data, args.repeat)
        checked, broken = timed(suite, data, args.repeat)
        print(f"{title}")
        print(f"  evaluate without the check  {base:7.3f} s")
        print(f"  evaluate with the check     {checked:7.3f} s   ratio {checked / base:.3f}")
        print(f"  broken modes: {[k for k, b in broken.items() if b] or 'none'}")
        tracemalloc.start()
        seen = Seen([n for m in suite.modes for n in m.needs] + list(suite.needs))
        for trace in data:
            seen.observe(trace)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"  the check alone: peak {peak / 1024:.0f} KiB over {len(data):,} traces (names capped at {MAX_NAMES:,})")


if __name__ == "__main__":
    main()
