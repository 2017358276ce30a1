"""Baselines: a saved run to compare against, and the comparison itself.

A baseline is a JSON report (``pytest-failmodes/report``) saved by
``--failmodes-save-baseline``. Comparing a run with it pairs the two by mode
key and cohort; a mode whose definition changed (its fingerprint differs) or
that the baseline lacks is explained in a note and not compared. Within a
cohort the test is paired (exact McNemar) when both runs evaluated the same
trace ids, and an exact unpaired test otherwise; every comparison of the run
is corrected together (see :mod:`pytest_failmodes.regression`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import FailmodesError

if TYPE_CHECKING:
    from .engine import ModeResult
    from .regression import Comparison

__all__ = ["Baseline", "load_baseline", "compare_with_baseline", "BaselineComparison"]

_SCHEMA = "pytest-failmodes/report"
_VERSIONS = (1,)


@dataclass
class Baseline:
    path: str
    modes: dict[str, dict[str, Any]]  # mode key -> the report's mode entry

    def find(self, key: str) -> dict[str, Any] | None:
        """The baseline entry of a mode key, also when one run's rootdir differed.

        pytest picks the rootdir before plugin options exist, so
        ``--failmodes-baseline /abs/path`` (a space, not ``=``) can make one
        run's keys absolute; the same definition file then matches by suffix.
        """
        if key in self.modes:
            return self.modes[key]
        path, _sep, name = key.rpartition("::")
        found = [
            entry
            for k, entry in self.modes.items()
            if k.rpartition("::")[2] == name and _same_file(k.rpartition("::")[0], path)
        ]
        return found[0] if len(found) == 1 else None


def _same_file(a: str, b: str) -> bool:
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def load_baseline(path: Path, shown: str | None = None, kind: str = "baseline") -> Baseline:
    """Read a saved baseline; a clear error for anything that is not one.

    ``kind`` names the file in those errors (``failmodes compare`` reads the
    new run's report with this too, as ``"report"``).
    """
    name = shown or str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FailmodesError(
            "no baseline here; save one with --failmodes-save-baseline on the reference branch", file=name
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FailmodesError(f"cannot read the {kind}: {exc}", file=name) from None
    except ValueError as exc:
        raise FailmodesError(f"the {kind} is not valid JSON: {exc}", file=name) from None
    if not isinstance(data, dict) or data.get("schema") != _SCHEMA:
        raise FailmodesError(f"not a pytest-failmodes report (schema {data.get('schema')!r}, expected {_SCHEMA!r})" if isinstance(data, dict) else "not a pytest-failmodes report", file=name)
    if data.get("version") not in _VERSIONS:
        raise FailmodesError(
            f"{kind} schema version {data.get('version')!r}; this version of pytest-failmodes reads "
            f"version {', '.join(map(str, _VERSIONS))}: save the {kind} again",
            file=name,
        )
    _check_entries(data, name, kind)
    modes = {m["key"]: m for m in data.get("modes", []) if isinstance(m, dict) and "key" in m}
    return Baseline(name, modes)


#: what comparing reads from a report's modes, by list: field -> type
_REQUIRED: dict[str, dict[str, type]] = {"cohorts": {"cohort": str, "n": int, "fails": int}, "traces": {"id": str, "verdict": str}}


def _check_entries(data: dict[str, Any], name: str, kind: str) -> None:
    """A damaged or hand-edited file: a clear error now, not a KeyError mid-comparison."""
    modes = data.get("modes", [])
    if not isinstance(modes, list):
        raise FailmodesError(f"'modes' is not a list: the {kind} is damaged, save it again", file=name)
    for i, mode in enumerate(modes):
        if not isinstance(mode, dict) or not isinstance(mode.get("key"), str):
            raise FailmodesError(f"a mode without a 'key': the {kind} is damaged, save it again", file=name, key=f"modes[{i}]")
        for listed, fields in _REQUIRED.items():
            rows = mode.get(listed, [])
            for j, row in enumerate(rows if isinstance(rows, list) else [None]):
                for field_name, kind_of in fields.items():
                    value = row.get(field_name) if isinstance(row, dict) else None
                    if not isinstance(value, kind_of) or isinstance(value, bool):
                        raise FailmodesError(
                            f"{field_name!r} missing or not {'an integer' if kind_of is int else 'a string'}: "
                            f"the {kind} is damaged, save it again",
                            file=name,
                            key=f"modes[{i}].{listed}[{j}]",
                        )
                if listed == "cohorts":
                    _check_counts(row, name, kind, f"modes[{i}].cohorts[{j}]")


def _check_counts(row: dict[str, Any], name: str, kind: str, where: str) -> None:
    """Counts a run cannot produce (a hand edit, a merge gone wrong) would make every
    test of the comparison raise or lie: name the row and key instead."""
    n, fails, errors = row["n"], row["fails"], row.get("errors", 0)
    if n < 0:
        problem, key = f"'n' is {n}, below 0", "n"
    elif fails < 0:
        problem, key = f"'fails' is {fails}, below 0", "fails"
    elif fails > n:
        problem, key = f"'fails' ({fails}) is more than 'n' ({n})", "fails"
    elif isinstance(errors, bool) or not isinstance(errors, int) or errors < 0:
        problem, key = f"'errors' is {errors!r}, not a count", "errors"
    else:
        return
    raise FailmodesError(f"{problem}: the {kind} is damaged, save it again", file=name, key=f"{where}.{key}")


#: how the notes of a comparison begin on a mode's result (and in reports)
NOTE_PREFIX = "baseline: "


@dataclass
class BaselineComparison:
    """The comparisons of a run, by (mode key, cohort), and what could not be compared."""

    baseline: str
    comparisons: dict[tuple[str, str], Comparison] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)  # mode key -> notes
    #: the baseline's modes that this run lacks (renamed, removed or deselected): nothing
    #: checks them for regressions, so every report lists them
    missing: list[str] = field(default_factory=list)

    def missing_line(self) -> str | None:
        """One line naming the baseline's modes this run lacks, or ``None``."""
        if not self.missing:
            return None
        shown = ", ".join(self.missing[:10]) + (f" and {len(self.missing) - 10} more" if len(self.missing) > 10 else "")
        return (
            f"in the baseline {self.baseline} but not in this run (renamed, removed or deselected; "
            f"not checked for regressions): {shown}"
        )

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons.values() if c.regression]

    def annotate(self, results: Sequence[ModeResult]) -> None:
        """Put this comparison's notes on the results, as ``baseline: ...``, in place of
        any an earlier comparison left there (a report read back by ``failmodes compare``)."""
        for result in results:
            result.notes[:] = [n for n in result.notes if not n.startswith(NOTE_PREFIX)]
            result.notes.extend(f"{NOTE_PREFIX}{n}" for n in self.notes.get(result.key, ()))

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "baseline": self.baseline,
            "comparisons": [asdict(c) for c in self.comparisons.values()],
            "notes": self.notes,
            "missing": self.missing,
        }


def compare_with_baseline(
    results: Sequence[ModeResult],
    baseline: Baseline,
    *,
    alpha: float = 0.05,
    correction: str = "tarone-holm",
    min_increase: float = 0.0,
) -> BaselineComparison:
    """Test every mode × cohort of the run against the baseline, corrected together."""
    from .engine import STATUS_OF_CODE
    from .regression import compare

    out = BaselineComparison(baseline.path)
    rows: list[dict[str, Any]] = []
    matched: set[int] = set()
    for result in results:
        notes = out.notes.setdefault(result.key, [])
        base = baseline.find(result.key)
        if base is not None:
            matched.add(id(base))
        if result.broken:
            continue
        if result.partial:
            notes.append("a partial run: not compared with the baseline (a hand-picked subset says nothing of a rate)")
            continue
        if base is None:
            notes.append(f"not in the baseline {baseline.path}: nothing to compare")
            continue
        if base.get("fingerprint") and result.fingerprint and base["fingerprint"] != result.fingerprint:
            notes.append("its definition changed since the baseline: not compared (save a new baseline)")
            continue
        base_rows = {r["cohort"]: r for r in base.get("cohorts", [])}
        base_traces = [t for t in base.get("traces", []) if t.get("verdict") in ("pass", "fail")]
        by_pair = result.pairs is not None
        if by_pair and base_traces and any("pair" not in t for t in base_traces):
            notes.append("pair_by: the baseline was saved without it, so traces pair by id")
            by_pair = False
        base_keys = [t["pair"] if by_pair else t["id"] for t in base_traces]
        base_verdicts = {k: t["verdict"] for k, t in zip(base_keys, base_traces)}
        # a trace's key: its pair_by key, else its id
        key_of: list[str] = result.pairs if by_pair else result.ids  # type: ignore[assignment]
        new_verdicts = {key_of[i]: STATUS_OF_CODE[code] for i, code in enumerate(result.codes) if code in "PF"}
        clash = _clash(base_keys, [key_of[i] for i, code in enumerate(result.codes) if code in "PF"]) if by_pair else None
        if clash:
            notes.append(f"pair_by: more than one trace has the key {clash!r}, so traces cannot pair: compared unpaired")
            base_verdicts, new_verdicts = {}, {}
        clusters = (
            {key_of[i]: result.clusters[i] for i, code in enumerate(result.codes) if code in "PF"}
            if result.clusters is not None else None
        )
        overlap = len(base_verdicts.keys() & new_verdicts.keys())
        if new_verdicts and overlap < len(new_verdicts):
            notes.append(
                f"the baseline evaluated other traces ({overlap} of {len(new_verdicts)} ids in common): "
                "cohorts are compared unpaired"
            )
        members = result.members or {}
        limit = result.gate.min_increase if result.gate.min_increase is not None else min_increase
        unpaired: list[str] = []
        for row in result.rows:
            old = base_rows.get(row.cohort)
            if old is None or row.n == 0:
                continue
            entry: dict[str, Any] = {
                "mode": result.key,
                "cohort": row.cohort,
                "base_fails": int(old["fails"]),
                "base_n": int(old["n"]),
                "new_fails": row.fails,
                "new_n": row.n,
                "min_increase": limit,
            }
            ids = [key_of[i] for i in members.get(row.cohort, ())]
            ids = [i for i in ids if i in new_verdicts]
            if ids and len(ids) == row.n and all(i in base_verdicts for i in ids) and int(old["n"]) == len(ids):
                # the same traces in both runs: the paired test is the sensitive one
                entry["base_verdicts"] = {i: base_verdicts[i] for i in ids}
                entry["new_verdicts"] = {i: new_verdicts[i] for i in ids}
                del entry["base_fails"], entry["base_n"], entry["new_fails"], entry["new_n"]
                if clusters is not None:
                    entry["clusters"] = {i: clusters[i] for i in ids}
            elif row.clustered is not None:
                base_deff = (old.get("clustered") or {}).get("design_effect")
                entry["new_design_effect"] = row.clustered["design_effect"]
                # a baseline run without cluster_by is taken to have the same design as this run
                entry["base_design_effect"] = base_deff if base_deff is not None else row.clustered["design_effect"]
            elif overlap == len(new_verdicts):
                unpaired.append(row.cohort)
            rows.append(entry)
        if unpaired:
            # the ids match, yet a cohort could not pair: its decided traces differ (an error
            # or skip in one run only) or the run does not record which traces it holds
            why = "which traces make them is not recorded" if not members else "their decided traces differ"
            notes.append(f"compared unpaired ({why}): {', '.join(unpaired)}")
    for comparison in compare(rows, alpha=alpha, correction=correction, min_increase=min_increase):  # type: ignore[arg-type]
        out.comparisons[(comparison.mode, comparison.cohort)] = comparison
    out.notes = {k: v for k, v in out.notes.items() if v}
    out.missing = [key for key, entry in baseline.modes.items() if id(entry) not in matched]
    return out


def _clash(*sides: list[str]) -> str | None:
    """A pairing key held by more than one trace of a run, if any."""
    for keys in sides:
        seen: set[str] = set()
        for key in keys:
            if key in seen:
                return key
            seen.add(key)
    return None


def base_rate(comparison: Comparison) -> float | None:
    return comparison.base_fails / comparison.base_n if comparison.base_n else None
