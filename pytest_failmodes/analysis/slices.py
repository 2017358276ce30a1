"""Which metadata slices fail more than the rest (``failmodes slices``).

Every slice (one field's value, and with ``pairs`` every two fields' values)
with at least ``min_support`` traces is tested against its complement with a
one-sided Fisher exact test; the p-values of every slice tested in the call
(all modes together) are corrected with Benjamini–Hochberg at ``q``. Slice
finders that rank by raw rate difference report "bad slices" on pure noise;
here a slice is reported only when the corrected test says so, and the output
always says how many slices were tested (``bench/slices.py`` measures how often
null data gives a slice, and the recall of a planted one by n).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import FailmodesError, did_you_mean
from .report_data import Outcomes, field_names

__all__ = ["Slice", "SliceResult", "find_slices", "slice_lines"]

MISSING_LABEL = "(missing)"


@dataclass(frozen=True)
class Slice:
    """One slice tested against the rest of the traces."""

    fields: tuple[str, ...]
    values: tuple[str, ...]
    n: int
    fails: int
    rest_n: int
    rest_fails: int
    #: slice rate minus rest rate, and its 95% Newcombe (hybrid score) interval
    diff: float
    diff_low: float
    diff_high: float
    p_value: float
    q_value: float = 1.0
    significant: bool = False

    @property
    def label(self) -> str:
        return " & ".join(f"{f}={v}" for f, v in zip(self.fields, self.values))

    @property
    def rate(self) -> float:
        return self.fails / self.n

    @property
    def rest_rate(self) -> float:
        return self.rest_fails / self.rest_n

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["fields"], out["values"] = list(self.fields), list(self.values)
        out["slice"] = self.label
        out["rate"], out["rest_rate"] = self.rate, self.rest_rate
        return out


@dataclass
class SliceResult:
    """The slices of one mode: the ones found and what was tested to find them."""

    mode: str
    n: int
    fails: int
    errors: int
    fields: list[str]
    #: field -> why it was not sliced
    skipped_fields: dict[str, str]
    #: numeric field -> its bins
    bins: dict[str, list[str]]
    min_support: int
    q: float
    pairs: bool
    tested: int = 0
    #: slices declared after correction, strongest (highest lower bound of the difference) first
    found: list[Slice] = field(default_factory=list)
    #: when nothing is found, the slices closest to it (smallest p), for a look, not a claim
    closest: list[Slice] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the raw tests, for the joint correction over modes (not written out)
    _all: list[Slice] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "n": self.n,
            "fails": self.fails,
            "errors": self.errors,
            "fields": self.fields,
            "skipped_fields": self.skipped_fields,
            "bins": self.bins,
            "min_support": self.min_support,
            "q": self.q,
            "pairs": self.pairs,
            "tested": self.tested,
            "found": [s.to_dict() for s in self.found],
            "closest": [s.to_dict() for s in self.closest],
            "warnings": self.warnings,
        }


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _encode(values: list[Any], name: str, max_values: int, n_bins: int) -> tuple[list[str], Any, list[str]] | str:
    """``(labels, code per trace, bin labels)`` for one field, or why it cannot be sliced."""
    import numpy as np

    kinds = set(map(type, values))
    kinds.discard(type(None))
    if list in kinds or dict in kinds:
        return "it holds lists or objects; map a scalar field instead"
    if kinds and kinds <= {int, float}:
        arr = np.array([np.nan if v is None else v for v in values], dtype=float)
        finite = arr[np.isfinite(arr)]
        if len(np.unique(finite)) > n_bins:
            edges = np.unique(np.quantile(finite, np.linspace(0, 1, n_bins + 1)))
            inner = edges[1:-1]
            labels = [f"[{_fmt(lo)}, {_fmt(hi)}{']' if k == len(edges) - 2 else ')'}" for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]
            codes = np.searchsorted(inner, arr, side="right")
            bins = list(labels)
            if len(finite) < len(arr):
                codes[~np.isfinite(arr)] = len(labels)
                labels.append(MISSING_LABEL)
            return labels, codes, bins
    if kinds == {str}:
        text = [MISSING_LABEL if v is None else v for v in values]
    else:
        text = [MISSING_LABEL if v is None else (v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)) for v in values]
    distinct = sorted(set(text))
    if len(distinct) > max_values:
        return f"{len(distinct)} distinct values (more than {max_values}); leave it out or bin it"
    index = {v: i for i, v in enumerate(distinct)}
    return distinct, np.fromiter(map(index.__getitem__, text), dtype=np.int64, count=len(text)), []


def _newcombe(f1: Any, n1: Any, f2: Any, n2: Any) -> tuple[Any, Any, Any]:
    """Vectorised difference of two proportions with its 95% Newcombe hybrid-score interval."""
    import numpy as np

    from ..stats import Z95

    def wilson(f: Any, n: Any) -> tuple[Any, Any, Any]:
        p = f / n
        z2 = Z95 * Z95
        denom = 1 + z2 / n
        centre = (p + z2 / (2 * n)) / denom
        half = Z95 * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
        return p, np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)

    p1, l1, u1 = wilson(f1, n1)
    p2, l2, u2 = wilson(f2, n2)
    d = p1 - p2
    return d, d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def _test_mode(
    out: Outcomes,
    fields: Sequence[str] | None,
    *,
    min_support: int,
    q: float,
    pairs: bool,
    max_values: int,
    n_bins: int,
) -> SliceResult:
    import numpy as np
    from scipy.stats import hypergeom

    known = field_names(out.metadata)
    explicit = fields is not None
    names = list(fields) if fields is not None else known
    for name in names:
        if name not in known:
            raise FailmodesError(
                f"field {name!r} is in no trace of mode {out.mode!r}{did_you_mean(name, known)} "
                f"(fields: {', '.join(known) or 'none; give --dataset to read the traces metadata'})",
                key="--fields",
            )
    fails = np.array(out.fails, dtype=np.int64)
    N, F = len(fails), int(fails.sum())
    res = SliceResult(out.mode, N, F, out.errors, [], {}, {}, min_support, q, pairs)
    columns: list[tuple[str, list[str], Any]] = []
    for name in names:
        enc = _encode([m.get(name) for m in out.metadata], name, max_values, n_bins)
        if isinstance(enc, str):
            res.skipped_fields[name] = enc
            if explicit:
                res.warnings.append(f"field {name!r} not sliced: {enc}")
            continue
        labels, codes, bins = enc
        if len(labels) < 2:
            res.skipped_fields[name] = "one value in every trace"
            continue
        res.fields.append(name)
        if bins:
            res.bins[name] = bins
        columns.append((name, labels, np.asarray(codes, dtype=np.int64)))
    if N == 0:
        res.warnings.append("no decided trace (pass or fail): nothing to test")
        return res
    groups: list[tuple[tuple[str, ...], Any, Any, Any]] = []  # (fields, value tuples, n, fails)
    for name, labels, codes in columns:
        n = np.bincount(codes, minlength=len(labels))
        f = np.bincount(codes, weights=fails, minlength=len(labels)).astype(np.int64)
        groups.append(((name,), [(lab,) for lab in labels], n, f))
    if pairs:
        for i in range(len(columns)):
            for j in range(i + 1, len(columns)):
                (na, la, ca), (nb, lb, cb) = columns[i], columns[j]
                combined = ca * len(lb) + cb
                size = len(la) * len(lb)
                n = np.bincount(combined, minlength=size)
                f = np.bincount(combined, weights=fails, minlength=size).astype(np.int64)
                groups.append(((na, nb), [(x, y) for x in la for y in lb], n, f))
    tested: list[Slice] = []
    sizes: list[Any] = []
    for names_, values, n, f in groups:
        keep = np.nonzero((n >= min_support) & (n < N))[0]
        if not len(keep):
            continue
        nk, fk = n[keep], f[keep]
        # one-sided Fisher (the slice fails more): P(X >= f) for X ~ Hypergeom(N, F, n)
        p = hypergeom.sf(fk - 1, N, F, nk)
        d, lo, hi = _newcombe(fk.astype(float), nk.astype(float), (F - fk).astype(float), (N - nk).astype(float))
        for idx, k in enumerate(keep):
            tested.append(
                Slice(names_, values[k], int(nk[idx]), int(fk[idx]), int(N - nk[idx]), int(F - fk[idx]),
                      float(d[idx]), float(lo[idx]), float(hi[idx]), float(min(1.0, max(0.0, p[idx]))))
            )
        sizes.append(nk)
    res.tested = len(tested)
    res._all = tested
    if N < 2 * min_support:
        res.warnings.append(f"only {N} decided traces: no slice of >= {min_support} traces has a complement to compare with")
    elif tested and min(s.p_value for s in tested) > q / len(tested) and _best_possible(sizes, N, F) > q / len(tested):
        res.warnings.append(
            f"n too small to find anything: with {F} fails in {N} traces and {len(tested)} slices tested, "
            "no slice could be declared even if every one of its traces failed"
        )
    elif not tested:
        res.warnings.append(f"no slice has >= {min_support} traces (--min-support)")
    if F == 0:
        res.warnings.append("no trace fails: there is nothing to concentrate")
    return res


def _best_possible(sizes: list[Any], N: int, F: int) -> float:
    """The smallest p-value any tested slice could reach: all of its traces failing."""
    import numpy as np
    from scipy.stats import hypergeom

    nk = np.concatenate(sizes)
    return float(hypergeom.sf(np.minimum(nk, F) - 1, N, F, nk).min())


def find_slices(
    outcomes: Sequence[Outcomes],
    fields: Sequence[str] | None = None,
    *,
    min_support: int = 10,
    q: float = 0.1,
    pairs: bool = True,
    max_values: int = 20,
    n_bins: int = 4,
    closest: int = 5,
) -> list[SliceResult]:
    """Slices that fail more than their complement, per mode.

    ``fields`` default to every metadata field; categorical fields with more
    than ``max_values`` values are skipped (and listed), numeric ones are cut
    into ``n_bins`` quantile bins. Benjamini–Hochberg at ``q`` runs over every
    slice of every mode tested in this call.
    """
    if not 0 < q < 1:
        raise FailmodesError(f"q takes a number between 0 and 1, got {q}", key="--q")
    if min_support < 1:
        raise FailmodesError(f"min_support takes a positive integer, got {min_support}", key="--min-support")
    results = [
        _test_mode(o, fields, min_support=min_support, q=q, pairs=pairs, max_values=max_values, n_bins=n_bins)
        for o in outcomes
    ]
    everything = [s for r in results for s in r._all]
    if everything:
        from ..regression import adjust

        qs = adjust([s.p_value for s in everything], "bh")
        k = 0
        for r in results:
            decided = []
            for s in r._all:
                qv = float(qs[k])  # type: ignore[arg-type]
                k += 1
                decided.append(Slice(**{**s.__dict__, "q_value": qv, "significant": qv <= q}))
            r._all = decided
            r.found = _informative(sorted((s for s in decided if s.significant), key=lambda s: (-s.diff_low, s.p_value, s.label)), decided, q)
            if not r.found:
                r.closest = sorted(decided, key=lambda s: (s.p_value, -s.diff_low, s.label))[:closest]
    return results


def _informative(found: list[Slice], tested: list[Slice], q: float) -> list[Slice]:
    """Leave out a pair that does not fail more than the rest of each of its single-value
    parents (one-sided Fisher within the parent): ``a=x & b=y`` inside a bad ``a=x``
    is mostly ``a=x`` again, and by chance one of its pairs often has the higher bound.
    The level is Bonferroni-split over the pairs tested inside that parent. A pair left
    out still counts among the slices tested."""
    from collections import Counter

    from scipy.stats import hypergeom

    single = {(s.fields[0], s.values[0]): s for s in tested if len(s.fields) == 1}
    inside = Counter((f, v) for s in tested if len(s.fields) == 2 for f, v in zip(s.fields, s.values))
    out = []
    for s in found:
        if len(s.fields) == 2:
            keep = True
            for f, v in zip(s.fields, s.values):
                parent = single.get((f, v))
                if parent is None:
                    continue
                if parent.n == s.n or hypergeom.sf(s.fails - 1, parent.n, parent.fails, s.n) >= q / inside[(f, v)]:
                    keep = False
                    break
            if not keep:
                continue
        out.append(s)
    return out


def slice_lines(results: Sequence[SliceResult], top: int = 15) -> list[str]:
    """The terminal view: per mode, what was tested, then the slices found."""
    from tabulate import tabulate

    lines: list[str] = []
    for r in results:
        rate = f"{r.fails / r.n:.1%}" if r.n else "-"
        lines.append(
            f"mode {r.mode}: {r.fails}/{r.n} fail ({rate}){f', {r.errors} errors left out' if r.errors else ''}; "
            f"{r.tested} slices tested ({'single values and pairs' if r.pairs else 'single values'} of "
            f"{', '.join(r.fields) or 'no field'}; support >= {r.min_support}); BH q = {r.q:g}"
        )
        for name, why in r.skipped_fields.items():
            if not any(w.startswith(f"field {name!r} not sliced") for w in r.warnings):
                lines.append(f"  skipped field {name}: {why}")
        for w in r.warnings:
            lines.append(f"  warning: {w}")
        shown = (r.found or r.closest)[:top]
        if r.found:
            more = f" (the first {top} shown; all in --json)" if len(r.found) > top else ""
            lines.append(f"  {len(r.found)} slice(s) fail more than the rest{more}:")
        elif r.tested:
            lines.append("  no slice fails significantly more than the rest. Closest (not significant):")
        if shown:
            table = [
                [s.label, s.n, s.fails, f"{s.rate:.1%}", f"{s.rest_rate:.1%}", f"{s.diff:+.1%}",
                 f"[{s.diff_low:+.1%}, {s.diff_high:+.1%}]", f"{s.p_value:.2g}", f"{s.q_value:.2g}"]
                for s in shown
            ]
            text = tabulate(table, headers=["slice", "n", "fail", "rate", "rest", "diff", "95% CI", "p", "q"], disable_numparse=True)
            lines.extend("  " + line for line in text.splitlines())
        lines.append("")
    return lines[:-1] if lines else lines
