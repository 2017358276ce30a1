"""Without ``--failmodes`` the plugin is inert: nothing collected, nothing heavy imported."""

from __future__ import annotations

import json
import sys

import pytest

HEAVY = [
    "pydantic",
    "yaml",
    "litellm",
    "tabulate",
    "jsonschema",
    "pytest_failmodes.engine",
    "pytest_failmodes.definitions",
    "pytest_failmodes.dataset",
    "pytest_failmodes.trace",
    "pytest_failmodes.session",
    "pytest_failmodes.collect",
    "pytest_failmodes.probes",
    "pytest_failmodes.strategies",
]

#: records which of HEAVY a session imported, and any attempt to open a network connection
PROBE = """
    import json
    import socket
    import sys

    HEAVY = %r
    attempts = []
    _connect = socket.socket.connect

    def connect(self, address):
        attempts.append(repr(address))
        return _connect(self, address)

    socket.socket.connect = connect

    def pytest_sessionfinish(session):
        with open("probe.json", "w") as fh:
            json.dump({"imported": [m for m in HEAVY if m in sys.modules], "connections": attempts}, fh)
""" % (HEAVY,)

RULES = """
    dataset: data/traces.jsonl
    cohorts: [route]
    failure_modes:
      - name: leaks
        rule: {regex: "(?i)my instructions say"}
        max_fail_rate: 0.5
      - name: escalation_missed
        label: {field: human_verdict, fail_values: [escalate]}
        max_fail_rate: 0.5
"""


def probe(project) -> dict[str, list[str]]:
    data: dict[str, list[str]] = json.loads((project.path / "probe.json").read_text(encoding="utf-8"))
    return data


def test_definition_files_are_not_collected_without_the_option(project) -> None:
    project.support_traces()
    project.definitions(RULES)
    project.definitions(RULES.replace("data/", "../data/"), "sub/more.failmodes.yaml")

    result = project.pytester.runpytest()

    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["collected 0 items", "*no tests ran*"])
    assert "failure modes" not in result.stdout.str()


def test_broken_definitions_are_not_read_without_the_option(project) -> None:
    project.definitions("dataset: [this is not: valid")
    project.file("test_plain.py", "def test_plain():\n    pass\n")

    result = project.pytester.runpytest("-v")

    assert result.ret == 0
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["test_plain.py::test_plain PASSED*"])
    assert "failmodes.yaml" not in result.stdout.str()


def test_importing_the_plugin_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    code = (
        "import sys, pytest_failmodes.plugin, pytest_failmodes\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )

    result = pytester.run(sys.executable, "-c", code)

    assert result.ret == 0
    assert result.outlines == ["[]"]


@pytest.mark.slow
def test_plain_pytest_imports_nothing_heavy_and_makes_no_connection(project) -> None:
    project.support_traces()
    project.definitions(RULES)
    project.pytester.makeconftest(PROBE)
    project.file("test_plain.py", "def test_plain():\n    pass\n")

    # langsmith (a test dependency: it made the trace-format fixtures) brings a pytest
    # plugin of its own that imports pydantic; this test measures ours alone
    result = project.pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:langsmith_plugin")

    assert result.ret == 0
    result.assert_outcomes(passed=1)
    assert probe(project) == {"imported": [], "connections": []}


@pytest.mark.slow
def test_rule_only_definitions_do_not_import_litellm(project) -> None:
    project.support_traces()
    project.definitions(RULES)
    project.pytester.makeconftest(PROBE)

    result = project.run_subprocess("-p", "no:cacheprovider")

    assert result.ret == 0
    result.assert_outcomes(passed=2)
    seen = probe(project)
    assert "pytest_failmodes.engine" in seen["imported"]  # the probe does see the plugin at work
    assert "litellm" not in seen["imported"]
    assert seen["connections"] == []
