"""Hypothesis is optional (the ``probes`` extra): without it the plugin, its
probes and plain pytest work, and ``pytest_failmodes.strategies`` says in one
line how to install it.

Each test runs Python in a subprocess whose ``sitecustomize``
(tests/data/no_hypothesis) makes Hypothesis look uninstalled: its modules cannot
be imported and its distribution (and so its pytest11 entry point) is not
listed, as in a virtualenv without it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SITE = Path(__file__).parent / "data" / "no_hypothesis"

INSTALL = "pip install 'pytest-failmodes[probes]'"


#: a conftest that records whether anything imported hypothesis
RECORD = """
import sys

def pytest_sessionfinish(session):
    with open("imported.txt", "w") as fh:
        fh.write(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("hypothesis", "_hypothesis_pytestplugin"))))
"""

PROBE = """
probes:
  - name: reply_stable
    target: bot
    inputs: ["I can't find my order 1234"]
    perturb: [typo, case]
    protect: ["order 1234"]
    same_when: {normalized: true}
    max_fail_rate: 0.0
"""


@pytest.fixture
def without_hypothesis(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(SITE))
    return pytester


def test_the_blocker_hides_hypothesis(without_hypothesis: pytest.Pytester) -> None:
    code = "import importlib.metadata as m\n" + (
        "print(any(d.metadata['Name'].lower() == 'hypothesis' for d in m.distributions()))\n"
        "import hypothesis\n"
    )

    result = without_hypothesis.run(sys.executable, "-c", code)

    assert result.ret == 1
    assert result.outlines == ["False"]
    result.stderr.fnmatch_lines(["ModuleNotFoundError: No module named 'hypothesis'"])


def test_strategies_say_how_to_install_hypothesis(without_hypothesis: pytest.Pytester) -> None:
    result = without_hypothesis.run(sys.executable, "-c", "import pytest_failmodes.strategies")

    assert result.ret == 1
    assert result.errlines[-1] == (
        f"ModuleNotFoundError: pytest_failmodes.strategies needs Hypothesis, which is not installed: {INSTALL}"
    )
    # raised from None: no second traceback of the original ImportError
    assert "During handling" not in result.stderr.str()


def test_a_test_module_using_the_strategies_fails_with_that_line(without_hypothesis: pytest.Pytester) -> None:
    without_hypothesis.makepyfile(
        test_mine="""
        from pytest_failmodes.strategies import variants

        def test_uses_variants():
            pass
        """
    )

    result = without_hypothesis.runpytest_subprocess("-p", "no:cacheprovider", "test_mine.py")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [f"E   ModuleNotFoundError: pytest_failmodes.strategies needs Hypothesis, which is not installed: {INSTALL}"]
    )


def test_plain_pytest_with_the_plugin_never_imports_hypothesis(without_hypothesis: pytest.Pytester) -> None:
    without_hypothesis.makeconftest(RECORD)
    without_hypothesis.makepyfile(test_plain="def test_plain():\n    pass\n")

    result = without_hypothesis.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:langsmith_plugin")

    assert result.ret == 0
    result.assert_outcomes(passed=1)
    assert (without_hypothesis.path / "imported.txt").read_text(encoding="utf-8") == ""


def test_probes_in_definition_files_run_without_hypothesis(without_hypothesis: pytest.Pytester) -> None:
    # the probes of definition files draw and shrink their variants themselves: they need no extra
    without_hypothesis.makeconftest(
        RECORD
        + """
import pytest

@pytest.fixture
def bot():
    return lambda text: "Order " + ("found" if "1234" in text else "unknown")
"""
    )
    without_hypothesis.makefile(".failmodes.yaml", bot=PROBE)

    result = without_hypothesis.runpytest_subprocess("--failmodes", "-p", "no:cacheprovider", "-p", "no:langsmith_plugin")

    assert result.ret == 0
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 failure mode in 1 file: all gates passed", "reply_stable  10  0.0%  *ok"])
    assert (without_hypothesis.path / "imported.txt").read_text(encoding="utf-8") == ""
