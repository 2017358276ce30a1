"""Run history: one small JSON file per run, and the test that finds sustained shifts in it.

``pytest --failmodes --failmodes-history=DIR`` writes each run's figures per mode
and cohort (:func:`run_summary`, :func:`write_run`); ``failmodes history DIR``
reads them back (:func:`load_history`), lines them up per mode x cohort
(:func:`build_series`) and flags the series whose fail rate moved and stayed
moved (:func:`find_shifts`). Nothing here knows pytest; the page and the table
are in ``report/history_page.py``.

One file per run (not one growing file) so that runs in parallel, caches that
restore a directory and git branches that merge directories never fight over a
file: a run only ever adds a file with a name no other run picks.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import FailmodesError

if TYPE_CHECKING:
    from .baseline import BaselineComparison
    from .engine import ModeResult

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "MAX_FILE_BYTES",
    "DEFAULT_LAST",
    "Run",
    "Point",
    "Series",
    "Shift",
    "ShiftTest",
    "git_info",
    "run_summary",
    "write_run",
    "load_history",
    "build_series",
    "find_shifts",
]

SCHEMA = "pytest-failmodes/history"
SCHEMA_VERSION = 1
#: a run file larger than this is skipped with a warning (50 modes x 40 cohorts is ~0.5 MB)
MAX_FILE_BYTES = 64 * 1024 * 1024
#: seconds ``git rev-parse`` may take before the run is recorded without a commit
GIT_TIMEOUT = 3.0


# -- writing ------------------------------------------------------------------------------


def git_info(cwd: Path, env: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The commit and branch of the run: from the CI's environment when it names them
    (GitHub Actions, GitLab CI), else from ``git rev-parse`` with a time limit.
    Anything that goes wrong gives ``None`` values: the history must never fail a run."""
    env = os.environ if env is None else env
    # on a pull request GITHUB_REF_NAME is "123/merge"; GITHUB_HEAD_REF is the branch
    commit = env.get("GITHUB_SHA") or env.get("CI_COMMIT_SHA") or None
    branch = env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME") or env.get("CI_COMMIT_REF_NAME") or None
    if commit is None:
        commit = _git(cwd, "rev-parse", "HEAD")
    if branch is None:
        branch = _git(cwd, "rev-parse", "--abbrev-ref", "HEAD")
        if branch == "HEAD":  # a detached checkout has no branch
            branch = None
    return {"commit": commit, "branch": branch}


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out and "\n" not in out else None


def run_summary(
    results: Sequence[ModeResult],
    *,
    comparison: BaselineComparison | None = None,
    started: float | None = None,
    git: Mapping[str, str | None] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The figures of one run that the history keeps: per mode its fingerprint and
    status, per cohort n, fails, errors, rate, interval, limit, breach, and the
    baseline comparison when the run had one. No per-trace data: it stays small."""
    from . import __version__

    found = comparison.comparisons if comparison else {}
    modes = []
    for r in results:
        cohorts = []
        for row in r.rows:
            entry = row.to_dict()
            entry.pop("small", None)
            c = found.get((r.key, row.cohort))
            if c is not None:
                entry["baseline"] = {
                    "base_fails": c.base_fails,
                    "base_n": c.base_n,
                    "base_rate": c.base_fails / c.base_n if c.base_n else None,
                    "delta": c.delta,
                    "regression": c.regression,
                    "improvement": c.improvement,
                }
            cohorts.append(entry)
        modes.append(
            {"key": r.key, "name": r.name, "fingerprint": r.fingerprint, "status": r.status, "cohorts": cohorts}
        )
    now = time.time() if now is None else now
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "generator": f"pytest-failmodes {__version__}",
        "timestamp": _iso(now),
        "started": _iso(started) if started is not None else None,
        "git": dict(git) if git is not None else {"commit": None, "branch": None},
        "baseline": comparison.baseline if comparison else None,
        "modes": modes,
    }


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1e6):06d}Z"


def write_run(directory: Path, summary: Mapping[str, Any]) -> Path:
    """Add ``summary`` to the history in ``directory`` as a new file and return its path.

    The name starts with the run's UTC time (so a listing sorts by time) and ends
    with random hex: two runs finishing in the same microsecond, on two machines
    sharing a cache, still write two files. The file is written whole or not at all."""
    from .report.safe import json_text, write_atomically

    stamp = str(summary.get("timestamp", "")).replace(":", "").replace("-", "").replace(".", "")
    path = Path(directory, f"run-{stamp or 'unknown'}-{secrets.token_hex(6)}.json")
    write_atomically(path, json_text(dict(summary), indent=None) + "\n")
    return path


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One run read back from the history."""

    file: str
    timestamp: str
    commit: str | None
    branch: str | None
    baseline: str | None
    #: mode key -> the mode's entry (name, fingerprint, status, cohorts)
    modes: dict[str, dict[str, Any]]

    @property
    def label(self) -> str:
        """Short name for a table or a chart: the time, and the commit when known."""
        when = self.timestamp[:16].replace("T", " ")
        return f"{when} {self.commit[:8]}" if self.commit else when


#: runs read by default: the newest this many files (memory stays bounded as a history grows)
DEFAULT_LAST = 200


def load_history(directory: Path, warn: Callable[[str], None], *, last: int = DEFAULT_LAST) -> list[Run]:
    """The newest ``last`` runs in ``directory`` (by file name, which starts with the
    run's time), oldest first. A file that cannot be read or is not a run summary is
    skipped with one ``warn`` line naming it; a missing directory, or one without a
    single readable run, is an error naming it."""
    shown = str(directory)
    if not directory.exists():
        raise FailmodesError("no such history directory; write one with pytest --failmodes --failmodes-history=DIR", file=shown)
    if not directory.is_dir():
        raise FailmodesError("not a directory; give the directory --failmodes-history wrote to", file=shown)
    runs: list[Run] = []
    # a leading dot: a temp file of a writer still at work
    paths = sorted(p for p in directory.glob("*.json") if not p.name.startswith("."))
    if len(paths) > last:
        warn(f"{len(paths) - last} older run files in {directory} not read (the newest {last} are; --last N reads more)")
        paths = paths[-last:]
    for path in paths:
        try:
            runs.append(_read_run(path))
        except _Unreadable as exc:
            warn(f"skipped {path}: {exc}")
    if not runs:
        raise FailmodesError("holds no readable run (*.json written by --failmodes-history)", file=shown)
    runs.sort(key=lambda r: (r.timestamp, r.file))
    return runs


class _Unreadable(Exception):
    pass


def _read_run(path: Path) -> Run:
    try:
        if not path.is_file():
            raise _Unreadable("not a regular file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _Unreadable(f"{size} bytes, more than a run summary can be ({MAX_FILE_BYTES})")
        raw = path.read_bytes()
    except OSError as exc:
        raise _Unreadable(exc.strerror or type(exc).__name__) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _Unreadable(f"not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise _Unreadable(f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise _Unreadable("nested too deeply to be a run summary") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise _Unreadable(f"not a run summary (its 'schema' is not {SCHEMA!r})")
    if data.get("version") != SCHEMA_VERSION:
        raise _Unreadable(f"history version {data.get('version')!r}; this pytest-failmodes reads version {SCHEMA_VERSION}")
    stamp = data.get("timestamp")
    if not isinstance(stamp, str):
        raise _Unreadable("key 'timestamp' must be a string")
    git = data.get("git") if isinstance(data.get("git"), dict) else {}
    modes_in = data.get("modes")
    if not isinstance(modes_in, list):
        raise _Unreadable("key 'modes' must be a list")
    modes: dict[str, dict[str, Any]] = {}
    for i, mode in enumerate(modes_in):
        where = f"modes[{i}]"
        if not isinstance(mode, dict) or not isinstance(mode.get("key"), str):
            raise _Unreadable(f"{where}: needs a string 'key'")
        cohorts = mode.get("cohorts")
        if not isinstance(cohorts, list):
            raise _Unreadable(f"{where}.cohorts must be a list")
        for j, row in enumerate(cohorts):
            _check_row(row, f"{where}.cohorts[{j}]")
        modes[mode["key"]] = mode
    return Run(
        file=path.name,
        timestamp=stamp,
        commit=_str_or_none(git.get("commit")),
        branch=_str_or_none(git.get("branch")),
        baseline=_str_or_none(data.get("baseline")),
        modes=modes,
    )


def _check_row(row: Any, where: str) -> None:
    if not isinstance(row, dict) or not isinstance(row.get("cohort"), str):
        raise _Unreadable(f"{where}: needs a string 'cohort'")
    for key in ("n", "fails"):
        value = row.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _Unreadable(f"{where}.{key} must be a whole number >= 0")
    if row["fails"] > row["n"]:
        raise _Unreadable(f"{where}: fails ({row['fails']}) exceed n ({row['n']})")
    for key in ("ci_low", "ci_high", "limit"):
        value = row.get(key)
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
            raise _Unreadable(f"{where}.{key} must be a number or null")


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# -- series ---------------------------------------------------------------------------------


@dataclass
class Point:
    """One run's figures for one mode x cohort."""

    run: int  # index into the runs
    n: int
    fails: int
    errors: int
    ci_low: float | None
    ci_high: float | None
    limit: float | None
    breach: bool
    fingerprint: str
    #: the run's own comparison with its baseline: base_rate, delta, regression, improvement
    baseline: dict[str, Any] | None

    @property
    def rate(self) -> float | None:
        return self.fails / self.n if self.n else None


@dataclass
class Series:
    """A mode x cohort over the runs that have it (oldest first)."""

    mode: str  # the mode's key (file::name)
    name: str  # the mode's name, as the latest run calls it
    cohort: str
    points: list[Point]
    shift: Shift | None = None

    @property
    def latest(self) -> Point:
        return self.points[-1]

    def definition_changes(self) -> list[int]:
        """Positions in ``points`` where the mode's fingerprint differs from the point before."""
        return [
            i for i in range(1, len(self.points)) if self.points[i].fingerprint != self.points[i - 1].fingerprint
        ]


def build_series(
    runs: Sequence[Run], *, modes: Iterable[str] = (), cohorts: Iterable[str] = (), source: str | None = None
) -> list[Series]:
    """One series per mode x cohort seen in any run, in the latest run's order first.

    ``modes`` / ``cohorts``: keep only these (a mode by its name or key). A name that
    matches nothing is an error with the closest name, never an empty page;
    ``source`` (the history's directory) is named in it."""
    from .errors import did_you_mean

    by_key: dict[tuple[str, str], Series] = {}
    # the latest run's order leads; modes and cohorts it lacks follow in older runs' order
    for index in [len(runs) - 1, *range(len(runs) - 1)]:
        for key, mode in runs[index].modes.items():
            for row in mode["cohorts"]:
                if (key, row["cohort"]) not in by_key:
                    by_key[(key, row["cohort"])] = Series(key, str(mode.get("name") or key), row["cohort"], [])
    for index, run in enumerate(runs):
        for key, mode in run.modes.items():
            for row in mode["cohorts"]:
                base = row.get("baseline")
                by_key[(key, row["cohort"])].points.append(
                    Point(
                        run=index,
                        n=row["n"],
                        fails=row["fails"],
                        errors=row.get("errors") if isinstance(row.get("errors"), int) else 0,
                        ci_low=row.get("ci_low"),
                        ci_high=row.get("ci_high"),
                        limit=row.get("limit"),
                        breach=bool(row.get("breach")),
                        fingerprint=str(mode.get("fingerprint") or ""),
                        baseline=base if isinstance(base, dict) else None,
                    )
                )
    series = list(by_key.values())
    wanted_modes = list(modes)
    if wanted_modes:
        known = {s.name for s in series} | {s.mode for s in series}
        for m in wanted_modes:
            if m not in known:
                raise FailmodesError(f"--mode {m!r} is in no run of the history{did_you_mean(m, known)}", file=source)
        series = [s for s in series if s.name in wanted_modes or s.mode in wanted_modes]
    wanted_cohorts = list(cohorts)
    if wanted_cohorts:
        known = {s.cohort for s in series}
        for c in wanted_cohorts:
            if c not in known:
                raise FailmodesError(f"--cohort {c!r} is in no run of the history{did_you_mean(c, known)}", file=source)
        series = [s for s in series if s.cohort in wanted_cohorts]
    return series


# -- sustained shifts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ShiftTest:
    """How a sustained shift is decided (see :func:`find_shifts`).

    ``min_run``: the latest runs that must all have moved the same way (>= 2);
    ``window``: at most this many runs before them make the reference;
    ``alpha``: the chance of any false alarm on the whole dashboard, when nothing changed."""

    min_run: int = 3
    window: int = 10
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.min_run < 2:
            raise ValueError(f"min_run must be >= 2 (one run is not a sustained shift), got {self.min_run}")
        if self.window < 2:
            raise ValueError(f"window must be >= 2, got {self.window}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha}")


@dataclass
class Shift:
    """A series' latest runs against the runs before them."""

    direction: str  # "up" (worse) or "down" (better)
    since: int  # position in the series' points where the shifted runs start
    reference_rate: float
    recent_rate: float
    p_value: float
    p_adjusted: float | None = None
    overdispersion: float = 1.0
    flagged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "since": self.since,
            "reference_rate": self.reference_rate,
            "recent_rate": self.recent_rate,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "overdispersion": self.overdispersion,
            "flagged": self.flagged,
        }


def find_shifts(series: Sequence[Series], test: ShiftTest = ShiftTest()) -> int:
    """Test every series for a sustained shift at its end and set ``series.shift``;
    return how many are flagged.

    For one series: the runs since the mode's definition last changed (a new
    fingerprint restarts the history); the last ``min_run`` of them are *recent*,
    up to ``window`` before them the *reference*. A shift is tested only if every
    recent run lies on the same side of the reference rate, and then by Fisher's
    one-sided exact test of the pooled recent runs **without the most extreme of
    them** against the pooled reference: one wild run can neither make nor carry a
    shift.

    Runs often vary more than sampling explains (a judge, a provider, traffic that
    changes from day to day), and then pooled counts overstate the evidence. The
    counts are divided by an overdispersion factor (Rao-Scott), the larger of the
    series' own (its reference runs' median squared standardized residual around
    their median rate, so a shift inside the window does not hide itself) and the
    dashboard's: run-to-run
    variation of the rate in relative terms, the median over all series, applied
    to this series' size and rate (ten runs are too few to measure it alone).

    The p-values of all series are adjusted together (Tarone-Holm), so ``alpha``
    bounds the chance of any false alarm on the dashboard; ``bench/history_aa.py``
    measures it."""
    from .regression import adjust, fisher_greater_many, rao_scott_counts

    windows: list[tuple[Series, list[Point], list[Point], float, float]] = []
    relative: list[float] = []
    for s in series:
        s.shift = None
        points = [p for p in s.points if p.n > 0]
        if not points:
            continue
        fingerprint = points[-1].fingerprint
        start = len(points)
        while start > 0 and points[start - 1].fingerprint == fingerprint:
            start -= 1
        same = points[start:]
        if len(same) < test.min_run + 2:
            continue
        recent = same[-test.min_run :]
        reference = same[-test.min_run - test.window : -test.min_run]
        ref_rate = sum(p.fails for p in reference) / sum(p.n for p in reference)
        # residuals around the median run, not the pooled rate: runs of a shift that began
        # inside the window would pull the pooled rate and make every run look far off
        centre = _median([p.fails / p.n for p in reference])
        own = _overdispersion(reference, centre)
        windows.append((s, recent, reference, ref_rate, own))
        if 0.0 < centre < 1.0:
            # the excess over sampling as a squared relative variation of the rate
            mean_n = sum(p.n for p in reference) / len(reference)
            relative.append((own - 1.0) * (1.0 - centre) / (mean_n * centre))
    common = max(0.0, _median(relative)) if relative else 0.0
    candidates: list[tuple[Shift, float]] = []
    tables: list[tuple[int, int, int, int]] = []
    for s, recent, reference, ref_rate, own in windows:
        rates = [p.fails / p.n for p in recent]
        if all(r > ref_rate for r in rates):
            direction = "up"
        elif all(r < ref_rate for r in rates):
            direction = "down"
        else:
            continue
        # the most extreme recent run is left out: it alone must not decide
        extreme = max(range(len(recent)), key=lambda i: rates[i] if direction == "up" else -rates[i])
        kept = [p for i, p in enumerate(recent) if i != extreme]
        ref_fails = sum(p.fails for p in reference)
        ref_n = sum(p.n for p in reference)
        new_fails = sum(p.fails for p in kept)
        new_n = sum(p.n for p in kept)
        mean_n = ref_n / len(reference)
        phi = max(1.0, own)
        if 0.0 < ref_rate < 1.0:
            phi = max(phi, 1.0 + common * mean_n * ref_rate / (1.0 - ref_rate))
        bf, bn = rao_scott_counts(ref_fails, ref_n, phi)
        nf, nn = rao_scott_counts(new_fails, new_n, phi)
        if direction == "up":
            tables.append((bf, bn, nf, nn))
            floor = _fisher_floor(bf + nf, nn, bn)
        else:
            tables.append((nf, nn, bf, bn))
            floor = _fisher_floor(bf + nf, bn, nn)
        since = s.points.index(recent[0])
        recent_rate = sum(p.fails for p in recent) / sum(p.n for p in recent)
        s.shift = Shift(direction, since, ref_rate, recent_rate, 1.0, overdispersion=phi)
        candidates.append((s.shift, floor))
    if not candidates:
        return 0
    # one vectorised call for every candidate: the same p-values as Fisher's test one by one
    for (shift, _), p in zip(candidates, fisher_greater_many(tables)):
        shift.p_value = p
    candidates = [(shift, min(floor, shift.p_value)) for shift, floor in candidates]
    adjusted = adjust(
        [shift.p_value for shift, _ in candidates],
        "tarone-holm",
        min_attainable=[floor for _, floor in candidates],
        alpha=test.alpha,
    )
    flagged = 0
    for (shift, _), p_adj in zip(candidates, adjusted):
        shift.p_adjusted = p_adj
        shift.flagged = p_adj is not None and p_adj <= test.alpha
        flagged += shift.flagged
    return flagged


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


#: the median of a chi-square variable with one degree of freedom
_CHI2_1_MEDIAN = 0.4549364231195724


def _overdispersion(points: Sequence[Point], rate: float) -> float:
    """How much more the runs vary around ``rate`` than sampling explains: the median
    squared standardized residual over its value under sampling alone (about 1 when
    sampling explains it all; not clipped). The median, not Pearson's mean: a shift
    that began inside the reference window must not inflate it and so hide itself."""
    if len(points) < 2 or rate <= 0.0 or rate >= 1.0:
        return 1.0
    z2 = [(p.fails - p.n * rate) ** 2 / (p.n * rate * (1.0 - rate)) for p in points]
    return _median(z2) / _CHI2_1_MEDIAN


def _fisher_floor(fails: int, n: int, other_n: int) -> float:
    """The smallest one-sided p-value Fisher's test can give with these margins (all
    ``fails`` in the ``n`` run, as far as they fit): what Tarone's refinement needs.
    The same as ``regression.min_attainable_p("fisher", ...)``, by log-gamma, since it is
    computed for thousands of series per page and scipy's hypergeom costs a millisecond."""
    total = n + other_n
    if n == 0 or other_n == 0 or fails == 0 or fails == total:
        return 1.0
    k = min(fails, n)

    def log_comb(a: int, b: int) -> float:
        return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)

    return min(1.0, math.exp(log_comb(fails, k) + log_comb(total - fails, n - k) - log_comb(total, n)))
