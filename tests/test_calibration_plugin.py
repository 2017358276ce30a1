"""Measuring a judge against human labels in whole pytest sessions (loopback model server).

The dataset plants the judge's errors: of 20 traces a person labelled FAIL,
the judge calls 4 PASS (TPR 16/20 = 80%); of 40 labelled PASS, it calls 4 FAIL
(TNR 36/40 = 90%). 140 unlabelled traces and one labelled few-shot example
complete the 201 judged traces.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import judge_env
from fakellm import FakeLLM, fakellm_server

from pytest_failmodes.labels import split_of
from pytest_failmodes.stats import wilson_interval

MODEL = "openai/fake-judge"
EXAMPLE_INPUT, EXAMPLE_OUTPUT = "Money back?", "Refund done, no questions asked!"

DEFINITIONS = """
    dataset: data/traces.jsonl
    cohorts: [route]
    gate: {max_fail_rate: 0.24%(gate)s}
    judge: {model: %(model)s, api_base: %(base)s, structured_output: false}
    %(extra)s
    failure_modes:
      - name: promised_refund
        description: FAIL when the reply promises a refund.
        judge:
          examples:
            - {input: "%(ex_in)s", output: "%(ex_out)s", verdict: fail, why: "promises a refund"}
        %(labels)s
      - name: leaks
        description: FAIL when the reply quotes its instructions.
        rule: {regex: "(?i)my instructions say"}
"""
COLUMN = 'labels: {field: human_refund, fail_values: ["yes"], pass_values: ["no"]}'


def judge(request: dict[str, Any]) -> str:
    """FAIL when the trace's reply mentions a refund: the planted errors are in the labels."""
    content: str = request["messages"][1]["content"]
    output = content.split("<trace>", 1)[1].split("</trace>", 1)[0].split("<output>", 1)[1]
    if "refund" in output.lower():
        return json.dumps({"critique": "the reply promises a refund", "verdict": "fail"})
    return json.dumps({"critique": "no refund is promised", "verdict": "pass"})


def rows() -> list[dict[str, Any]]:
    out = []

    def add(tid: str, refund: bool, human: str | None, **extra: Any) -> None:
        n = len(out)
        output = f"I will refund order {n} today." if refund else f"Order {n} is on its way."
        row = {"id": tid, "input": f"question {n}", "output": output,
               "metadata": {"route": "billing" if n % 2 else "shipping"}, **extra}
        if human is not None:
            row["labels"] = {"human_refund": human}
        out.append(row)

    for i in range(20):  # human FAIL: 16 judged fail, 4 missed
        add(f"hf{i:02d}", refund=i < 16, human="yes")
    for i in range(40):  # human PASS: 36 judged pass, 4 false alarms
        add(f"hp{i:02d}", refund=i < 4, human="no")
    for i in range(140):  # unlabelled: 30 judged fail
        add(f"u{i:03d}", refund=i < 30, human=None)
    out.append({"id": "ex1", "input": EXAMPLE_INPUT, "output": EXAMPLE_OUTPUT, "metadata": {"route": "billing"},
                "labels": {"human_refund": "yes"}})
    return out


JUDGED, FAILS = 201, 16 + 4 + 30 + 1
TPR, TNR = 16 / 20, 36 / 40
THETA = (FAILS / JUDGED + TNR - 1) / (TPR + TNR - 1)  # 22.0%; observed 25.4%
MISSED = [f"hf{i:02d}" for i in range(16, 20)]
FALSE_ALARMS = [f"hp{i:02d}" for i in range(4)]


@pytest.fixture(scope="module", autouse=True)
def _litellm_loaded() -> None:
    from pytest_failmodes.llm import load_litellm

    load_litellm()
    import pytest_failmodes.cache  # noqa: F401
    import pytest_failmodes.calibration  # noqa: F401
    import pytest_failmodes.judge  # noqa: F401
    import pytest_failmodes.labels  # noqa: F401
    import pytest_failmodes.report.calibration  # noqa: F401


_env = judge_env("sk-test-calibration")


@pytest.fixture
def server() -> Iterator[FakeLLM]:
    with fakellm_server(responder=judge) as srv:
        yield srv


def write(project: Any, server: FakeLLM, *, labels: str = COLUMN, gate: str = "", extra: str = "") -> None:
    project.traces(rows())
    project.definitions(DEFINITIONS % {
        "model": MODEL, "base": server.base_url, "labels": labels, "gate": gate, "extra": extra,
        "ex_in": EXAMPLE_INPUT, "ex_out": EXAMPLE_OUTPUT,
    })


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def section(result: pytest.RunResult) -> list[str]:
    """The judge calibration lines, up to the model calls table."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if line.startswith("judge calibration:"))
    end = next(i for i, line in enumerate(lines[start:], start) if line.startswith(("model calls", "=")))
    return lines[start:end]


def table(project: Any, result: pytest.RunResult) -> list[str]:
    """The failure-mode table, up to the judge report."""
    lines = project.summary(result)
    return lines[: next(i for i, line in enumerate(lines) if line.startswith("judge calibration:"))]


def cells(lines: list[str], *first: str) -> list[str]:
    return next(line.split() for line in lines if line.split()[: len(first)] == list(first))


# --------------------------------------------------------------------------- the judge report


def test_report_shows_the_planted_tpr_tnr_and_the_corrected_rate(project: Any, server: FakeLLM) -> None:
    write(project, server)

    result = project.run("--failmodes-report=report.json", "--failmodes-max-examples=20")

    assert server.call_count == JUDGED
    lines = section(result)
    # mode, cohort, labels, human F/P, TP, FN, FP, TN, TPR, CI, TNR, CI
    row = cells(lines, "promised_refund", "all")
    tpr_ci, tnr_ci = wilson_interval(16, 20), wilson_interval(36, 40)
    assert tpr_ci is not None and tnr_ci is not None
    assert row[2:] == ["60", "20/40", "16", "4", "4", "36", pct(TPR), f"[{pct(tpr_ci[0])},", f"{pct(tpr_ci[1])}]",
                       pct(TNR), f"[{pct(tnr_ci[0])},", f"{pct(tnr_ci[1])}]"]
    assert cells(lines, "promised_refund", "route=billing")[2] == "30"
    assert "promised_refund: judge(openai/fake-judge) against 60 labels from field human_refund (not measured: 1 few-shot examples)" in lines
    corrected = next(line for line in lines if line.startswith("  corrected fail rate (all):"))
    assert corrected.startswith(f"  corrected fail rate (all): {pct(THETA)} [")
    assert f"(observed {pct(FAILS / JUDGED)};" in corrected
    assert "  warning: only 20 traces labelled FAIL" not in lines  # 20 is enough
    for tid in MISSED:
        assert f"    {tid}: human fail, detector pass: no refund is promised" in lines
    for tid in FALSE_ALARMS:
        assert f"    {tid}: human pass, detector fail: the reply promises a refund" in lines
    # observed and corrected side by side in the summary
    summary = project.summary(result)
    assert summary[1].split()[:8] == ["mode", "cohort", "n", "fail", "rate", "95%", "CI", "corrected"]
    refund = cells(summary, "promised_refund", "all")
    assert refund[2:5] == [str(JUDGED), str(FAILS), pct(FAILS / JUDGED)]
    assert refund[7] == pct(THETA)
    assert cells(summary, "leaks", "all")[7] == "-"  # a mode without labels has no corrected rate
    # observed 25.4% > 24%: the gate is on the observed rate unless told otherwise
    assert result.ret == 1

    report = project.report("report.json")
    mode = next(m for m in report["modes"] if m["name"] == "promised_refund")
    cal = mode["calibration"]
    assert cal["confusion"] == {"tp": 16, "fn": 4, "tn": 36, "fp": 4}
    assert cal["tpr"] == pytest.approx(TPR) and cal["tnr"] == pytest.approx(TNR)
    assert cal["excluded"] == {"example": 1}
    assert sorted(d["id"] for d in cal["disagreements"]) == sorted(FALSE_ALARMS + MISSED)
    entry = mode["cohorts"][0]
    assert entry["cohort"] == "all"
    assert entry["corrected"]["rate"] == pytest.approx(THETA)
    assert entry["corrected"]["ci_low"] < THETA < entry["corrected"]["ci_high"]
    assert all("corrected" not in c for m in report["modes"] if m["name"] == "leaks" for c in m["cohorts"])
    leaks = next(m for m in report["modes"] if m["name"] == "leaks")
    assert leaks["calibration"] is None


@pytest.mark.slow
def test_the_report_is_the_same_under_xdist(project: Any, server: FakeLLM) -> None:
    write(project, server)
    alone = project.run("--failmodes-no-cache", "--failmodes-report=alone.json")

    spread = project.run_subprocess("-n", "2", "--failmodes-no-cache", "--failmodes-report=spread.json")
    per_trace = project.run_subprocess("-n", "2", "--failmodes-per-trace", "--failmodes-report=per_trace.json")

    assert section(spread) == section(alone) == section(per_trace)
    assert table(project, spread) == table(project, alone)
    cal = [project.report(f"{name}.json")["modes"][0]["calibration"] for name in ("alone", "spread", "per_trace")]
    assert cal[0] == cal[1] == cal[2]
    assert cal[0]["tpr"] == pytest.approx(TPR)


def test_gate_on_corrected_gates_the_corrected_rate(project: Any, server: FakeLLM) -> None:
    write(project, server, gate=", gate_on_corrected: true")

    result = project.run("-k", "promised_refund")

    # corrected 22.0% <= 24% (the observed 25.4% would breach)
    assert result.ret == 0, result.stdout.str()
    assert cells(project.summary(result), "promised_refund", "all")[-1] == "ok"

    write(project, server, gate=", gate_on_corrected: true, max_errors: 0}\n    calibration: {resamples: 500")
    lowered = project.definitions((project.path / "failmodes.yaml").read_text().replace("0.24", "0.20"))
    assert lowered.exists()
    breached = project.run("-k", "promised_refund")
    assert breached.ret == 1
    breached.stdout.fnmatch_lines([
        f"  all: corrected {pct(THETA)} > limit 20.0% (corrected {pct(THETA)} [[]*[]]; observed {FAILS}/{JUDGED} = {pct(FAILS / JUDGED)} [[]*[]])",
    ])


def test_gate_on_corrected_without_a_corrected_rate_gates_the_observed_one_and_says_so(
    project: Any, server: FakeLLM
) -> None:
    # every label PASS: no TPR, so no corrected rate
    write(project, server, gate=", gate_on_corrected: true")
    data = project.path / "data" / "traces.jsonl"
    data.write_text(data.read_text().replace('"human_refund": "yes"', '"human_refund": "no"'))

    result = project.run("-k", "promised_refund")

    assert result.ret == 1  # observed 25.4% > 24%
    result.stdout.fnmatch_lines([
        "note: promised_refund: gate_on_corrected: all is gated on the observed rate (the labels allow no corrected rate)",
        "  warning: no trace is labelled FAIL by a person, so TPR cannot be measured; no corrected rate is reported",
    ])


# --------------------------------------------------------------------------- --failmodes-calibrate


def test_calibrate_judges_only_the_labelled_traces_of_labelled_modes(project: Any, server: FakeLLM) -> None:
    write(project, server)

    result = project.run("--failmodes-calibrate", "-v")

    assert result.ret == 0  # the observed rate is over labelled traces only: no gate
    assert server.call_count == 61  # 60 labelled + the labelled example, nothing else
    result.stdout.fnmatch_lines(["*::promised_refund PASSED*"])
    assert "::leaks" not in result.stdout.str()
    lines = section(result)
    assert cells(lines, "promised_refund", "all")[2:8] == ["60", "20/40", "16", "4", "4", "36"]
    assert "  only the labelled traces were judged (--failmodes-calibrate): no fail rate, no gate" in lines
    result.stdout.fnmatch_lines(["note: promised_refund: calibration run: only the labelled traces were judged; "
                                 "the rates are theirs, and the gates were not applied"])
    assert "corrected" not in project.summary(result)[1]


# --------------------------------------------------------------------------- a labels file


def labels_file(project: Any, lines: list[Any]) -> None:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (project.path / "data" / "labels.jsonl").write_text(text)


def test_labels_file_covers_a_subset_and_notes_unknown_ids(project: Any, server: FakeLLM) -> None:
    write(project, server, labels="", extra="labels: data/labels.jsonl")
    rows_ = [{"id": f"hf{i:02d}", "mode": "promised_refund", "verdict": "fail"} for i in range(20)]
    rows_ += [{"id": f"hp{i:02d}", "mode": "promised_refund", "verdict": "pass", "note": f"checked {i}"} for i in range(40)]
    rows_[20]["note"] = "<b>checked</b> & fine"  # hp00: notes are escaped in the HTML report
    rows_ += [{"id": "gone1", "mode": "promised_refund", "verdict": "pass"}]
    rows_ += [{"id": "u001", "mode": "leaks", "verdict": "pass"}]  # any detector can be measured
    labels_file(project, rows_)

    result = project.run("--failmodes-max-examples=20", "--failmodes-html=report.html")

    lines = section(result)
    assert cells(lines, "promised_refund", "all")[2:8] == ["60", "20/40", "16", "4", "4", "36"]
    assert "promised_refund: judge(openai/fake-judge) against 60 labels from data/labels.jsonl" in lines
    assert "    hp00: human pass, detector fail: the reply promises a refund [note: <b>checked</b> & fine]" in lines
    assert "    hp01: human pass, detector fail: the reply promises a refund [note: checked 1]" in lines
    html = (project.path / "report.html").read_text()
    assert '<section id="calibration">' in html and '<a href="#calibration">Judge calibration</a>' in html
    assert "<td>hp00</td><td>pass</td><td>fail</td><td>the reply promises a refund</td><td>&lt;b&gt;checked&lt;/b&gt; &amp; fine</td>" in html
    assert "<b>checked" not in html
    tpr_ci = wilson_interval(16, 20)
    assert tpr_ci is not None
    assert f'<td class="num rate">80.0%</td><td class="num ci">{pct(tpr_ci[0])} – {pct(tpr_ci[1])}</td>' in html
    assert cells(lines, "leaks", "all")[2:4] == ["1", "0/1"]
    result.stdout.fnmatch_lines([
        "note: promised_refund: labels: 1 labels in data/labels.jsonl name traces that are not in the dataset: gone1",
    ])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "data/labels.jsonl:2: invalid JSON: Expecting property name enclosed in double quotes"),
        ({"id": "hf00", "mode": "promised_refund"}, "data/labels.jsonl:2: verdict: required key is missing"),
        ({"id": "hf00", "mode": "promised_refund", "verdict": "FAIL"},
         "data/labels.jsonl:2: verdict: verdict must be 'fail' or 'pass', got 'FAIL'"),
        ({"id": "hf00", "mode": "promised_refnd", "verdict": "fail"},
         "data/labels.jsonl:2: mode: no failure mode named 'promised_refnd' in this definition file; did you mean 'promised_refund'?"),
        ({"id": "hp01", "mode": "promised_refund", "verdict": "pass"},
         "data/labels.jsonl:2: id: trace 'hp01' is labelled for 'promised_refund' twice (first on line 1)"),
        ({"id": "hf00", "mode": "promised_refund", "verdict": "fail", "nots": "x"},
         "data/labels.jsonl:2: nots: unknown key 'nots'; did you mean 'note'?"),
        ({"id": "", "mode": "promised_refund", "verdict": "fail"},
         "data/labels.jsonl:2: id: a trace id is a non-empty string or a number"),
        ("[1, 2]", "data/labels.jsonl:2: expected an object {id, mode, verdict, note?}, got list"),
    ],
)
def test_bad_labels_file_rows_name_file_line_and_field(project: Any, server: FakeLLM, line: Any, message: str) -> None:
    write(project, server, labels="", extra="labels: data/labels.jsonl")
    labels_file(project, [{"id": "hp01", "mode": "promised_refund", "verdict": "pass"}, line])

    result = project.run()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*{message}*"])
    assert server.call_count == 0


def test_labels_in_two_places_is_a_definition_error(project: Any, server: FakeLLM) -> None:
    write(project, server, extra="labels: data/labels.jsonl")
    labels_file(project, [{"id": "hp01", "mode": "promised_refund", "verdict": "pass"}])

    result = project.run()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([
        "*failmodes.yaml:12: failure_modes[[]0[]].labels: 'promised_refund' has labels here and in data/labels.jsonl: "
        "give its labels in one place*"
    ])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("calibration: {split: {train: 0.5, test: 0.6}}", "failmodes.yaml:5: calibration.split: split shares must add up to 1, got 1.1"),
        ("calibration: {use: tset}", "failmodes.yaml:5: calibration.use*"),
        ("calibration: {resampels: 10}", "failmodes.yaml:5: calibration.resampels: unknown key 'resampels'; did you mean 'resamples'?"),
        ("labels: {path: data/missing.jsonl}", "data/missing.jsonl: cannot read labels file: No such file or directory"),
    ],
)
def test_bad_calibration_keys_are_definition_errors(project: Any, server: FakeLLM, extra: str, message: str) -> None:
    write(project, server, extra=extra, labels="")

    result = project.run()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*{message}*"])


def test_split_measures_only_the_test_share(project: Any, server: FakeLLM) -> None:
    write(project, server, extra="calibration: {split: {train: 0.3, dev: 0.2, test: 0.5}, use: test}")

    result = project.run("--failmodes-report=report.json")

    parts = {r["id"]: split_of(r["id"], (0.3, 0.2, 0.5)) for r in rows() if "labels" in r and r["id"] != "ex1"}
    test = [tid for tid, part in parts.items() if part == "test"]
    cal = project.report("report.json")["modes"][0]["calibration"]
    assert cal["labelled"] == len(test)
    expected = {k: v for k, v in {
        "example": 1,
        "train": sum(p == "train" for p in parts.values()),
        "dev": sum(p == "dev" for p in parts.values()),
    }.items() if v}
    assert cal["excluded"] == expected
    assert cal["split"] == {"shares": {"train": 0.3, "dev": 0.2, "test": 0.5}, "use": ["test"]}
    tp = sum(1 for t in test if t.startswith("hf") and int(t[2:]) < 16)
    assert cal["confusion"]["tp"] == tp
    assert "(not measured: 1 few-shot examples" in "\n".join(section(result))


# --------------------------------------------------------------------------- the HTML page, in a browser

HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="document.body.id=\'pwned\'">'


def calibrated_report() -> dict[str, Any]:
    from pytest_failmodes.calibration import Pair, measure

    pairs = [Pair(f"t{i}", "fail", "fail" if i < 18 else "pass", HOSTILE if i >= 18 else "ok", HOSTILE, ("all",))
             for i in range(20)]
    pairs += [Pair(f"p{i}", "pass", "pass", "fine", "", ("all",)) for i in range(30)]
    cal = measure(pairs, {"all": (150, 40)}, resamples=200)
    corrected = cal["corrected"]["all"]
    return {
        "schema": "pytest-failmodes/report", "version": 1, "generator": "test", "passed": True, "baseline": None,
        "modes": [{
            "key": "f.yaml::m", "name": "m", "file": "f.yaml", "line": 1, "description": "d", "detector": f"judge({HOSTILE})",
            "gate": {}, "status": "ok", "breaches": [], "broken": None, "notes": [], "fingerprint": "", "skipped": 0,
            "cohorts": [{"cohort": "all", "n": 150, "fails": 40, "errors": 0, "rate": 40 / 150, "ci_low": 0.2,
                         "ci_high": 0.35, "limit": None, "small": False, "gated": False, "breach": None,
                         "corrected": corrected}],
            "calibration": {**cal, "source": HOSTILE, "excluded": {}, "split": None, "calibrate_only": False},
            "traces": [],
        }],
    }


def test_html_calibration_section_escapes_reasons_and_notes() -> None:
    from html import escape

    from pytest_failmodes.report.html import render_html

    html = render_html(calibrated_report(), title="T")

    assert HOSTILE not in html and escape(HOSTILE) in html
    assert html.lower().count("</script") == 4  # two data blocks, the trace view, the page's script
    assert '<th scope="col">corrected</th><th scope="col">corr. 95% CI</th>' in html
    assert "<td>t18</td><td>fail</td><td>pass</td>" in html


def test_html_calibration_section_in_a_browser(tmp_path: Any) -> None:
    from browser import dump_dom, find_chromium, parse_html

    from pytest_failmodes.report.html import render_html

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium binary found; on Debian: apt-get install -y chromium")
    page = tmp_path / "report.html"
    page.write_text(render_html(calibrated_report(), title="T"), encoding="utf-8")

    dom = parse_html(dump_dom(chromium, page.as_uri()))

    assert dom.find("title").text == "T"  # no payload ran
    assert dom.find_all(id="pwned") == []
    assert [n.tag for n in dom.iter() if n.tag == "img"] == []
    rows = dom.find("section", id="calibration").find_all("tr")
    assert [td.text for td in rows[1].find_all("td")][:8] == ["all", "50", "20", "30", "18", "2", "0", "30"]
    cells = [[td.text for td in tr.find_all("td")] for tr in rows if tr.find_all("td")]
    assert ["t18", "fail", "pass", HOSTILE, HOSTILE] in cells


def test_calibrate_without_any_labels_says_what_to_add(project: Any, server: FakeLLM) -> None:
    write(project, server, labels="")

    result = project.run("--failmodes-calibrate")

    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert server.call_count == 0
    result.stdout.fnmatch_lines([
        "--failmodes-calibrate: no failure mode has human labels to measure its detector against; "
        "add labels: to a mode or a labels file (docs/calibration.md)",
    ])
