"""Benchmark: does a ~50 MB HTML report open in a browser in a few seconds?

Measured in one run, each against baselines from the same run:

(a) time-to-rendered in a headless Chromium (selenium + chromium-driver): from
    "navigate" to the first frame painted after the page's script has drawn the
    heat map, the summary and the first page of every failing-trace list
    (``body[data-ready]`` set, then two animation frames), for a report of
    ``--modes`` modes x ``--cohorts`` cohorts over ``--n`` agent traces (each a
    conversation with tool calls and steps, ~10 kB), the engine keeping the
    content of up to 1,000 failing traces per mode: about 50 MB of HTML with the
    defaults. Baselines: an empty page and the report of a 3-mode, 40-trace run,
    through the same browser. The target is under 3 s for the big page;
(b) for reference: the engine pass, ``render_html`` and the page's size; the
    number of DOM elements after rendering (the lists are drawn a page at a time,
    so it stays in the thousands however many traces fail);
(c) opening one trace in the trace view (click to rendered), and a search over
    every listed trace, on the big page.

Run::

    .venv/bin/python bench/html_report.py            # ~50 MB page
    .venv/bin/python bench/html_report.py --n 1000   # quicker, smaller page
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_failmodes.dataset import DatasetSpec  # noqa: E402
from pytest_failmodes.engine import Gate, ModeSpec, Suite, evaluate  # noqa: E402
from pytest_failmodes.report.html import DEFAULT_MAX_TRACES, render_html  # noqa: E402
from pytest_failmodes.report.json_report import build_report  # noqa: E402
from pytest_failmodes.trace import Trace  # noqa: E402
from pytest_failmodes.verdict import Verdict  # noqa: E402

TARGET_S = 3.0
FIELDS = ("route", "model", "prompt_version", "persona")


def _trace(i: int, rng: random.Random, cohorts: int) -> Trace:
    per_field = max(1, cohorts // len(FIELDS))
    meta = {f: f"{f}-{rng.randrange(per_field)}" for f in FIELDS}
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are the support agent of Harbor Goods. " + "Follow the policy. " * 40}
    ]
    for turn in range(6):
        messages.append({"role": "user", "content": f"Turn {turn}: where is order {i}? It was due on Friday. " * 3})
        args = json.dumps({"order_id": i, "turn": turn})
        messages.append(
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": f"c{turn}", "type": "function", "function": {"name": "lookup_order", "arguments": args}}]}
        )
        result = {"order": i, "status": rng.choice(["shipped", "held", "lost"]), "lines": list(range(20))}
        messages.append({"role": "tool", "tool_call_id": f"c{turn}", "content": json.dumps(result)})
        messages.append({"role": "assistant", "content": f"Order {i} is on its way; it left the depot today. " * 3})
    return Trace(id=f"trace-{i:06d}", messages=messages, metadata=meta)  # type: ignore[arg-type]


class _Rate:
    """A detector failing each trace with a mode-specific probability (seeded by the id, so repeatable)."""

    def __init__(self, k: int, rate: float) -> None:
        self.k, self.rate = k, rate

    def __call__(self, trace: Trace) -> Verdict | bool:
        if random.Random(f"{self.k}/{trace.id}").random() < self.rate:
            return Verdict.fail(f"mode {self.k}: the reply promises delivery without a tracking lookup", evidence={"turn": 3})
        return False

    def __repr__(self) -> str:
        return f"rate{self.k}()"


def build_page(n: int, modes: int, cohorts: int, tmp: Path) -> tuple[str, dict[str, float]]:
    """Run the engine over ``n`` generated traces and render the HTML report; timings of each step."""
    rng = random.Random(0)
    traces = [_trace(i, rng, cohorts) for i in range(n)]
    specs = tuple(
        ModeSpec(name=f"mode_{k:02d}", source="bench.failmodes.yaml", detector=_Rate(k, 0.02 + 0.9 * k / max(modes, 1)),
                 gate=Gate(max_fail_rate=0.1), order=k)
        for k in range(modes)
    )
    suite = Suite(source="bench.failmodes.yaml", dataset=DatasetSpec(tmp / "unused.jsonl"),
                  cohorts=tuple((f,) for f in FIELDS), modes=specs)
    t0 = time.perf_counter()
    result = evaluate(suite, {m.name: m.detector for m in specs}, traces=traces, track_members=True,  # type: ignore[misc]
                      samples=DEFAULT_MAX_TRACES)
    t1 = time.perf_counter()
    ordered = sorted(result.modes.values(), key=lambda r: r.order)
    report = build_report(ordered)
    content: dict[str, Any] = {}
    for r in ordered:
        for tid, sample in (r.samples or {}).items():
            content.setdefault(tid, sample)
    t2 = time.perf_counter()
    page = render_html(report, traces=content, title="bench")
    t3 = time.perf_counter()
    return page, {"engine_s": t1 - t0, "report_s": t2 - t1, "render_s": t3 - t2}


def _driver() -> Any:
    from selenium import webdriver

    binary = os.environ.get("FAILMODES_CHROMIUM") or shutil.which("chromium") or shutil.which("google-chrome")
    driver = os.environ.get("FAILMODES_CHROMEDRIVER") or shutil.which("chromedriver")
    if not binary or not driver:
        sys.exit("needs chromium and chromedriver (apt-get install chromium chromium-driver) and selenium")
    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run"):
        options.add_argument(flag)
    drv = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=options)
    drv.set_page_load_timeout(120)
    drv.set_script_timeout(60)
    return drv


_PAINTED = """
const done = arguments[arguments.length - 1];
requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now())));
"""


def browser_cpu(drv: Any) -> float:
    """CPU seconds (user + sys) of chromedriver's process tree so far: each live process's own
    time and its reaped children's (a renderer that exited is counted in its parent's), read
    from /proc. Other jobs on a busy machine disturb it far less than the wall time."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    root = drv.service.process.pid
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0)
        todo.extend(child for child, up in parent.items() if up == pid)
    return total / tick


def time_to_rendered(drv: Any, url: str, ready: bool) -> tuple[float, float]:
    """Seconds from navigation to the first frame painted after the page was drawn, wall and
    the browser's CPU time."""
    drv.get("about:blank")
    cpu = browser_cpu(drv)
    start = time.perf_counter()
    drv.get(url)  # returns at the load event: the page's script has run by then
    if ready and drv.execute_script("return document.body.getAttribute('data-ready')") != "1":
        raise RuntimeError(f"{url}: the page's script did not finish")
    drv.execute_async_script(_PAINTED)
    return time.perf_counter() - start, browser_cpu(drv) - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="traces in the big run (default 5000: ~50 MB of HTML)")
    ap.add_argument("--modes", type=int, default=50)
    ap.add_argument("--cohorts", type=int, default=40, help="cohort values over the four fields")
    ap.add_argument("--reps", type=int, default=5, help="page loads per page (median)")
    args = ap.parse_args()
    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory(prefix="failmodes-bench-html-") as tmpdir:
        tmp = Path(tmpdir)
        big, t_big = build_page(args.n, args.modes, args.cohorts, tmp)
        small, _ = build_page(40, 3, args.cohorts, tmp)
        pages = {"empty": "<!DOCTYPE html><html><head><meta charset=utf-8></head><body data-ready=1></body></html>",
                 "small": small, "big": big}
        urls = {}
        for name, text in pages.items():
            path = tmp / f"{name}.html"
            path.write_text(text, encoding="utf-8")
            urls[name] = path.as_uri()
        size_mb = len(big.encode("utf-8")) / 1e6
        print(f"big page: {args.modes} modes x {args.cohorts} cohorts over {args.n} traces, {size_mb:.1f} MB")
        print(f"  engine {t_big['engine_s']:.1f} s, report {t_big['report_s']:.1f} s, render_html {t_big['render_s']:.1f} s")
        drv = _driver()
        try:
            times: dict[str, list[float]] = {k: [] for k in pages}
            cpus: dict[str, list[float]] = {k: [] for k in pages}
            for _ in range(args.reps):  # interleaved, so a busy moment costs every page alike
                for name, url in urls.items():
                    wall, cpu = time_to_rendered(drv, url, name != "empty")
                    times[name].append(wall)
                    cpus[name].append(cpu)
            med = {k: statistics.median(v) for k, v in times.items()}
            cpu_med = {k: statistics.median(v) for k, v in cpus.items()}
            nodes = drv.execute_script("return document.getElementsByTagName('*').length")
            print(f"load average {open('/proc/loadavg').read().split()[0]} (wall times are noisy under load)")
            for name in pages:
                print(f"(a) {name:5s}: median {med[name]:.3f} s (min {min(times[name]):.3f}, max {max(times[name]):.3f}); "
                      f"browser CPU {cpu_med[name]:.3f} s")
            print(f"(a) big / empty = {med['big'] / med['empty']:.1f}x, big / small = {med['big'] / med['small']:.1f}x; "
                  f"in browser CPU big / small = {cpu_med['big'] / cpu_med['small']:.1f}x")
            verdict = "PASS" if med["big"] <= TARGET_S else "MISS"
            print(f"(a) big page rendered in {med['big']:.2f} s; target <= {TARGET_S:.0f} s: {verdict}")
            print(f"(b) DOM elements on the big page after rendering: {nodes}")
            first = drv.find_element(By.CSS_SELECTOR, "li.trace button.open")
            cpu, t0 = browser_cpu(drv), time.perf_counter()
            first.click()
            drv.execute_async_script(_PAINTED)
            wall, cpu = time.perf_counter() - t0, browser_cpu(drv) - cpu
            steps = drv.execute_script("return document.querySelectorAll('#viewer .fm-msg').length")
            print(f"(c) open a trace: {wall:.3f} s, browser CPU {cpu:.3f} s ({steps} messages rendered)")
            drv.find_element(By.ID, "viewer-close").click()
            box = drv.find_element(By.ID, "filter")
            cpu, t0 = browser_cpu(drv), time.perf_counter()
            drv.execute_script("arguments[0].value = 'trace-0001'; arguments[0].dispatchEvent(new Event('input'));", box)
            drv.execute_async_script(_PAINTED)
            wall, cpu = time.perf_counter() - t0, browser_cpu(drv) - cpu
            status = drv.find_element(By.ID, "filter-status").text
            print(f"(c) first search over every listed trace: {wall:.3f} s, browser CPU {cpu:.3f} s ({status})")
        finally:
            drv.quit()


if __name__ == "__main__":
    main()
