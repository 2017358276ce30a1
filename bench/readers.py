"""Benchmark: loading OpenInference spans against a plain ``json.loads`` loop.

Generates ``--spans`` spans (default 100,000; about 10,000 traces of 10 spans)
in the shape of the real fixture ``tests/data/openinference.jsonl`` (an agent
span, four LLM-call + tool pairs, a final LLM call; children written before
their root, as the OpenTelemetry SDK exports them, and two traces in flight
at a time, so their spans interleave), then measures in separate processes:

(a) a plain loop: ``json.loads`` on every line, nothing else;
(a') for reference, the same loop with pydantic-core's ``from_json``, the
    parser the loader uses for the common row (no target: it shows what is
    left of (b) once the parsing is as fast as it is there);
(b) ``iter_traces`` over the same file: spans grouped into traces, ordered
    into trees, steps and trace-level input/output derived;
(c) (b) again on a file twice as large, to show that memory does not grow
    with the file (the loader streams; only traces in flight are held).

(a) and (b) run in turn ``--repeat`` times (default 3). It prints traces/s, the
median ratio (b)/(a) over those pairs in wall and CPU time (target <= 2.0), the
load average before and after, and each process's peak RSS. Run::

    .venv/bin/python bench/readers.py [--spans 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "data" / "openinference.jsonl"


def _templates() -> dict[str, dict[str, Any]]:
    """One span of each role from the fixture's first trace with a tool call."""
    spans = [json.loads(x) for x in FIXTURE.read_text(encoding="utf-8").splitlines() if x.strip()]
    first = spans[0]["context"]["trace_id"]
    trace = [s for s in spans if s["context"]["trace_id"] == first]
    kind = {"AGENT": "root", "TOOL": "tool"}
    out: dict[str, dict[str, Any]] = {}
    for s in trace:
        role = kind.get(s["attributes"]["openinference.span.kind"], "llm")
        if role == "llm":
            role = "llm_call" if "llm.output_messages.0.message.tool_calls.0.tool_call.id" in s["attributes"] else "llm_final"
        out[role] = s
    return out


def generate(path: Path, n_spans: int) -> int:
    t = _templates()
    per_trace = 10
    n_traces = n_spans // per_trace
    with path.open("w", encoding="utf-8") as fh:
        pending: list[list[str]] = []
        for i in range(n_traces):
            trace_id = f"0x{i:032x}"
            root_id = f"0x{i:012x}0000"
            lines = []
            for j in range(per_trace - 1):
                role = ("llm_call", "tool")[j % 2] if j < per_trace - 2 else "llm_final"
                span = json.loads(json.dumps(t[role]))
                span["context"]["trace_id"], span["context"]["span_id"] = trace_id, f"0x{i:012x}{j + 1:04x}"
                span["parent_id"] = root_id
                span["attributes"]["input.value"] = span["attributes"].get("input.value", "").replace("1234", str(i))
                lines.append(json.dumps(span))
            root = json.loads(json.dumps(t["root"]))
            root["context"]["trace_id"], root["context"]["span_id"] = trace_id, root_id
            root["attributes"]["input.value"] = f"Where is my order {i}?"
            lines.append(json.dumps(root))  # the root ends last
            pending.append(lines)
            if len(pending) == 2:  # two traces in flight: their spans interleave
                a, b = pending
                for x, y in zip(a, b):
                    fh.write(x + "\n" + y + "\n")
                pending = []
        for lines in pending:
            fh.write("\n".join(lines) + "\n")
    return n_traces


PLAIN = """
import json, sys, time
t, c = time.perf_counter(), time.process_time(); n = 0
with open(sys.argv[1], 'rb') as fh:
    for line in fh:
        json.loads(line); n += 1
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c, "count": n}))
"""

PLAIN_FAST = """
import json, sys, time
from pydantic_core import from_json
t, c = time.perf_counter(), time.process_time(); n = 0
with open(sys.argv[1], 'rb') as fh:
    for line in fh:
        from_json(line); n += 1
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c, "count": n}))
"""

OURS = """
import json, sys, time
from pathlib import Path
from pytest_failmodes.dataset import DatasetSpec, iter_traces
t, c = time.perf_counter(), time.process_time(); n = steps = 0
for _line, trace in iter_traces(DatasetSpec(Path(sys.argv[1]))):
    n += 1; steps += len(trace.steps)
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c, "count": n, "steps": steps}))
"""


def run(code: str, path: Path) -> dict[str, Any]:
    """Run ``code`` in its own process: its figures and its peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, cwd=ROOT)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # RUSAGE_CHILDREN keeps the largest child so far: only a new maximum is this child's
    result["rss_mb"] = after / 1024 if after > before else None
    return result


def _load() -> list[str]:
    """The 1, 5 and 15 minute load averages, where the system tells them (Linux)."""
    try:
        return Path("/proc/loadavg").read_text(encoding="ascii").split()[:3]
    except OSError:
        return ["?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="pairs of (a) and (b) runs; the median ratio is printed")
    args = parser.parse_args()
    load = _load()
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp) / "spans.jsonl", Path(tmp) / "spans2x.jsonl"
        t0 = time.perf_counter()
        n_traces = generate(small, args.spans)
        generate(large, 2 * args.spans)
        size = small.stat().st_size / 1e6
        print("pytest-failmodes readers benchmark: OpenInference spans")
        print(f"  {args.spans:,} spans, {n_traces:,} traces, {size:.1f} MB JSONL (generated in {time.perf_counter() - t0:.1f} s)")
        # (a) and (b) in turn, --repeat times: on a shared machine one pair's ratio moves with
        # whatever else runs, the median of the pairs much less. The plain loop first: it is
        # the smaller process, so RUSAGE_CHILDREN reads it exactly
        pairs, fast = [], []
        for _ in range(args.repeat):
            pairs.append((run(PLAIN, small), run(OURS, small)))
            fast.append(run(PLAIN_FAST, small))
        ours2 = run(OURS, large)
        plain, ours = pairs[len(pairs) // 2]  # a pair, for spans/s and traces/s
        plain_rss = pairs[0][0]["rss_mb"]
        ours_rss = max(o["rss_mb"] or 0 for _p, o in pairs)
        assert ours["count"] == n_traces, ours
        walls = sorted(o["seconds"] / p["seconds"] for p, o in pairs)
        cpus = sorted(o["cpu"] / p["cpu"] for p, o in pairs)
        ratio, cpu_ratio = statistics.median(walls), statistics.median(cpus)
        spread = f"(pairs {walls[0]:.2f}-{walls[-1]:.2f})" if len(pairs) > 1 else ""
        cpu_spread = f"(pairs {cpus[0]:.2f}-{cpus[-1]:.2f})" if len(pairs) > 1 else ""
        print(f"(a) plain json.loads loop        {plain['seconds']:8.2f} s  {plain['count'] / plain['seconds']:>10,.0f} spans/s   peak RSS {plain_rss or 0:6.0f} MB")
        fast_cpu = statistics.median(o["cpu"] / f["cpu"] for (_p, o), f in zip(pairs, fast))
        quick = sorted(fast, key=lambda f: f["seconds"])[len(fast) // 2]
        print(f"(a') plain from_json loop        {quick['seconds']:8.2f} s  {quick['count'] / quick['seconds']:>10,.0f} spans/s   "
              f"(the loader's parser; (b)/(a') CPU {fast_cpu:.2f}x, for reference)")
        print(f"(b) iter_traces (OpenInference)  {ours['seconds']:8.2f} s  {ours['count'] / ours['seconds']:>10,.0f} traces/s  peak RSS {ours_rss:6.0f} MB")
        print(f"    ratio (b)/(a), wall          {ratio:8.2f}x  target <= 2.0  {'PASS' if ratio <= 2.0 else 'MISS'}  {spread}")
        print(f"    ratio (b)/(a), CPU time      {cpu_ratio:8.2f}x  target <= 2.0  {'PASS' if cpu_ratio <= 2.0 else 'MISS'}  {cpu_spread}")
        print(f"    ({len(pairs)} pairs of runs, median ratio; load average {' '.join(load)} -> {' '.join(_load())})")
        print(f"    steps built                  {ours['steps']:>8,}")
        rss2 = ours2["rss_mb"]
        print(f"(c) iter_traces on 2x the spans  {ours2['seconds']:8.2f} s  {ours2['count'] / ours2['seconds']:>10,.0f} traces/s  peak RSS "
              + (f"{rss2:6.0f} MB" if rss2 else f"<= {ours_rss:.0f} MB (no new maximum: memory did not grow)"))


if __name__ == "__main__":
    main()
