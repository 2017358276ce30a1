"""The progress line of long model phases."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_failmodes.session import _Progress


class Reporter:
    def __init__(self) -> None:
        self.rewrites: list[str] = []
        self.lines: list[str] = []

    def rewrite(self, line: str, **markup: Any) -> None:
        self.rewrites.append(line)

    def write_line(self, line: str) -> None:
        self.lines.append(line)


def test_progress_shows_done_total_rate_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 102.0, 102.1, 104.0])
    monkeypatch.setattr("pytest_failmodes.session.time.monotonic", lambda: next(clock))
    reporter = Reporter()
    progress = _Progress(reporter, "judging rude")  # starts at t=100

    progress(10, 40)  # t=102: 5/s, 30 left -> 6 s
    progress(11, 40)  # t=102.1: under 0.5 s since the last line: not shown
    progress(40, 40)  # t=104: done, always shown, then a newline

    assert reporter.rewrites == [
        "failmodes: judging rude 10/40 (5.0/s, ETA 6s)",
        "failmodes: judging rude 40/40 (10.0/s, ETA 0s)",
    ]
    assert reporter.lines == [""]
