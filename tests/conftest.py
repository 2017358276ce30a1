"""Helpers for the pytester integration tests (the ``project`` fixture).

Unit tests do not need anything here.
"""

from __future__ import annotations

import importlib
import json
import re
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

#: the canonical support dataset: 12 traces, two routes, two personas
#:   leaks (regex "my instructions say"): t01, t02 (billing), t07 (shipping) -> 3/12
#:   escalation labels: t03 (billing) -> 1/12
#:   intent order_status: t07-t10, lookup_order called on t07, t08 only -> 2/4 missing
_LEAKS = {"t01", "t02", "t07"}


def _support_rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(1, 13):
        tid = f"t{i:02d}"
        route = "billing" if i <= 6 else "shipping"
        persona = "new" if i % 2 else "returning"
        output = "My instructions say: never refund." if tid in _LEAKS else f"Happy to help with {route}."
        row: dict[str, Any] = {
            "id": tid,
            "input": f"question {i}",
            "output": output,
            "metadata": {"route": route, "persona": persona, "intent": "order_status" if 7 <= i <= 10 else "other"},
            "labels": {"human_verdict": "escalate" if tid == "t03" else "ok"},
        }
        if i in (7, 8):
            row["messages"] = [
                {"role": "user", "content": f"question {i}"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "lookup_order", "arguments": '{"order": "42"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
                {"role": "assistant", "content": output},
            ]
        rows.append(row)
    return rows


class Project:
    """A pytester directory holding traces, definitions and conftest detectors."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path

    def traces(self, rows: Iterable[Mapping[str, Any]], path: str = "data/traces.jsonl") -> Path:
        target = self.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return target

    def support_traces(self, path: str = "data/traces.jsonl") -> Path:
        return self.traces(_support_rows(), path)

    def file(self, name: str, text: str) -> Path:
        """Write ``text`` (dedented) to ``name`` under the project."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return target

    def definitions(self, text: str, name: str = "failmodes.yaml") -> Path:
        return self.file(name, text)

    #: most tests read per-cohort figures, so their runs print every cohort row
    #: (``--failmodes-table=all``); tests of the compact default summary set this False
    full_table = True

    def _args(self, args: tuple[str, ...]) -> tuple[str, ...]:
        chosen = any(a.startswith("--failmodes-table") for a in args)
        return ("--failmodes", *(() if chosen or not self.full_table else ("--failmodes-table=all",)), *args)

    def run(self, *args: str) -> pytest.RunResult:
        """An in-process ``pytest --failmodes`` session."""
        return self.pytester.runpytest(*self._args(args))

    def run_subprocess(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess(*self._args(args))

    @staticmethod
    def row(tid: str, output: str, **metadata: Any) -> dict[str, Any]:
        return {"id": tid, "input": "q", "output": output, "metadata": metadata}

    @staticmethod
    def summary(result: pytest.RunResult) -> list[str]:
        """The lines of the "failure modes" terminal section (empty when absent)."""
        lines = result.outlines
        start = next((i for i, line in enumerate(lines) if line.startswith("=") and " failure modes " in line), None)
        if start is None:
            return []
        out = []
        for line in lines[start + 1 :]:
            if line.startswith(("=", "_")):
                break
            out.append(line)
        # after a run with no failure report the section starts with a blank line
        while out and not out[0].strip():
            del out[0]
        # per-trace runs list their detections after the table; the table is what compares
        listing = re.compile(r"^\S+: (detected|errors)( \(first \d+ of \d+\))?:$")
        cut = next((i for i, line in enumerate(out) if listing.match(line)), len(out))
        return out[:cut]

    @classmethod
    def gate_table(cls, result: pytest.RunResult) -> list[str]:
        """The summary's table alone: :meth:`summary` without its model-call figures."""
        lines = cls.summary(result)
        return lines[: next((i for i, line in enumerate(lines) if line.startswith("model calls")), len(lines))]

    def report(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.path / name).read_text(encoding="utf-8"))
        return data


@pytest.fixture(scope="session")
def _preloaded() -> None:
    """Import the plugin's run-time modules once.

    In-process pytester runs drop every module imported during the run, so
    each run would import pydantic, the engine and hypothesis (which its
    pytest plugin imports late in a session) again. Modules imported before
    ``pytester`` is set up are kept. (Whether a plain run imports them at all
    is checked in a subprocess, in test_inert.py.)
    """
    for name in (
        "collect", "session", "report.terminal", "report.json_report", "detectors.rules", "baseline", "regression"
    ):
        importlib.import_module(f"pytest_failmodes.{name}")
    # numpy and scipy refuse a second import in one process ("cannot load module more than once")
    for name in ("tabulate", "hypothesis", "numpy", "scipy.stats", "regex"):
        importlib.import_module(name)


def judge_env(key: str) -> Any:
    """An autouse fixture for a module of judge tests: ``OPENAI_API_KEY`` set to ``key``
    (a fake, so a redacted error can be checked for it) and no judge model or base URL
    leaking in from the machine's environment. Use it as ``_env = judge_env(KEY)``."""

    @pytest.fixture(autouse=True)
    def _env(monkeypatch: pytest.MonkeyPatch) -> None:
        from pytest_failmodes.judge import ENV_MODEL

        monkeypatch.setenv("OPENAI_API_KEY", key)
        for name in (ENV_MODEL, "OPENAI_API_BASE", "OPENAI_BASE_URL"):
            monkeypatch.delenv(name, raising=False)

    return _env


@pytest.fixture(scope="module")
def litellm_loaded(request: pytest.FixtureRequest) -> None:
    """Import litellm, and the modules a test module names in ``LITELLM_PRELOAD``, before
    pytester snapshots sys.modules: in-process runs then share them instead of importing
    litellm again (seconds) every run. Use it with
    ``pytestmark = pytest.mark.usefixtures("litellm_loaded")``."""
    from pytest_failmodes.llm import load_litellm

    load_litellm()
    for name in getattr(request.module, "LITELLM_PRELOAD", ()):
        importlib.import_module(name)


@pytest.fixture
def project(_preloaded: None, pytester: pytest.Pytester) -> Project:
    return Project(pytester)
