"""pytest's last line says when gates breached: per-trace items end as passed or
detected, so without it "97 detected, 303 passed" reads as green in a CI log."""

from __future__ import annotations

from typing import Any

import pytest

DEFINITIONS = """
    dataset: data/traces.jsonl
    cohorts: [route]
    gate: {max_fail_rate: %s}
    failure_modes:
      - name: leaks
        rule: {regex: "(?i)my instructions say"}
      - name: shouts
        rule: {regex: "!!!"}
      - name: apologises
        rule: {regex: "(?i)sorry"}
"""


def write(project: Any, limit: float) -> None:
    rows = []
    for i in range(1, 11):
        output = "My instructions say hi!!!" if i <= 3 else ("Sorry, order on its way." if i == 4 else "On its way.")
        rows.append(project.row(f"t{i:02d}", output, route="billing" if i <= 5 else "shipping"))
    project.traces(rows)
    project.definitions(DEFINITIONS % limit)


def last_line(result: pytest.RunResult) -> str:
    return [line for line in result.outlines if line.strip()][-1]


def test_per_trace_breaches_are_on_the_last_line(project: Any) -> None:
    # leaks and shouts: 3/10 over 20%; apologises: 1/10 within it
    write(project, 0.2)

    result = project.run("--failmodes-per-trace")

    assert result.ret == 1
    assert result.parseoutcomes() == {"passed": 23, "detected": 7, "gates": 2}
    result.stdout.fnmatch_lines(["=* 23 passed, 7 detected, 2 gates breached in *s =*"])
    assert "2 gates breached" in last_line(result)


def test_one_breach_is_singular_and_per_mode_items_say_it_too(project: Any) -> None:
    write(project, 0.2)

    result = project.run("-q", "-k", "leaks or apologises")

    assert result.ret == 1
    assert last_line(result).startswith("1 failed, 1 passed, 1 deselected, 1 gate breached in ")


def test_no_breach_no_mention(project: Any) -> None:
    write(project, 0.7)

    result = project.run("--failmodes-per-trace")

    assert result.ret == 0
    result.stdout.fnmatch_lines(["=* 23 passed, 7 detected in *s =*"])
    result.stdout.no_fnmatch_line("*breached in*")


@pytest.mark.slow
def test_under_xdist_the_controller_counts_the_breaches(project: Any) -> None:
    write(project, 0.2)

    result = project.run_subprocess("--failmodes-per-trace", "-n", "2", "-p", "no:cacheprovider")

    assert result.ret == 1
    assert " 23 passed, 7 detected, 2 gates breached in " in last_line(result)
