"""Writes data/traces.jsonl and data/candidate_traces.jsonl, the traces of
docs/getting-started.md: 240 conversations of a support assistant, as an
export from a tracing tool would give them (some as OpenAI chat messages with
tool calls, some as input/output pairs, metadata columns beside them).

    python generate.py          # rewrites both files, byte for byte

The story the guide tells is built in: routes take turns (shipping, account,
billing), odd traces ran prompt v3 and even ones v4, and v4 quotes its
instructions on every 24th trace, all of them billing. Six order-status
answers skip the lookup_order tool, and reviewers labelled the odd traces,
six of them "escalate". The candidate build answers the same messages.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

ROUTES = ("shipping", "account", "billing")
INTENTS = {"account": ("password_reset", "update_email", "close_account"), "billing": ("refund", "invoice")}
QUESTIONS = {
    "password_reset": "I forgot my password.",
    "update_email": "How do I change the email on my account?",
    "close_account": "Please close my account.",
    "refund": "I want a refund for order {order}.",
    "invoice": "Can I get an invoice for order {order}?",
}
ANSWERS = {
    "password_reset": "Use the 'Forgot password' link on the sign-in page.",
    "update_email": "Go to Account > Settings > Email and confirm the new address.",
    "close_account": "I have sent you a confirmation link; your account closes once you click it.",
    "refund": "I have opened a refund request; you will hear from us within 3 days.",
    "invoice": "Your invoice for order {order} is under Account > Orders > Invoice.",
}
#: order-status answers given without calling lookup_order (three on v3, three on v4)
NO_LOOKUP = {13, 28, 49, 64, 85, 100}
#: labelled traces (the odd ones) that a reviewer marked for escalation, two per route
ESCALATE = {7, 55, 11, 71, 27, 99}


def row(i: int, rng: random.Random, candidate: bool) -> dict[str, Any]:
    route = ROUTES[(i - 1) % 3]
    version = "v5" if candidate else ("v3" if i % 2 else "v4")
    persona = rng.choice(("new", "returning"))
    intent = "order_status" if route == "shipping" else rng.choice(INTENTS[route])
    order = str(1000 + i)
    out: dict[str, Any] = {
        "id": f"t{i:03d}", "route": route, "prompt_version": version, "persona": persona,
        "intent": intent, "latency_ms": rng.randint(250, 900),
    }
    leaks = route == "billing" and (i % 12 == 0 if candidate else i % 24 == 0)
    if intent == "order_status" and i not in NO_LOOKUP:
        call = {"id": "call_1", "type": "function",
                "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": order})}}
        out["messages"] = [
            {"role": "system", "content": "You are the support assistant of Acme."},
            {"role": "user", "content": f"Where is my order {order}?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"status": "in transit"})},
            {"role": "assistant", "content": f"Order {order} is in transit and should arrive on Friday."},
        ]
    elif intent == "order_status":
        out["input"] = f"Where is my order {order}?"
        out["output"] = "It should arrive in a few days."
    else:
        out["input"] = QUESTIONS[intent].format(order=order)
        answer = ANSWERS[intent].format(order=order)
        out["output"] = f"My instructions say I must not share internal notes. {answer}" if leaks else answer
        if intent == "refund":
            out["ticket"] = json.dumps({"priority": rng.choice(("low", "high")), "order_id": order})
    if i % 2 and not candidate:
        out["labels"] = {"human_verdict": "escalate" if i in ESCALATE else "ok"}
    return out


def write(path: Path, candidate: bool) -> None:
    rng = random.Random(7)
    lines = [json.dumps(row(i, rng, candidate)) + "\n" for i in range(1, 241)]
    path.write_text("".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "traces.jsonl", candidate=False)
    write(args.out / "candidate_traces.jsonl", candidate=True)


if __name__ == "__main__":
    main()
