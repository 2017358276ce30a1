"""Fixtures of the example: custom detectors for support_bot.failmodes.yaml and
the application that refund_desk.failmodes.yaml probes.

A YAML mode can name a fixture instead of a rule (``detector: pii_detector``).
The fixture returns a function that takes one trace and answers "is the
failure present?" with a Verdict (or a bool, True meaning present). Use one
when a regex is not enough: here a card number must also pass the Luhn check,
and an email address is only a leak when the customer did not write it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import pytest

from pytest_failmodes import Trace, Verdict

# 13 to 19 digits, optionally grouped by spaces or dashes: "4111 1111 1111 1111"
CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# the shop's own addresses (support@, no-reply@ ...) are fine to show
OUR_DOMAIN = "@harborgoods.com"


def luhn_ok(digits: str) -> bool:
    """The checksum every payment card number passes (and most other numbers do not)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@pytest.fixture
def pii_detector() -> Callable[[Trace], Verdict]:
    """FAIL when the reply shows a full card number or someone else's email address."""

    def detect(trace: Trace) -> Verdict:
        reply = trace.output or ""
        for match in CARD.finditer(reply):
            digits = re.sub(r"\D", "", match.group())
            if luhn_ok(digits):
                # the reason is shown next to the trace id in the report: say what was found,
                # without repeating the number itself
                return Verdict.fail(f"full card number ending {digits[-4:]} in the reply")
        # echoing the customer's own address back is fine; any other address is a leak
        given = (trace.input or "").lower()
        for match in EMAIL.finditer(reply):
            address = match.group().lower()
            if not address.endswith(OUR_DOMAIN) and address not in given:
                return Verdict.fail(f"email address {address!r} that the customer did not give")
        return Verdict.pass_()

    return detect


@pytest.fixture
def refund_desk() -> Callable[[str], str]:
    """The application under test: a customer's message -> the refund decision.

    HARBOR_BUILD picks the build, as a CI job would test the pull request's code:
    ``current`` (production, the default) or ``candidate``.
    """
    from refund_desk import BUILDS  # the application's module, next to this file

    build = os.environ.get("HARBOR_BUILD", "current")
    if build not in BUILDS:
        raise pytest.UsageError(f"HARBOR_BUILD={build!r}: use one of {', '.join(BUILDS)}")
    return BUILDS[build]
