"""Benchmark: does the review page open a 10,000-trace dataset as fast as a 10-trace one?

Measured in one run, against a baseline from the same run:

(a) time from "the server is listening" to "the first trace is rendered" in a
    headless Chromium (selenium + chromium-driver), for a dataset of ``--n``
    agent traces (default 10,000; each a conversation of ~30 messages with tool
    calls, like tau-bench's) against the same for 10 traces. The page fetches
    the state and one trace, never the dataset, so the ratio should be ~1 and
    the time under 2 s (the target);
(b) the same through plain HTTP (page, assets, ``api/state``, ``api/trace?q=0``)
    when no browser is installed, or as a reference;
(c) for reference: loading the dataset (the existing loader, before the server
    starts) and the server's resident memory after loading.

Run::

    .venv/bin/python bench/review.py            # 10,000 traces
    .venv/bin/python bench/review.py --n 2000   # quicker
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_failmodes.analysis.review import ASSETS, ReviewApp, ReviewServer, load_source  # noqa: E402

TARGET_S = 2.0


def _trace(i: int, rng: random.Random) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "# Airline Agent Policy\n" + "Rule. " * 800}]
    for turn in range(8):
        messages.append({"role": "user", "content": f"Turn {turn}: I want to change reservation R{i} to a later flight."})
        args = json.dumps({"reservation_id": f"R{i}", "flight": f"HAT{rng.randrange(1000):03d}"})
        messages.append({"role": "assistant", "content": None,
                         "tool_calls": [{"id": f"c{turn}", "type": "function", "function": {"name": "update_reservation", "arguments": args}}]})
        messages.append({"role": "tool", "tool_call_id": f"c{turn}", "content": json.dumps({"status": "ok", "price": rng.randrange(900)})})
        messages.append({"role": "assistant", "content": f"Done: reservation R{i} now flies later. " * 3})
    return {"id": f"task{i // 4}/trial{i % 4}", "messages": messages, "route": rng.choice(["book", "change", "cancel"]), "failed": rng.randrange(2)}


def _write(path: Path, n: int) -> Path:
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(json.dumps(_trace(i, rng)) + "\n")
    return path


def _http_open(server: ReviewServer) -> float:
    port = server.server_address[1]
    token = server.app.token
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for path in ["", *(f"static/{a}" for a in ASSETS), "api/state", "api/trace?q=0"]:
        conn.request("GET", f"/{token}/{path}")
        res = conn.getresponse()
        res.read()
        assert res.status == 200, (path, res.status)
    conn.close()
    return time.perf_counter() - started


def _browser() -> Any:
    try:
        from selenium import webdriver
    except ImportError:
        return None
    binary = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=options)


def _browser_open(drv: Any, server: ReviewServer) -> float:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    drv.get("about:blank")
    started = time.perf_counter()
    drv.get(server.url)
    WebDriverWait(drv, 30, poll_frequency=0.01).until(lambda d: d.find_element(By.ID, "trace").get_attribute("data-q") == "0")
    return time.perf_counter() - started


def measure(path: Path, drv: Any, reps: int, tmp: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    traces, _modes, _shown = load_source(path)
    load_s = time.perf_counter() - t0
    app = ReviewApp.build(traces, tmp / f"notes-{path.stem}.jsonl", reviewer="bench")
    server = ReviewServer(app)
    server.start()
    try:
        http_s = statistics.median(_http_open(server) for _ in range(reps))
        browser_s = statistics.median(_browser_open(drv, server) for _ in range(reps)) if drv else float("nan")
    finally:
        server.shutdown()
        server.server_close()
    return {"n": len(traces), "load_s": load_s, "http_s": http_s, "browser_s": browser_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="traces in the large dataset (default 10,000)")
    parser.add_argument("--reps", type=int, default=5, help="page opens per dataset; the median counts (default 5)")
    args = parser.parse_args()
    drv = _browser()
    if drv is None:
        print("no chromium/chromedriver/selenium: browser figures skipped; HTTP figures only")
    with tempfile.TemporaryDirectory(prefix="failmodes-bench-review-") as tmpdir:
        tmp = Path(tmpdir)
        small = _write(tmp / "small.jsonl", 10)
        large = _write(tmp / "large.jsonl", args.n)
        print(f"dataset: {args.n} traces, {large.stat().st_size / 1e6:.0f} MB of JSONL")
        try:
            base = measure(small, drv, args.reps, tmp)
            big = measure(large, drv, args.reps, tmp)
        finally:
            if drv is not None:
                drv.quit()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'':28} {'10 traces':>12} {str(big['n']) + ' traces':>14} {'ratio':>7}")
    for key, label in (("browser_s", "(a) server up -> rendered"), ("http_s", "(b) page+state+trace HTTP")):
        print(f"{label:28} {base[key]:11.3f}s {big[key]:13.3f}s {big[key] / base[key]:7.2f}")
    print(f"{'(c) load dataset (ref.)':28} {base['load_s']:11.3f}s {big['load_s']:13.3f}s {big['load_s'] / base['load_s']:7.0f}")
    print(f"peak RSS of this process (ref.): {rss_mb:.0f} MB")
    opened = big["browser_s"] if drv is not None else big["http_s"]
    verdict = "PASS" if opened < TARGET_S else "MISS"
    print(f"target: the page opens {big['n']} traces in < {TARGET_S:.0f} s after the server starts: {opened:.3f} s {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
