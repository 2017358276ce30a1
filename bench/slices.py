"""``failmodes slices``: how often pure noise gives a slice, how often a planted one is found, and speed.

    .venv/bin/python bench/slices.py            # full run, a few minutes
    .venv/bin/python bench/slices.py --quick    # smoke run; its figures are not meaningful

(a) null: ``--runs`` datasets of ``--null-n`` traces, four fields (5, 4, 3 and 2
    values, pairs included), every trace failing with the same probability
    (0.2): the share of runs that report any slice (target <= 0.10, the BH
    level). Baseline in the same run: the share of runs where some slice has
    an uncorrected one-sided p < 0.05 (what a finder that ranks without a
    corrected test shows).
(b) planted: the same fields, with ``route=r0`` (a fifth of the traces) failing
    at 0.35 against 0.2 elsewhere; recall of that slice (reported, and ranked
    first) by n.
(c) speed: 100,000 traces x 8 fields (pairs included) from a JSONL file, the
    whole ``failmodes slices DATA --outcome failed`` command in a subprocess
    (target < 10 s), and ``find_slices`` alone; baseline in the same run: the
    bare counting of the same slices with numpy (no tests, no intervals).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_failmodes.analysis.report_data import Outcomes  # noqa: E402
from pytest_failmodes.analysis.slices import find_slices  # noqa: E402

CARDS = {"route": 5, "persona": 4, "tier": 3, "channel": 2}


def _dataset(n: int, seed: int, planted: float | None) -> Outcomes:
    rng = random.Random(seed)
    meta, fails = [], []
    for _ in range(n):
        row = {k: f"{k[0]}{rng.randrange(c)}" for k, c in CARDS.items()}
        rate = planted if planted is not None and row["route"] == "r0" else 0.2
        meta.append(row)
        fails.append(rng.random() < rate)
    return Outcomes("m", [str(i) for i in range(n)], fails, [""] * n, meta)


def null_share(runs: int, n: int) -> tuple[float, float]:
    any_found = raw_any = 0
    for seed in range(runs):
        [res] = find_slices([_dataset(n, seed, None)])
        any_found += bool(res.found)
        raw_any += any(s.p_value < 0.05 for s in res._all)
    return any_found / runs, raw_any / runs


def planted_recall(runs: int, n: int) -> tuple[float, float]:
    found = first = 0
    for seed in range(runs):
        [res] = find_slices([_dataset(n, 10_000 + seed, 0.35)])
        labels = [s.label for s in res.found]
        found += "route=r0" in labels
        first += bool(labels) and labels[0] == "route=r0"
    return found / runs, first / runs


def speed(n: int) -> dict[str, float]:
    import numpy as np

    rng = np.random.default_rng(0)
    cards = [6, 5, 4, 3, 8, 2, 10]
    cols = {f"f{i}": rng.integers(0, c, n) for i, c in enumerate(cards)}
    cols["length"] = rng.integers(10, 4000, n)
    failed = rng.random(n) < 0.1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for i in range(n):
                row: dict[str, Any] = {"id": f"t{i}", "output": "ok", "failed": int(failed[i])}
                for k, v in cols.items():
                    row[k] = f"v{v[i]}" if k != "length" else int(v[i])
                fh.write(json.dumps(row) + "\n")
        import resource

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest_failmodes.cli", "slices", str(path), "--outcome", "failed"],
            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        cli = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            raise SystemExit(f"failmodes slices failed: {proc.stderr.strip()}")
        first = proc.stdout.splitlines()[0]
    meta = [{k: (f"v{v[i]}" if k != "length" else int(v[i])) for k, v in cols.items()} for i in range(n)]
    out = Outcomes("m", [str(i) for i in range(n)], failed.tolist(), [""] * n, meta)
    start = time.perf_counter()
    [res] = find_slices([out])
    alone = time.perf_counter() - start
    # baseline: the bare counts of the same single values and pairs
    start = time.perf_counter()
    codes = [np.unique([m[k] for m in meta], return_inverse=True)[1] for k in cols]
    fw = failed.astype(np.int64)
    for i in range(len(codes)):
        np.bincount(codes[i]), np.bincount(codes[i], weights=fw)
        for j in range(i + 1, len(codes)):
            comb = codes[i] * (codes[j].max() + 1) + codes[j]
            np.bincount(comb), np.bincount(comb, weights=fw)
    counting = time.perf_counter() - start
    return {"cli": cli, "cli_cpu": cli_cpu, "alone": alone, "counting": counting, "tested": res.tested, "line": first}  # type: ignore[dict-item]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--null-n", type=int, default=1000)
    ap.add_argument("--speed-n", type=int, default=100_000)
    ap.add_argument("--parts", default="abc", help="which figures to measure (default abc)")
    args = ap.parse_args()
    runs = 40 if args.quick else args.runs
    speed_n = 10_000 if args.quick else args.speed_n
    print(f"load average at start: {os.getloadavg()}")

    if "a" in args.parts:
        share, raw = null_share(runs, args.null_n)
        verdict = "PASS" if share <= 0.10 else "MISS"
        print(f"(a) null, {runs} runs of n={args.null_n}: share reporting any slice {share:.3f} (target <= 0.10) {verdict}; "
          f"baseline, any uncorrected p < 0.05: {raw:.3f}")
    if "b" in args.parts:
        print("(b) planted route=r0 (1/5 of traces, 35% vs 20%): recall by n")
        for n in (200, 500, 1000, 2000, 5000):
            found, first = planted_recall(max(runs // 4, 10), n)
            print(f"    n={n:>5}: found {found:.2f}, ranked first {first:.2f}")
    if "c" in args.parts:
        s = speed(speed_n)
        verdict = "PASS" if s["cli"] < 10 else "MISS"
        print(f"(c) {speed_n} traces x 8 fields, pairs: failmodes slices (whole command) {s['cli']:.2f} s (target < 10 s) {verdict}, CPU {s['cli_cpu']:.2f} s; "
          f"find_slices alone {s['alone']:.2f} s over {s['tested']} slices = {s['alone'] / s['counting']:.1f}x the bare numpy counting ({s['counting']:.2f} s)")
        print(f"    {s['line']}")
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
