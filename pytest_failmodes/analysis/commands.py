"""The analysis verbs of ``failmodes``: parsers and handlers (one ``add`` registers them all).

Each verb reads a JSON report or a dataset, prints a terminal table, and with
``--json PATH`` writes its result as JSON. Heavy libraries are imported only
when a verb runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import FailmodesError

__all__ = ["add_analysis_commands"]


def _source_args(p: argparse.ArgumentParser, *, outcome: bool = True) -> None:
    p.add_argument("source", help="a JSON report (pytest --failmodes-report) or a dataset (.jsonl .json .csv)")
    p.add_argument("--mode", action="append", metavar="NAME", help="the report's mode to analyse (repeatable; default: every mode)")
    p.add_argument("--dataset", metavar="PATH", help="with a report: the dataset it was made from, for every metadata field")
    if outcome:
        p.add_argument("--outcome", metavar="FIELD", help="with a dataset: the field that says fail or pass (1/0, true/false, fail/pass)")
    p.add_argument("--json", metavar="PATH", dest="json_out", help="also write the result as JSON")


def _csv(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def load_outcomes(args: argparse.Namespace) -> list[Any]:
    """The decided traces per mode, from a report (``--mode``, ``--dataset``) or a dataset (``--outcome``)."""
    from .report_data import is_report, load_metadata, load_report, outcomes_from_dataset, outcomes_from_report

    path = Path(args.source)
    if not path.exists():
        raise FailmodesError("no such file", file=path)
    if is_report(path):
        if getattr(args, "outcome", None):
            raise FailmodesError("--outcome is for a dataset; a report already holds the verdicts", file=path, key="--outcome")
        report = load_report(path)
        meta = load_metadata(Path(args.dataset)) if args.dataset else None
        return [outcomes_from_report(m, meta) for m in report.select(args.mode)]
    if not getattr(args, "outcome", None):
        raise FailmodesError(
            "a dataset needs --outcome FIELD (the field that says fail or pass); or give a JSON report", file=path
        )
    if args.mode or args.dataset:
        raise FailmodesError("--mode and --dataset go with a report, not a dataset", file=path)
    return [outcomes_from_dataset(path, args.outcome)]


def write_json(path: str | None, verb: str, payload: Any) -> None:
    """Write a verb's result as JSON (sorted keys, so two runs give the same bytes)."""
    if not path:
        return
    data = {"schema": f"pytest-failmodes/{verb}", "version": 1, **payload}
    Path(path).write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"takes a number >= 1, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a number, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"takes a number between 0 and 1, got {value}")
    return value


# --------------------------------------------------------------------------- slices


def _add_slices(sub: Any) -> None:
    p = sub.add_parser("slices", help="which metadata slices fail more than the rest (Fisher + Benjamini-Hochberg)")
    _source_args(p)
    p.add_argument("--fields", metavar="A,B,C", help="fields to slice by (default: every metadata field with few values)")
    p.add_argument("--min-support", type=_positive_int, default=10, help="smallest slice tested (default 10)")
    p.add_argument("--q", type=_fraction, default=0.1, help="false discovery rate of Benjamini-Hochberg (default 0.1)")
    p.add_argument("--no-pairs", dest="pairs", action="store_false", help="single values only, no pairs of fields")
    p.add_argument("--max-values", type=_positive_int, default=20, help="skip categorical fields with more values (default 20)")
    p.add_argument("--bins", type=_positive_int, default=4, help="quantile bins for numeric fields (default 4)")
    p.add_argument("--top", type=_positive_int, default=15, help="slices shown in the terminal (default 15)")

    def run(args: argparse.Namespace) -> int:
        from .slices import find_slices, slice_lines

        results = find_slices(
            load_outcomes(args), _csv(args.fields), min_support=args.min_support, q=args.q,
            pairs=args.pairs, max_values=args.max_values, n_bins=args.bins,
        )
        for line in slice_lines(results, args.top):
            print(line)
        write_json(args.json_out, "slices", {"modes": [r.to_dict() for r in results]})
        return 0

    p.set_defaults(func=run)


# --------------------------------------------------------------------------- axial


def load_traces(path: str | None) -> dict[str, Any] | None:
    """Trace id -> Trace of a dataset, or None without one."""
    if not path:
        return None
    from ..dataset import DatasetSpec, iter_traces

    return {t.id: t for _, t in iter_traces(DatasetSpec(Path(path)))}


def _add_axial(sub: Any) -> None:
    p = sub.add_parser("axial", help="group fail notes into draft binary failure modes (a draft definition file)")
    p.add_argument("notes", help="notes.jsonl written by failmodes review")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="the draft definition file to write (e.g. draft.failmodes.yaml)")
    p.add_argument("--dataset", metavar="PATH", help="the noted traces: for suggested rules, judge examples and cohort counts")
    p.add_argument("--cohorts", metavar="A,B", help="metadata fields to count each mode's traces by (written as cohorts:)")
    p.add_argument("--model", metavar="MODEL", help="a litellm model that proposes and assigns the modes (default: offline)")
    p.add_argument("--api-base", metavar="URL", help="with --model: the model server's base URL (a proxy, a local server)")
    p.add_argument("--cache-dir", metavar="DIR", default=".failmodes", help="with --model: where answers are cached (default .failmodes)")
    p.add_argument("--k-max", type=_positive_int, default=12, help="most groups the offline engine tries (default 12)")
    p.add_argument("--seed", type=int, default=0, help="seed of the offline engine (default 0)")
    p.add_argument("--json", metavar="PATH", dest="json_out", help="also write the result as JSON")

    def run(args: argparse.Namespace) -> int:
        import os

        from .axial import attach_detectors, axial_lines, axial_offline, draft_yaml
        from .notes import decided_notes as read_notes

        notes = read_notes(Path(args.notes))
        traces = load_traces(args.dataset)
        cohorts = _csv(args.cohorts) or []
        if cohorts and traces is not None:
            known = {k for t in traces.values() for k in t.metadata}
            for c in cohorts:
                if c not in known:
                    from ..errors import did_you_mean

                    raise FailmodesError(f"no trace has the field {c!r}{did_you_mean(c, known)}", file=args.dataset, key="--cohorts")
        if args.model:
            from .axial_model import axial_with_model

            result = axial_with_model(notes, args.model, api_base=args.api_base, cache_dir=Path(args.cache_dir), source=args.notes)
        else:
            result = axial_offline(notes, k_max=args.k_max, seed=args.seed)
        attach_detectors(result, traces, notes, cohorts if traces is not None else ())
        out = Path(args.output)
        dataset = None
        if args.dataset:
            dataset = Path(os.path.relpath(Path(args.dataset).resolve(), out.resolve().parent)).as_posix()
        else:
            result.warnings.append("no --dataset: the draft has no dataset: entry; add one before running it")
        text = draft_yaml(result, source=Path(args.notes).name, dataset=dataset, cohorts=cohorts if traces is not None else ())
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        for line in axial_lines(result):
            print(line)
        from .agreement import reviewer_agreement

        for ag in reviewer_agreement(notes):
            kappa = "undefined (one verdict only)" if ag.kappa is None else f"{ag.kappa:.2f}"
            print(f"reviewers {ag.a} and {ag.b}: {ag.agree}/{ag.n} shared traces agree, Cohen's kappa {kappa}")
        print(f"draft written to {args.output}")
        write_json(args.json_out, "axial", result.to_dict())
        return 0

    p.set_defaults(func=run)


# --------------------------------------------------------------------------- steps


def _notes_outcomes(path: str) -> tuple[dict[str, bool], dict[str, str]]:
    """From notes: trace -> failed (any reviewer's fail), and trace -> noted first failing step."""
    from .notes import decided_notes as read_notes

    fails: dict[str, bool] = {}
    first: dict[str, str] = {}
    for n in read_notes(Path(path)):
        if n.verdict == "defer":
            continue
        fails[n.trace_id] = fails.get(n.trace_id, False) or n.verdict == "fail"
        if n.verdict == "fail" and n.first_failing_step:
            first.setdefault(n.trace_id, n.first_failing_step)
    return fails, first


def _report_fails(modes: Any) -> tuple[dict[str, bool], dict[str, list[tuple[str, tuple[str | None, int | None]]]]]:
    """From a report's modes: trace -> failed (any mode's fail), and trace -> the steps its
    failing modes name."""
    fails: dict[str, bool] = {}
    marked: dict[str, list[tuple[str, tuple[str | None, int | None]]]] = {}
    for m in modes:
        for i, (tid, v) in enumerate(zip(m.ids, m.verdicts)):
            if v in ("pass", "fail"):
                fails[tid] = fails.get(tid, False) or v == "fail"
            ref = m.step_at(i)
            if v == "fail" and ref is not None:
                marked.setdefault(tid, []).append((m.name, ref))
    return fails, marked


def _resolve_marks(noted: dict[str, str], traces: Any) -> dict[str, str]:
    """Notes mark a chat trace's message (``message:N``, as the review page shows it): the
    step that message holds."""
    from .steps import message_step

    return {t: message_step(traces[t], mark) if t in traces else mark for t, mark in noted.items()}


def _definition_of(report: Path, modes: Any) -> Path | None:
    """The definition file the report's modes came from, where it is at hand (its path is
    as pytest showed it: relative to where pytest ran, or to the report)."""
    files = {m.file for m in modes if m.file}
    if len(files) != 1:
        return None
    name = files.pop()
    for candidate in (Path(name), report.parent / name):
        if candidate.is_file():
            return candidate
    return None


def _pipeline_order(definitions: Path, steps: Any, fails: dict[str, bool], *, given: bool = False) -> list[str] | None:
    """The states of the definition file's ``pipeline:``, each checked against the traces'
    step names (one that no trace has is an error where it is written). ``given``: the user
    named the file (``--definitions``), so a file without a pipeline is an error."""
    from ..definitions import read_pipeline
    from ..errors import did_you_mean
    from .steps import state_names

    if not definitions.is_file():
        raise FailmodesError("no such file", file=definitions, key="--definitions")
    pipeline = read_pipeline(definitions)
    if not pipeline:
        if given:
            raise FailmodesError("names no pipeline: (a list of step names in pipeline order)", file=definitions, key="--definitions")
        return None
    names = state_names(steps, [t for t in fails if t in steps])
    for need in pipeline:
        if need.name not in names:
            raise FailmodesError(
                f"pipeline state {need.name!r} is no step of any trace{did_you_mean(need.name, names)}",
                file=need.file, line=need.line, key=need.key,
            )
    return [need.name for need in pipeline]


def _add_steps(sub: Any) -> None:
    p = sub.add_parser("steps", help="agent traces: first failing step, exposure-normalised transition matrix, Ochiai")
    p.add_argument("source", help="a dataset of agent traces, or a JSON report (then give --dataset)")
    p.add_argument("--dataset", metavar="PATH", help="with a report: the dataset it was made from")
    p.add_argument("--mode", action="append", metavar="NAME", help="with a report: the mode(s) whose fail makes a trace fail (default: any)")
    p.add_argument("--outcome", metavar="FIELD", help="with a dataset: the field that says fail or pass")
    p.add_argument("--notes", metavar="PATH", help="notes.jsonl: pass/fail verdicts and first_failing_step")
    p.add_argument("--order", metavar="A,B,C", help="the pipeline order of the states (step names)")
    p.add_argument(
        "--definitions", metavar="PATH",
        help="a definition file whose pipeline: gives the order of the states (default, with a report: its modes' file)",
    )
    p.add_argument("--json", metavar="PATH", dest="json_out", help="also write the result as JSON")

    def run(args: argparse.Namespace) -> int:
        from .report_data import is_fail_value, is_report, load_report
        from .steps import analyse_steps, step_lines, trace_steps

        path = Path(args.source)
        if not path.exists():
            raise FailmodesError("no such file", file=path)
        if args.order and args.definitions:
            raise FailmodesError("give the order once: --order or --definitions", key="--order")
        fails: dict[str, bool] = {}
        noted: dict[str, str] = {}
        marked: dict[str, list[tuple[str, tuple[str | None, int | None]]]] = {}
        definitions = Path(args.definitions) if args.definitions else None
        if args.notes:
            fails, noted = _notes_outcomes(args.notes)
        if is_report(path):
            if not args.dataset:
                raise FailmodesError("a report holds no steps: give --dataset, the traces it was made from", file=path)
            modes = load_report(path).select(args.mode)
            fails, marked = _report_fails(modes)
            if definitions is None and not args.order:
                definitions = _definition_of(path, modes)
            data = Path(args.dataset)
        else:
            if args.dataset or args.mode:
                raise FailmodesError("--dataset and --mode go with a report, not a dataset", file=path)
            data = path
        traces = load_traces(str(data)) or {}
        if args.outcome:
            from ..errors import DatasetError

            fails = {}
            for tid, t in traces.items():
                value = t.get(args.outcome)
                verdict = is_fail_value(value) if value is not None else None
                if verdict is None and value is not None and value is not False:
                    from ..trace import MISSING

                    if value is not MISSING:
                        raise DatasetError(f"cannot read {value!r} as an outcome", file=data, key=args.outcome)
                if verdict is not None:
                    fails[tid] = verdict
            if not fails:
                known = sorted({k for t in traces.values() for k in t.metadata})
                from ..errors import did_you_mean

                raise DatasetError(f"no trace has the outcome field {args.outcome!r}{did_you_mean(args.outcome, known)}", file=data, key="--outcome")
        if not fails:
            raise FailmodesError("say which traces fail: --outcome FIELD, --notes notes.jsonl, or a report", file=path)
        steps = {tid: trace_steps(t) for tid, t in traces.items()}
        if not any(steps.values()):
            raise FailmodesError("no trace has steps (no steps, no tool calls or assistant messages)", file=data)
        order = _csv(args.order)
        if definitions is not None:
            order = _pipeline_order(definitions, steps, fails, given=bool(args.definitions))
            if order:
                print(f"states in the pipeline order of {definitions}")
        result = analyse_steps(steps, fails, _resolve_marks(noted, traces), order, marked)
        for line in step_lines(result):
            print(line)
        write_json(args.json_out, "steps", result.to_dict())
        return 0

    p.set_defaults(func=run)


# --------------------------------------------------------------------------- cooccur


def _report_arg(path: str) -> Any:
    from .report_data import is_report, load_report

    p = Path(path)
    if not p.exists():
        raise FailmodesError("no such file", file=p)
    if not is_report(p):
        raise FailmodesError("expected a JSON report (pytest --failmodes --failmodes-report=PATH)", file=p)
    return load_report(p)


def _add_cooccur(sub: Any) -> None:
    p = sub.add_parser("cooccur", help="which failure modes fail together (counts, Jaccard, lift, Fisher + BH)")
    p.add_argument("report", help="a JSON report")
    p.add_argument("--mode", action="append", metavar="NAME", help="modes to compare (repeatable; default: every mode)")
    p.add_argument("--q", type=_fraction, default=0.1, help="false discovery rate of Benjamini-Hochberg (default 0.1)")
    p.add_argument("--json", metavar="PATH", dest="json_out", help="also write the result as JSON")

    def run(args: argparse.Namespace) -> int:
        from .cooccur import cooccur, cooccur_lines

        res = cooccur(_report_arg(args.report).select(args.mode), args.q)
        for line in cooccur_lines(res):
            print(line)
        write_json(args.json_out, "cooccur", res.to_dict())
        return 0

    p.set_defaults(func=run)


# --------------------------------------------------------------------------- reasons


def _add_reasons(sub: Any) -> None:
    p = sub.add_parser("reasons", help="cluster a mode's detector reasons (stable ids across runs)")
    p.add_argument("report", help="a JSON report")
    p.add_argument("--mode", required=True, metavar="NAME", help="the mode whose reasons to cluster")
    p.add_argument("--verdict", choices=("fail", "pass", "error"), default="fail", help="whose reasons (default fail)")
    p.add_argument("--previous", metavar="PATH", help="the previous run's --json output: keep its cluster ids")
    p.add_argument("--k-max", type=_positive_int, default=10, help="most clusters tried (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--json", metavar="PATH", dest="json_out", help="also write the result as JSON (give it as --previous next time)")

    def run(args: argparse.Namespace) -> int:
        from .reasons import cluster_reasons, read_previous, reason_lines

        mode = _report_arg(args.report).mode(args.mode)
        previous = read_previous(Path(args.previous)) if args.previous else None
        res = cluster_reasons(mode, verdict=args.verdict, previous=previous, k_max=args.k_max, seed=args.seed)
        for line in reason_lines(res):
            print(line)
        write_json(args.json_out, "reasons", res.to_dict())
        return 0

    p.set_defaults(func=run)


# --------------------------------------------------------------------------- predict


def _add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="predict a mode from metadata and input features (cross-validated AUC, top features)")
    _source_args(p)
    p.add_argument("--fields", metavar="A,B,C", help="metadata fields to use (default: every field with few values, and numbers)")
    p.add_argument("--groups", metavar="FIELD", help="keep traces with the same value (repeated trials of a task) in one fold")
    p.add_argument("--folds", type=_positive_int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds (default 0)")

    def run(args: argparse.Namespace) -> int:
        from .predict import predict_failure, prediction_lines

        if args.folds < 2:
            raise FailmodesError("--folds takes at least 2", key="--folds")
        outcomes = load_outcomes(args)
        data = args.dataset or (None if args.outcome is None else args.source)
        inputs = {tid: t.input for tid, t in (load_traces(data) or {}).items()} if data else None
        results = [
            predict_failure(o, _csv(args.fields), inputs=inputs, groups=args.groups, folds=args.folds, seed=args.seed)
            for o in outcomes
        ]
        for r in results:
            for line in prediction_lines(r):
                print(line)
        write_json(args.json_out, "predict", {"modes": [r.to_dict() for r in results]})
        return 0

    p.set_defaults(func=run)


# --------------------------------------------------------------------------- analyze


def _add_analyze(sub: Any) -> None:
    p = sub.add_parser("analyze", help="every analysis of a report on one HTML page (heat map, slices, co-occurrence, reasons, steps)")
    p.add_argument("report", help="a JSON report")
    p.add_argument("--html", required=True, metavar="PATH", help="the page to write")
    p.add_argument("--dataset", metavar="PATH", help="the dataset the report was made from: metadata for slices, steps")
    p.add_argument("--notes", metavar="PATH", help="notes.jsonl: first failing steps")
    p.add_argument("--mode", action="append", metavar="NAME", help="modes to analyse (repeatable; default: every mode)")
    p.add_argument("--fields", metavar="A,B,C", help="fields to slice by")

    def run(args: argparse.Namespace) -> int:
        from .cooccur import cooccur
        from .html_page import render_analysis_page
        from .reasons import cluster_reasons
        from .report_data import load_metadata, outcomes_from_report
        from .slices import find_slices
        from .steps import analyse_steps, trace_steps

        report = _report_arg(args.report)
        modes = report.select(args.mode)
        meta = load_metadata(Path(args.dataset)) if args.dataset else None
        slices = find_slices([outcomes_from_report(m, meta) for m in modes], _csv(args.fields))
        pairs = cooccur(modes) if len(modes) > 1 else None
        reasons = [cluster_reasons(m) for m in modes if any(v == "fail" and r.strip() for v, r in zip(m.verdicts, m.reasons))]
        steps = None
        if args.dataset:
            traces = load_traces(args.dataset) or {}
            seqs = {tid: trace_steps(t) for tid, t in traces.items()}
            if any(seqs.values()):
                fails, marked = _report_fails(modes)
                noted = _resolve_marks(_notes_outcomes(args.notes)[1], traces) if args.notes else {}
                definitions = _definition_of(Path(args.report), modes)
                order = _pipeline_order(definitions, seqs, fails) if definitions is not None else None
                steps = analyse_steps(seqs, fails, noted, order, marked)
        raw = json.loads(Path(args.report).read_text(encoding="utf-8"))
        page = render_analysis_page(
            title=f"Error analysis: {Path(args.report).name}", report=raw, slices=slices, cooccur=pairs, reasons=reasons, steps=steps
        )
        Path(args.html).write_text(page, encoding="utf-8")
        print(f"analysis page written to {args.html} ({len(slices)} mode(s) sliced"
              f"{', co-occurrence' if pairs else ''}{f', reasons of {len(reasons)} mode(s)' if reasons else ''}{', steps' if steps else ''})")
        return 0

    p.set_defaults(func=run)


def add_analysis_commands(sub: Any) -> None:
    """Add every analysis verb's parser to ``failmodes``."""
    for add in _VERBS:
        add(sub)


_VERBS = (_add_slices, _add_axial, _add_steps, _add_cooccur, _add_reasons, _add_predict, _add_analyze)
