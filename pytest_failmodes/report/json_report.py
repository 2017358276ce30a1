"""The JSON report. Schema: docs/report-schema.md (bump SCHEMA_VERSION on any change)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..engine import ModeResult

__all__ = ["SCHEMA", "SCHEMA_VERSION", "build_report", "write_report"]

SCHEMA = "pytest-failmodes/report"
SCHEMA_VERSION = 1


def build_report(results: Sequence[ModeResult], *, interrupted: bool = False) -> dict[str, Any]:
    """``interrupted``: the run stopped early (a collection error, Ctrl-C), so
    ``modes`` may be incomplete and the report must not claim ``passed``."""
    from .. import __version__

    modes = []
    for r in results:
        status = "broken" if r.broken else ("ok" if r.passed else "breached")
        breaches = [f"limit:{row.cohort}" for row in r.breached_rows]
        if r.error_breach:
            breaches.append("errors")
        modes.append(
            {
                "key": r.key,
                "name": r.name,
                "file": r.source,
                "line": r.line,
                "description": r.description,
                "detector": r.detector,
                "gate": r.gate.to_dict(),
                "status": status,
                "breaches": breaches,
                "broken": r.broken,
                "notes": r.notes,
                "fingerprint": r.fingerprint,
                "skipped": r.skipped,
                "cohorts": [row.to_dict() for row in r.rows],
                "traces": [
                    {"id": tid, "verdict": st, "reason": reason, "evidence": ev}
                    for tid, st, reason, ev in r.verdicts()
                ],
            }
        )
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "generator": f"pytest-failmodes {__version__}",
        "passed": not interrupted and all(r.passed for r in results),
        "modes": modes,
    }


def write_report(path: Path, results: Sequence[ModeResult], *, interrupted: bool = False) -> None:
    """Write atomically: a crash mid-write never leaves a truncated report behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(build_report(results, interrupted=interrupted), fh, ensure_ascii=False, indent=1)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
