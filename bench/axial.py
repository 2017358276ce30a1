"""``failmodes axial`` offline on many notes: time, and whether planted groups are found.

    .venv/bin/python bench/axial.py             # 5,000 notes
    .venv/bin/python bench/axial.py --n 500     # smoke run

Notes are generated from 8 planted failure kinds, each with its own phrasings,
typos and filler words (seeded). Figures: wall and CPU time of ``axial_offline``
(target < 10 s for 5,000 notes), once with the repeats generated phrasings give
and once with every note made distinct (an order number and a place), against a baseline from the same run: the
TF-IDF vectorisation of the same notes alone; and the adjusted Rand index of the
groups found against the planted kinds.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_failmodes.analysis.axial import axial_offline  # noqa: E402
from pytest_failmodes.analysis.notes import Note  # noqa: E402

KINDS = [
    ["replied in English to a Spanish question", "answer in english, user wrote spanish", "wrong language english instead of spanish"],
    ["promised a refund without checking the policy", "refund promised with no policy check", "offers refund before policy lookup"],
    ["never called lookup_order before the status", "order status invented without lookup_order", "no lookup_order call, made up shipping date"],
    ["apologised over and over", "too many apologies in one reply", "sorry loop, repeats sorry"],
    ["leaked the system prompt", "quotes its own instructions", "reveals hidden instructions to the user"],
    ["hallucinated a discount code", "made up a coupon that does not exist", "invented promo code"],
    ["ignored the user's cancellation request", "did not cancel though asked twice", "cancellation request ignored"],
    ["transferred to a human without trying", "escalated to human agent immediately", "handed off to human too early"],
]
FILLER = ["", "clearly", "again", "in this trace", "badly", "which is bad", "customer upset", "on the second turn"]

def _note(trace_id: str, verdict: str, note: str = "", tags: tuple[str, ...] = (), **kw: object) -> Note:
    """A decided note, arguments in the order a reader of the test expects."""
    return Note(trace_id=trace_id, verdict=verdict, note=note, tags=tags, **kw)  # type: ignore[arg-type]



_PLACES = ["Madrid", "Lyon", "Berlin", "Austin", "Lima", "Oslo", "Rome", "Quito", "Pune", "Kobe", "Perth", "Cork"]


def _notes(n: int, seed: int = 0, distinct: bool = False) -> tuple[list[Note], list[int]]:
    rng = random.Random(seed)
    notes, truth = [], []
    for i in range(n):
        k = rng.randrange(len(KINDS))
        text = rng.choice(KINDS[k])
        words = text.split()
        if rng.random() < 0.3:  # a typo
            j = rng.randrange(len(words))
            w = words[j]
            if len(w) > 3:
                p = rng.randrange(len(w) - 1)
                words[j] = w[:p] + w[p + 1] + w[p] + w[p + 2 :]
        extra = [rng.choice(FILLER)]
        if distinct:  # every note different, as real notes mostly are: an order number and a place
            extra += [f"order {1000 + i}", rng.choice(_PLACES)]
        text = " ".join(words + extra).strip()
        notes.append(_note(f"t{i}", "fail", text, line=i + 1))
        truth.append(k)
    return notes, truth


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()

    print(f"load average at start: {os.getloadavg()}")
    for distinct in (False, True):
        _measure(args.n, distinct)
    print(f"load average at end: {os.getloadavg()}")
    return 0


def _measure(n: int, distinct: bool) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import adjusted_rand_score

    notes, truth = _notes(n, distinct=distinct)
    unique = len({" ".join(x.note.lower().split()) for x in notes})
    axial_offline(notes[:50])  # imports and first-call costs out of the figure
    start, cpu = time.perf_counter(), time.process_time()
    res = axial_offline(notes)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    TfidfVectorizer(ngram_range=(1, 2)).fit_transform([n.note for n in notes])
    TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2).fit_transform([n.note for n in notes])
    base = time.perf_counter() - start
    found = {tid: g for g, m in enumerate(res.modes) for tid in m.trace_ids}
    pred = [found.get(n.trace_id, -1) for n in notes]
    ari = adjusted_rand_score(truth, pred)
    verdict = "PASS" if wall < 10 else "MISS"
    print(f"axial offline on {n} notes ({unique} distinct texts): {wall:.2f} s wall (target < 10 s) {verdict}, {cpu:.2f} s CPU; "
          f"{wall / base:.1f}x the TF-IDF vectorisation alone ({base:.2f} s)")
    print(f"  {len(res.modes)} modes ({res.detail}); adjusted Rand index vs the 8 planted kinds: {ari:.3f}; "
          f"uncovered notes: {len(res.uncovered)}")


if __name__ == "__main__":
    sys.exit(main())
