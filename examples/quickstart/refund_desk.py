"""Harbor Goods' refund desk: the code that decides a refund request.

The assistant's LLM writes the reply; this code makes the decision first, so
the decision must not depend on how a customer happens to type: "Refund" or
"refund", "won't" or "will not", one space or two.

``decide(message)`` returns the decision line the reply is built around:
``REFUND APPROVED (...)``, ``REFUND NEEDS REVIEW`` or ``NO REFUND REQUESTED``.

Two builds are here. ``current`` is what runs in production. ``candidate``
is the pull request under review: it swaps the regular expressions for a
faster plain keyword lookup, and with it the decision starts depending on
capitalisation, contractions and spacing. The consistency probe in
refund_desk.failmodes.yaml catches that (``make demo``, step 3).
"""

from __future__ import annotations

import re

ORDER = re.compile(r"\bHG-\d{6}\b")

# current build: normalise the message, then match
ASKS = re.compile(r"\b(refund|money back|return it)\b")
DEFECTIVE = re.compile(r"\b(broken|crack|stopped working|will not switch on|missing parts|damaged)\b")
NOT_AS_DESCRIBED = re.compile(r"\b(looks nothing like|not like in the photo)")
CONTRACTIONS = {"won't": "will not", "wont": "will not", "isn't": "is not", "isnt": "is not", "can't": "can not", "cant": "can not"}

# candidate build: keywords looked up as typed
ASK_WORDS = ("refund", "money back", "return it")
DEFECT_WORDS = ("broken", "crack", "stopped working", "won't switch on", "missing parts", "damaged")
DESCRIBED_WORDS = ("looks nothing like", "not like in the photo")


def _normalise(message: str) -> str:
    text = " ".join(message.lower().split())
    for short, long in CONTRACTIONS.items():
        text = re.sub(rf"\b{re.escape(short)}(?!\w)", long, text)
    return text


def _reply(message: str, decision: str) -> str:
    order = ORDER.search(message)
    about = f" Order {order.group()}." if order else ""
    return f"{decision}.{about}"


def decide_current(message: str) -> str:
    text = _normalise(message)
    if not ASKS.search(text):
        return _reply(message, "NO REFUND REQUESTED")
    if DEFECTIVE.search(text):
        return _reply(message, "REFUND APPROVED (defective)")
    if NOT_AS_DESCRIBED.search(text):
        return _reply(message, "REFUND APPROVED (not as described)")
    return _reply(message, "REFUND NEEDS REVIEW")


def decide_candidate(message: str) -> str:
    if not any(word in message for word in ASK_WORDS):
        return _reply(message, "NO REFUND REQUESTED")
    if any(word in message for word in DEFECT_WORDS):
        return _reply(message, "REFUND APPROVED (defective)")
    if any(word in message for word in DESCRIBED_WORDS):
        return _reply(message, "REFUND APPROVED (not as described)")
    return _reply(message, "REFUND NEEDS REVIEW")


BUILDS = {"current": decide_current, "candidate": decide_candidate}
