"""A failure mode written in Python instead of YAML.

``@failure_mode`` runs the function once per trace; an AssertionError means the
failure is present in that trace. Collected only under ``pytest --failmodes``.
"""

from __future__ import annotations

import re

from pytest_failmodes import Trace, failure_mode

APOLOGY = re.compile(r"(?i)\b(sorry|apologi[sz]e|apologies)\b")


@failure_mode(
    dataset="data/traces.jsonl",
    fields={"id": "trace_id", "input": "query", "output": "response"},
    cohorts=["route", "prompt_version", "persona"],
    max_fail_rate=0.05,
    gate={"min_cohort_size": 20},
    description="FAIL when the reply apologises three or more times.",
)
def test_no_apology_loop(trace: Trace) -> None:
    apologies = APOLOGY.findall(trace.output or "")
    assert len(apologies) < 3, f"{len(apologies)} apologies in one reply"
