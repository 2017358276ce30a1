"""Benchmark: what does installing pytest-failmodes cost a plain ``pytest`` run?

A user who installed the plugin without the ``probes`` extra has no Hypothesis;
``--failmodes`` is off. Measured in one run, in an empty folder holding one
``def test_ok(): pass``, many interleaved repetitions, medians:

(a) ``pytest`` with the plugin installed against ``pytest -p no:failmodes``
    (the plugin never imported), both without Hypothesis: the target is <= 1.02;
(b) for reference, the same with Hypothesis installed (the ``probes`` or
    ``test`` extra, or a user's own): its pytest plugin then loads on every run
    of either kind, so it is against a run without Hypothesis and without us,
    which is what every user paid while Hypothesis was a dependency.

"Without Hypothesis" is this venv with tests/data/no_hypothesis on PYTHONPATH:
its ``sitecustomize`` blocks Hypothesis' modules and unlists its distribution,
so pytest finds no entry point for it, as in a venv without it. langsmith's
pytest plugin (a test dependency that made trace fixtures) is off in every run.

    .venv/bin/python bench/startup.py [--reps 40]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "tests" / "data" / "no_hypothesis"
TARGET = 1.02

#: name -> (extra pytest arguments, Hypothesis hidden)
VARIANTS: dict[str, tuple[tuple[str, ...], bool]] = {
    "installed": ((), True),
    "without": (("-p", "no:failmodes"), True),
    "installed+hypothesis": ((), False),
}


def run_once(folder: Path, args: Sequence[str], hide: bool) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of one ``pytest`` process."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTHONPATH")}
    if hide:
        env["PYTHONPATH"] = str(SITE)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:langsmith_plugin", *args, "test_ok.py"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def check_variants(folder: Path) -> None:
    """The variants differ as intended: plugin loaded or not, Hypothesis' plugin loaded or not."""
    for name, (args, hide) in VARIANTS.items():
        env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTHONPATH")}
        if hide:
            env["PYTHONPATH"] = str(SITE)
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:langsmith_plugin", *args, "--co", "-q"]
        out = subprocess.run(cmd + ["--trace-config"], cwd=folder, env=env, capture_output=True, text=True, check=False)
        text = out.stdout
        has_us = "pytest_failmodes" in text
        has_hyp = "_hypothesis_pytestplugin" in text
        want_us = name != "without"
        want_hyp = not hide
        if (has_us, has_hyp) != (want_us, want_hyp):
            raise SystemExit(f"variant {name}: plugin loaded {has_us}, Hypothesis' plugin loaded {has_hyp}; expected {want_us}, {want_hyp}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=40, help="runs of each variant (default: 40)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="failmodes-startup-") as tmp:
        folder = Path(tmp)
        (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        (folder / "test_ok.py").write_text("def test_ok():\n    pass\n", encoding="utf-8")
        check_variants(folder)
        for name, (extra, hide) in VARIANTS.items():  # warm the file cache and .pyc files
            run_once(folder, extra, hide)
        walls: dict[str, list[float]] = {k: [] for k in VARIANTS}
        cpus: dict[str, list[float]] = {k: [] for k in VARIANTS}
        order = list(VARIANTS)
        for rep in range(args.reps):
            # the order rotates, so a drift in the machine's load favours no variant
            shift = rep % len(order)
            for name in order[shift:] + order[:shift]:
                wall, cpu = run_once(folder, *VARIANTS[name])
                walls[name].append(wall)
                cpus[name].append(cpu)

    med = {k: statistics.median(v) for k, v in walls.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpus.items()}
    ratio = med["installed"] / med["without"]
    print(f"pytest on one passing test, {args.reps} interleaved runs of each, medians (load average {os.getloadavg()[0]:.2f})")
    print(f"  {'variant':<46} {'wall':>8} {'cpu':>8}")
    labels = {
        "installed": "plugin installed, no Hypothesis",
        "without": "-p no:failmodes, no Hypothesis",
        "installed+hypothesis": "plugin installed, Hypothesis installed",
    }
    for name, label in labels.items():
        print(f"  {label:<46} {med[name] * 1000:>6.0f}ms {cpu_med[name] * 1000:>6.0f}ms")
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(f"(a) installed / without, wall: {ratio:.3f}  (target <= {TARGET})  {verdict}")
    print(f"    same, in CPU time:         {cpu_med['installed'] / cpu_med['without']:.3f}")
    print(f"    same, fastest run of each: {min(walls['installed']) / min(walls['without']):.3f}")
    print(f"(b) with Hypothesis / without either, wall: {med['installed+hypothesis'] / med['without']:.3f}  (reference)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
