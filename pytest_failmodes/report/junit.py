"""Gates in pytest's JUnit XML: one testcase per mode × cohort, figures as properties.

pytest's junitxml plugin writes its file at the end of the session; this adds
a ``<testsuite name="failmodes-gates">`` to that file afterwards, so CI
systems list every gate, not only one item per mode.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine import ModeResult
from .safe import write_atomically, xml_text

if TYPE_CHECKING:
    from ..baseline import BaselineComparison

__all__ = ["add_gates"]


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    # cohort values and reasons are trace data: XML 1.0 cannot hold most control characters
    return xml_text(value)


def add_gates(path: Path, results: Sequence[ModeResult], comparison: BaselineComparison | None = None) -> None:
    """Append the gates of the run to the JUnit XML file at ``path``."""
    tree = ET.parse(path)
    root = tree.getroot()
    suites = root if root.tag == "testsuites" else None
    if suites is None:  # junit_family xunit1 writes a bare <testsuite>
        suites = ET.Element("testsuites")
        suites.append(root)
        tree = ET.ElementTree(suites)
    suite = ET.SubElement(suites, "testsuite", name="failmodes-gates")
    found = comparison.comparisons if comparison else {}
    tests = failures = errors = skipped = 0
    for result in results:
        rows = result.rows or []
        if result.broken:
            case = ET.SubElement(suite, "testcase", classname=_fmt(result.key), name="gate[all]", time="0")
            ET.SubElement(case, "error", message=_fmt(result.broken[:500]))
            tests += 1
            errors += 1
            continue
        for row in rows:
            tests += 1
            case = ET.SubElement(suite, "testcase", classname=_fmt(result.key), name=_fmt(f"gate[{row.cohort}]"), time="0")
            props = ET.SubElement(case, "properties")
            row_figures = row.to_dict()
            figures: dict[str, Any] = {
                k: row_figures[k] for k in ("n", "fails", "errors", "rate", "ci_low", "ci_high", "limit", "gated")
            }
            c = found.get((result.key, row.cohort))
            if c is not None:
                figures.update(base_rate=c.base_fails / c.base_n if c.base_n else None, delta=c.delta, p_adjusted=c.p_adjusted)
            for name, value in figures.items():
                ET.SubElement(props, "property", name=name, value=_fmt(value))
            reasons = []
            if row.breach:
                reasons.append(f"fail rate {_fmt(row.rate)} over the limit {_fmt(row.limit)}")
            if row.cohort == "all" and result.error_breach:
                reasons.append(f"{row.errors} errors over max_errors {result.gate.max_errors}")
            if c is not None and c.regression:
                reasons.append(f"regression against the baseline: +{_fmt(c.delta)}, p={_fmt(c.p_adjusted)}")
            if row.cohort == "all" and result.empty_breach:
                reasons.append(f"empty: all {result.skipped} traces were skipped, so nothing was checked")
            if reasons:
                failures += 1
                ET.SubElement(case, "failure", message=_fmt("; ".join(reasons)))
            elif row.cohort == "all" and result.empty:
                skipped += 1
                ET.SubElement(case, "skipped", message="empty: every trace was skipped (allow_empty: true)")
            elif not row.gated and c is None:
                skipped += 1
                ET.SubElement(case, "skipped", message="not gated (no limit, small cohort or partial run)")
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    # whole or not at all: pytest's own part of the file survives a failure here
    body = ET.tostring(tree.getroot(), encoding="unicode")
    write_atomically(path, "<?xml version='1.0' encoding='utf-8'?>\n" + body)
