"""Probes in definition files, end to end: pytest sessions against fixture targets and
the loopback model server; reports; bad input; xdist."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fakellm import FakeLLM, fakellm_server

from pytest_failmodes.judge import ENV_MODEL
from pytest_failmodes.probes.models import ENV_PARAPHRASE_MODEL

MODEL = "openai/fake-judge"

CONFTEST = """
import asyncio
import pytest

def decide(text):
    # the planted bug: "cant" without its apostrophe is not read as a negation
    words = text.replace("?", " ").replace(",", " ").split()
    if "refund" not in text.lower():
        return "I can help with orders and refunds."
    return "REFUND DENIED" if "cant" in words else "REFUND APPROVED"

@pytest.fixture
def support_bot():
    return decide

@pytest.fixture
def async_bot():
    async def app(text):
        await asyncio.sleep(0)
        return decide(text)
    return app

@pytest.fixture
def same_decision():
    return lambda a, b: a.split()[:2] == b.split()[:2]
"""

PROBE = """
probes:
  - name: refund_decision_stable
    target: support_bot
    inputs:
      - "I can't get a refund for order 1234"
      - "Why can't I get my refund?"
    perturb: [typo, case, contraction]
    protect: ["order 1234", "refund"]
    same_when: {extract: "REFUND (APPROVED|DENIED)"}
    max_fail_rate: 0.02
"""


@pytest.fixture
def probes(project):
    project.file("conftest.py", CONFTEST)
    return project


@pytest.mark.parametrize("target", ["support_bot", "async_bot"])
def test_a_probe_catches_the_contraction_bug(probes, target: str) -> None:
    probes.definitions(PROBE.replace("target: support_bot", f"target: {target}"), "bot.failmodes.yaml")

    result = probes.run("--failmodes-report=r.json", "--failmodes-max-examples=5")

    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*_ probe refund_decision_stable _*",
            "probe 'refund_decision_stable' breached its gate (gate_on=point):",
            "  perturbation=contraction: 2/6 = 33.3% *> limit 2.0%",
            "minimal failing variants (2 of 2 failing inputs):",
            "  input:          \"I can't get a refund for order 1234\"",
            "  variant:        'I cant get a refund for order 1234'",
            "  edit:           contraction: \"can't\" -> 'cant' (apostrophe dropped)",
            "  output:         'REFUND APPROVED'",
            "  variant output: 'REFUND DENIED'",
            "  why:            answer changed: 'APPROVED' vs 'DENIED'",
            "  input:          \"Why can't I get my refund?\"",
            "  variant:        'Why cant I get my refund?'",
        ]
    )
    summary = probes.summary(result)
    assert summary[0] == "1 failure mode in 1 file: 1 mode breached"
    rows = [line.split() for line in summary if line.startswith("refund_decision_stable ")]
    assert ["refund_decision_stable", "perturbation=contraction", "6", "2", "33.3%"] == rows[1][:5]  # breached rows first
    assert {r[1] for r in rows} == {"all", "perturbation=case", "perturbation=contraction", "perturbation=typo"}
    report = probes.report("r.json")
    (mode,) = report["modes"]
    assert mode["name"] == "refund_decision_stable" and mode["detector"].startswith("probe(typo, case, contraction; extract(")
    failing = [t for t in mode["traces"] if t["verdict"] == "fail"]
    assert {t["id"].split("~")[1].split(".")[0] for t in failing} == {"contraction"}
    assert failing[0]["evidence"]["minimal"]["edits"] == ["contraction: \"can't\" -> 'cant' (apostrophe dropped)"]


def test_a_failing_variant_with_several_edits_is_shrunk_to_the_one_that_matters(probes) -> None:
    probes.definitions(
        """
        probes:
          - name: shrinks
            target: support_bot
            inputs: ["I can't get a refund, I don't know why it isn't working and I won't wait, I haven't time"]
            perturb: [contraction]
            max_edits: 4
            variants: 10
            same_when: {extract: "REFUND (APPROVED|DENIED)"}
            max_fail_rate: 0
        """,
        "shrink.failmodes.yaml",
    )

    result = probes.run()

    assert result.ret == 1
    # every failing variant of the sample carries other edits besides "cant"
    failing = [line for line in result.outlines if line.startswith("  in1~contraction.")]
    assert failing and all(line.count("; contraction:") >= 1 for line in failing)
    result.stdout.fnmatch_lines(
        [
            "  variant:        \"I cant get a refund, I don't know why it isn't working and I won't wait, I haven't time\"",
            "  edit:           contraction: \"can't\" -> 'cant' (apostrophe dropped) (shrunk from * edits)",
        ]
    )


def test_a_stable_app_passes_and_the_protected_entity_is_never_edited(probes) -> None:
    probes.definitions(PROBE.replace("[typo, case, contraction]", "[typo, case, whitespace, filler, number]"), "bot.failmodes.yaml")
    probes.file(
        "conftest.py",
        CONFTEST + "\nSEEN = []\n@pytest.fixture\ndef support_bot():\n    def app(text):\n        SEEN.append(text)\n        assert 'order 1234' in text or 'refund' not in text.lower() or 'my' in text.lower()\n        return decide(text)\n    return app\n",
    )

    result = probes.run("--failmodes-report=r.json")

    assert result.ret == 0, result.stdout.str()
    report = probes.report("r.json")
    assert report["modes"][0]["cohorts"][0]["errors"] == 0
    assert report["modes"][0]["cohorts"][0]["n"] > 20


DATASET_PROBE = """
dataset: inputs.jsonl
cohorts: [route]
probes:
  - name: stable_on_real_questions
    target: support_bot
    inputs: {from_dataset: true, where: {route: billing}}
    perturb: [contraction]
    variants: 3
    same_when: {fixture: same_decision}
    max_fail_rate: 0.1
"""


def test_inputs_from_the_dataset_with_where_and_cohorts(probes) -> None:
    probes.traces(
        [
            {"id": "b1", "input": "I can't get a refund", "route": "billing", "persona": "new"},
            {"id": "b2", "input": "Refund please, it's broken", "route": "billing", "persona": "returning"},
            {"id": "s1", "input": "Where is my refund, I can't wait", "route": "shipping"},
        ],
        "inputs.jsonl",
    )
    probes.definitions(DATASET_PROBE, "bot.failmodes.yaml")

    result = probes.run("--failmodes-report=r.json")

    assert result.ret == 1  # b1's "cant" flips 1 of its 3 variants; b2's 2 hold: 1/5 > 10%
    report = probes.report("r.json")
    ids = [t["id"] for t in report["modes"][0]["traces"]]
    assert ids and all(i.startswith(("b1~", "b2~")) for i in ids)  # where: only billing inputs
    cohorts = {r["cohort"]: (r["n"], r["fails"]) for r in report["modes"][0]["cohorts"]}
    assert cohorts["route=billing"] == cohorts["all"]
    assert cohorts["all"] == (5, 1)
    result.stdout.fnmatch_lines(["*route=billing*FAIL (limit)*"])


def test_a_probe_where_field_no_input_has_is_broken(probes) -> None:
    probes.traces(
        [{"id": "b1", "input": "I can't get a refund", "route": "billing"}],
        "inputs.jsonl",
    )
    probes.definitions(DATASET_PROBE.replace("where: {route: billing}", "where: {rout: billing}"), "bot.failmodes.yaml")

    result = probes.run("--failmodes-report=r.json")

    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "BROKEN stable_on_real_questions: bot.failmodes.yaml:4: probes.stable_on_real_questions.inputs.where.rout:"
            " field 'rout' occurs in no trace of the dataset; did you mean 'route'?"
        ]
    )
    assert probes.report("r.json")["modes"][0]["status"] == "broken"


def test_directional_probe_with_negation(probes) -> None:
    probes.definitions(
        """
        probes:
          - name: negation_flips_refund
            target: support_bot
            inputs: ["I can get a refund", "Is a refund possible"]
            perturb: [negation]
            expect: changes
            same_when: {extract: "REFUND (APPROVED|DENIED)"}
            max_fail_rate: 0
        """,
        "dir.failmodes.yaml",
    )

    result = probes.run()

    # "can" -> "cannot" and "Is" -> "Is not": the bot approves both: no change, the DIR probe fails
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*answer did not change: 'APPROVED' vs 'APPROVED' [[]negation: 'can' -> 'cannot' (negated)]*"]
    )


def test_probes_sit_next_to_failure_modes_in_one_file(probes) -> None:
    probes.support_traces()
    probes.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: leaks
            rule: {regex: "(?i)my instructions say"}
            max_fail_rate: 0.5
        probes:
          - name: typo_stable
            target: support_bot
            inputs: ["Where is my parcel?"]
            perturb: [typo]
            same_when: normalized
        """
    )

    result = probes.run("-v")

    assert result.ret == 0
    result.stdout.fnmatch_lines(["*failmodes.yaml::leaks PASSED*", "*failmodes.yaml::typo_stable PASSED*"])
    assert probes.summary(result)[0] == "2 failure modes in 1 file: all gates passed"


def test_app_errors_are_errors_and_breach_max_errors(probes) -> None:
    probes.file("conftest.py", CONFTEST + "\n@pytest.fixture\ndef flaky():\n    def app(text):\n        if any(w.isupper() and len(w) > 1 for w in text.split()):\n            raise RuntimeError('upstream down')\n        return decide(text)\n    return app\n")
    probes.definitions(PROBE.replace("support_bot", "flaky").replace("[typo, case, contraction]", "[case]"), "bot.failmodes.yaml")

    result = probes.run()

    assert result.ret == 1
    result.stdout.fnmatch_lines(["*errors: * > max_errors 0*", "*target failed on the variant: RuntimeError: upstream down*"])


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (PROBE.replace("perturb:", "perturbs:"), "bot.failmodes.yaml:7: probes[0].perturbs: unknown key 'perturbs'; did you mean 'perturb'?"),
        (PROBE.replace("contraction]", "contractions]"), "bot.failmodes.yaml:7: probes[0].perturb: unknown perturbation kind 'contractions'; did you mean 'contraction'?*"),
        (PROBE.replace('{extract: "REFUND (APPROVED|DENIED)"}', "exactly"), "bot.failmodes.yaml:9: probes[0].same_when: unknown comparator 'exactly'; did you mean 'exact'?*"),
        (PROBE.replace('{extract: "REFUND (APPROVED|DENIED)"}', "{extract: '(unclosed'}"), "bot.failmodes.yaml:9: probes[0].same_when.extract.pattern: invalid regular expression*"),
        (PROBE.replace('{extract: "REFUND (APPROVED|DENIED)"}', "{exact: true, normalized: true}"), "bot.failmodes.yaml:9: probes[0].same_when: give exactly one comparator of * (got exact and normalized)"),
        (PROBE + "    direction: up\n", "bot.failmodes.yaml:2: probes[0]: direction needs expect: changes"),
        (PROBE.replace("contraction]", "negation]"), "bot.failmodes.yaml:2: probes[0]: negation changes the meaning: use it in a probe with expect: changes"),
        (PROBE.replace("max_fail_rate: 0.02", "max_fail_rate: 2"), "bot.failmodes.yaml:10: probes[0].max_fail_rate: input should be less than or equal to 1"),
        (PROBE.replace("    inputs:\n", "    inputs: {from_dataset: true}\n    x_inputs:\n"), "bot.failmodes.yaml:5: probes[0].x_inputs: unknown key*"),
        ("probes:\n  - name: p\n    target: support_bot\n    inputs: {from_dataset: true}\n    perturb: [typo]\n", "bot.failmodes.yaml:4: probes[0].inputs: inputs: {from_dataset: true} needs a dataset; add dataset: to this file"),
        ("probes:\n  - name: p\n    target: support_bot\n    inputs: []\n    perturb: [typo]\n", "bot.failmodes.yaml:4: probes[0].inputs: give at least one input"),
        ("probes:\n  - name: p\n    target: support_bot\n    inputs: [hi]\n", "bot.failmodes.yaml:2: probes[0]: give perturb: (a list of kinds) or paraphrase: (or both)"),
        ("probes:\n  - name: p\n    target: support_bot\n    inputs: [hi]\n    perturb: [typo]\n    number_range: [5, 1]\n", "bot.failmodes.yaml:6: probes[0].number_range: number_range is [low, high] with low < high, got [5.0, 1.0]"),
        ("probes:\n  - name: p\n    target: t\n    inputs: [hi]\n    paraphrase: {n: 2, params: {api_key: x}}\n", "bot.failmodes.yaml:5: probes[0].paraphrase.params: 'api_key' looks like a secret*"),
        ("cohorts: [route]\n", "bot.failmodes.yaml:1: dataset: required key is missing"),
        (PROBE.replace('protect: ["order 1234", "refund"]', 'protect: [{regex: "HG-("}]'), "bot.failmodes.yaml:8: probes[0].protect: invalid regular expression*"),
    ],
    ids=[
        "unknown-key", "unknown-kind", "unknown-comparator", "bad-regex", "two-comparators", "direction-without-changes",
        "negation-in-inv", "rate", "inputs-typo", "from-dataset-without-dataset", "no-inputs", "nothing-to-do",
        "bad-range", "secret-param", "no-modes-no-probes", "bad-protect-regex",
    ],
)
def test_bad_probe_definitions_name_file_line_and_key(probes, yaml_text: str, expected: str) -> None:
    probes.definitions(yaml_text, "bot.failmodes.yaml")

    result = probes.run()

    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error
    result.stdout.fnmatch_lines(["*" + expected.replace("[", "[[]")])


def test_missing_target_and_comparator_fixtures_are_named(probes) -> None:
    probes.definitions(PROBE.replace("target: support_bot", "target: nobody"), "bot.failmodes.yaml")
    result = probes.run()
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*bot.failmodes.yaml:2: probes.refund_decision_stable.target: target fixture 'nobody' not found*"])

    probes.definitions(PROBE.replace('{extract: "REFUND (APPROVED|DENIED)"}', "{fixture: nothing_here}"), "bot.failmodes.yaml")
    result = probes.run()
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*bot.failmodes.yaml:2: probes.refund_decision_stable.same_when.fixture: comparator fixture 'nothing_here' not found*"])


@pytest.mark.slow
def test_probes_under_xdist(probes) -> None:
    probes.definitions(PROBE, "bot.failmodes.yaml")
    probes.definitions(PROBE.replace("refund_decision_stable", "second_probe").replace("0.02", "0.5"), "two.failmodes.yaml")

    result = probes.run_subprocess("-n", "2", "--failmodes-report=r.json")

    assert result.ret == 1
    result.stdout.fnmatch_lines(["*minimal failing variants (2 of 2 failing inputs):*"])
    summary = probes.summary(result)
    assert summary[0] == "2 failure modes in 2 files: 1 mode breached"
    modes = {m["name"]: m for m in probes.report("r.json")["modes"]}
    # the same seeded variants in each process: the two probes measure the same thing
    figures = {name: [(r["cohort"], r["n"], r["fails"]) for r in m["cohorts"]] for name, m in modes.items()}
    assert figures["refund_decision_stable"] == figures["second_probe"]
    assert ("perturbation=contraction", 6, 2) in figures["second_probe"]


# -- against the loopback model server ---------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _litellm_loaded() -> None:
    from pytest_failmodes.llm import load_litellm

    load_litellm()
    import pytest_failmodes.cache  # noqa: F401
    import pytest_failmodes.judge  # noqa: F401
    import pytest_failmodes.probes.item  # noqa: F401


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-probes")
    for name in (ENV_MODEL, ENV_PARAPHRASE_MODEL, "OPENAI_API_BASE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def model_replies(request: dict[str, Any]) -> str:
    """Paraphrases, equivalence verdicts, and the application's own answers."""
    content = request["messages"][-1]["content"]
    if "<message>" in content:
        text = content.split("<message>\n", 1)[1].split("\n</message>", 1)[0]
        return json.dumps({"paraphrases": [f"{text} Thanks.", f"Quick one: {text}", f"{text.lower()}"]})
    if "<answer_a>" in content:
        a = content.split("<answer_a>\n", 1)[1].split("\n</answer_a>", 1)[0]
        b = content.split("<answer_b>\n", 1)[1].split("\n</answer_b>", 1)[0]
        same = ("DENIED" in a) == ("DENIED" in b)
        return json.dumps({"critique": "same decision" if same else "opposite decisions", "verdict": "same" if same else "different"})
    # the application under test: an LLM that denies lower-case requests
    return "REFUND DENIED" if content == content.lower() else "REFUND APPROVED"


@pytest.fixture
def server() -> Iterator[FakeLLM]:
    with fakellm_server(responder=model_replies) as srv:
        yield srv


LLM_CONFTEST = """
import pytest
from pytest_failmodes.llm import load_litellm

@pytest.fixture
def llm_bot():
    litellm = load_litellm()
    async def app(text):
        reply = await litellm.acompletion(model=%(model)r, api_base=%(base)r,
                                          messages=[{"role": "user", "content": text}])
        return reply.choices[0].message.content
    return app
"""

LLM_PROBE = """
judge: {model: %(model)s, api_base: "%(base)s"}
probes:
  - name: paraphrase_stable
    target: llm_bot
    inputs: ["Can I get a refund for order 1234?"]
    paraphrase: {n: 3, style: terse}
    perturb: [case]
    variants: 2
    same_when: {judge: {question: "Do both answers reach the same refund decision?"}}
    max_fail_rate: 0.1
"""


def test_paraphrases_and_a_judge_against_the_loopback_server(probes, server: FakeLLM) -> None:
    probes.file("conftest.py", LLM_CONFTEST % {"model": MODEL, "base": server.base_url})
    probes.definitions(LLM_PROBE % {"model": MODEL, "base": server.base_url}, "llm.failmodes.yaml")

    result = probes.run("--failmodes-report=r.json", "--failmodes-cache-dir=cache")

    assert result.ret == 1
    rows = {r["cohort"]: (r["n"], r["fails"]) for r in probes.report("r.json")["modes"][0]["cohorts"]}
    # the lower-case paraphrase (and a lower-cased "can") flips the model's decision
    assert rows["perturbation=paraphrase"] == (3, 1)
    result.stdout.fnmatch_lines(
        [
            "*variant:        'can i get a refund for order 1234?'",
            "*edit:           paraphrase",
            "*why:            answer changed: judge: opposite decisions",
        ]
    )
    paraphrase_calls = [r for r in server.chat_requests if "<message>" in r.messages[-1]["content"]]
    assert len(paraphrase_calls) == 1
    judged = [r for r in server.chat_requests if "<answer_a>" in r.messages[-1]["content"]]
    # 5 comparisons (3 paraphrases, 2 case variants) but 2 distinct pairs of outputs: each asked once
    assert len(judged) == 2
    assert all("<question>Do both answers reach the same refund decision?</question>" in r.messages[-1]["content"] for r in judged)
    model_table = "\n".join(result.outlines)
    assert "openai/fake-judge" in model_table and "target:llm_bot" in model_table

    # a re-run reads paraphrases and verdicts from the cache: only the target is called again
    before = server.call_count
    again = probes.run("--failmodes-report=r2.json", "--failmodes-cache-dir=cache")
    assert again.ret == 1
    new = server.chat_requests[before:]
    assert new and all("<message>" not in r.messages[-1]["content"] and "<answer_a>" not in r.messages[-1]["content"] for r in new)
    assert probes.report("r2.json")["modes"][0]["cohorts"] == probes.report("r.json")["modes"][0]["cohorts"]


def test_without_a_model_the_llm_probe_is_skipped_with_the_setting_to_use(probes) -> None:
    probes.definitions(LLM_PROBE.replace('judge: {model: %(model)s, api_base: "%(base)s"}\n', ""), "llm.failmodes.yaml")

    result = probes.run("-rs")

    assert result.ret == 0
    result.stdout.fnmatch_lines(["*SKIPPED*probe 'paraphrase_stable' paraphrases with a model: set FAILMODES_PARAPHRASE_MODEL*"])


def test_paraphrase_faults_are_errors_not_passes(probes) -> None:
    with fakellm_server(default_reply="no json here") as srv:
        probes.file("conftest.py", CONFTEST)
        probes.definitions(
            f"""
            probes:
              - name: p
                target: support_bot
                inputs: ["Can I get a refund?"]
                paraphrase: {{n: 2, model: {MODEL}, api_base: "{srv.base_url}"}}
                same_when: exact
            """,
            "llm.failmodes.yaml",
        )
        result = probes.run("--failmodes-report=r.json", "--failmodes-no-cache")
    assert result.ret == 1
    (trace,) = probes.report("r.json")["modes"][0]["traces"]
    assert trace["verdict"] == "error"
    assert trace["reason"].startswith("paraphrasing failed: ModelError: openai/fake-judge: unusable reply after one repair request")


def test_a_labels_file_beside_probes_alone_names_its_unknown_mode(project) -> None:
    # a file of probes has no failure modes for labels to measure; this crashed (TypeError) once
    project.file(
        "conftest.py",
        """
        import pytest

        @pytest.fixture
        def bot():
            return lambda text: "REFUND APPROVED" if "refund" in text.lower() else "NO"
        """,
    )
    project.file("labels.jsonl", '{"id": "a", "mode": "x", "verdict": "fail"}\n')
    project.definitions(
        """
        labels: labels.jsonl
        probes:
          - name: stable
            target: bot
            inputs: ["I want a refund"]
            perturb: [case]
        """,
        name="p.failmodes.yaml",
    )

    result = project.run("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["labels.jsonl:1: mode: no failure mode named 'x' in this definition file"])
