"""The terminal summary's tables (--failmodes-table, --failmodes-sort, the terminal's
width) and the Markdown summary's size limit."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pytest_failmodes.report.markdown import MAX_CHARS, markdown_size
from pytest_failmodes.report.terminal import display_width

# leaks: 3/12 overall (25%), route=billing 2/6 and persona=new 2/6 (33.3%) over the 30% limit;
# escalation: 1/12, its cohorts of 6 are below its min_cohort_size (not gated)
TWO_MODES = """
    dataset: data/traces.jsonl
    cohorts: [route, persona]
    gate: {max_fail_rate: 0.3, min_cohort_size: 6}
    failure_modes:
      - name: leaks
        rule: {regex: "(?i)my instructions say"}
      - name: escalation
        label: {field: human_verdict, fail_values: [escalate]}
        gate: {min_cohort_size: 7}
"""


@pytest.fixture
def two_modes(project: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    project.full_table = False
    project.support_traces()
    project.definitions(TWO_MODES)
    return project


def test_default_table_is_one_row_per_mode_and_the_breached_cohorts(two_modes: Any) -> None:
    result = two_modes.run()

    assert result.ret == 1
    summary = two_modes.summary(result)
    assert summary[:4] == [
        "2 failure modes in 1 file: 1 mode breached",
        "mode         n   rate  95% CI         worst cohort       breached  gate",
        "----------  --  -----  -------------  -----------------  --------  ----",
        "leaks       12  25.0%  [8.9%, 53.2%]  persona=new 33.3%       2/4  FAIL",
    ]
    result.stdout.fnmatch_lines(
        [
            # its cohorts are too small to be gated: none is named the worst
            "escalation  12   8.3%  [[]1.5%, 35.4%]  -                       0/4  ok",
            "",
            "mode*cohort*n*fail*rate*95% CI*limit*gate",
            "leaks*persona=new*6*2*33.3%*30.0%*FAIL (limit)",
            "leaks*route=billing*6*2*33.3%*30.0%*FAIL (limit)",
            "2 of 10 cohort rows (breached or regressed); --failmodes-table=all for all",
            "*1 failed, 1 passed, 1 gate breached*",
        ]
    )
    # the rows that passed are left out
    assert not [line for line in summary if "route=shipping" in line or re.match(r"\S+\s+all\s", line)]


def test_gated_table_adds_the_rows_a_gate_checks(two_modes: Any) -> None:
    result = two_modes.run("--failmodes-table=gated")

    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "mode*cohort*n*fail*rate*95% CI*limit*gate",
            "leaks*all*12*3*25.0%*30.0%*ok",
            "leaks*persona=new*FAIL (limit)",
            "leaks*route=billing*FAIL (limit)",
            "leaks*persona=returning*6*1*16.7%*ok",
            "leaks*route=shipping*6*1*16.7%*ok",
            "escalation*all*12*1*8.3%*30.0%*ok",
            "6 of 10 cohort rows (gated); --failmodes-table=all for all",
        ]
    )
    # escalation's cohorts are too small to be gated
    assert "small (n<7)" not in result.stdout.str()


def test_all_table_lists_every_cohort_row(two_modes: Any) -> None:
    result = two_modes.run("--failmodes-table=all")

    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "leaks*route=billing*FAIL (limit)",
            "escalation*all*12*1*8.3%*30.0%*ok",
            "escalation*route=billing*6*1*16.7%*small (n<7)",
            "escalation*route=shipping*6*0*0.0%*small (n<7)",
        ]
    )
    assert "cohort rows (" not in result.stdout.str()
    # the whole table: no row per mode above it, labels never shortened
    assert two_modes.summary(result)[1].split() == ["mode", "cohort", "n", "fail", "rate", "95%", "CI", "limit", "gate"]
    assert len([line for line in two_modes.summary(result) if re.match(r"(leaks|escalation)\s+\S+=|\S+\s+all\s", line)]) == 10


def test_table_from_ini(two_modes: Any) -> None:
    two_modes.pytester.makeini("[pytest]\nfailmodes_table = all\nfailmodes_sort = name\n")

    result = two_modes.run()

    assert result.ret == 1
    result.stdout.fnmatch_lines(["escalation*route=shipping*6*0*0.0%*small (n<7)"])
    # the option wins over the ini value
    assert "small (n<7)" not in two_modes.run("--failmodes-table=breached").stdout.str()


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (
            ["--failmodes-table=breach"],
            None,
            "ERROR: --failmodes-table takes one of breached, gated, all, got 'breach'; did you mean 'breached'?",
        ),
        (["--failmodes-sort=Rate"], None, "ERROR: --failmodes-sort takes one of rate, delta, name, got 'Rate'; did you mean 'rate'?"),
        (["--failmodes-sort=size"], None, "ERROR: --failmodes-sort takes one of rate, delta, name, got 'size'"),
        (
            [],
            "failmodes_sort = deltas",
            "ERROR: tox.ini: ini failmodes_sort takes one of rate, delta, name, got 'deltas'; did you mean 'delta'?",
        ),
    ],
    ids=["table-option", "sort-case", "sort-far", "sort-ini"],
)
def test_bad_table_or_sort_is_one_usage_error(two_modes: Any, args: list[str], ini: str | None, message: str) -> None:
    if ini:
        two_modes.pytester.makefile(".ini", tox=f"[pytest]\n{ini}\n")

    result = two_modes.run(*args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


# -- sorting ---------------------------------------------------------------------------------

SORTED = """
    dataset: data/traces.jsonl
    gate: {max_fail_rate: 0.9}
    failure_modes:
      - {name: alpha, rule: {regex: alpha}}
      - {name: mid, rule: {regex: mid}}
      - {name: zeta, rule: {regex: zeta}}
"""


def _sorted_traces(project: Any, path: str, counts: dict[str, int]) -> None:
    rows = []
    for i in range(20):
        words = [w for w, n in counts.items() if i < n]
        rows.append({"id": f"t{i:02d}", "input": "q", "output": " ".join(words) or "fine", "metadata": {}})
    project.traces(rows, path)


@pytest.fixture
def sorted_project(project: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Baseline rates alpha 2/20, mid 4/20, zeta 6/20; now alpha 5, mid 10, zeta 6: by
    rate mid, zeta, alpha; by rise mid (+6), alpha (+3), zeta (0); by name alpha, mid, zeta."""
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    project.full_table = False
    _sorted_traces(project, "data/base.jsonl", {"alpha": 2, "mid": 4, "zeta": 6})
    _sorted_traces(project, "data/traces.jsonl", {"alpha": 5, "mid": 10, "zeta": 6})
    project.definitions(SORTED)
    saved = project.run("--failmodes-dataset=data/base.jsonl", "--failmodes-save-baseline=base.json")
    assert saved.ret == 0
    return project


def _mode_order(summary: list[str]) -> list[str]:
    rows = []
    for line in summary[3:]:
        if not line or line.startswith(("no cohort row", "note:")):
            break
        rows.append(line.split()[0])
    return rows


@pytest.mark.parametrize(
    ("sort", "order"),
    [(None, ["mid", "zeta", "alpha"]), ("rate", ["mid", "zeta", "alpha"]), ("delta", ["mid", "alpha", "zeta"]), ("name", ["alpha", "mid", "zeta"])],
    ids=["default", "rate", "delta", "name"],
)
def test_sort(sorted_project: Any, sort: str | None, order: list[str]) -> None:
    # a rise of 0.9 or more is needed to regress: nothing does, so no mode is breached
    args = ["--failmodes-baseline=base.json", "--failmodes-min-increase=0.9"]
    result = sorted_project.run(*args, *([f"--failmodes-sort={sort}"] if sort else []))

    assert result.ret == 0
    summary = sorted_project.summary(result)
    assert _mode_order(summary) == order
    result.stdout.fnmatch_lines(
        ["mode*n*rate*95% CI*worst cohort*breached*Δ*gate", "mid*20*50.0%*[[]*-*-*+30.0pp*ok"]
    )


def test_breached_modes_come_first_whatever_the_sort(sorted_project: Any) -> None:
    sorted_project.definitions(SORTED.replace("- {name: alpha, rule: {regex: alpha}}", "- {name: alpha, rule: {regex: alpha}, max_fail_rate: 0.1}"))

    result = sorted_project.run("--failmodes-sort=name", "--failmodes-table=all")

    assert result.ret == 1
    assert _mode_order(sorted_project.summary(result)) == ["alpha", "mid", "zeta"]
    result = sorted_project.run("--failmodes-sort=rate")
    assert _mode_order(sorted_project.summary(result)) == ["alpha", "mid", "zeta"]
    result.stdout.fnmatch_lines(["alpha*20*5*25.0%*10.0%*FAIL (limit)"])


def test_sort_by_delta_without_a_baseline_says_so(sorted_project: Any) -> None:
    result = sorted_project.run("--failmodes-sort=delta")

    assert result.ret == 0
    assert _mode_order(sorted_project.summary(result)) == ["mid", "zeta", "alpha"]
    result.stdout.fnmatch_lines(
        ["note: --failmodes-sort=delta needs a baseline to compare with (no Δ without one); sorted by rate"]
    )


# -- width and hostile labels ----------------------------------------------------------------

HOSTILE_VALUES = [
    "\x1b[31mred\x1b[0m<script>alert(1)</script>|`code`|" + "x" * 150,
    "漢字" * 60,
    "billing-" + "very-long-segment-name-" * 10 + "end",
    "plain",
]

HOSTILE = """
    dataset: data/traces.jsonl
    cohorts: [segment]
    gate: {max_fail_rate: 0.2, min_cohort_size: 1}
    failure_modes:
      - name: a_failure_mode_with_a_rather_long_name_that_goes_on_and_on
        rule: {regex: leak}
"""


@pytest.fixture
def hostile(project: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    project.full_table = False
    rows = []
    for i, value in enumerate(HOSTILE_VALUES * 3):
        rows.append({"id": f"t{i}", "input": "q", "output": "leak" if i % 4 != 3 else "fine", "metadata": {"segment": value}})
    project.traces(rows)
    project.definitions(HOSTILE)
    return project


@pytest.mark.parametrize("columns", [100, 160])
def test_tables_follow_the_terminal_width_and_labels_stay_whole_in_json(
    hostile: Any, monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))

    result = hostile.run("--failmodes-table=gated", "--failmodes-report=report.json", "--failmodes-markdown=out.md")

    assert result.ret == 1
    summary = hostile.summary(result)
    tables = [line for line in summary if not line.startswith(("note:", "BROKEN"))]
    assert tables and max(display_width(line) for line in tables) <= columns
    assert "\x1b" not in result.stdout.str()  # shown as \x1b, never obeyed
    assert any("…" in line and "漢字" in line for line in summary)
    # the breach report above the summary names the whole label (the label quotes the ESC)
    result.stdout.fnmatch_lines(['  segment="\\u001b[[]31mred\\u001b[[]0m<script>*: 3/3 = 100.0%*'])
    # the shortened labels are whole in the JSON report
    report = json.loads((hostile.path / "report.json").read_text(encoding="utf-8"))
    labels = {row["cohort"] for row in report["modes"][0]["cohorts"]}
    assert {f"segment={v}" for v in HOSTILE_VALUES if v.isascii() and v.isalnum()} <= labels
    assert any("漢字" * 60 in label for label in labels)
    # the Markdown escapes what would format or end a cell, and what would be HTML
    markdown = (hostile.path / "out.md").read_text(encoding="utf-8")
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown
    assert "\x1b" not in markdown
    assert _tables_are_whole(markdown)


def _tables_are_whole(markdown: str) -> bool:
    """Every row of each Markdown table has its header's number of cells (an unescaped
    ``|`` in a label would add one, a newline would cut the row)."""
    counts: list[int] = []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            counts.append(len(re.findall(r"(?<!\\)\|", line)))
        elif counts:
            if len(set(counts)) != 1:
                return False
            counts = []
    return True


def test_wide_labels_are_padded_by_their_display_width(hostile: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")

    result = hostile.run("--failmodes-table=gated")

    assert result.ret == 1
    summary = hostile.summary(result)
    dashes = [i for i, line in enumerate(summary) if line.startswith("---")]
    assert len(dashes) == 2
    # in the cohort table the gate column starts at the same column on every row,
    # wide characters counted twice
    start = display_width(summary[dashes[1]].rsplit("  ", 1)[0])
    rows = [line for line in summary[dashes[1] + 1 :] if line.startswith("a_failure")]
    assert len(rows) == 5
    assert any("漢" in line for line in rows)
    assert {display_width(line.rsplit("  ", 1)[0]) for line in rows} == {start}


# -- the Markdown size limit -----------------------------------------------------------------


def _big_project(project: Any, modes: int = 50, segments: int = 39) -> None:
    """``modes`` modes over ``segments`` segments with 90-character labels: 40 rows per mode."""
    rows = []
    for s in range(segments):
        label = f"segment-{s:02d}-" + "a-long-cohort-value-that-names-a-customer-segment-" + "z" * 30
        for k in range(3):
            words = " ".join(f"m{m:02d}" for m in range(modes) if (m + s + k) % 4 == 0)
            rows.append({"id": f"t{s:02d}-{k}", "input": "q", "output": words, "metadata": {"segment": label}})
    project.traces(rows)
    definitions = ["dataset: data/traces.jsonl", "cohorts: [segment]", "gate: {max_fail_rate: 0.3, min_cohort_size: 1}", "failure_modes:"]
    definitions += [f"  - {{name: mode_{m:02d}_with_a_descriptive_name, rule: {{regex: 'm{m:02d}'}}}}" for m in range(modes)]
    project.file("failmodes.yaml", "\n".join(definitions) + "\n")


def test_markdown_of_50_modes_by_40_cohorts_stays_under_githubs_limit(
    project: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.full_table = False
    _big_project(project)
    step_summary = project.path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))

    result = project.run("--failmodes-markdown=out.md", "--failmodes-report=out/report.json", "-q", "--tb=no")

    assert result.ret == 1
    markdown = (project.path / "out.md").read_text(encoding="utf-8")
    assert markdown_size(markdown) < MAX_CHARS
    assert markdown_size(step_summary.read_text(encoding="utf-8")) < MAX_CHARS
    lines = markdown.splitlines()
    assert lines[0].startswith("### ❌ pytest-failmodes: 50 failure modes in 1 file: ")
    # one collapsed block, closed, holding the tables
    assert lines.count("<details>") == 1 and lines.count("</details>") == 1
    assert lines[-1] == "</details>"
    assert "<summary>Every mode and cohort (50 modes, 2000 cohort rows)</summary>" in lines
    opened = lines.index("<details>")
    assert lines[opened - 1] == "" and lines[opened + 2] == ""
    # rows are whole: every table line is a complete row
    report = json.loads((project.path / "out/report.json").read_text(encoding="utf-8"))
    breached = sum(1 for m in report["modes"] for row in m["cohorts"] if row["breach"])
    table_lines = [line for line in lines if line.startswith("|")]
    assert table_lines and all(line.endswith("|") for line in table_lines)
    assert _tables_are_whole(markdown)
    notes = [line for line in lines if "rows left out" in line]
    assert notes, "2000 rows of this size cannot fit: the Markdown must say some were left out"
    assert re.fullmatch(
        r"_\d+ of \d+ rows left out to stay under GitHub's 65,536-character limit; "
        r"every row is in the JSON report \(out/report\.json\)\._",
        notes[-1],
    )
    # the breached rows come before the block and each names its cohort
    above = lines[:opened]
    shown = [line for line in above if "FAIL (limit)" in line]
    left = int(notes[0].split()[0].lstrip("_")) if len(notes) == 2 else 0
    assert len(shown) + left == breached
    cut = int(notes[-1].split()[0].lstrip("_"))
    kept = [line for line in lines[opened:] if line.startswith("| mode_")]
    assert cut + len(kept) == 50 + 2000


def test_markdown_without_breaches_says_so(two_modes: Any) -> None:
    two_modes.definitions(TWO_MODES.replace("max_fail_rate: 0.3", "max_fail_rate: 0.5"))

    result = two_modes.run("--failmodes-markdown=out.md")

    assert result.ret == 0
    lines = (two_modes.path / "out.md").read_text(encoding="utf-8").splitlines()
    assert lines[:3] == ["### ✅ pytest-failmodes: 2 failure modes in 1 file: all gates passed", "", "No cohort breached its gate or regressed."]
    assert "rows left out" not in "\n".join(lines)
    assert [line for line in lines if line.startswith("| leaks |")][0].startswith("| leaks | 12 | 25.0% |")
    assert len([line for line in lines if line.startswith(("| leaks |", "| escalation |"))]) == 2 + 10
