"""examples/quickstart: its dataset is reproducible and realistic, and its demo behaves as advertised."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fakellm import fakellm_server

from pytest_failmodes.dataset import DatasetSpec, iter_traces
from pytest_failmodes.judge import ENV_MODEL

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quickstart"
DATA = {"v3": EXAMPLE / "data" / "traces.jsonl", "v4": EXAMPLE / "data" / "candidate_traces.jsonl"}
# the example's own `fields:` mapping (support_bot.failmodes.yaml)
FIELDS = {"id": "trace_id", "input": "query", "output": "response"}
EXAMPLE_FILES = ("conftest.py", "support_bot.failmodes.yaml", "test_python_modes.py", "data", "refund_desk.py", "refund_desk.failmodes.yaml")
#: the consistency probe of the example application (refund_desk.py)
PROBE = "refund_decision_consistent"
#: the modes an LLM judges; without a model they are skipped, everything else runs as before
JUDGE_MODES = ("wrong_language", "ignores_frustration")


def rows(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def generate() -> ModuleType:
    """The example's generate.py, imported from its file."""
    spec = importlib.util.spec_from_file_location("quickstart_generate", EXAMPLE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


# -- the generator ---------------------------------------------------------------------------


def test_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    out = tmp_path / "data"
    subprocess.run(
        [sys.executable, str(EXAMPLE / "generate.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in DATA.values())
    for committed in DATA.values():
        assert (out / committed.name).read_bytes() == committed.read_bytes(), (
            f"{committed.name} differs from what generate.py writes; run `python generate.py` "
            f"in examples/quickstart and commit the result"
        )


# -- the dataset -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v3", "v4"])
def test_dataset_shape(version: str) -> None:
    data = rows(DATA[version])
    assert len(data) >= 300
    assert len({r["trace_id"] for r in data}) == len(data)
    assert {r["prompt_version"] for r in data} == {version}
    for name, values in (
        ("route", {"billing", "shipping", "account", "tech"}),
        ("persona", {"new_customer", "frustrated", "enterprise", "non_native"}),
    ):
        counts = Counter(r[name] for r in data)
        assert set(counts) == values
        # every value forms a cohort big enough to be gated (min_cohort_size: 20)
        assert min(counts.values()) >= 40, counts

    as_messages = [r for r in data if "messages" in r]
    assert 0.25 * len(data) <= len(as_messages) <= 0.45 * len(data)
    assert all("response" not in r and "query" not in r for r in as_messages)
    assert all("response" in r and "query" in r for r in data if "messages" not in r)

    labelled = Counter(r.get("human_verdict") for r in data)
    assert set(labelled) == {"ok", "escalate", None}, "a labelled subset, with both verdicts"
    assert 0.3 * len(data) <= len(data) - labelled[None] <= 0.7 * len(data)


@pytest.mark.parametrize("version", ["v3", "v4"])
def test_message_traces_load_with_tool_calls(version: str) -> None:
    spec = DatasetSpec(DATA[version], FIELDS)
    traces = [trace for _line, trace in iter_traces(spec)]
    with_messages = [t for t in traces if t.messages]
    tools = Counter(call.name for t in with_messages for call in t.tool_calls)

    assert {"lookup_order", "check_policy", "issue_refund"} <= set(tools)
    assert all(t.tool_calls for t in with_messages if t.metadata["intent"] != "order_status")
    # input and output come from the messages: the customer's message and the final reply
    for trace in with_messages:
        assert trace.input == next(m.text for m in trace.messages if m.role == "user")
        assert trace.output == trace.messages[-1].text != ""
        assert any(m.role == "tool" for m in trace.messages) == bool(trace.tool_calls)
    assert all(t.output and t.input for t in traces)


def test_candidate_replays_the_same_customer_messages() -> None:
    def asked(row: dict[str, Any]) -> str:
        if "query" in row:
            return str(row["query"])
        return next(m["content"] for m in row["messages"] if m["role"] == "user")

    current, candidate = rows(DATA["v3"]), rows(DATA["v4"])
    assert [r["trace_id"] for r in current] == [r["trace_id"] for r in candidate]
    assert [asked(r) for r in current] == [asked(r) for r in candidate]
    assert [(r["route"], r["persona"], r["intent"]) for r in current] == [
        (r["route"], r["persona"], r["intent"]) for r in candidate
    ]
    replies_changed = sum(
        (a.get("response") or a["messages"][-1]["content"]) != (b.get("response") or b["messages"][-1]["content"])
        for a, b in zip(current, candidate)
    )
    assert replies_changed > len(current) // 2


def test_replies_are_varied_text() -> None:
    for path in DATA.values():
        replies = [r.get("response") or r["messages"][-1]["content"] for r in rows(path)]
        assert len(set(replies)) > 0.9 * len(replies)
        assert not any("lorem" in reply.lower() for reply in replies)


# -- the demo --------------------------------------------------------------------------------


@pytest.fixture
def example(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A copy of the example in pytester's directory (the example files stay untouched),
    run with no judge configured unless a test sets one."""
    for name in (ENV_MODEL, "OPENAI_API_BASE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in EXAMPLE_FILES:
        source = EXAMPLE / name
        if source.is_dir():
            shutil.copytree(source, pytester.path / name)
        else:
            shutil.copy(source, pytester.path / name)
    return pytester


def run(example: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    result = example.runpytest_subprocess(
        "--failmodes", "-p", "no:cacheprovider", "--failmodes-report", "report.json", *args
    )
    report = json.loads((example.path / "report.json").read_text(encoding="utf-8"))
    return result, report


def detected(report: dict[str, Any]) -> dict[str, set[str]]:
    """Failing trace ids per failure mode (the probe's "traces" are variants: left out)."""
    return {m["name"]: {t["id"] for t in m["traces"] if t["verdict"] == "fail"} for m in report["modes"] if m["name"] != PROBE}


def planted(generate: ModuleType, version: str) -> dict[str, set[str]]:
    """The failures generate.py planted, per mode (none for leaks_system_prompt)."""
    _rows, by_mode = generate.build(version)
    return {"leaks_system_prompt": set(), **{mode: by_mode.get(mode, set()) for mode in generate.MODES}}


def skip_lines() -> list[str]:
    """What `-rs` shows for the judge modes when no model is configured: the line that enables them."""
    return [
        f"SKIPPED [[]1[]] support_bot.failmodes.yaml:*: judge mode '{name}' needs a model: "
        f"set {ENV_MODEL}=openai/gpt-4o-mini (any litellm model) or judge.model in support_bot.failmodes.yaml"
        for name in JUDGE_MODES
    ]


@pytest.mark.slow
def test_current_prompt_passes_every_gate(example: pytest.Pytester, generate: ModuleType) -> None:
    result, report = run(example, "-rs", "--failmodes-table=all")

    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*= failure modes =*",
            "9 failure modes in 3 files: all gates passed",
            "mode*cohort*n*fail*rate*95% CI*limit*gate",
            "refund_without_policy_check*all*360*ok",
            "*route=billing*3.0%*ok",
            *skip_lines(),
            "*9 passed, 2 skipped*",
        ]
    )
    # offline: the judge modes were never evaluated, no model was called, nothing was cached
    assert [m["name"] for m in report["modes"] if m["name"] in JUDGE_MODES] == []
    # the only calls are the probe's, of the in-process refund desk
    calls = result.stdout.str().split("model calls", 1)[1].split("short test summary", 1)[0]
    assert [line.split()[0] for line in calls.splitlines()[3:] if line.strip() and not line.startswith("=")] == ["target:refund_desk"]
    assert not (example.path / ".failmodes").exists()
    assert "small (n<20)" in result.stdout.str()  # the order-status cohorts by persona
    assert all(m["status"] == "ok" for m in report["modes"])
    assert all(t["verdict"] != "error" for m in report["modes"] for t in m["traces"])
    # the definitions catch every planted failure and flag nothing else
    assert detected(report) == planted(generate, "v3")


@pytest.mark.slow
def test_candidate_prompt_breaches_the_billing_gate(example: pytest.Pytester, generate: ModuleType) -> None:
    expected = planted(generate, "v4")
    billing = {r["trace_id"] for r in rows(DATA["v4"]) if r["route"] == "billing"}
    fails = len(expected["refund_without_policy_check"] & billing)
    rate = f"{100 * fails / len(billing):.1f}%"

    result, report = run(example, "--failmodes-dataset", "data/candidate_traces.jsonl", "-q", "--tb=line", "--failmodes-table=all")

    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "failure mode 'refund_without_policy_check' breached its gate (gate_on=point):",
            f"  route=billing: {fails}/{len(billing)} = {rate} * > limit 3.0%",
            "*cs-*tool check_policy was not called",
            "9 failure modes in 3 files: 1 mode breached",
            f"refund_without_policy_check*route=billing*{len(billing)}*{fails}*{rate}*3.0%*FAIL (limit)",
            "FAILED support_bot.failmodes.yaml::refund_without_policy_check*",
            "1 failed, 8 passed, 2 skipped*",
        ]
    )
    breached = {m["name"]: m["breaches"] for m in report["modes"] if m["status"] != "ok"}
    assert breached == {"refund_without_policy_check": ["limit:route=billing"]}
    refund = next(m for m in report["modes"] if m["name"] == "refund_without_policy_check")
    overall = next(row for row in refund["cohorts"] if row["cohort"] == "all")
    assert overall["rate"] < 0.05, "the regression hides in one cohort: overall it looks fine"
    assert detected(report) == expected


@pytest.mark.slow
def test_default_summary_fits_one_screen_and_names_every_breached_cohort(
    example: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The candidate run at 80 columns: the failure-modes section is at most 30 lines,
    its tables at most 80 columns wide, and it names every cohort the gate breached."""
    monkeypatch.setenv("COLUMNS", "80")

    result, report = run(example, "--failmodes-dataset", "data/candidate_traces.jsonl", "-q", "--tb=no")

    assert result.ret == 1
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if line.startswith("=") and " failure modes " in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    section = lines[start:end]
    assert len(section) <= 30, "\n".join(section)
    tables = section[: next(i for i, line in enumerate(section) if line.startswith("model calls"))]
    assert max(len(line) for line in tables) <= 80
    breached = [(m["name"], b.split(":", 1)[1]) for m in report["modes"] for b in m["breaches"] if b.startswith("limit:")]
    assert breached == [("refund_without_policy_check", "route=billing")]
    result.stdout.fnmatch_lines(
        [
            "9 failure modes in 3 files: 1 mode breached",
            "mode*n*rate*95% CI*worst cohort*breached*gate",
            # at 80 columns the worst cohort's label is shortened here, and whole below
            "refund_wi*check*360*3.6%*route=*12.5%*1/9*FAIL",
            "mode*cohort*n*fail*rate*95% CI*limit*gate",
            "refund*check*route=billing*96*12*12.5%*3.0%*FAIL (limit)",
            "1 of 87 cohort rows (breached or regressed); --failmodes-table=all for all",
        ]
    )
    for _mode, cohort in breached:
        assert sum(cohort in line for line in section) >= 1


@pytest.mark.slow
def test_the_probe_catches_the_candidate_refund_desk(example: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make demo` step 3: the candidate build decides differently for "Refund" and "refund"."""
    monkeypatch.setenv("HARBOR_BUILD", "candidate")

    result, report = run(example, "-k", PROBE, "-q", "--failmodes-max-examples=3")

    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            f"probe '{PROBE}' breached its gate (gate_on=point):",
            "  all: * > limit 1.0%",
            "minimal failing variants (3 of * failing inputs):",
            "  input:          *",
            "  variant:        *",
            "  edit:           *",
            "  output:         'REFUND APPROVED*",
            "  variant output: *",
            f"FAILED refund_desk.failmodes.yaml::{PROBE} - *",
        ]
    )
    (probe,) = report["modes"]
    rows = {r["cohort"]: r for r in probe["cohorts"]}
    # capitalisation, contractions and spacing change the decision; filler phrases and punctuation do not
    assert {k for k, r in rows.items() if k.startswith("perturbation=") and r["fails"]} == {
        "perturbation=case", "perturbation=contraction", "perturbation=whitespace"
    }
    assert rows["perturbation=filler"]["n"] > 0 and rows["perturbation=punctuation"]["n"] > 0
    assert {k for k in rows if k.startswith("persona=")} == {"persona=enterprise", "persona=frustrated", "persona=new_customer", "persona=non_native"}
    assert all(t["verdict"] != "error" for t in probe["traces"])


# -- the judge modes, with a model -------------------------------------------------------------


def customer_message(row: dict[str, Any]) -> str:
    if "query" in row:
        return str(row["query"])
    return next(str(m["content"]) for m in row["messages"] if m["role"] == "user")


def between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def quickstart_judge(request: dict[str, Any]) -> str:
    """A scripted judge: reads the mode's name and the customer's message from the prompt.

    ignores_frustration fails every conversation where the customer says they are
    asking again; everything else passes.
    """
    prompt = request["messages"][-1]["content"]
    name = between(prompt, "<name>", "</name>")
    message = between(between(prompt, "<trace>", "</trace>"), "<input>\n", "\n</input>")
    fails = name == "ignores_frustration" and "Second time I'm asking" in message
    return json.dumps({"critique": f"{name}: {message[:40]}", "verdict": "fail" if fails else "pass"})


@pytest.mark.slow
def test_judge_modes_ask_the_configured_model(example: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    data = rows(DATA["v3"])
    frustrated = [r for r in data if r["persona"] == "frustrated"]
    asking_again = {r["trace_id"] for r in frustrated if "Second time I'm asking" in customer_message(r)}
    assert 0 < len(asking_again) < len(frustrated)

    with fakellm_server(responder=quickstart_judge) as server:
        # the model from the environment, the server's address from litellm's own variable:
        # the example's definition file is used as it is
        monkeypatch.setenv(ENV_MODEL, "openai/fake-judge")
        monkeypatch.setenv("OPENAI_API_BASE", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        result, report = run(example, "-rs", "--failmodes-table=all", "-k", " or ".join(JUDGE_MODES))
        prompts = [r.json["messages"][-1]["content"] for r in server.requests]

    modes = {m["name"]: m for m in report["modes"]}
    assert sorted(modes) == sorted(JUDGE_MODES)
    assert all(m["detector"] == "judge(openai/fake-judge)" for m in modes.values())
    assert "SKIPPED" not in result.stdout.str()

    # every trace asked once: wrong_language on all 360, ignores_frustration only where it applies
    language, frustration = modes["wrong_language"], modes["ignores_frustration"]
    assert len(language["traces"]) == len(data)
    assert {t["verdict"] for t in language["traces"]} == {"pass"}
    assert len(frustration["traces"]) == len(frustrated)
    assert frustration["skipped"] == len(data) - len(frustrated)
    assert {t["id"] for t in frustration["traces"] if t["verdict"] == "fail"} == asking_again
    assert server.call_count == len(data) + len(frustrated)

    # the prompts carry each mode's definition and its boundary examples from the YAML
    for name, example_text in (("wrong_language", "Sorry for my english."), ("ignores_frustration", "Sorry you had to ask twice.")):
        mine = [p for p in prompts if f"<name>{name}</name>" in p]
        assert mine and all(example_text in p for p in mine)

    # the gate judges the judged rate: 15 of 78 frustrated customers is over the 5% limit
    assert result.ret == 1
    assert frustration["status"] == "breached" and language["status"] == "ok"
    result.stdout.fnmatch_lines(
        [
            f"ignores_frustration*all*{len(frustrated)}*{len(asking_again)}*FAIL (limit)",
            "model calls*",
            f"openai/fake-judge*{len(data) + len(frustrated)}*0*0*0*",
        ]
    )

