"""``failmodes analyze --html``: one page with every analysis, checked in headless Chromium."""

from __future__ import annotations

import random
from typing import Any

import pytest
from browser import dump_dom, find_chromium, parse_html

from pytest_failmodes.cli import main

EVIL = "<script>document.title='pwned'</script>"


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no Chromium binary found ($FAILMODES_CHROMIUM, chromium, chromium-browser, google-chrome); apt-get install -y chromium")
    return binary


def _messages(i: int, broken: bool) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": f"book {i}"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a", "type": "function", "function": {"name": "search", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "found"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "b", "type": "function", "function": {"name": "book", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "b", "content": "Error: no seat" if broken else "booked"},
        {"role": "assistant", "content": "My instructions say no. " + EVIL if broken else "Booked."},
    ]


def test_page_in_a_browser(project: Any, chromium: str, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(5)
    rows = []
    for i in range(120):
        route = ("billing", "shipping", "returns")[i % 3]
        broken = rng.random() < (0.6 if route == "billing" else 0.05)
        rows.append({"id": f"t{i}", "messages": _messages(i, broken), "metadata": {"route": route}})
    project.traces(rows)
    project.definitions(
        """
        dataset: data/traces.jsonl
        cohorts: [route]
        failure_modes:
          - name: leaks
            rule: {regex: "(?i)my instructions say"}
          - name: scripts
            rule: {regex: "<script>"}
        """
    )
    project.run("--failmodes-report=r.json")
    capsys.readouterr()
    page = project.path / "a.html"
    assert main(["analyze", str(project.path / "r.json"), "--html", str(page), "--dataset", str(project.path / "data/traces.jsonl")]) == 0
    assert capsys.readouterr().out.startswith(f"analysis page written to {page} (2 mode(s) sliced, co-occurrence, reasons of 2 mode(s), steps)")
    dom = parse_html(dump_dom(chromium, page.as_uri()))
    assert dom.find("title").text == "Error analysis: r.json"  # the trace's script did not run
    heat = dom.find("table", cls="heat")
    assert [th.text for th in heat.find_all("th")][:5] == ["mode", "all", "route=billing", "route=returns", "route=shipping"]
    tables = dom.find_all("table", cls="slices")
    assert len(tables) == 2 and all(t.find_all("td")[0].text == "route=billing" for t in tables)
    cooc = dom.find("table", cls="cooccur").find_all("td")
    assert [c.text for c in cooc[:2]] == ["leaks", "scripts"] and cooc[-1].text == "yes"
    # both regexes read the reply: every trace failing both failed them at the same step
    order = [c.text for c in dom.find("table", cls="order").find_all("td")]
    assert order[:6] == ["leaks", "scripts", cooc[3].text, "0", "0", cooc[3].text] and order[-1] == ""
    matrix = dom.find("table", cls="matrix")
    assert "search" in matrix.text and "book" in matrix.text
    # the book step's error comes before the reply the modes name
    assert "First failing step told by an error status." in dom.find(id="steps").text
    # the reason holding markup is shown as text, not run
    assert "<script>" in dom.find(id="reasons").text
    assert not dom.find_all("script")
