"""``failmodes axial --model``: propose, assign, cover, contrast, through litellm to the loopback server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakellm import FakeLLM, fakellm_server

from pytest_failmodes.cli import main

MODEL = "openai/fake-axial"
NOTES = [
    ("a1", "replied in English to a Spanish question"),
    ("a2", "English answer, the user wrote Spanish"),
    ("b1", "promised a refund without checking the policy"),
    ("b2", "refund promised before any policy check"),
    ("c1", "odd formatting glitch"),
]


def _user(request: dict[str, Any]) -> str:
    return str(request["messages"][1]["content"])


def responder(request: dict[str, Any]) -> str:
    prompt = _user(request)
    if prompt.startswith("Here are open notes"):
        return json.dumps({"modes": [
            {"name": "wrong_language", "definition": "FAIL when the reply is not in the user's language."},
            {"name": "refund_without_policy", "definition": "FAIL when a refund is promised without a policy check."},
            {"name": "anything_wrong", "definition": "FAIL when language or refund goes wrong."},
        ]})
    if prompt.startswith("Failure mode "):
        name = prompt.split(":", 1)[0].removeprefix("Failure mode ")
        note = prompt.split("<note>", 1)[1].split("</note>", 1)[0].lower()
        hit = {"wrong_language": "english" in note, "refund_without_policy": "refund" in note,
               "anything_wrong": "english" in note or "refund" in note}[name]
        return json.dumps({"match": hit})
    if prompt.startswith("These failure modes"):
        return json.dumps({"names": {"wrong_language": "english_reply_to_spanish", "refund_without_policy": "refund_before_policy_check",
                                     "anything_wrong": "language_or_refund"}})
    return "?"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-axial")


@pytest.fixture
def server() -> Iterator[FakeLLM]:
    with fakellm_server(responder=responder) as srv:
        yield srv


def _notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(json.dumps({"trace_id": t, "verdict": "fail", "note": n}) + "\n" for t, n in NOTES))
    return path


def test_propose_assign_cover_contrast(server: FakeLLM, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = _notes(tmp_path)
    out = tmp_path / "draft.yaml"
    args = ["axial", str(notes), "-o", str(out), "--model", MODEL, "--api-base", server.base_url,
            "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "a.json")]
    assert main(args) == 0
    data = json.loads((tmp_path / "a.json").read_text())
    modes = {m["name"]: m["trace_ids"] for m in data["modes"]}
    # the cover runs on the specific candidates; the generic one is kept after them, flagged
    assert modes == {"english_reply_to_spanish": ["a1", "a2"], "refund_before_policy_check": ["b1", "b2"],
                     "language_or_refund": ["a1", "a2", "b1", "b2"]}
    flags = {m["name"]: m["flags"] for m in data["modes"]}
    assert flags["language_or_refund"] == ["too generic: matches 80% of fail notes (>= 75%)"]
    assert flags["english_reply_to_spanish"] == []
    assert [n["trace_id"] for n in data["uncovered"]] == ["c1"]
    assert "3 candidates proposed in 1 batch(es)" in data["detail"]
    calls = server.call_count
    assert calls == 1 + 3 * 5 + 1  # propose, assign each note x candidate, contrast
    text = out.read_text()
    assert text.startswith("# DRAFT failure modes") and "engine: model openai/fake-axial" in text
    # the answers are cached: a second run makes no call and writes the same draft
    first = out.read_bytes()
    assert main(args) == 0
    assert server.call_count == calls and out.read_bytes() == first


def test_malformed_reply_is_an_error_not_a_missing_mode(server: FakeLLM, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server.script("here are some modes: language, refunds", "still not json")
    notes = _notes(tmp_path)
    out = tmp_path / "draft.yaml"
    code = main(["axial", str(notes), "-o", str(out), "--model", MODEL, "--api-base", server.base_url, "--cache-dir", str(tmp_path / "c")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"failmodes axial: {notes}: --model: openai/fake-axial: ")
    assert "unusable reply to the propose step after one repair request (it is not valid JSON)" in err
    assert not out.exists()
