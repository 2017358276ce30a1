"""failmodes synth: covering tuples, inputs through the loopback model server, near-duplicates."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fakellm import fakellm_server

from pytest_failmodes.analysis.synth import covering_tuples, dedupe
from pytest_failmodes.cli import main


def _pairs_covered(rows: list[tuple[int, ...]], sizes: list[int], strength: int = 2, exclude: list[dict[int, int]] = ()) -> bool:  # type: ignore[assignment]
    for dims in itertools.combinations(range(len(sizes)), strength):
        for values in itertools.product(*(range(sizes[d]) for d in dims)):
            want = dict(zip(dims, values))
            if any(all(want.get(d) == v for d, v in rule.items()) for rule in exclude):
                continue
            if not any(all(row[d] == v for d, v in want.items()) for row in rows):
                return False
    return True


@pytest.mark.parametrize(
    ("sizes", "strength", "best_known"),
    [
        ([3, 3, 3], 2, 9),
        ([3, 3, 3, 3], 2, 9),
        ([4, 3, 3], 2, 12),
        ([5, 4, 3, 2], 2, 20),
        ([4, 4, 4, 4, 4], 2, 16),
        ([2, 2, 2, 2], 3, 8),
    ],
)
def test_every_combination_is_covered_with_few_tuples(sizes: list[int], strength: int, best_known: int) -> None:
    rows = covering_tuples(sizes, strength, seed=0)
    assert _pairs_covered(rows, sizes, strength)
    full = 1
    for s in sizes:
        full *= s
    assert best_known <= len(rows) <= max(best_known + 1, round(1.35 * best_known)) < full
    assert rows == covering_tuples(sizes, strength, seed=0)  # deterministic
    assert len(set(rows)) == len(rows)


def test_exclusions_are_respected() -> None:
    sizes = [3, 3, 2]
    exclude = [{0: 2, 2: 1}, {0: 0, 1: 0}]
    rows = covering_tuples(sizes, 2, seed=5, exclude=exclude)
    assert not any(r[0] == 2 and r[2] == 1 for r in rows)
    assert not any(r[0] == 0 and r[1] == 0 for r in rows)
    assert _pairs_covered(rows, sizes, 2, exclude)


def test_near_duplicates_are_dropped() -> None:
    texts = ["I need to cancel my flight to Boston tomorrow", "i need to CANCEL my flight to boston tomorrow!", "Add a bag to booking XK2"]
    kept, dropped = dedupe(texts)
    assert kept == [0, 2]
    assert dropped[0][:2] == (1, 0) and dropped[0][2] >= 90


DIMS = """\
app: An airline's support chat agent.
dimensions:
  feature: [book, cancel, baggage]
  persona:
    - {value: first_timer, description: has never flown before}
    - frequent_flyer
    - <script>alert(1)</script>
  scenario: [happy_path, missing_info]
exclude:
  - {feature: baggage, scenario: missing_info}
seed: 3
"""


def _writer(request: dict[str, Any]) -> str:
    situation = re.search(r"<situation>\n(.*?)\n</situation>", request["messages"][1]["content"], re.S)
    assert situation is not None
    values = dict(line.split(": ", 1) for line in situation.group(1).splitlines())
    if values["feature"] == "book" and values["scenario"] == "missing_info":
        # the same message for every persona: near-duplicates
        return json.dumps({"input": "I want to book a flight but I don't know the date yet."})
    feature = {"book": "Please reserve two seats to Denver on June 3.", "cancel": "Cancel reservation ZX81, my plans changed.",
               "baggage": "How many checked bags can I add to booking Q7?"}[values["feature"]]
    persona = {"first_timer": "This is my first flight ever, sorry if this is a silly question.",
               "frequent_flyer": "Gold member here, ID 5521."}.get(values["persona"].split(" (")[0], values["persona"])
    scenario = {"happy_path": "", "missing_info": "I forgot my booking code though."}[values["scenario"]]
    return json.dumps({"input": f"{persona} {feature} {scenario}".strip()})


def test_synth_writes_inputs_through_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-synth")
    (tmp_path / "dims.yaml").write_text(DIMS)
    assert main(["synth", "dims.yaml", "--dry-run"]) == 0
    captured = capsys.readouterr()
    tuples = [line.split() for line in captured.out.splitlines()[2:]]
    assert "tuples cover every pair of values (the full product has 18)" in captured.err
    assert not any(t[0] == "baggage" and t[2] == "missing_info" for t in tuples)
    assert len(tuples) == 9
    with fakellm_server(responder=_writer) as server:
        args = ["synth", "dims.yaml", "-o", "out/inputs.jsonl", "--model", "openai/fake-writer", "--api-base", server.base_url]
        assert main(args) == 0
        calls = server.call_count
        assert calls == len(tuples)
        # the situation is data: escaped inside its tags
        assert "&lt;script&gt;" in json.dumps([r.messages for r in server.chat_requests])
        out = capsys.readouterr()
        rows = [json.loads(line) for line in (tmp_path / "out/inputs.jsonl").read_text().splitlines()]
        books = [t for t in tuples if t[0] == "book" and t[2] == "missing_info"]
        assert len(rows) == len(tuples) - (len(books) - 1)
        assert f"({len(books) - 1} near-duplicates dropped, 0 errors)" in out.out
        assert rows[0]["id"] == "synth-0001" and set(rows[0]["metadata"]) == {"feature", "persona", "scenario"}
        assert all(r["input"] for r in rows)
        # cached: a second run makes no call
        assert main(args) == 0
        assert server.call_count == calls


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dimensions: {feature: [a, b], persona: [x]}\nexlude: []\n", "dims.yaml:2: exlude: unknown key; did you mean 'exclude'?"),
        ("dimensions: {feature: [a, b]}\n", "dims.yaml:1: dimensions: a mapping of at least two dimensions"),
        ("dimensions: {feature: [a, b], persona: [x]}\nexclude: [{featur: a}]\n", "dims.yaml:2: exclude[0].featur: no dimension 'featur'; did you mean 'feature'?"),
        ("dimensions: {feature: [a, b], persona: [x]}\nexclude: [{feature: c}]\n", "dims.yaml:2: exclude[0].feature: feature has no value 'c'"),
    ],
)
def test_bad_dims_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dims.yaml").write_text(text)
    assert main(["synth", "dims.yaml", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"failmodes synth: {message}") and err.count("\n") == 1


def test_synth_without_a_model_says_how_to_give_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FAILMODES_JUDGE_MODEL", raising=False)
    monkeypatch.delenv("FAILMODES_SYNTH_MODEL", raising=False)
    (tmp_path / "dims.yaml").write_text("dimensions: {feature: [a, b], persona: [x, y]}\n")
    assert main(["synth", "dims.yaml"]) == 2
    assert "failmodes synth: no model: give --model" in capsys.readouterr().err
