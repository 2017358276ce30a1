"""The history page at scale: 100 runs x 50 modes x 40 cohorts, drawn by headless Chromium.

The script writes a synthetic history (``--runs`` run files, each ``--modes`` x
``--cohorts`` cohort rows, with a definition change and a planted shift), reads
it back with ``failmodes history``'s own code, renders the page, and times
Chromium taking a screenshot of it (load, style, layout of the whole document
and paint of the first 1400 x 900 pixels) against a baseline page measured in
the same run: a page with one line of text, which costs the browser's start and
nothing else. Reported, as the median of ``--reps`` interleaved runs each:

* (a) the history page's time minus the baseline's: what the page itself costs (target < 3 s)
* (b) the ratio of the two times, for reference
* the time to read the history and to write the page, and the page's size

Run::

    .venv/bin/python bench/history_render.py            # 100 x 50 x 40, 3 reps
    .venv/bin/python bench/history_render.py --quick    # 20 x 10 x 10, 1 rep
"""

from __future__ import annotations

import argparse
import hashlib
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser import find_chromium, screenshot  # noqa: E402

from pytest_failmodes.history import SCHEMA, ShiftTest, build_series, find_shifts, load_history, write_run  # noqa: E402
from pytest_failmodes.report.history_page import render_history  # noqa: E402
from pytest_failmodes.stats import wilson_interval  # noqa: E402


def _write_history(directory: Path, runs: int, modes: int, cohorts: int, seed: int) -> None:
    rng = random.Random(seed)
    sizes = {(m, c): rng.randint(20, 400) for m in range(modes) for c in range(cohorts)}
    rates = {(m, c): rng.uniform(0.02, 0.3) for m in range(modes) for c in range(cohorts)}
    for r in range(runs):
        out = []
        for m in range(modes):
            rows = []
            for c in range(cohorts):
                n = sizes[(m, c)]
                p = rates[(m, c)] * (2 if (m, c) == (0, 1) and r >= runs - 4 else 1)
                fails = sum(rng.random() < p for _ in range(n))
                lo, hi = wilson_interval(fails, n) or (0.0, 0.0)
                rows.append(
                    {"cohort": "all" if c == 0 else f"route=r{c:02d} & persona=p{c % 7}", "n": n, "fails": fails, "errors": 0,
                     "rate": fails / n, "ci_low": lo, "ci_high": hi, "limit": 0.25, "gated": True,
                     "breach": "limit" if fails / n > 0.25 else None}
                )
            fingerprint = "v2" if m % 10 == 0 and r >= runs // 2 else "v1"
            out.append({"key": f"support.failmodes.yaml::mode_{m:02d}", "name": f"mode_{m:02d}", "fingerprint": fingerprint, "status": "ok", "cohorts": rows})
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(1_764_000_000 + 3600 * r))
        write_run(directory, {"schema": SCHEMA, "version": 1, "generator": "bench", "timestamp": stamp, "started": None,
                              "git": {"commit": hashlib.sha1(str(r).encode()).hexdigest(), "branch": "main"}, "baseline": None, "modes": out})


def _time_screenshot(binary: str, page: Path, png: Path) -> tuple[float, float]:
    """Wall time, and CPU time (user + sys) of the browser's processes, which other
    jobs on a busy machine disturb less."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    screenshot(binary, page.as_uri(), png, width=1400, height=900)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--modes", type=int, default=50)
    parser.add_argument("--cohorts", type=int, default=40)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.modes, args.cohorts, args.reps = 20, 10, 10, 1
    binary = find_chromium()
    if binary is None:
        sys.exit("no Chromium found ($FAILMODES_CHROMIUM, chromium, chromium-browser, google-chrome)")
    with tempfile.TemporaryDirectory(prefix="failmodes-history-bench-") as tmp:
        root = Path(tmp)
        _write_history(root / "hist", args.runs, args.modes, args.cohorts, args.seed)
        started = time.perf_counter()
        runs = load_history(root / "hist", print)
        series = build_series(runs)
        flagged = find_shifts(series, ShiftTest())
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        page_text = render_history(runs, series, ShiftTest())
        render_s = time.perf_counter() - started
        page = root / "history.html"
        page.write_text(page_text, encoding="utf-8")
        base = root / "baseline.html"
        base.write_text('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>b</title></head><body><p>baseline</p></body></html>\n', encoding="utf-8")
        page_times, base_times = [], []
        for rep in range(args.reps):
            base_times.append(_time_screenshot(binary, base, root / f"b{rep}.png"))
            page_times.append(_time_screenshot(binary, page, root / f"p{rep}.png"))
        t_page, t_base = statistics.median(t for t, _ in page_times), statistics.median(t for t, _ in base_times)
        c_page, c_base = statistics.median(c for _, c in page_times), statistics.median(c for _, c in base_times)
        print(f"{args.runs} runs x {args.modes} modes x {args.cohorts} cohorts = {len(series)} panels; {flagged} flagged")
        print(f"read + shift test: {read_s:.2f} s; page written in {render_s:.2f} s; {len(page_text) / 1e6:.1f} MB")
        print(f"chromium screenshot, median of {args.reps}: history page {t_page:.2f} s, baseline page {t_base:.2f} s")
        cost = t_page - t_base
        print(f"(a) the page's own cost: {cost:.2f} s   target < 3 s   {'PASS' if cost < 3 else 'MISS'}")
        print(f"(b) ratio history / baseline: {t_page / t_base:.2f}")
        print(f"CPU time of the browser (user + sys): history page {c_page:.2f} s, baseline page {c_base:.2f} s, "
              f"the page's own {c_page - c_base:.2f} s, ratio {c_page / c_base:.2f}")


if __name__ == "__main__":
    main()
