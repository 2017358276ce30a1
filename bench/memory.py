"""Benchmark: memory with reports, memory at a million traces, and the rule engine's speed.

Measured in one run, every ratio against a baseline measured in the same run
(issue 15, items 1, 2, 4):

(a) peak RSS of ``pytest --failmodes`` over ``--report-n`` traces (default 300,000,
    5 rule modes, 3 cohort groupings) with every report on (JSON report, HTML
    report, saved baseline, Markdown summary, JUnit XML) against the same run
    with none; target ratio <= 1.3;
(b) peak RSS of ``pytest --failmodes`` over ``--big-n`` traces (default
    1,000,000) with the same 5 modes and cohorts; target <= 200 MB;
(c) the rule engine (``evaluate()`` over the JSONL file, no pytest) against a
    hand-written loop (``json.loads`` per line, the same 5 detections and cohort
    counts) at ``--n`` traces (default 100,000), each timed inside its own
    process; target ratio <= 1.5. ``pytest --failmodes`` minus its start-up is
    shown beside it for reference.
(d) a mode's per-trace reasons when each is different (an LLM judge's critique,
    ~300 characters, for each of ``--reasons-n`` failing traces, default
    1,000,000): peak RSS of a process holding them in the engine's ``Details``
    (past 32 MB of distinct reasons they go to a temporary file) against the
    same with spilling off and against the process without them; every value
    read back and compared. Target: the spilled store adds <= 100 MB.

The datasets are synthetic support-bot traces generated here (see
bench/engine.py, whose generator, definitions and loop this script reuses), so
no figure depends on files outside the repository. Every command runs in a
wrapper process that reports its one child's peak RSS (``RUSAGE_CHILDREN``),
so runs never pollute each other. On a loaded machine wall times are noisy:
CPU time (user + sys) is printed beside every wall time, and the ratio in CPU
time is the steadier figure. Run::

    .venv/bin/python bench/memory.py            # full run (tens of minutes on 2 busy cores)
    .venv/bin/python bench/memory.py --quick    # smoke run; its figures are not meaningful
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import engine as shared  # noqa: E402 - bench/engine.py: dataset, definitions, loop, measuring wrapper

REPORT_TARGET = 1.3
BIG_TARGET_MB = 200.0
ENGINE_TARGET = 1.5
REASONS_TARGET_MB = 100.0

# Builds a mode's Details with one distinct judge-like reason per failing trace, then reads
# every one back; argv: count, mode (none | spill | memory)
REASONS_CHILD = r"""
import sys, time
from pytest_failmodes.compact import Details
n, mode = int(sys.argv[1]), sys.argv[2]
words = "the reply promises a refund that the policy does not allow and cites order".split()
def reason(i):
    return f"Trace {i}: " + " ".join(words[(i + k) % len(words)] for k in range(40))
start = time.perf_counter()
if mode == "none":
    total = sum(len(reason(i)) for i in range(n))
else:
    d = Details(spill_bytes=2**62) if mode == "memory" else Details()
    for i in range(n):
        d[i] = [reason(i), None]
    total = 0
    for i, (k, v) in enumerate(d.items()):
        assert k == i and v[0] == reason(i), (k, i)
        total += len(v[0])
print(mode, total, round(time.perf_counter() - start, 1))
"""

# Times evaluate() inside the child (after imports and loading the definitions), as the loop times itself.
ENGINE_CHILD = r"""
import json, sys, time
from pathlib import Path
from pytest_failmodes.definitions import load_suite
from pytest_failmodes.detectors import merge_rule_kinds
from pytest_failmodes.detectors.rules import BUILTIN_RULE_KINDS
from pytest_failmodes.engine import evaluate

suite = load_suite(Path(sys.argv[1]), merge_rule_kinds([list(BUILTIN_RULE_KINDS)]))
detectors = {m.name: m.detector for m in suite.modes}
start, cpu = time.perf_counter(), time.process_time()
result = evaluate(suite, detectors)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
counts = {
    name: {row.cohort: [row.n, row.fails] for row in mode.rows} for name, mode in result.modes.items()
}
skipped = {name: mode.skipped for name, mode in result.modes.items()}
json.dump({"seconds": seconds, "cpu": cpu, "counts": counts, "skipped": skipped, "traces": result.traces}, sys.stdout)
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="traces for the engine-vs-loop figure (c)")
    p.add_argument("--report-n", type=int, default=300_000, help="traces for the report-memory figure (a)")
    p.add_argument("--big-n", type=int, default=1_000_000, help="traces for the big-run memory figure (b)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of (c), median taken")
    p.add_argument("--seed", type=int, default=shared.SEED)
    p.add_argument("--keep", type=Path, help="keep datasets and reports in this directory (reused on the next run)")
    p.add_argument("--quick", action="store_true", help="smoke run: 3,000 / 5,000 / 10,000 traces, 1 repetition")
    p.add_argument("--reasons-n", type=int, default=1_000_000, help="distinct reasons for figure (d)")
    p.add_argument("--only", choices=("a", "b", "c", "d"), action="append", help="run only these figures")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.report_n, args.big_n, args.reps, args.reasons_n = 3_000, 5_000, 10_000, 1, 200_000
    return args


def dataset(root: Path, n: int, seed: int) -> Path:
    """The synthetic dataset of ``n`` traces, generated once (prefixes of a bigger one are reused)."""
    path = root / f"traces-{n}-{seed}.jsonl"
    if path.exists():
        return path
    bigger = sorted(
        (p for p in root.glob(f"traces-*-{seed}.jsonl") if int(p.name.split("-")[1]) > n),
        key=lambda p: int(p.name.split("-")[1]),
    )
    smaller = sorted(
        (p for p in root.glob(f"traces-*-{seed}.jsonl") if 10_000 <= int(p.name.split("-")[1]) < n),
        key=lambda p: -int(p.name.split("-")[1]),
    )
    if bigger:
        shared.head(bigger[0], path, n)
    elif smaller:
        t0 = time.perf_counter()
        extend(smaller[0], path, n)
        print(f"  {n:,} traces from the {smaller[0].name.split('-')[1]} of {smaller[0].name}, renumbered, "
              f"in {time.perf_counter() - t0:.0f} s")
    else:
        t0 = time.perf_counter()
        shared.write_dataset(path, n, seed)
        print(f"  generated {n:,} traces ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s")
    return path


#: how every generated line begins (the id is the first key, 7 digits)
_ID = b'{"id": "conv-'


def extend(src: Path, dst: Path, n: int) -> None:
    """``n`` traces cycling through ``src``'s lines with fresh ids: generating a million
    traces from scratch takes many minutes on a busy machine, and what the engine keeps
    per trace does not depend on which text it read."""
    width = len(_ID) + 7
    with open(dst, "wb") as out:
        i = 0
        while i < n:
            with open(src, "rb") as fh:
                for line in fh:
                    if i >= n:
                        break
                    if not line.startswith(_ID):
                        raise SystemExit(f"{src}: line {i + 1} does not begin with the generator's id")
                    out.write(b"%s%07d%s" % (_ID, i, line[width:]))
                    i += 1


def mb(x: float) -> str:
    return f"{x:,.1f} MB"


def run_pytest(suite: Path, scratch: Path, *extra: str) -> shared.Run:
    run = shared.measure(shared.pytest_cmd("-q", "-p", "no:cacheprovider", "--failmodes", *extra), suite, scratch)
    shared.expect_rc(run, (0, 1), f"pytest --failmodes {' '.join(extra)}")
    return run


def figure_a(args: argparse.Namespace, root: Path, scratch: Path) -> bool:
    data = dataset(root, args.report_n, args.seed)
    suite = shared._suite_dir(root, f"suite-report-{args.report_n}", data)
    out = root / "reports"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    reports = (
        "--failmodes-report", str(out / "report.json"),
        "--failmodes-html", str(out / "report.html"),
        "--failmodes-save-baseline", str(out / "baseline.json"),
        "--failmodes-markdown", str(out / "summary.md"),
        "--junitxml", str(out / "junit.xml"),
    )
    plain = run_pytest(suite, scratch)
    full = run_pytest(suite, scratch, *reports)
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(out.iterdir()))
    # the HTML page keeps the excerpts of the traces it lists (report/html.py, engine.trace_excerpt):
    # shown apart and alone, so each writer's share is visible
    no_html = run_pytest(suite, scratch, *reports[:2], *reports[4:])
    html_only = run_pytest(suite, scratch, *reports[2:4])
    ratio = full.rss_mb / plain.rss_mb
    ok = ratio <= REPORT_TARGET
    print(f"(a) peak RSS with every report on vs none, {args.report_n:,} traces x 5 rule modes")
    print(f"    no reports        {mb(plain.rss_mb):>12}   wall {plain.wall:6.1f} s  cpu {plain.cpu:6.1f} s")
    print(f"    every report      {mb(full.rss_mb):>12}   wall {full.wall:6.1f} s  cpu {full.cpu:6.1f} s")
    print(f"    all but HTML      {mb(no_html.rss_mb):>12}   wall {no_html.wall:6.1f} s  cpu {no_html.cpu:6.1f} s"
          f"   (ratio {no_html.rss_mb / plain.rss_mb:.2f})")
    print(f"    HTML report only  {mb(html_only.rss_mb):>12}   wall {html_only.wall:6.1f} s  cpu {html_only.cpu:6.1f} s"
          f"   (ratio {html_only.rss_mb / plain.rss_mb:.2f})")
    print(f"    files: {sizes}")
    print(f"    ratio {ratio:.2f} (target <= {REPORT_TARGET})  {'PASS' if ok else 'MISS'}")
    print()
    return ok


def figure_b(args: argparse.Namespace, root: Path, scratch: Path) -> bool:
    data = dataset(root, args.big_n, args.seed)
    suite = shared._suite_dir(root, f"suite-big-{args.big_n}", data)
    run = run_pytest(suite, scratch)
    ok = run.rss_mb <= BIG_TARGET_MB
    print(f"(b) peak RSS of pytest --failmodes, {args.big_n:,} traces x 5 rule modes, cohorts route, prompt_version, route & persona")
    print(f"    {mb(run.rss_mb)} ({run.rss_mb * 1024 * 1024 / args.big_n:.0f} bytes per trace over the whole process), "
          f"wall {run.wall:.1f} s, cpu {run.cpu:.1f} s")
    print(f"    target <= {BIG_TARGET_MB:.0f} MB  {'PASS' if ok else 'MISS'}")
    print()
    return ok


def figure_c(args: argparse.Namespace, root: Path, scratch: Path) -> bool:
    data = dataset(root, args.n, args.seed)
    suite = shared._suite_dir(root, f"suite-engine-{args.n}", data)
    tiny = root / "traces-1.jsonl"
    tiny.write_bytes(shared.clean_trace_line(data))
    tiny_suite = shared._suite_dir(root, "suite-tiny", tiny)
    definition = suite / "bench.failmodes.yaml"
    m: dict[str, list[float]] = {k: [] for k in ("loop", "loop_cpu", "eng", "eng_cpu", "py", "py_cpu", "up", "up_cpu")}
    problems: list[str] = []
    for _ in range(args.reps):
        # interleaved, so a burst of load on the machine hits every kind alike
        run, loop = shared._loop_run(data, root, scratch)
        m["loop"].append(loop["seconds"])
        m["loop_cpu"].append(loop["cpu"])
        run = shared.measure([sys.executable, "-c", ENGINE_CHILD, str(definition)], root, scratch)
        shared.expect_rc(run, (0,), "the engine")
        eng = json.loads(run.log)
        m["eng"].append(eng["seconds"])
        m["eng_cpu"].append(eng["cpu"])
        problems = cross_check(loop, eng)
        run = run_pytest(suite, scratch)
        m["py"].append(run.wall)
        m["py_cpu"].append(run.cpu)
        run = run_pytest(tiny_suite, scratch)
        m["up"].append(run.wall)
        m["up_cpu"].append(run.cpu)
    med = {k: statistics.median(v) for k, v in m.items()}
    wall_ratio = med["eng"] / med["loop"]
    cpu_ratio = med["eng_cpu"] / med["loop_cpu"]
    py_ratio = (med["py"] - med["up"]) / med["loop"]
    py_cpu_ratio = (med["py_cpu"] - med["up_cpu"]) / med["loop_cpu"]
    per = 1e6 / args.n
    print(f"(c) rule engine vs a plain Python loop, {args.n:,} traces x 5 rule modes + cohort counts (median of {args.reps})")
    print(f"    plain loop          wall {med['loop']:6.2f} s  cpu {med['loop_cpu']:6.2f} s  ({med['loop_cpu'] * per:.0f} us cpu per trace)")
    print(f"    engine (evaluate)   wall {med['eng']:6.2f} s  cpu {med['eng_cpu']:6.2f} s  ({med['eng_cpu'] * per:.0f} us cpu per trace)")
    print(f"    pytest --failmodes  wall {med['py'] - med['up']:6.2f} s  cpu {med['py_cpu'] - med['up_cpu']:6.2f} s  "
          f"(minus start-up: wall {med['up']:.2f} s, cpu {med['up_cpu']:.2f} s)")
    print(f"    ratio engine/loop: wall {wall_ratio:.2f}, cpu {cpu_ratio:.2f} (target <= {ENGINE_TARGET})  "
          f"{'PASS' if cpu_ratio <= ENGINE_TARGET else 'MISS'} (on cpu time)")
    print(f"    ratio pytest/loop (reference): wall {py_ratio:.2f}, cpu {py_cpu_ratio:.2f}")
    for problem in problems:
        print(f"    MISMATCH {problem}")
    print()
    return cpu_ratio <= ENGINE_TARGET and not problems


def figure_d(args: argparse.Namespace, root: Path, scratch: Path) -> bool:
    n = args.reasons_n
    runs = {}
    for mode in ("none", "spill", "memory"):
        run = shared.measure([sys.executable, "-c", REASONS_CHILD, str(n), mode], root, scratch)
        shared.expect_rc(run, (0,), f"reasons child ({mode})")
        runs[mode] = run
    added = runs["spill"].rss_mb - runs["none"].rss_mb
    ok = added <= REASONS_TARGET_MB
    print(f"(d) {n:,} distinct judge-like reasons (~300 characters each) held for one mode, every one read back")
    for mode, label in (("none", "no store (baseline)"), ("spill", "Details, spilling"), ("memory", "Details, all in memory")):
        run = runs[mode]
        print(f"    {label:<24}{mb(run.rss_mb):>12}   wall {run.wall:6.1f} s  cpu {run.cpu:6.1f} s")
    print(f"    the spilled store adds {mb(added)} (target <= {REASONS_TARGET_MB:.0f} MB)  {'PASS' if ok else 'MISS'}; "
          f"all in memory adds {mb(runs['memory'].rss_mb - runs['none'].rss_mb)}")
    print()
    return ok


def cross_check(loop: dict[str, Any], eng: dict[str, Any]) -> list[str]:
    """The engine's per-cohort n and fails, and its skips, against the loop's."""
    out = []
    for mode, table in loop["counts"].items():
        theirs = eng["counts"].get(mode, {})
        for key, (n, fails) in table.items():
            if theirs.get(key) != [n, fails]:
                out.append(f"{mode} {key}: loop n={n} fails={fails}, engine {theirs.get(key)}")
        if eng["skipped"].get(mode) != loop["skipped"][mode]:
            out.append(f"{mode}: loop skipped {loop['skipped'][mode]}, engine {eng['skipped'].get(mode)}")
    return out[:10]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import pytest_failmodes as pkg

    root = args.keep or Path(tempfile.mkdtemp(prefix="failmodes-memory-"))
    root.mkdir(parents=True, exist_ok=True)
    scratch = root / "_scratch"
    scratch.mkdir(exist_ok=True)
    try:
        print("pytest-failmodes memory and rule-engine benchmark")
        print(f"  pytest-failmodes {pkg.__version__} from {Path(pkg.__file__).parent}; python {sys.version.split()[0]}")
        print(f"  {os.cpu_count()} CPUs, load average at start {shared._load()}")
        if args.quick:
            print("  --quick: a smoke run; at these sizes start-up swamps every figure")
        print()
        results = []
        only = set(args.only or "abcd")
        if "a" in only:
            results.append(figure_a(args, root, scratch))
        if "b" in only:
            results.append(figure_b(args, root, scratch))
        if "c" in only:
            results.append(figure_c(args, root, scratch))
        if "d" in only:
            results.append(figure_d(args, root, scratch))
        print(f"load average at end {shared._load()}")
        return 0 if all(results) else 1
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
