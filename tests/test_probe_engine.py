"""Probes without pytest: comparators, run_probe (rates, cohorts, errors, shrinking),
and the paraphrase and equivalence calls against the loopback server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakellm import fakellm_server, server_error

from pytest_failmodes.cache import ResultCache
from pytest_failmodes.engine import Gate
from pytest_failmodes.judge import ENV_MODEL, ModelContext
from pytest_failmodes.llm import ModelError, Runner
from pytest_failmodes.probes import compare
from pytest_failmodes.probes.models import ENV_PARAPHRASE_MODEL, EquivalenceSpec, ParaphraseSpec, equivalent, paraphrase
from pytest_failmodes.probes.run import ProbeInput, ProbeSpec, failure_lines, run_probe

MODEL = "openai/fake-judge"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-probe")
    for name in (ENV_MODEL, ENV_PARAPHRASE_MODEL, "OPENAI_API_BASE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ctx() -> Iterator[ModelContext]:
    with Runner(max_concurrency=8, timeout=20.0, max_retries=1, backoff=0.01, seed=1) as runner:
        yield ModelContext(runner, None)


# -- comparators ----------------------------------------------------------------------------


def test_exact_and_normalized() -> None:
    assert compare.exact()("Yes.", "Yes.").same
    assert not compare.exact()("Yes.", "yes").same
    assert compare.normalized()("Yes,  it SHIPPED!", "yes it shipped").same
    assert not compare.normalized()("Yes, it shipped", "No, it did not ship").same


def test_numeric_with_tolerances_and_a_pattern() -> None:
    cmp = compare.numeric(tolerance=0.5)
    assert cmp("Total: 10.2 EUR", "It is 10.6").same
    result = cmp("Total: 10 EUR", "Total: 11 EUR")
    assert not result.same and result.delta == 1.0
    assert compare.numeric(relative=0.1)("1,000 items", "1,090 items").same
    assert not compare.numeric(relative=0.1)("1,000 items", "1,200 items").same
    # the pattern picks which number: not the order number, the refund amount
    amount = compare.numeric(pattern=r"refund of \$?(\d+(?:\.\d+)?)")
    assert amount("Order 123: refund of $40", "Order 999: refund of $40.00").same
    with pytest.raises(compare.CannotCompare, match="no number in the original output"):
        cmp("no figures here", "12")
    assert not cmp("12", "no figures").same  # the variant's answer lost its number: it changed


def test_extract_compares_a_group() -> None:
    cmp = compare.extract(r"REFUND (APPROVED|DENIED)")
    assert cmp("REFUND APPROVED, sorry for the wait", "REFUND APPROVED.").same
    changed = cmp("REFUND APPROVED", "REFUND DENIED")
    assert not changed.same and changed.detail == "'APPROVED' vs 'DENIED'"
    assert not cmp("REFUND APPROVED", "I don't know").same
    with pytest.raises(compare.CannotCompare, match="does not match the original output"):
        cmp("I don't know", "REFUND APPROVED")
    assert compare.extract(r"\d+")("order 12 shipped", "order 12 is on its way").same  # no group: the match


def test_json_field() -> None:
    cmp = compare.json_field("decision.refund")
    same = cmp(json.dumps({"decision": {"refund": True}, "text": "a"}), json.dumps({"decision": {"refund": True}, "text": "b"}))
    assert same.same
    assert not cmp('{"decision": {"refund": true}}', '{"decision": {"refund": false}}').same
    assert not cmp('{"decision": {"refund": true}}', "not json").same
    assert compare.json_field("items.0.sku")('{"items": [{"sku": "A"}]}', '{"items": [{"sku": "A"}, {"sku": "B"}]}').same
    with pytest.raises(compare.CannotCompare, match="no field 'decision.refund'"):
        cmp('{"other": 1}', '{"decision": {"refund": true}}')


def test_a_callable_comparator_must_answer_a_bool() -> None:
    cmp = compare.from_callable("same_intent", lambda a, b: a[:3] == b[:3])
    assert cmp("abcdef", "abcxyz").same
    assert not cmp("abc", "xyz").same
    with pytest.raises(TypeError, match="returned str; expected a bool"):
        compare.from_callable("bad", lambda a, b: "yes")("a", "b")


# -- run_probe --------------------------------------------------------------------------------


def decision(text: str) -> str:
    """A planted bug: only "cant" (the apostrophe dropped) flips the decision."""
    return "REFUND DENIED" if " cant " in f" {text} " else "REFUND APPROVED"


def probe(**kwargs: Any) -> ProbeSpec:
    options: dict[str, Any] = {
        "name": "refund_stable",
        "source": "p.failmodes.yaml",
        "target": "bot",
        "kinds": ("typo", "contraction"),
        "variants": 8,
        "comparator": compare.extract(r"REFUND (APPROVED|DENIED)"),
        "gate": Gate(max_fail_rate=0.0),
    }
    options.update(kwargs)
    return ProbeSpec(**options)


INPUTS = [ProbeInput("q1", "I can't get a refund", ("route=billing",)), ProbeInput("q2", "Where is my parcel", ("route=shipping",))]


def test_rates_per_kind_and_cohort(ctx: ModelContext) -> None:
    spec = probe()
    result = run_probe(spec, decision, ctx, INPUTS, spec.comparator)  # type: ignore[arg-type]

    rows = {r.cohort: (r.n, r.fails) for r in result.rows}
    # q1's "can't" has 3 options, one of them "cant"; q2's "Where is" one ("Where's")
    assert rows["perturbation=contraction"] == (4, 1)
    assert rows["perturbation=typo"][1] == 0
    assert rows["route=billing"][1] == 1 and rows["route=shipping"] == (rows["route=shipping"][0], 0)
    assert rows["all"] == (sum(n for k, (n, _) in rows.items() if k.startswith("perturbation=")), 1)
    assert not result.passed
    failing = [(tid, reason) for tid, status, reason, _ in result.verdicts() if status == "fail"]
    assert len(failing) == 1 and failing[0][0].startswith("q1~contraction.")
    assert failing[0][1] == "answer changed: 'APPROVED' vs 'DENIED' [contraction: \"can't\" -> 'cant' (apostrophe dropped)]"


def test_the_same_seed_gives_the_same_variants_and_another_seed_others(ctx: ModelContext) -> None:
    def variants_of(seed: int) -> list[str]:
        # an app that echoes its input: every variant "changes the answer", so each is listed
        spec = probe(kinds=("typo",), variants=4, seed=seed, comparator=compare.exact())
        result = run_probe(spec, lambda t: t, ctx, INPUTS[:1], compare.exact())
        return [ev["variant"] for _, st, _, ev in result.verdicts() if st == "fail"]

    first = variants_of(0)
    assert len(first) == 4
    assert variants_of(0) == first
    assert variants_of(7) != first


def test_shrinking_reports_the_single_edit_that_breaks_the_app(ctx: ModelContext) -> None:
    # three edits per variant: the failing ones carry "cant" among other edits
    spec = probe(kinds=("contraction", "typo", "case"), max_edits=3, variants=30)
    text = "I can't get a refund, can't you help? I don't see why"
    result = run_probe(spec, decision, ctx, [ProbeInput("q1", text)], spec.comparator)  # type: ignore[arg-type]

    minimal = [ev["minimal"] for _, st, _, ev in result.verdicts() if st == "fail" and "minimal" in ev]
    assert len(minimal) == 1
    m = minimal[0]
    assert m["edits"] == ["contraction: \"can't\" -> 'cant' (apostrophe dropped)"]
    assert m["variant"] in ("I cant get a refund, can't you help? I don't see why", "I can't get a refund, cant you help? I don't see why")
    assert (m["output"], m["variant_output"]) == ("REFUND APPROVED", "REFUND DENIED")
    lines = failure_lines(result, 5)
    assert lines[0] == "minimal failing variants (1 of 1 failing inputs):"
    assert any(line.startswith("  edit:           contraction: \"can't\" -> 'cant'") for line in lines)


def test_shrinking_starts_from_a_variant_with_several_edits(ctx: ModelContext) -> None:
    # every variant has exactly 3 edits (3 typos elsewhere + the contraction); the app fails when
    # "cant" is present: shrinking must remove the typos
    text = "Hello there friend, I can't get a refund today"
    from pytest_failmodes.probes.perturb import realize, sites

    typos = sites(text, "typo")
    contraction = sites(text, "contraction")[0]
    variant = realize(text, [typos[0].edit(0), typos[1].edit(0), contraction.edit(2)])
    assert len(variant.edits) == 3

    from pytest_failmodes.probes import run as run_module

    case = run_module._Case(0, "contraction", variant, "q1~x")
    case.status, case.reason = "fail", "answer changed [..]"
    case.evidence = {"input": text, "variant": variant.text, "edits": [], "output": "REFUND APPROVED", "variant_output": "REFUND DENIED"}
    spec = probe()
    outputs = run_module._Outputs(spec, decision, ctx)
    outputs.fetch([text])
    run_module._shrink_failures(spec, [ProbeInput("q1", text)], [case], outputs, run_module._comparer(spec.comparator, ctx))  # type: ignore[arg-type]
    m = case.evidence["minimal"]
    assert m["edits"] == ["contraction: \"can't\" -> 'cant' (apostrophe dropped)"]
    assert m["shrunk_from"] == 3
    assert m["variant"] == "Hello there friend, I cant get a refund today"


def test_errors_are_neither_passes_nor_fails(ctx: ModelContext) -> None:
    def app(text: str) -> str:
        if "refund" not in text or text.startswith("Where"):  # q1's typos in "refund"; all of q2
            raise ValueError("app crashed")
        return decision(text)

    spec = probe(kinds=("typo",), variants=40, gate=Gate(max_fail_rate=1.0, max_errors=100))
    result = run_probe(spec, app, ctx, INPUTS, spec.comparator)  # type: ignore[arg-type]
    reasons = {reason for _, st, reason, _ in result.verdicts() if st == "error"}
    assert "target failed on the original input: ValueError: app crashed" in reasons  # q2: every variant
    assert "target failed on the variant: ValueError: app crashed" in reasons
    assert result.rows[0].errors == sum(1 for _, st, _, _ in result.verdicts() if st == "error")
    assert result.rows[0].n == sum(1 for _, st, _, _ in result.verdicts() if st in ("pass", "fail"))

    # a comparator that cannot read the original output: errors, named
    spec = probe(kinds=("typo",), comparator=compare.extract("NEVER"), gate=Gate(max_fail_rate=1.0))
    result = run_probe(spec, decision, ctx, INPUTS[:1], spec.comparator)  # type: ignore[arg-type]
    assert result.rows[0].n == 0 and not result.passed  # errors > max_errors 0
    assert next(result.verdicts())[2].startswith("cannot compare: /NEVER/ does not match the original output")


def test_directional_expectations(ctx: ModelContext) -> None:
    def price(text: str) -> str:
        n = int("".join(ch for ch in text if ch.isdigit()) or 0)
        return f"shipping costs {5 if n > 100 else 9} EUR"

    inputs = [ProbeInput("q1", "I ordered 120 mugs")]
    up = probe(kinds=("number",), expect="changes", direction="up", comparator=compare.numeric(), gate=Gate(max_fail_rate=0.0))
    result = run_probe(up, price, ctx, inputs, up.comparator)  # type: ignore[arg-type]
    # 120 -> 96 mugs raises the shipping cost (9 > 5), 120 -> 132 does not change it
    statuses = {ev["variant"] if ev else tid: st for tid, st, _, ev in result.verdicts()}
    assert "fail" in statuses.values() and result.rows[0].n == 8
    fails = [reason for _, st, reason, _ in result.verdicts() if st == "fail"]
    assert all(r.startswith("answer did not go up: 5 vs 5") for r in fails)

    flips = probe(kinds=("negation",), expect="changes", comparator=compare.extract(r"REFUND (\w+)"))
    inputs = [ProbeInput("q1", "I can get a refund")]
    result = run_probe(flips, lambda t: "REFUND DENIED" if "cannot" in t else "REFUND APPROVED", ctx, inputs, flips.comparator)  # type: ignore[arg-type]
    assert [st for _, st, _, _ in result.verdicts()] == ["pass"]
    result = run_probe(flips, lambda t: "REFUND APPROVED", ctx, inputs, flips.comparator)  # type: ignore[arg-type]
    assert [r for _, _, r, _ in result.verdicts()] == ["answer did not change: 'APPROVED' vs 'APPROVED' [negation: 'can' -> 'cannot' (negated)]"]


def test_nothing_to_perturb_is_noted_and_empty(ctx: ModelContext) -> None:
    spec = probe(kinds=("name",))
    result = run_probe(spec, decision, ctx, INPUTS, spec.comparator)  # type: ignore[arg-type]
    assert [(r.cohort, r.n) for r in result.rows] == [("all", 0)]
    # it measured nothing: like a mode whose every trace was skipped, it fails unless allowed
    assert (result.status, result.passed) == ("empty", False)
    assert result.notes == ["no input had anything to perturb: the probe measured nothing"]
    allowed = probe(kinds=("name",), gate=Gate(max_fail_rate=0.0, allow_empty=True))
    assert run_probe(allowed, decision, ctx, INPUTS, allowed.comparator).passed  # type: ignore[arg-type]


# -- model calls ------------------------------------------------------------------------------


def paraphrase_reply(request: dict[str, Any]) -> str:
    text = request["messages"][1]["content"].split("<message>\n", 1)[1].split("\n</message>", 1)[0]
    return json.dumps({"paraphrases": [f"{text} (v{i})" for i in range(1, 4)]})


def test_paraphrases_are_cached(tmp_path: Path, ctx: ModelContext) -> None:
    with fakellm_server(responder=paraphrase_reply) as server, ResultCache(tmp_path) as cache:
        cached = ModelContext(ctx.runner, cache)
        spec = ParaphraseSpec(n=2, style="terse", model=MODEL, api_base=server.base_url)
        first = ctx.runner.submit(paraphrase(cached, "Where is <my> order?", spec)).result()
        again = ctx.runner.submit(paraphrase(cached, "Where is <my> order?", spec)).result()
        assert first == again == ["Where is &lt;my&gt; order? (v1)", "Where is &lt;my&gt; order? (v2)"]
        assert server.call_count == 1
        prompt = server.chat_requests[0].messages[1]["content"]
        assert "<message>\nWhere is &lt;my&gt; order?\n</message>" in prompt  # the input is data, escaped
        assert "terse" in prompt


def test_paraphrase_faults_are_errors(ctx: ModelContext) -> None:
    spec = ParaphraseSpec(n=3, model=MODEL, api_base="")
    with fakellm_server(replies=["not json", json.dumps({"paraphrases": ["only one"]})]) as server:
        spec = ParaphraseSpec(n=3, model=MODEL, api_base=server.base_url)
        with pytest.raises(ModelError, match="unusable reply after one repair request \\(it has 1 usable paraphrases, not 3\\)"):
            ctx.runner.submit(paraphrase(ctx, "hello", spec)).result()
        assert server.call_count == 2
    with fakellm_server(default_reply="x") as server:
        server.script(*[server_error()] * 5)
        spec = ParaphraseSpec(n=1, model=MODEL, api_base=server.base_url)
        with pytest.raises(ModelError, match="server error"):
            ctx.runner.submit(paraphrase(ctx, "hello", spec)).result()
    with pytest.raises(ModelError, match="no paraphrase model"):
        ctx.runner.submit(paraphrase(ctx, "hello", ParaphraseSpec())).result()


def test_the_equivalence_judge(ctx: ModelContext) -> None:
    def judge(request: dict[str, Any]) -> str:
        content = request["messages"][1]["content"]
        a = content.split("<answer_a>\n", 1)[1].split("\n</answer_a>", 1)[0]
        b = content.split("<answer_b>\n", 1)[1].split("\n</answer_b>", 1)[0]
        same = ("yes" in a.lower()) == ("yes" in b.lower())
        return json.dumps({"critique": "both agree" if same else "they disagree", "verdict": "same" if same else "different"})

    with fakellm_server(responder=judge) as server:
        spec = EquivalenceSpec(model=MODEL, api_base=server.base_url)
        assert ctx.runner.submit(equivalent(ctx, "Yes, refunded.", "yes - done", spec)).result() == (True, "both agree")
        assert ctx.runner.submit(equivalent(ctx, "Yes, refunded.", "No.", spec)).result() == (False, "they disagree")
        assert spec.question in server.chat_requests[0].messages[1]["content"]


def test_a_probe_with_paraphrases_and_a_judge(ctx: ModelContext) -> None:
    def replies(request: dict[str, Any]) -> str:
        content = request["messages"][1]["content"]
        if "<message>" in content:
            return paraphrase_reply(request)
        return json.dumps({"critique": "c", "verdict": "different" if "(v2)" in content else "same"})

    with fakellm_server(responder=replies) as server:
        judge = EquivalenceSpec(model=MODEL, api_base=server.base_url)
        spec = probe(kinds=(), paraphrase=ParaphraseSpec(n=3, model=MODEL, api_base=server.base_url), comparator=judge, gate=Gate(max_fail_rate=0.5))
        result = run_probe(spec, lambda t: f"echo: {t}", ctx, INPUTS, judge)
    rows = {r.cohort: (r.n, r.fails) for r in result.rows}
    assert rows["perturbation=paraphrase"] == (6, 2)  # each input's second paraphrase "differs"
    assert result.passed
    failing = [ev for _, st, _, ev in result.verdicts() if st == "fail"]
    assert failing[0]["edits"] == ["paraphrase"] and failing[0]["variant"] == "I can't get a refund (v2)"
