"""Writes traces.jsonl: the 120 traces of docs/gating.md's worked examples.

Three routes of 40 traces; "I promise" in the reply fails the examples' rule in
9 of the account traces, 6 of shipping and 2 of billing. Eight traces are on
the enterprise plan (one of them failing), the rest self-serve.

    python generate.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FAILS = {"account": 9, "shipping": 6, "billing": 2}


def rows() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for route, fails in FAILS.items():
        for i in range(40):
            n = len(out) + 1
            promise = i < fails
            out.append({
                "id": f"t{n:03d}",
                "route": route,
                # enterprise: the first account trace (a failing one) and 7 passing billing traces
                "plan": "enterprise" if (route == "account" and i == 0) or (route == "billing" and 10 <= i < 17) else "self_serve",
                "input": f"Question {n} about my {route}.",
                "output": "I promise it is sorted by tomorrow." if promise else "Here is what I found.",
            })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    text = "".join(json.dumps(row) + "\n" for row in rows())
    (args.out / "traces.jsonl").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
