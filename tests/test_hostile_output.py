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
    # a value with a lone surrogate is quoted in its label, like any value that is not plain text
    assert {c["cohort"] for c in mode["cohorts"]} == {"all", 'route="\ud83d"', 'route="b\udc00"'}
    assert [t["reason"] for t in report["modes"][1]["traces"]] == ["saw \ud83d", ""]
    assert '"route=\\"\\ud83d\\""' in (project.path / "out/r.json").read_text(encoding="utf-8")
    assert project.report("out/base.json")["modes"][0]["cohorts"] == mode["cohorts"]
    markdown = (project.path / "out/r.md").read_text(encoding="utf-8")
    assert '| leak | route="\ufffd" |' in markdown
    assert (project.path / "gh-summary.md").read_text(encoding="utf-8") == "earlier step\n" + markdown + "\n"
    html = (project.path / "out/r.html").read_text(encoding="utf-8")
    assert "route=" in html and "\ufffd" in html
    cases = [c.get("name") for c in ET.parse(project.path / "out/j.xml").iter("testcase")]
    assert 'gate[route="\ufffd"]' in cases


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
    assert [c.get("name") for c in gates.iter("testcase")] == ["gate[all]", 'gate[route="r\\u0002\\u001b[31m\\u0000"]']


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
            'leak*route="\\u001b[2J\\u202eevil"*FAIL*',
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
    assert len(rows) == 3  # the mode's row, all, and the one cohort: no injected row
    assert rows[2].startswith(
        '| leak | route="x\\\\r\\| injected \\| row \\|\\\\n\\`code\\` &lt;img src=x onerror=alert(1)&gt; &amp; a\\\\\\\\b" |'
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
    assert "route=&quot;\\u202eabc&quot;" in html
    assert "t\\\\u202e1" in html  # the trace id in the page's data: the escape, JSON-escaped
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
    data = json.loads(page.split('<script type="application/json" id="fm-data">', 1)[1].split("</script>", 1)[0])
    evidence = data["modes"][0]["groups"]["fail"][0][2]
    assert evidence.count("\n" + " " * 2 * MAX_DEPTH + '"[…]"') == 1


def test_json_text_keeps_every_decodable_string() -> None:
    from pytest_failmodes.report.safe import json_text

    values = ["\ud83d", "a\udc00b", "\ud83d\ude00", "\x00\x1b\u202e", "\ufffe"]

    text = json_text({"v": values})

    text.encode("utf-8")  # never a UnicodeEncodeError
    assert json.loads(text)["v"][:2] == values[:2]
    assert json.loads(text)["v"][3:] == values[3:]


# --------------------------------------------------------------------------- secrets

#: not an OpenAI-shaped key: the old `sk-` pattern would have let it through
GOOGLE_SHAPED_KEY = "AIzaSyFAKE-h0stout-0123456789abcdefghij"
JUDGE_DEFINITIONS = """
    dataset: data/traces.jsonl
    cohorts: [route]
    judge: {model: openai/fake-judge, api_base: "%s", structured_output: false}
    failure_modes:
      - name: refund
        description: FAIL when the reply promises a refund.
        judge: {}
"""


@pytest.fixture(scope="module")
def litellm_loaded() -> None:
    """litellm imported before pytester snapshots sys.modules (module scope: set up before
    ``project``), else each in-process run imports it again and the restore after a test
    leaves half of it behind."""
    from pytest_failmodes.llm import load_litellm

    load_litellm()
    import pytest_failmodes.cache  # noqa: F401
    import pytest_failmodes.judge  # noqa: F401


def test_a_key_the_provider_echoes_reaches_no_report(
    project: Any, monkeypatch: pytest.MonkeyPatch, litellm_loaded: None
) -> None:
    from fakellm import fakellm_server, rejected

    monkeypatch.setenv("OPENAI_API_KEY", GOOGLE_SHAPED_KEY)
    monkeypatch.delenv("FAILMODES_JUDGE_MODEL", raising=False)
    project.traces([project.row(f"t{i}", f"I will refund order {i}", route="a") for i in range(3)])
    with fakellm_server(responder=lambda request: rejected(401)) as server:
        project.definitions(JUDGE_DEFINITIONS % server.base_url)
        result = project.run(*EVERY_REPORT, "--failmodes-per-trace", "--failmodes-no-cache", "-rA")
        assert server.call_count == 3 and all(r.auth_present for r in server.chat_requests)

    assert result.ret == 1
    result.stdout.fnmatch_lines(["*request rejected (401)*API key not valid*Bearer [[]redacted[]]*"])
    assert GOOGLE_SHAPED_KEY not in result.stdout.str()
    reasons = {t["reason"] for t in project.report("out/r.json")["modes"][0]["traces"]}
    assert len(reasons) == 1 and "Bearer [redacted]" in reasons.pop()
    for name in ("r.json", "base.json", "r.md", "r.html", "j.xml"):
        written = (project.path / "out" / name).read_text(encoding="utf-8")
        assert "[redacted]" in written or name == "r.md", name  # the Markdown table lists no reasons
        assert "h0stout" not in written, name


def test_every_credential_a_call_carries_is_redacted_whatever_its_shape(litellm_loaded: None) -> None:
    from fakellm import fakellm_server, rejected

    from pytest_failmodes.llm import ModelError, Runner

    header_key = "ya29.FAKE-header-credential-42"
    param_key = "plain-credential-without-a-prefix-77"
    with fakellm_server(responder=lambda request: rejected(403)) as server, Runner(max_retries=0) as runner:
        call = runner.complete(
            "openai/fake-judge",
            [{"role": "user", "content": "hi"}],
            api_base=server.base_url,
            api_key=param_key,
            extra_headers={"x-goog-api-key": header_key},
        )
        with pytest.raises(ModelError) as caught:
            runner.submit(call).result(timeout=60)

    message = str(caught.value)
    assert "request rejected (403)" in message and "x-goog-api-key: [redacted]" in message
    assert param_key not in message and header_key not in message


# --------------------------------------------------------------------------- an unusable cache


def _judge_reply(request: dict[str, Any]) -> str:
    trace = request["messages"][1]["content"].split("<trace>", 1)[1]
    verdict = "fail" if "refund" in trace.split("<output>", 1)[1] else "pass"
    return json.dumps({"critique": f"judged {verdict}", "verdict": verdict})


def _judged_project(project: Any, server: Any, n: int) -> None:
    rows = [project.row(f"t{i}", f"I will refund order {i}" if i % 2 else f"order {i} shipped", route="a") for i in range(n)]
    project.traces(rows)
    project.definitions(JUDGE_DEFINITIONS % server.base_url)


@pytest.mark.parametrize(
    ("blocker", "option"),
    [(".failmodes", ()), ("taken", ("--failmodes-cache-dir=taken/cache",))],
    ids=["a-file-named-.failmodes", "a-cache-dir-under-a-file"],
)
def test_an_unusable_cache_directory_means_no_cache_and_one_warning(
    project: Any, monkeypatch: pytest.MonkeyPatch, litellm_loaded: None, blocker: str, option: tuple[str, ...]
) -> None:
    from fakellm import fakellm_server

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    (project.path / blocker).write_text("not a folder\n", encoding="utf-8")
    with fakellm_server(responder=_judge_reply) as server:
        _judged_project(project, server, 4)
        result = project.run("--failmodes-report=r.json", *option)
        assert server.call_count == 4

    assert result.ret == 0, result.stdout.str()
    verdicts = [t["verdict"] for t in project.report("r.json")["modes"][0]["traces"]]
    assert sorted(verdicts) == ["fail", "fail", "pass", "pass"]
    result.stdout.fnmatch_lines(
        [f"WARNING pytest-failmodes: cache */{blocker}*/cache.sqlite3: cannot be used (*); running without a cache: "
         "every call is made, none is stored; results are unaffected"]
    )
    assert result.stdout.str().count("WARNING pytest-failmodes: cache") == 1
    result.stdout.no_fnmatch_line("*Traceback*")


def _make_read_only(path: Path, request: pytest.FixtureRequest) -> None:
    """Read-only for real: chmod for a user; as root (whom chmod does not stop) the
    immutable attribute, undone after the test so the folder can be removed."""
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0:
        path.chmod(0o444)
        request.addfinalizer(lambda: path.chmod(0o644))
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to make a file read-only here")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is refused on this file system: {done.stderr.strip()}")
    request.addfinalizer(lambda: subprocess.run(["chattr", "-i", str(path)], check=False))


def test_a_read_only_cache_file_still_serves_its_results_and_changes_no_verdict(
    project: Any, monkeypatch: pytest.MonkeyPatch, litellm_loaded: None, request: pytest.FixtureRequest
) -> None:
    from fakellm import fakellm_server

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    with fakellm_server(responder=_judge_reply) as server:
        _judged_project(project, server, 2)
        assert project.run().ret == 0
        _make_read_only(project.path / ".failmodes" / "cache.sqlite3", request)
        _judged_project(project, server, 4)  # two traces more: new calls whose results cannot be stored
        result = project.run("--failmodes-report=r.json")
        assert server.call_count == 2 + 2  # the first two came from the read-only cache

    assert result.ret == 0, result.stdout.str()
    traces = project.report("r.json")["modes"][0]["traces"]
    assert [(t["id"], t["verdict"]) for t in traces] == [("t0", "pass"), ("t1", "fail"), ("t2", "pass"), ("t3", "fail")]
    result.stdout.fnmatch_lines(
        ["WARNING pytest-failmodes: cache */.failmodes/cache.sqlite3: cannot be written (*readonly*); "
         "cached results are read, new ones are not stored; results are unaffected"]
    )
    assert result.stdout.str().count("WARNING pytest-failmodes: cache") == 1


# --------------------------------------------------------------------------- baselines

TWO_MODES = """
    dataset: data/traces.jsonl
    cohorts: [route]
    failure_modes:
      - name: leak
        rule: {regex: LEAK}
      - name: %s
        rule: {regex: RUDE}
"""


def _saved_baseline(project: Any, second: str = "rude") -> dict[str, Any]:
    project.traces([project.row(f"t{i}", "LEAK" if i % 3 == 0 else "RUDE", route="ab"[i % 2]) for i in range(12)])
    project.definitions(TWO_MODES % second)
    assert project.run("--failmodes-save-baseline=base.json").ret == 0
    return project.report("base.json")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n", -5, "modes[[]0].cohorts[[]0].n: 'n' is -5, below 0"),
        ("fails", -1, "modes[[]0].cohorts[[]0].fails: 'fails' is -1, below 0"),
        ("fails", 99, "modes[[]0].cohorts[[]0].fails: 'fails' (99) is more than 'n' (12)"),
    ],
    ids=["negative-n", "negative-fails", "more-fails-than-n"],
)
def test_a_baseline_with_counts_no_run_produces_is_one_line(
    project: Any, capsys: pytest.CaptureFixture[str], field: str, value: int, message: str
) -> None:
    from pytest_failmodes.cli import main

    baseline = _saved_baseline(project)
    baseline["modes"][0]["cohorts"][0][field] = value
    (project.path / "base.json").write_text(json.dumps(baseline), encoding="utf-8")

    result = project.run("--failmodes-baseline=base.json", "--failmodes-report=r.json")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: base.json: {message}: the baseline is damaged, save it again"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    # failmodes compare reads both files with the same checks
    capsys.readouterr()
    assert main(["compare", "base.json", "base.json"]) == 2
    err = capsys.readouterr().err.strip()
    message = message.replace("[[]", "[")
    assert err == f"failmodes compare: base.json: {message}: the baseline is damaged, save it again"


def test_a_baseline_mode_this_run_lacks_is_listed_in_every_report(project) -> None:
    _saved_baseline(project, "rude")
    project.definitions(TWO_MODES % "impolite")  # renamed: a regression in it would go unseen

    result = project.run("--failmodes-baseline=base.json", "--failmodes-report=r.json", "--failmodes-markdown=r.md")

    assert result.ret == 0
    line = (
        "in the baseline base.json but not in this run (renamed, removed or deselected; "
        "not checked for regressions): failmodes.yaml::rude"
    )
    result.stdout.fnmatch_lines([f"note: {line}"])
    assert project.report("r.json")["baseline_missing"] == ["failmodes.yaml::rude"]
    assert f"- {line}" in (project.path / "r.md").read_text(encoding="utf-8").splitlines()

    strict = project.run("--failmodes-baseline=base.json", "--failmodes-strict-baseline")

    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines([f"note: {line}"])


# --------------------------------------------------------------------------- xdist: one stalled prompt, paid once


def test_two_workers_pay_for_a_stalled_prompt_once(project: Any, monkeypatch: pytest.MonkeyPatch, litellm_loaded: None) -> None:
    pytest.importorskip("xdist")
    from fakellm import fakellm_server, hang

    def judge(request: dict[str, Any]) -> Any:
        return hang() if "STALL" in request["messages"][1]["content"] else _judge_reply(request)

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    rows = [project.row(f"t{i}", f"I will refund order {i}" if i % 2 else f"order {i} shipped", route="a") for i in range(4)]
    rows.append(project.row("stalled", "STALL", route="a"))
    project.traces(rows)
    with fakellm_server(responder=judge, hang_seconds=30) as server:
        project.definitions(JUDGE_DEFINITIONS % server.base_url)
        result = project.run_subprocess(
            "-n", "2", "--failmodes-per-trace", "--failmodes-timeout=3", "--failmodes-max-retries=1",
            "--failmodes-report=r.json",
        )
        stalled = [r for r in server.chat_requests if "STALL" in r.messages[1]["content"]]

    # both workers submit every trace of the mode; the one that claimed the call makes it
    # (up to one try and one retry: a timed-out retry may never reach the server), the
    # other waits for it and is handed its failure instead of paying again
    traces = {t["id"]: t for t in project.report("r.json")["modes"][0]["traces"]}
    # (the server's total count is no measure of the others: under load a timed-out attempt
    # may reach the server after the client gave up, and be retried)
    assert 1 <= len(stalled) <= 2, (traces["stalled"], result.stdout.str())
    model = next(line.split() for line in result.outlines if line.startswith("openai/fake-judge "))
    assert model[3] == "1", result.stdout.str()  # errors: one process failed the call, not two
    assert traces["stalled"]["verdict"] == "error" and "timed out" in traces["stalled"]["reason"]
    assert [traces[f"t{i}"]["verdict"] for i in range(4)] == ["pass", "fail", "pass", "fail"]
    assert result.ret == 1


def test_a_worker_done_with_its_items_lets_the_calls_it_claimed_for_the_other_finish(
    project: Any, monkeypatch: pytest.MonkeyPatch, litellm_loaded: None
) -> None:
    # Both workers submit every per-trace item's call, and the first to do so claims them
    # all. When the slow call's item runs on the other worker, the claimer is done with its
    # own (fast) items long before the slow reply: it must wait for that call, not cancel it
    # on exit (the other worker would then pay for it again, from the start).
    pytest.importorskip("xdist")
    from fakellm import fakellm_server, text

    def judge(request: dict[str, Any]) -> Any:
        slow = "SLOW" in request["messages"][1]["content"]
        return text(_judge_reply(request), latency=4.0 if slow else None)

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    rows = [project.row(f"t{i}", f"I will refund order {i}" if i % 2 else f"order {i} shipped", route="a") for i in range(4)]
    rows.append(project.row("slow", "SLOW order shipped", route="a"))
    project.traces(rows)
    with fakellm_server(responder=judge) as server:
        project.definitions(JUDGE_DEFINITIONS % server.base_url)
        result = project.run_subprocess("-n", "2", "--failmodes-per-trace", "--failmodes-report=r.json")
        slow = [r for r in server.chat_requests if "SLOW" in r.messages[1]["content"]]
        calls = server.call_count

    traces = {t["id"]: t for t in project.report("r.json")["modes"][0]["traces"]}
    assert len(slow) == 1 and calls == 5, (calls, result.stdout.str())
    assert [traces[k]["verdict"] for k in ("t0", "t1", "t2", "t3", "slow")] == ["pass", "fail", "pass", "fail", "pass"]
    assert result.ret == 0  # no limit: the detections fail their per-trace items, not the run


def test_without_a_cache_two_workers_still_make_each_per_trace_call_once(
    project: Any, monkeypatch: pytest.MonkeyPatch, litellm_loaded: None
) -> None:
    # every worker submits every per-trace item's call; --failmodes-no-cache must not make each pay for all
    pytest.importorskip("xdist")
    from fakellm import fakellm_server

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    scratch = project.path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # where the run's shared store is made
    with fakellm_server(responder=_judge_reply) as server:
        _judged_project(project, server, 6)
        result = project.run_subprocess(
            "-n", "2", "--failmodes-per-trace", "--failmodes-no-cache", "--failmodes-report=r.json"
        )
        calls = server.call_count
    verdicts = [t["verdict"] for t in project.report("r.json")["modes"][0]["traces"]]
    assert calls == 6, (calls, result.stdout.str())
    assert verdicts == ["pass", "fail"] * 3
    assert not (project.path / ".failmodes").exists()  # nothing stored where a cache would be
    assert not list(scratch.glob("failmodes-run-*"))  # removed at the end of the run


def test_an_unusable_cache_under_xdist_still_makes_each_per_trace_call_once(
    project: Any, monkeypatch: pytest.MonkeyPatch, litellm_loaded: None
) -> None:
    pytest.importorskip("xdist")
    from fakellm import fakellm_server

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    (project.path / ".failmodes").write_text("not a folder\n", encoding="utf-8")
    with fakellm_server(responder=_judge_reply) as server:
        _judged_project(project, server, 6)
        result = project.run_subprocess("-n", "2", "--failmodes-per-trace", "--failmodes-report=r.json")
        calls = server.call_count
    assert calls == 6, (calls, result.stdout.str())
    assert [t["verdict"] for t in project.report("r.json")["modes"][0]["traces"]] == ["pass", "fail"] * 3
    result.stdout.fnmatch_lines(
        ["WARNING pytest-failmodes: cache */.failmodes/cache.sqlite3: cannot be used (*); running without a cache: "
         "nothing is stored, the xdist workers share this run's answers; results are unaffected"]
    )
    assert result.stdout.str().count("WARNING pytest-failmodes: cache") == 1


def test_a_read_only_cache_under_xdist_still_makes_each_new_per_trace_call_once(
    project: Any, monkeypatch: pytest.MonkeyPatch, litellm_loaded: None, request: pytest.FixtureRequest
) -> None:
    # a cache that can be read but not written: the stored answers are read from it, and the
    # workers share the new ones (and their claims) in the run's store instead of each paying
    pytest.importorskip("xdist")
    from fakellm import fakellm_server

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    with fakellm_server(responder=_judge_reply) as server:
        _judged_project(project, server, 2)
        assert project.run().ret == 0
        _make_read_only(project.path / ".failmodes" / "cache.sqlite3", request)
        _judged_project(project, server, 8)  # six traces more: new calls the file cannot store
        result = project.run_subprocess("-n", "2", "--failmodes-per-trace", "--failmodes-report=r.json")
        calls = server.call_count
    assert calls == 2 + 6, (calls, result.stdout.str())  # the first two came from the read-only file
    assert [t["verdict"] for t in project.report("r.json")["modes"][0]["traces"]] == ["pass", "fail"] * 4
    result.stdout.fnmatch_lines(
        ["WARNING pytest-failmodes: cache */.failmodes/cache.sqlite3: cannot be written (*readonly*); "
         "cached results are read, new ones are not stored; the xdist workers share this run's new ones; "
         "results are unaffected"]
    )
    assert result.stdout.str().count("WARNING pytest-failmodes: cache") == 1
