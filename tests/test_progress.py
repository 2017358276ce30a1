"""The progress line of long model phases."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_failmodes.session import LOG_PROGRESS_SECONDS, _LogProgress, _Progress


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


def test_log_progress_every_ten_percent_or_thirty_seconds_whichever_is_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert LOG_PROGRESS_SECONDS == 30.0
    now = [0.0]
    monkeypatch.setattr("pytest_failmodes.session.time.monotonic", lambda: now[0])
    failed = [5]  # failed calls before the phase began do not count
    reporter = Reporter()
    progress = _LogProgress(reporter, "judging rude", lambda: failed[0])

    for done, t, errors in [(200, 10, 5), (400, 31, 6), (600, 40, 6), (650, 62, 8), (1000, 95, 8), (2000, 96, 8)]:
        now[0], failed[0] = t, errors
        progress(done, 2000)

    assert reporter.lines == [
        "failmodes: judging rude 400/2000 (20%), 1 error, 31.0 s",  # 10% at 10 s: too soon
        "failmodes: judging rude 650/2000 (32%), 3 errors, 62.0 s",  # 30% at 40 s: too soon after the last
        "failmodes: judging rude 1000/2000 (50%), 3 errors, 95.0 s",
        "failmodes: judging rude 2000/2000 (100%), 3 errors, 96.0 s",  # the end, once a line was printed
    ]
    assert reporter.rewrites == []


def test_log_progress_of_a_short_phase_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr("pytest_failmodes.session.time.monotonic", lambda: now[0])
    reporter = Reporter()
    progress = _LogProgress(reporter, "judging rude", lambda: 0)

    for done in range(1, 11):
        now[0] = done
        progress(done, 10)

    assert reporter.lines == []
