"""``failmodes notes summary NOTES.jsonl``: tag counts, per reviewer and cohort, and saturation."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import FailmodesError
from .notes import KAPPA_MIN_COMMON, Note, agreement, latest_notes, read_notes
from .saturation import DEFAULT_THRESHOLD, normalise_tag, saturation

__all__ = ["summarise", "summary_lines", "add_notes"]


def summarise(
    notes: list[Note], *, threshold: float = DEFAULT_THRESHOLD, cohorts: dict[str, str] | None = None
) -> dict[str, Any]:
    """The summary as JSON-safe data: per reviewer saturation and verdicts, tags per cohort, agreement.

    ``cohorts`` maps trace ids to a cohort name (from ``--dataset``/``--by``).
    """
    latest = latest_notes(notes)
    reviewers = sorted({r for (_t, r) in latest})
    out: dict[str, Any] = {"notes": sum(1 for n in latest.values() if n.done), "reviewers": {}, "cohorts": {}, "agreement": []}
    for r in reviewers:
        mine = [n for (_t, rr), n in latest.items() if rr == r]
        out["reviewers"][r] = {
            "verdicts": dict(Counter(n.verdict or "draft" for n in mine)),
            "saturation": saturation(mine, threshold=threshold).to_json(),
        }
        for a in agreement(latest, r):
            if a.reviewer < a.other:
                out["agreement"].append(a.__dict__)
    if cohorts is not None:
        per: dict[str, Counter[str]] = {}
        for n in latest.values():
            if n.done:
                c = per.setdefault(cohorts.get(n.trace_id, "(not in dataset)"), Counter())
                c["(notes)"] += 1
                for t in {normalise_tag(t) for t in n.tags}:
                    c[t] += 1
        out["cohorts"] = {k: dict(v.most_common()) for k, v in sorted(per.items())}
    out["all"] = saturation(latest.values(), threshold=threshold).to_json()
    return out


def _few(tags: list[str], n: int = 3) -> str:
    if not tags:
        return "none"
    return ", ".join(tags[:n]) + (f" (+{len(tags) - n})" if len(tags) > n else "")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def summary_lines(data: dict[str, Any]) -> list[str]:
    """The terminal view of :func:`summarise`."""
    from tabulate import tabulate

    lines: list[str] = []
    overall = data["all"]
    lines.append(f"{data['notes']} notes with a verdict, by {len(data['reviewers'])} reviewer(s)")
    if overall["tags"]:
        lines.append("")
        lines += tabulate(sorted(overall["tags"].items(), key=lambda kv: (-kv[1], kv[0])), headers=["tag", "notes"]).splitlines()
    rows = []
    for name, r in data["reviewers"].items():
        s = r["saturation"]
        ci = f"[{_pct(s['interval'][0])}, {_pct(s['interval'][1])}]" if s["interval"] else ""
        rows.append([name, s["notes"], " ".join(f"{k}={v}" for k, v in sorted(r["verdicts"].items())), len(s["tags"]),
                     s["singletons"], f"{_pct(s['p_new'])} {ci}", _few(s["new_recent"]),
                     "stop" if s["suggest_stop"] else "keep reading"])
    lines.append("")
    lines += tabulate(rows, headers=["reviewer", "notes", "verdicts", "tags", "seen once", "P(new tag) 95% CI",
                                     f"new in last {overall['window']}", "advice"]).splitlines()
    for cohort, tags in data["cohorts"].items():
        lines.append("")
        n = tags.pop("(notes)", 0)
        tags_text = ", ".join(f"{t} {c}" for t, c in tags.items()) or "no tags"
        lines.append(f"{cohort} ({n} notes): {tags_text}")
        tags["(notes)"] = n
    for a in data["agreement"]:
        lines.append("")
        if a["shown"]:
            k = "undefined (one label only)" if a["kappa"] is None else f"{a['kappa']:.2f}"
            lines.append(f"{a['reviewer']} vs {a['other']}: Cohen's kappa {k} on {a['common']} traces ({a['agree']} agree)")
        else:
            lines.append(f"{a['reviewer']} vs {a['other']}: {a['common']} traces in common; kappa needs {KAPPA_MIN_COMMON}")
    return lines


def _cohorts(dataset: str, by: list[str]) -> dict[str, str]:
    from ..trace import MISSING
    from .review import load_source
    from .sampling import _check_fields

    traces, _modes, _shown = load_source(Path(dataset))
    _check_fields(traces, by)
    out = {}
    for t in traces:
        parts = []
        for f in by:
            v = t.get(f)
            parts.append(f"{f}={'(missing)' if v is MISSING else v}")
        out[t.id] = ",".join(parts)
    return out


def add_notes(sub: Any) -> None:
    """The ``failmodes notes`` parser (``summary``)."""
    p = sub.add_parser("notes", help="work with review notes (notes.jsonl)")
    nsub = p.add_subparsers(dest="notes_command", required=True)
    s = nsub.add_parser("summary", help="tag counts, per reviewer and cohort, saturation and agreement")
    s.add_argument("notes", help="the notes file written by failmodes review")
    s.add_argument("--json", metavar="PATH", help="also write the summary as JSON ('-' for stdout only)")
    s.add_argument("--dataset", help="the reviewed dataset, for tag counts per cohort (with --by)")
    s.add_argument("--by", action="append", metavar="FIELD", help="metadata field(s) of the cohorts")
    s.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="the stop threshold (default 0.05)")

    def run(args: Any) -> int:
        path = Path(args.notes)
        if not path.exists():
            raise FailmodesError("no such notes file; write one with failmodes review", file=str(path))
        if bool(args.dataset) != bool(args.by):
            s.error("--dataset and --by go together")
        notes = list(read_notes(path))
        if not notes:
            raise FailmodesError("the notes file is empty", file=str(path))
        by = [b.strip() for item in args.by or () for b in item.split(",") if b.strip()]
        data = summarise(notes, threshold=args.threshold, cohorts=_cohorts(args.dataset, by) if args.dataset else None)
        text = json.dumps(data, indent=1, ensure_ascii=False)
        if args.json == "-":
            print(text)
            return 0
        for line in summary_lines(data):
            print(line)
        if args.json:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
            print(f"\nwrote {args.json}", file=sys.stderr)
        return 0

    s.set_defaults(func=run)
