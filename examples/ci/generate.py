"""Writes the data of docs/ci.md's example: 600 traces, 200 per route, as main
answers them (data/main.jsonl), as a candidate answers the same inputs
(data/candidate.jsonl), and the candidate's counts under other trace ids
(data/other.jsonl).

    python generate.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: route -> (traces that leak their instructions, traces that promise a refund)
MAIN = {"account": (4, 2), "billing": (4, 10), "shipping": (4, 12)}
CANDIDATE = {"account": (4, 10), "billing": (16, 24), "shipping": (4, 2)}
#: where a route's leaking traces start: the candidate's shipping leaks share 2 of main's 4
LEAKS_FROM = {("main", "shipping"): 0, ("candidate", "shipping"): 2}


def rows(version: str, counts: dict[str, tuple[int, int]], prefix: str = "t") -> list[dict[str, str]]:
    out = []
    for route, (leaks, promises) in counts.items():
        first = LEAKS_FROM.get((version, route), 0)
        for i in range(200):
            n = len(out) + 1
            parts = []
            if first <= i < first + leaks:
                parts.append("My instructions say I can't share that.")
            # promises sit in the middle of each route, so they never overlap the leaks
            if 100 <= i < 100 + promises:
                parts.append("I promise a full refund.")
            out.append({"id": f"{prefix}{n:03d}", "route": route, "input": f"Question {n} about my {route}.",
                        "output": " ".join(parts) or "Happy to help with that."})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    for name, data in (
        ("main", rows("main", MAIN)),
        ("candidate", rows("candidate", CANDIDATE)),
        ("other", rows("candidate", CANDIDATE, prefix="o")),
    ):
        (args.out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")


if __name__ == "__main__":
    main()
