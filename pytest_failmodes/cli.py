"""``failmodes``: commands that work on saved reports, datasets and review notes, without running pytest.

``failmodes compare OLD.json NEW.json`` prints the comparison that
``pytest --failmodes --failmodes-baseline=OLD.json`` would print for NEW.json,
for a pull-request comment (``--markdown``) or a terminal.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import options as opt
from .errors import FailmodesError

__all__ = ["main"]


def _results_from_report(path: Path) -> list[Any]:
    """ModeResults rebuilt from a saved JSON report (what comparing needs)."""
    from .baseline import load_baseline

    if not path.exists():
        raise FailmodesError("no such report; write one with --failmodes-report", file=str(path))
    report = load_baseline(path, shown=str(path), kind="report")
    try:
        return _rebuild(report.modes)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FailmodesError(
            f"an incomplete report ({type(exc).__name__}: {exc}); write it again with --failmodes-report", file=str(path)
        ) from None


def _rebuild(modes: dict[str, dict[str, Any]]) -> list[Any]:
    from .engine import CODE_OF_STATUS, CohortRow, Gate, ModeResult

    results = []
    for order, (key, m) in enumerate(modes.items()):
        traces = m.get("traces", [])
        rows = [
            CohortRow(
                r["cohort"], r["n"], r["fails"], r["errors"], r["limit"], r["small"], r["gated"], r["breach"],
                clustered=r.get("clustered"),
            )
            for r in m.get("cohorts", [])
        ]
        gate = Gate.from_dict({k: v for k, v in m.get("gate", {}).items() if k in Gate.__dataclass_fields__})
        results.append(
            ModeResult(
                key=key,
                name=m.get("name", key.rpartition("::")[2]),
                source=m.get("file", key.rpartition("::")[0]),
                line=m.get("line", 1),
                order=order,
                description=m.get("description", ""),
                detector=m.get("detector", ""),
                gate=gate,
                rows=rows,
                skipped=m.get("skipped", 0),
                ids=[t["id"] for t in traces],
                codes="".join(CODE_OF_STATUS.get(t.get("verdict"), "E") for t in traces),
                details={i: [t.get("reason", ""), t.get("evidence")] for i, t in enumerate(traces) if t.get("verdict") != "pass"},
                broken=m.get("broken"),
                notes=list(m.get("notes", [])),
                fingerprint=m.get("fingerprint", ""),
                members=_members(m, traces),
                # written with pair_by / cluster_by: pairing and the cluster-aware tests need them
                pairs=[str(t["pair"]) for t in traces] if traces and all("pair" in t for t in traces) else None,
                clusters=[str(t["cluster"]) for t in traces] if traces and all("cluster" in t for t in traces) else None,
            )
        )
    return results


def _members(mode: dict[str, Any], traces: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Which traces (positions in ``traces``) make each cohort: ``all`` is every
    decided trace; other cohorts come from their row's ``members`` (a report
    written before rows carried them pairs ``all`` only)."""
    out = {"all": [i for i, t in enumerate(traces) if t.get("verdict") in ("pass", "fail")]}
    for row in mode.get("cohorts", []):
        listed = row.get("members")
        if row.get("cohort") != "all" and isinstance(listed, list):
            if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(traces) for i in listed):
                raise ValueError(f"cohort {row.get('cohort')!r}: 'members' must list positions in 'traces'")
            out[row["cohort"]] = listed
    return out


def _compare(args: argparse.Namespace) -> int:
    from .baseline import compare_with_baseline, load_baseline
    from .report.markdown import markdown_lines
    from .report.terminal import summary_lines

    try:
        baseline = load_baseline(Path(args.old), shown=args.old)
        results = _results_from_report(Path(args.new))
    except FailmodesError as exc:
        print(f"failmodes compare: {exc}", file=sys.stderr)
        return 2
    comparison = compare_with_baseline(
        results, baseline, alpha=args.alpha, correction=args.correction, min_increase=args.min_increase
    )
    comparison.annotate(results)
    if args.markdown:
        lines = markdown_lines(results, comparison, sort=args.sort, full_report=args.new)
    else:
        width = shutil.get_terminal_size().columns
        lines = summary_lines(
            results, comparison, table=args.table, sort=args.sort, width=width, table_option="--table", sort_option="--sort"
        )
    for line in lines:
        print(line)
    failed = comparison.regressions or any(not r.passed for r in results)
    return 1 if failed else 0


def _add_compare(sub: Any) -> None:
    cmp = sub.add_parser("compare", help="compare two saved JSON reports (baseline first)")
    cmp.add_argument("old", help="the baseline report (e.g. .failmodes/baseline.json)")
    cmp.add_argument("new", help="the report of the run to judge")
    cmp.add_argument("--markdown", action="store_true", help="print a Markdown table (for a PR comment)")
    cmp.add_argument("--alpha", type=float, default=0.05, help="significance after correction (default 0.05)")
    cmp.add_argument(
        "--correction",
        choices=opt.CORRECTION_CHOICES,
        default=opt.DEFAULT_CORRECTION,
        help=f"multiple-comparison correction (default {opt.DEFAULT_CORRECTION})",
    )
    cmp.add_argument("--min-increase", type=float, default=0.0, help="smallest absolute rise that counts")
    cmp.add_argument(
        "--table",
        choices=opt.TABLE_CHOICES,
        default=opt.DEFAULT_TABLE,
        help=f"cohort rows listed under the one row per mode (default {opt.DEFAULT_TABLE}; as {opt.TABLE})",
    )
    cmp.add_argument(
        "--sort",
        choices=opt.SORT_CHOICES,
        default=opt.DEFAULT_SORT,
        help=f"order of modes and cohorts, breached first (default {opt.DEFAULT_SORT}; as {opt.SORT})",
    )

    def run(args: argparse.Namespace) -> int:
        # `not (...)` also turns away nan
        if not 0.0 < args.alpha < 1.0:
            cmp.error(f"--alpha takes a number between 0 and 1, got {args.alpha}")
        if not 0.0 <= args.min_increase < 1.0:
            cmp.error(f"--min-increase takes a number >= 0 and < 1 (0.02 is two percentage points), got {args.min_increase}")
        return _compare(args)

    cmp.set_defaults(func=run)


def _add_review(sub: Any) -> None:
    from .analysis.review import add_review

    add_review(sub)


def _add_notes(sub: Any) -> None:
    from .analysis.summary import add_notes

    add_notes(sub)


def _add_synth(sub: Any) -> None:
    from .analysis.synth import add_synth

    add_synth(sub)


#: each entry adds one subcommand (its parser and a ``func`` default that runs it);
#: the modules behind them import nothing heavy until their command runs
def _add_analysis(sub: Any) -> None:
    from .analysis.commands import add_analysis_commands

    add_analysis_commands(sub)


def _add_history(sub: Any) -> None:
    from .report.history_page import add_history

    add_history(sub)


_COMMANDS: tuple[Callable[[Any], None], ...] = (
    _add_compare, _add_review, _add_notes, _add_synth, _add_analysis, _add_history
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="failmodes", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _COMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except FailmodesError as exc:
        print(f"failmodes {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`failmodes compare ... | head`): not an error of ours;
        # point stdout at devnull so the interpreter's final flush does not raise again
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
