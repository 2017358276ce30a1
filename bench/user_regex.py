"""User regexes: the time-limited ``regex`` engine (patterns.py) against Python's ``re``.

Both engines search the same synthetic support-bot replies with the patterns
users write in rules; the ratio is time(UserPattern.search) / time(re.search),
measured in the same run. A match count per pattern cross-checks that both
engines find the same thing (a difference prints MISMATCH and exits 2).

    .venv/bin/python bench/user_regex.py            # 20,000 replies
    .venv/bin/python bench/user_regex.py --n 2000   # quick
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_failmodes.patterns import compile_pattern  # noqa: E402

PATTERNS = [
    r"(?i)my instructions say",
    r"\b\d{3}-\d{2}-\d{4}\b",
    r"(?i)(sorry.*){3}",
    r"(?i)^(hi|hello)",
    r"order (?=\d)",
    r"(?P<n>\d+)-(?P=n)",
    r"[A-Z]{2}-\d{4,}",
]
WORDS = "order refund shipping sorry hello my instructions say ticket 1234 555-12-3456 HG-20931 the a to please".split()


def replies(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120))) for _ in range(n)]


def best_of(reps: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    texts = replies(args.n)
    status = 0
    total_re = total_user = 0.0
    print(f"{args.n:,} replies, best of {args.reps}")
    print(f"{'pattern':34} {'re ms':>8} {'regex ms':>9} {'ratio':>6}")
    for pattern in PATTERNS:
        plain = re.compile(pattern)
        user = compile_pattern(pattern)
        if sum(plain.search(t) is not None for t in texts) != sum(user.search(t) is not None for t in texts):
            print(f"MISMATCH: {pattern}")
            status = 2
        t_re = best_of(args.reps, lambda: [plain.search(t) for t in texts])
        t_user = best_of(args.reps, lambda: [user.search(t) for t in texts])
        total_re += t_re
        total_user += t_user
        print(f"{pattern:34} {t_re * 1000:8.1f} {t_user * 1000:9.1f} {t_user / t_re:6.2f}")
    print(f"{'all patterns':34} {total_re * 1000:8.1f} {total_user * 1000:9.1f} {total_user / total_re:6.2f}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
