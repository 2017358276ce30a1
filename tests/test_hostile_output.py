"""Hostile and unlucky values on the OUTPUT side: every report writer survives any
string the JSON decoder can produce, shows control characters instead of obeying
them, and writes its file whole or not at all (issue 10, item 8)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

DEFINITIONS = """
    dataset: data/traces.jsonl
    cohorts: [route]
    failure_modes:
      - name: leak
        rule: {regex: LEAK}
"""

EVERY_REPORT = (
    "--failmodes-report=out/r.json",
    "--failmodes-save-baseline=out/base.json",
    "--failmodes-markdown=out/r.md",
    "--failmodes-html=out/r.html",
    "--junitxml=out/j.xml",
)


def _run_every_report(project: Any, monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, Any]]) -> Any:
    project.traces(rows)  # json.dumps writes a lone surrogate as the escape "\ud83d"
    project.definitions(DEFINITIONS + "      - name: odd\n        detector: odd\n")
    summary = project.path / "gh-summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    return project.run(*EVERY_REPORT)


def test_a_lone_surrogate_in_any_value_still_writes_every_report(project, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = project.path / "out" / "r.json"
    stale.parent.mkdir()
    stale.write_text('{"stale": true}\n', encoding="utf-8")
    rows = [
        {"id": "t1", "input": "q", "output": "LEAK", "metadata": {"route": "\ud83d"}},
        {"id": "t2", "input": "q", "output": "fine", "metadata": {"route": "b\udc00"}},
    ]
    # a detector's reason is any string too
    project.pytester.makeconftest(
        """
        import pytest
        from pytest_failmodes import Verdict

        @pytest.fixture
        def odd():
            return lambda trace: Verdict.fail("saw \\ud83d") if trace.output == "LEAK" else False
        """
    )

    result = _run_every_report(project, monkeypatch, rows)

    assert result.ret == 0, result.stdout.str()
    result.stdout.no_fnmatch_line("*UnicodeEncodeError*")
    # JSON keeps the value exactly (as an escape); text formats show U+FFFD
    report = project.report("out/r.json")
    mode = report["modes"][0]
    assert {c["cohort"] for c in mode["cohorts"]} == {"all", "route=\ud83d", "route=b\udc00"}
    assert [t["reason"] for t in report["modes"][1]["traces"]] == ["saw \ud83d", ""]
    assert '"route=\\ud83d"' in (project.path / "out/r.json").read_text(encoding="utf-8")
    assert project.report("out/base.json")["modes"][0]["cohorts"] == mode["cohorts"]
    markdown = (project.path / "out/r.md").read_text(encoding="utf-8")
    assert "| leak | route=\ufffd |" in markdown
    assert (project.path / "gh-summary.md").read_text(encoding="utf-8") == "earlier step\n" + markdown + "\n"
    html = (project.path / "out/r.html").read_text(encoding="utf-8")
    assert "route=" in html and "\ufffd" in html
    cases = [c.get("name") for c in ET.parse(project.path / "out/j.xml").iter("testcase")]
    assert "gate[route=\ufffd]" in cases


def test_a_report_that_cannot_be_written_leaves_no_stale_one_behind(project) -> None:
    project.traces([project.row("t1", "LEAK", route="a")])
    project.definitions(DEFINITIONS)
    # a conftest hook puts a value in the results that JSON cannot hold
    project.pytester.makeconftest(
        """
        def pytest_failmodes_mode_result(result):
            result.calibration = {"raw": b"bytes"}
        """
    )
    old = project.path / "r.json"
    old.write_text('{"from": "an older run"}\n', encoding="utf-8")
    (project.path / "r.md").write_text("older markdown\n", encoding="utf-8")

    result = project.run("--failmodes-report=r.json", "--failmodes-markdown=r.md")

    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(
        [
            "ERROR pytest-failmodes: could not write the JSON report */r.json "
            "(TypeError: Object of type bytes is not JSON serializable); the older file there was removed"
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    assert not old.exists()
    assert [p.name for p in project.path.iterdir() if p.name.startswith(".r.json")] == []  # no temp file left
    # the other reports are written all the same
    assert "| leak | all |" in (project.path / "r.md").read_text(encoding="utf-8")


def test_a_report_path_under_a_file_is_one_line_not_a_traceback(project) -> None:
    project.traces([project.row("t1", "LEAK", route="a")])
    project.definitions(DEFINITIONS)
    (project.path / "taken").write_text("a file, not a folder\n", encoding="utf-8")

    result = project.run("--failmodes-report=taken/r.json")

    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(
        ["ERROR pytest-failmodes: could not write the JSON report */taken/r.json (*Error: *); no file was written"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_control_characters_make_junit_xml_that_parses(project) -> None:
    project.traces([{"id": "a\x07", "input": "q", "output": "LEAK", "metadata": {"route": "r\x02\x1b[31m\x00"}}])
    project.definitions(DEFINITIONS)

    result = project.run("--junitxml=j.xml")

    assert result.ret == 0
    root = ET.parse(project.path / "j.xml").getroot()
    gates = next(s for s in root.iter("testsuite") if s.get("name") == "failmodes-gates")
    assert [c.get("name") for c in gates.iter("testcase")] == ["gate[all]", "gate[route=r\\x02\\x1b[31m\\x00]"]


def test_escape_sequences_from_trace_data_are_shown_not_obeyed_on_the_terminal(project) -> None:
    rows = [{"id": "t\x1b]0;pwned\x07", "input": "q", "output": "LEAK", "metadata": {"route": "\x1b[2J\u202eevil"}}]
    project.traces(rows)
    project.definitions(DEFINITIONS.replace("rule: {regex: LEAK}", "rule: {regex: LEAK}\n        max_fail_rate: 0"))

    result = project.run("--failmodes-per-trace")

    assert result.ret == 1
    out = result.stdout.str()
    assert "\x1b" not in out and "\u202e" not in out
    result.stdout.fnmatch_lines(
        [
            "leak*route=\\x1b[2J\\u202eevil*FAIL*",
            "*t\\x1b]0;pwned\\x07: *LEAK*",
        ]
    )


def test_markdown_cells_cannot_add_rows_or_markup(project) -> None:
    route = "x\r| injected | row |\n`code` <img src=x onerror=alert(1)> & a\\b"
    project.traces([project.row("t1", "LEAK", route=route)])
    project.definitions(DEFINITIONS)

    result = project.run("--failmodes-markdown=r.md")

    assert result.ret == 0
    lines = (project.path / "r.md").read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines if line.startswith("| leak |")]
    assert len(rows) == 2  # all, and the one cohort: no injected row
    assert rows[1].startswith(
        "| leak | route=x\\\\r\\| injected \\| row \\|\\\\n\\`code\\` &lt;img src=x onerror=alert(1)&gt; &amp; a\\\\b |"
    )
    assert all("\r" not in line for line in lines)


def test_html_shows_bidi_controls_instead_of_reversing_the_line(project) -> None:
    project.traces([{"id": "t\u202e1", "input": "q", "output": "LEAK \u2066x", "metadata": {"route": "\u202eabc"}}])
    project.definitions(DEFINITIONS.replace("rule: {regex: LEAK}", "rule: {regex: LEAK}\n        max_fail_rate: 0"))

    result = project.run("--failmodes-html=r.html")

    assert result.ret == 1
    html = (project.path / "r.html").read_text(encoding="utf-8")
    for control in "\u202e\u2066":
        assert control not in html
    assert "route=\\u202eabc" in html
    assert "t\\u202e1" in html
    assert "unicode-bidi:isolate" in html  # right-to-left text stays inside its own element


def test_the_html_writer_renders_values_nested_deeper_than_the_recursion_limit() -> None:
    from pytest_failmodes.report.html import render_html
    from pytest_failmodes.report.safe import MAX_DEPTH

    deep: list[Any] = []
    inner = deep
    for _ in range(5000):
        inner.append([])
        inner = inner[0]
    report = {
        "modes": [
            {
                "key": "f.yaml::m",
                "name": "m",
                "status": "breached",
                "gate": {},
                "cohorts": [],
                "traces": [{"id": "t1", "verdict": "fail", "reason": "deep", "evidence": deep}],
            }
        ]
    }

    page = render_html(report, traces={"t1": {"input": deep, "output": {"a": deep}}})

    assert page.count("[…]") == 3  # evidence, input and output, each cut at MAX_DEPTH
    assert page.count("\n" + " " * 2 * MAX_DEPTH + "&quot;[…]&quot;") == 3


def test_json_text_keeps_every_decodable_string() -> None:
    from pytest_failmodes.report.safe import json_text

    values = ["\ud83d", "a\udc00b", "\ud83d\ude00", "\x00\x1b\u202e", "\ufffe"]

    text = json_text({"v": values})

    text.encode("utf-8")  # never a UnicodeEncodeError
    assert json.loads(text)["v"][:2] == values[:2]
    assert json.loads(text)["v"][3:] == values[3:]
