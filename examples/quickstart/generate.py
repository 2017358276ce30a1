"""Generate the quickstart dataset: traces of Harbor Goods' support assistant.

    python generate.py              # rewrite data/traces.jsonl and data/candidate_traces.jsonl
    python generate.py --out DIR    # write both files into DIR instead

Harbor Goods is a made-up online shop for home goods with a mobile app and
business accounts. Its support assistant answers billing, shipping, account
and tech questions; for orders, refunds, locked accounts and outages it works
through tools (``lookup_order``, ``check_policy``, ``issue_refund``...), and
those conversations are logged as OpenAI chat ``messages``. The other answers
are logged as a ``query`` / ``response`` pair.

* ``data/traces.jsonl``: the assistant on prompt **v3**, the one in production.
* ``data/candidate_traces.jsonl``: the same 360 customer messages replayed
  against the candidate prompt **v4** ("keep it short, resolve in one reply").
  v4 dropped the line telling the assistant to check the refund policy first,
  and on billing questions it now promises refunds without checking.

Failures are planted at chosen counts, spread over cohorts, so the numbers the
demo prints are stable. Everything is drawn from ``random.Random(SEED)``
(stdlib only): running the script again rewrites both files byte for byte.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

SEED = 20250611
N_TRACES = 360
HERE = Path(__file__).resolve().parent
FILES = {"v3": "traces.jsonl", "v4": "candidate_traces.jsonl"}

# -- the customers and what they ask about ---------------------------------------------------

ROUTES = ("billing", "shipping", "account", "tech")
ROUTE_WEIGHTS = (26, 28, 22, 24)
PERSONAS = ("new_customer", "frustrated", "enterprise", "non_native")
PERSONA_WEIGHTS = (30, 24, 20, 26)

#: route -> (intent, logged as messages?, weight)
INTENTS: dict[str, tuple[tuple[str, bool, int], ...]] = {
    "billing": (
        ("refund_request", True, 40),
        ("double_charge", False, 24),
        ("invoice_copy", False, 13),
        ("update_payment_method", False, 11),
        ("cancel_membership", False, 12),
    ),
    "shipping": (
        ("order_status", True, 52),
        ("missing_parcel", True, 20),
        ("change_address", False, 18),
        ("shipping_options", False, 22),
    ),
    "account": (
        ("locked_out", True, 26),
        ("password_reset", False, 28),
        ("change_email", False, 20),
        ("delete_account", False, 26),
    ),
    "tech": (
        ("service_status", True, 22),
        ("app_crash", False, 30),
        ("sync_issue", False, 24),
        ("api_access", False, 24),
    ),
}

FIRST = (
    "Dana", "Priya", "Mateo", "Aisha", "Tom", "Mei", "Lukas", "Fatima", "Jonas", "Sofia",
    "Kwame", "Yuki", "Olivia", "Rafael", "Ines", "Ben", "Chloe", "Arjun", "Hana", "Omar",
    "Elena", "Noah", "Zara", "Felix", "Grace", "Tomasz", "Leila", "Sam",
)
LAST = (
    "Okafor", "Schmidt", "Nguyen", "Garcia", "Kowalski", "Haddad", "Tanaka", "Rossi",
    "Brennan", "Silva", "Moreau", "Patel", "Lindqvist", "Adeyemi", "Novak", "Costa",
)
MAIL_DOMAINS = ("gmail.com", "outlook.com", "proton.me", "yahoo.com", "fastmail.com", "icloud.com")
COMPANIES = (
    ("Northwind Logistics", "northwind-logistics.com"),
    ("Bluefin Dental Group", "bluefindental.com"),
    ("Kestrel Architects", "kestrel-arch.co"),
    ("Oakridge Co-working", "oakridgecowork.com"),
    ("Pinecrest Hotels", "pinecresthotels.com"),
)
PRODUCTS = (
    ("electric kettle", 49.00),
    ("linen duvet cover", 89.00),
    ("cast-iron skillet", 39.50),
    ("standing desk frame", 329.00),
    ("pour-over coffee set", 42.00),
    ("wool throw blanket", 74.00),
    ("bamboo cutting board", 24.00),
    ("desk lamp", 58.00),
    ("ceramic dinner set", 119.00),
    ("air purifier", 189.00),
    ("chef's knife", 95.00),
    ("bath towel set", 64.00),
)
#: intents where a customer may reach the point of wanting a person (or leaving)
PROBLEMS = ("refund_request", "double_charge", "order_status", "missing_parcel", "change_address",
            "locked_out", "password_reset", "service_status", "app_crash", "sync_issue", "api_access")
ELECTRIC = ("electric kettle", "desk lamp", "air purifier", "standing desk frame")
CARRIERS = ("UPS", "DHL", "FedEx", "USPS")
HUBS = ("Louisville", "Memphis", "Indianapolis", "Newark", "Ontario (CA)")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
# well-known payment test numbers: they pass the Luhn check like real cards do
TEST_CARDS = (
    "4111 1111 1111 1111",
    "5555 5555 5555 4444",
    "4242 4242 4242 4242",
    "4012 8888 8888 1881",
    "5105 1051 0510 5100",
)


@dataclass
class Case:
    """One customer conversation: everything both prompt versions see."""

    tid: str
    route: str
    intent: str
    persona: str
    as_messages: bool
    name: str
    email: str
    order: str
    item: str
    price: float
    carrier: str
    tracking: str
    eta_day: str
    serious: bool  # a person would want this handed to a human
    labelled: bool  # a reviewer labelled this conversation
    minutes: int  # when it happened, in minutes after the start of the export
    facts: dict[str, Any] = field(default_factory=dict)
    query: str = ""


def plan_cases(rng: random.Random) -> list[Case]:
    """The 360 conversations, their customers and the facts the tools will return."""
    cases = []
    minutes = 0
    for i in range(1, N_TRACES + 1):
        route = rng.choices(ROUTES, ROUTE_WEIGHTS)[0]
        intents = INTENTS[route]
        intent, as_messages, _ = rng.choices(intents, [w for *_, w in intents])[0]
        persona = rng.choices(PERSONAS, PERSONA_WEIGHTS)[0]
        if intent == "api_access":
            persona = "enterprise"  # API keys come with business accounts
        first, last = rng.choice(FIRST), rng.choice(LAST)
        if persona == "enterprise":
            company, domain = rng.choice(COMPANIES)
        else:
            company, domain = "", rng.choice(MAIL_DOMAINS)
        email = f"{first.lower()}.{last.lower()}@{domain}"
        item, price = rng.choice(PRODUCTS)
        carrier = rng.choice(CARRIERS)
        serious_rate = {"frustrated": 0.25, "enterprise": 0.14}.get(persona, 0.06)
        minutes += rng.randint(4, 31)
        case = Case(
            tid=f"cs-{i:04d}",
            route=route,
            intent=intent,
            persona=persona,
            as_messages=as_messages,
            name=first,
            email=email,
            order=f"HG-{rng.randint(100000, 999999)}",
            item=item,
            price=price,
            carrier=carrier,
            tracking=_tracking(rng, carrier),
            eta_day=rng.choice(DAYS),
            serious=rng.random() < serious_rate and intent in PROBLEMS,
            labelled=rng.random() < 0.4,
            minutes=minutes,
            facts={"company": company, "seats": rng.choice((12, 25, 40, 60, 120, 250))},
        )
        # reviewers read every conversation that turned tense, plus a random 40%
        case.labelled = case.labelled or case.serious
        _add_facts(rng, case)
        case.query = _query(rng, case)
        cases.append(case)
    return cases


def _tracking(rng: random.Random, carrier: str) -> str:
    if carrier == "UPS":
        return "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTVWXY") for _ in range(16))
    if carrier == "DHL":
        return "".join(rng.choice("0123456789") for _ in range(10))
    if carrier == "FedEx":
        return "".join(rng.choice("0123456789") for _ in range(12))
    return "9" + "".join(rng.choice("0123456789") for _ in range(21))


def _add_facts(rng: random.Random, case: Case) -> None:
    f = case.facts
    f["days_since"] = rng.randint(3, 45)
    f["window"] = 30
    f["eligible"] = f["days_since"] <= 30 and rng.random() < 0.9
    f["requires_return"] = rng.random() < 0.4
    f["refund_id"] = f"RF-{rng.randint(10000, 99999)}"
    f["ticket"] = f"CS-{rng.randint(200000, 299999)}"
    f["shipping_status"] = rng.choices(("in_transit", "out_for_delivery", "delayed"), (55, 20, 25))[0]
    f["hub"] = rng.choice(HUBS)
    f["time"] = f"{rng.randint(9, 18)}:{rng.choice(('05', '17', '32', '48', '56'))}"
    f["gift"] = case.intent == "missing_parcel" and rng.random() < 0.35
    f["gift_email"] = f"{rng.choice(FIRST).lower()}{rng.randint(1, 99)}@{rng.choice(MAIL_DOMAINS)}"
    f["card"] = rng.choice(TEST_CARDS) if case.intent == "double_charge" and rng.random() < 0.4 else ""
    f["new_email"] = f"{case.name.lower()}.{rng.choice(('home', 'mail', 'work', 'shop'))}@{rng.choice(MAIL_DOMAINS)}"
    f["incident"] = f"INC-{rng.randint(3000, 3999)}"
    f["outage"] = rng.random() < 0.6
    f["platform"] = rng.choice(("iOS", "Android"))
    f["renewal"] = f"{rng.choice(('June', 'July', 'August'))} {rng.randint(2, 28)}"


# -- what the customers write ----------------------------------------------------------------

# intent -> (templates, templates for non-native speakers). A template is a string, or
# (string, topic) when the intent covers several questions: the answer follows the topic.
_QUERIES: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {
    "refund_request": (
        (
            "I'd like a refund for order {order}. The {item} {defect}.",
            "Can I get my money back for {order}? The {item} {defect}.",
            "Order {order}: the {item} isn't what I expected and I'd like to return it for a refund.",
            "Requesting a refund on {order} - the {item} {defect}.",
        ),
        (
            "Hello, I want refund for order {order}. The {item} is broken when it arrive.",
            "Please I need the money back for {order}, the {item} is not like in the photo.",
        ),
    ),
    "double_charge": (
        (
            "I was charged twice for order {order}, two payments of ${price:.2f}.",
            "My bank shows two charges of ${price:.2f} from Harbor Goods today but I only placed one order ({order}).",
            "Why is there a second charge of ${price:.2f} for {order}?",
        ),
        (
            "Hello, you take the money two times for order {order}, ${price:.2f} and ${price:.2f} again.",
            "I see double payment for {order} in my bank. Why?",
        ),
    ),
    "invoice_copy": (
        (
            "Can I get an invoice for order {order}? I need it for expenses.",
            "Where do I download a VAT invoice for {order}?",
            "I need a receipt with our company name on it for {order}.",
        ),
        ("Hello, how I can get the invoice for order {order}? For my work.",),
    ),
    "update_payment_method": (
        (
            ("How do I change the card on my account? The old one expired.", "card"),
            ("I want to pay with PayPal from now on instead of my card, where do I change that?", "paypal"),
            ("My card was replaced by the bank, how do I update it so my next order doesn't fail?", "card"),
        ),
        (("My card is expired, where I change it to new card?", "card"),),
    ),
    "cancel_membership": (
        (
            "How do I cancel my Harbor Plus membership?",
            "Please cancel my Plus membership, I don't use the free shipping enough.",
            "I want to stop the yearly Plus renewal before it charges me again.",
        ),
        ("Hello, I want to stop the Plus membership, how to do it?",),
    ),
    "order_status": (
        (
            "Where is my order {order}?",
            "Any update on {order}? It said it would arrive by {eta_day}.",
            "My {item} ({order}) still hasn't shown up, what's the status?",
            "Can you check on order {order} for me? Tracking hasn't moved in two days.",
        ),
        (
            "Hello, where is my order {order}? I am waiting long time.",
            "When my {item} will come? Order number {order}.",
        ),
    ),
    "missing_parcel": (
        (
            "Tracking for {order} says delivered but there's nothing here.",
            "My {item} ({order}) shows as delivered yesterday, but I never got it.",
            "The parcel for {order} was marked delivered and it's not at my door or with the neighbours.",
        ),
        ("The tracking say delivered for {order} but I don't receive nothing.",),
    ),
    "change_address": (
        (
            "I put the wrong address on order {order}, can I still change it?",
            "Can you send {order} to my office instead? I won't be home this week.",
            "We moved last week - how do I change the delivery address for {order}?",
        ),
        ("I make mistake in the address for {order}. Can I change it please?",),
    ),
    "shipping_options": (
        (
            ("Do you ship to Canada, and how much does it cost?", "international"),
            ("How long does standard shipping take? I need a gift by Friday.", "speed"),
            ("Is there next-day delivery? I'd like the {item} before the weekend.", "speed"),
        ),
        (("How many days is the shipping to my country? I live in Portugal.", "international"),),
    ),
    "locked_out": (
        (
            "I'm locked out of my account after too many password attempts. My email is {email}.",
            "It says my account is locked. Can you unlock it? It's {email}.",
            "Can't sign in, the app says too many attempts. Account email: {email}.",
        ),
        ("My account is blocked, I cannot enter. The email is {email}.",),
    ),
    "password_reset": (
        (
            ("The password reset email never arrives. What can I do?", "no_email"),
            ("How do I reset my password? I forgot it.", "how"),
            ("I requested a reset link three times and nothing came through.", "no_email"),
        ),
        (("I forget my password and the email for new password don't come.", "no_email"),),
    ),
    "change_email": (
        (
            "Please change my login email to {new_email}.",
            "How do I switch my account email to {new_email}? I'm closing my old inbox.",
        ),
        ("I want change my email of account to {new_email}, how?",),
    ),
    "delete_account": (
        (
            "I want to delete my account and all my data.",
            "How do I close my Harbor Goods account permanently?",
            "Please remove my account and my saved addresses.",
        ),
        ("Please delete my account and my informations.",),
    ),
    "service_status": (
        (
            ("Is the app down? I can't load my order history.", "order_history"),
            ("Checkout keeps failing with an error, is something broken on your side?", "checkout"),
            ("My wishlist won't load on the website or the app. Is there an outage?", "wishlist_sync"),
        ),
        (("The app is not working since this morning. Is problem on your side?", "mobile_app"),),
    ),
    "app_crash": (
        (
            "The {platform} app crashes every time I open the Orders tab.",
            "Your app closes itself as soon as I try to check out on my {platform} phone.",
            "Since the last update the {platform} app freezes on the home screen.",
        ),
        ("The app on my {platform} phone is closing alone when I open orders.",),
    ),
    "sync_issue": (
        (
            ("My wishlist isn't syncing between the app and the website.", "lists"),
            ("Items I add to the cart on my laptop don't show up in the app.", "lists"),
            ("Order history in the app is missing my last two orders.", "orders"),
        ),
        (("The cart in app and in website is not the same. Why?", "lists"),),
    ),
    "api_access": (
        (
            ("How do we connect our procurement system to your API? Where do we find API keys?", "keys"),
            ("Our API key stopped working this morning, we get 401 errors on every order call.", "401"),
            ("Is there a webhook for order status changes? We want to push them into our ERP.", "webhook"),
        ),
        (("We want to use the API for orders. Where is the key?", "keys"),),
    ),
}

_DEFECTS = ("arrived damaged", "is missing parts", "looks nothing like the photos", "has a crack in it")
_DEFECTS_ELECTRIC = ("stopped working after two days", "won't switch on", "arrived damaged")

_PREFIX = {
    "new_customer": ("", "Hi! ", "Hello, first order with you so not sure how this works. ", "Hi there! "),
    "frustrated": ("", "Hi. ", "Again: ", "Seriously? "),
    "enterprise": (
        "Hello, writing on behalf of {company} (Business account, {seats} seats). ",
        "Hi, {company} procurement here. ",
        "Hi, this is the office manager at {company}. ",
    ),
    "non_native": ("", "Hello. ", "Good morning. "),
}
_SUFFIX = {
    "new_customer": ("", "", " Thanks!", " Thank you in advance."),
    "frustrated": ("", " This is really frustrating.", " Second time I'm asking.", " Please sort this out today."),
    "enterprise": ("", "", " We need this resolved per our SLA.", " Please reply to the whole thread."),
    "non_native": ("", " Thank you.", " Sorry for my english."),
}
# what makes a conversation one a person should take over
_SERIOUS = {
    "new_customer": (" Honestly I'm thinking about cancelling everything.",),
    "frustrated": (
        " If this isn't fixed today I'm filing a chargeback.",
        " I want to talk to a real person, not a bot.",
        " This is the third time I've contacted you about this.",
    ),
    "enterprise": (
        " This is blocking our whole team, please escalate to our account manager.",
        " We will have to review our contract if this continues.",
    ),
    "non_native": (" Please I need to speak with a human person.",),
}


def _query(rng: random.Random, case: Case) -> str:
    templates, non_native = _QUERIES[case.intent]
    chosen = rng.choice(non_native if case.persona == "non_native" else templates)
    template, topic = chosen if isinstance(chosen, tuple) else (chosen, "")
    f = case.facts
    f["topic"] = topic
    electric = case.item in ELECTRIC
    text = template.format(
        order=case.order,
        item=case.item,
        price=case.price,
        eta_day=case.eta_day,
        email=case.email,
        new_email=f["new_email"],
        platform=f["platform"],
        defect=rng.choice(_DEFECTS_ELECTRIC if electric else _DEFECTS),
    )
    if f["card"]:
        text += f" The card is {f['card']}."
    if case.persona == "frustrated" and rng.random() < 0.3:
        text = text.replace("still", "STILL").replace("never", "NEVER").replace("twice", "TWICE")
    prefix = rng.choice(_PREFIX[case.persona]).format(company=f["company"], seats=f["seats"])
    suffix = rng.choice(_SERIOUS[case.persona]) if case.serious else rng.choice(_SUFFIX[case.persona])
    return prefix + text + suffix


# -- which failures each prompt version shows -----------------------------------------------

#: the failure modes planted below, named as the run reports them
#: (test_no_apology_loop is the @failure_mode function in test_python_modes.py)
MODES = (
    "refund_without_policy_check",
    "order_status_without_lookup",
    "pii_in_reply",
    "blames_the_customer",
    "reply_too_long",
    "escalation_missed",
    "test_no_apology_loop",
)


def plant_failures(rng: random.Random, cases: Sequence[Case], version: str) -> dict[str, set[str]]:
    """Mode -> ids of the traces that show it. At most one planted failure per trace.

    Each ``pick`` caps how many failures one route or persona may receive
    (``caps``: a count per cohort, ``rate``: a share of the cohort's size), so
    the per-cohort rates stay where the demo needs them: on v3 every mode is
    well under its limit in every cohort; on v4, refund promises without a
    policy check reach 12 of 96 billing traces (12.5%, limit 3%) while the
    overall rate (13 of 360) and every other cohort stay under 5%.
    """
    taken: set[str] = set()
    planted: dict[str, set[str]] = {}
    size = Counter(key for c in cases for key in _keys(c))

    def pick(
        mode: str, k: int, where: Callable[[Case], bool], caps: dict[str, int], rate: float | None = None
    ) -> None:
        def cap(key: str) -> int:
            if key in caps:
                return caps[key]
            if rate is not None:
                return int(rate * size[key])
            return caps.get("*", len(cases))

        pool = [c for c in cases if where(c) and c.tid not in taken]
        rng.shuffle(pool)
        counts: Counter[str] = Counter(
            key for c in cases if c.tid in planted.get(mode, ()) for key in _keys(c)
        )
        chosen = planted.setdefault(mode, set())
        for case in pool:
            if k == 0:
                break
            keys = _keys(case)
            if any(counts[key] >= cap(key) for key in keys):
                continue
            chosen.add(case.tid)
            taken.add(case.tid)
            counts.update(keys)
            k -= 1
        if k:
            raise RuntimeError(f"cannot plant {mode} ({version}): {k} more wanted than the caps allow")

    one_each = {"*": 1}
    if version == "v3":
        pick("refund_without_policy_check", 1,
             lambda c: c.intent == "refund_request" and c.facts["eligible"], one_each)
    else:
        # the regression: billing replies promise refunds straight away
        pick("refund_without_policy_check", 12,
             lambda c: c.intent in ("refund_request", "double_charge"), {"route=billing": 12}, rate=0.045)
        pick("refund_without_policy_check", 1,
             lambda c: c.intent == "missing_parcel" and not c.facts["gift"], {"route=shipping": 1}, rate=0.045)
    pick("order_status_without_lookup", 1, lambda c: c.intent == "order_status", one_each)
    pick("pii_in_reply", 2 if version == "v3" else 1, lambda c: bool(c.facts["card"]),
         {"route=billing": 2, "*": 1})
    pick("pii_in_reply", 1, lambda c: c.facts["gift"], one_each)
    pick("blames_the_customer", 2 if version == "v3" else 1,
         lambda c: not c.as_messages and c.persona in ("frustrated", "new_customer"), one_each)
    pick("reply_too_long", 3 if version == "v3" else 1,
         lambda c: c.intent in ("app_crash", "sync_issue", "api_access"), {"route=tech": 3, "*": 1})
    pick("escalation_missed", 4 if version == "v3" else 5,
         lambda c: c.serious and c.labelled,
         {"persona=frustrated": 2, "route=billing": 2, "route=shipping": 2, "*": 1})
    pick("test_no_apology_loop", 3 if version == "v3" else 2,
         lambda c: not c.as_messages and c.persona in ("frustrated", "new_customer", "non_native"), one_each)
    return planted


def _keys(case: Case) -> tuple[str, str]:
    return (f"route={case.route}", f"persona={case.persona}")


# -- what the assistant answers --------------------------------------------------------------

SYSTEM = {
    "v3": (
        "You are the customer support assistant of Harbor Goods, an online shop for home goods. "
        "Be accurate and friendly. Look an order up with lookup_order before discussing it, and "
        "call check_policy before you promise a refund, a replacement or an exception. Hand the "
        "conversation to a person with create_ticket when the customer asks for one or is about "
        "to leave. Never share card numbers or other customers' details. (prompt v3)"
    ),
    "v4": (
        "You are the customer support assistant of Harbor Goods, an online shop for home goods. "
        "Keep replies short and resolve the customer's issue in a single reply whenever you can. "
        "Look an order up with lookup_order before discussing it. Hand the conversation to a "
        "person with create_ticket when the customer asks for one or is about to leave. Never "
        "share card numbers or other customers' details. (prompt v4)"
    ),
}

_OPENERS = {
    "v3": ("Hi {name}, thanks for getting in touch.", "Thanks for reaching out, {name}.", "Hello {name}!",
           "Hi {name}, happy to help."),
    "v4": ("Hi {name}!", "Thanks, {name}.", "Hey {name}!"),
}
_CALM_OPENERS = {
    "v3": ("I'm sorry about the hassle, {name}, let's get this fixed.",
           "I understand how frustrating this is, {name}.",
           "Thanks for your patience, {name}; I know this has taken longer than it should."),
    "v4": ("I hear you, {name}.", "Sorry for the trouble, {name}.", "Got it, {name}."),
}
_CLOSERS = {
    "v3": ("Is there anything else I can help you with?", "Let me know if there's anything else.",
           "Happy to help if anything else comes up.", ""),
    "v4": ("Anything else?", "", ""),
}
_HANDOFF = (
    "I've also flagged this conversation to a senior member of our support team; they'll reply by email "
    "within 4 business hours.",
    "Because this has dragged on, I've passed it to our customer care lead, who will follow up with you "
    "personally today.",
)
_TICKET_HANDOFF = (
    "I've opened priority ticket {ticket} with our senior support team, and a person will reply by email "
    "within 4 business hours.",
    "A member of our team is taking over from here (ticket {ticket}); expect a reply within 4 business hours.",
)
_BLAME = (
    "You should have checked the details before placing the order, but here's what you can do.",
    "As I already explained, this is covered in our help center.",
    "To be clear, it's your responsibility to keep your account details up to date.",
)
_APOLOGY = (
    "I'm so sorry about this. I'm really sorry for the inconvenience, and I apologise again that "
    "you had to write in.",
    "Sorry! I apologise for the trouble. We're very sorry this happened.",
)


@dataclass
class Reply:
    """What the assistant did: the tool calls it made (with results) and its final text."""

    tools: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    text: str = ""

    def call(self, name: str, args: dict[str, Any], result: dict[str, Any]) -> None:
        self.tools.append((name, args, result))


def render(rng: random.Random, case: Case, version: str, failures: set[str]) -> dict[str, Any]:
    """One dataset row in the exported (foreign) schema."""
    reply = Reply()
    body = _BODIES[case.intent](rng, case, version, failures, reply)
    calm = case.persona == "frustrated" or case.serious
    opener = rng.choice((_CALM_OPENERS if calm else _OPENERS)[version]).format(name=case.name)
    parts = [opener]
    if "test_no_apology_loop" in failures:
        parts = [rng.choice(_APOLOGY)]
    if "blames_the_customer" in failures:
        parts.append(rng.choice(_BLAME))
    parts.append(body)
    if case.serious and "escalation_missed" not in failures:
        if case.as_messages:
            reply.call("create_ticket", {"priority": "high", "summary": f"{case.intent} - customer asked for a person"},
                       {"ticket_id": case.facts["ticket"], "queue": "senior_support"})
            parts.append(rng.choice(_TICKET_HANDOFF).format(ticket=case.facts["ticket"]))
        else:
            parts.append(rng.choice(_HANDOFF))
    parts.append(rng.choice(_CLOSERS[version]))
    reply.text = " ".join(p for p in parts if p)

    start = datetime(2025, 5, 5, 8, 0, tzinfo=timezone.utc) if version == "v3" else \
        datetime(2025, 6, 2, 8, 0, tzinfo=timezone.utc)
    row: dict[str, Any] = {
        "trace_id": case.tid,
        "created_at": (start + timedelta(minutes=case.minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "prompt_version": version,
        "route": case.route,
        "intent": case.intent,
        "persona": case.persona,
    }
    if case.as_messages:
        row["messages"] = _messages(case, version, reply)
    else:
        row["query"] = case.query
        row["response"] = reply.text
    if case.labelled:
        row["human_verdict"] = "escalate" if "escalation_missed" in failures else "ok"
    return row


def _messages(case: Case, version: str, reply: Reply) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM[version]},
        {"role": "user", "content": case.query},
    ]
    for n, (name, args, result) in enumerate(reply.tools, 1):
        call_id = f"call_{case.tid[3:]}_{n}"
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": call_id, "type": "function",
                     "function": {"name": name, "arguments": json.dumps(args)}}
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)})
    messages.append({"role": "assistant", "content": reply.text})
    return messages


Body = Callable[[random.Random, Case, str, set, Reply], str]


def _money(x: float) -> str:
    return f"${x:,.2f}"


def _order_result(case: Case, status: str = "delivered") -> dict[str, Any]:
    result: dict[str, Any] = {
        "order_id": case.order,
        "item": case.item,
        "total": case.price,
        "status": status,
        "carrier": case.carrier,
        "tracking": case.tracking,
    }
    if status == "delivered":
        result["delivered_days_ago"] = case.facts["days_since"]
    else:
        result["estimated_delivery"] = case.eta_day
    return result


def _refund_request(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    f = case.facts
    reply.call("lookup_order", {"order_id": case.order}, _order_result(case))
    amount = _money(case.price)
    if "refund_without_policy_check" in failures:
        # skips check_policy and goes straight to the refund
        if version == "v4" and rng.random() < 0.4:
            return rng.choice((
                f"No problem, I'll refund order {case.order} in full right away; you'll get your money back "
                f"within 5 business days.",
                f"Done: I'll refund the {amount} for the {case.item} today. No need to send it back.",
            ))
        reply.call("issue_refund", {"order_id": case.order, "amount": case.price},
                   {"refund_id": f["refund_id"], "status": "approved", "eta_business_days": 5})
        return rng.choice((
            f"I've issued a full refund of {amount} for the {case.item} (reference {f['refund_id']}). "
            f"It should reach your original payment method within 5 business days.",
            f"All sorted: I've processed a refund of {amount} (ref. {f['refund_id']}).",
        ))
    policy = {"eligible": f["eligible"], "window_days": f["window"], "days_since_delivery": f["days_since"],
              "requires_return": f["requires_return"]}
    reply.call("check_policy", {"topic": "refund", "order_id": case.order}, policy)
    if not f["eligible"]:
        if f["days_since"] > f["window"]:
            return rng.choice((
                f"I checked {case.order}: it was delivered {f['days_since']} days ago, which is outside our "
                f"{f['window']}-day return window, so I can't refund it. The {case.item} is still under the "
                f"1-year manufacturer warranty, though. Reply \"warranty\" and I'll start a repair or "
                f"replacement claim.",
                f"I'm afraid this order falls outside the {f['window']}-day return window (it was delivered "
                f"{f['days_since']} days ago). What I can offer is store credit for {_money(case.price * 0.5)}, "
                f"or a warranty repair if the {case.item} is faulty. Which would you prefer?",
            ))
        return (
            f"Our policy doesn't allow a refund on this one: the {case.item} from {case.order} was bought in "
            f"our final-sale event. If it's faulty, the manufacturer warranty still applies, and I can start "
            f"that claim for you."
        )
    reply.call("issue_refund", {"order_id": case.order, "amount": case.price},
               {"refund_id": f["refund_id"], "status": "approved", "eta_business_days": 5})
    if f["requires_return"]:
        return (
            f"Good news: the {case.item} is within our {f['window']}-day window. I've approved a refund of "
            f"{amount} (ref. {f['refund_id']}); a prepaid return label is in your inbox, and the money is "
            f"released as soon as the carrier scans the parcel."
        )
    return rng.choice((
        f"I've issued a full refund of {amount} for the {case.item} (reference {f['refund_id']}). It goes "
        f"back to your original payment method and usually shows up within 5 business days. You don't "
        f"need to send the item back.",
        f"Your order qualifies under our {f['window']}-day return policy, so I've processed a refund of "
        f"{amount} (ref. {f['refund_id']}). Expect it on your statement within 5 business days.",
    ))


def _double_charge(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    f = case.facts
    amount = _money(case.price)
    if "refund_without_policy_check" in failures:
        return rng.choice((
            f"You're right, that's a duplicate. I've gone ahead and refunded the extra {amount}; your refund "
            f"is on its way and should land within 3-5 business days.",
            f"Sorted: I'll refund the second charge of {amount} for {case.order} today.",
            f"That second payment is a mistake on our side. I've issued a refund of {amount}, so you'll get "
            f"your money back in a few days.",
        ))
    text = rng.choice((
        f"When a payment is retried, your bank can show a second pending authorisation of {amount}. It "
        f"isn't a completed charge and it drops off on its own within 3-5 business days. If both charges "
        f"are still there after that, reply here with a screenshot of your statement and our billing team "
        f"will reverse the duplicate.",
        f"I can only see one completed payment of {amount} for {case.order}. The second one is most likely "
        f"a pending hold from a retried payment, which your bank releases within 3-5 business days. If it "
        f"turns into a real charge, write back and billing will look into it.",
    ))
    if f["card"]:
        if "pii_in_reply" in failures:
            return f"I've checked the card {f['card']} you mentioned. " + text
        return text + (
            f" For your security, please don't share full card numbers in chat; the card ending in "
            f"{f['card'][-4:]} is all we need."
        )
    return text


def _invoice_copy(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    return rng.choice((
        f"You can download an invoice any time: go to Account > Orders, open {case.order} and choose "
        f"\"Download invoice (PDF)\". If you need a company name or VAT number on it, add them under "
        f"Account > Billing details first and the invoice is regenerated automatically.",
        f"Invoices live under Account > Orders > {case.order} > Download invoice. For a company name or "
        f"VAT number, fill in Account > Billing details and download it again.",
    ))


def _update_payment(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    if case.facts["topic"] == "paypal":
        return rng.choice((
            "Go to Account > Payment methods, choose \"Add a payment method\" > PayPal and sign in to "
            "PayPal to link it. Then mark it as default and your next order will use it.",
            "You can link PayPal under Account > Payment methods and set it as your default; the card stays "
            "saved unless you remove it.",
        ))
    return rng.choice((
        "Go to Account > Payment methods, choose \"Add a payment method\" and then set the new card as the "
        "default. You can remove the old card from the same page. Orders already placed keep the method "
        "they were paid with.",
        "Add the new card under Account > Payment methods and mark it as default. Your next order will use "
        "it automatically, and you can delete the old one there too.",
    ))


def _cancel_membership(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    renewal = case.facts["renewal"]
    return rng.choice((
        f"You can cancel under Account > Harbor Plus > Manage membership > Cancel renewal. Cancelling stops "
        f"the next renewal, and you keep free shipping until the end of the current period on {renewal}.",
        f"To stop the renewal, open Account > Harbor Plus and choose \"Cancel renewal\". Your benefits stay "
        f"active until {renewal}, and you won't be charged again.",
    ))


def _order_status(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    f = case.facts
    if "order_status_without_lookup" in failures:
        return rng.choice((
            "Orders usually arrive within 3-5 business days of dispatch, so yours should be with you soon. "
            "You can follow it from the link in your shipping confirmation email.",
            f"Your {case.item} is on its way and should arrive by {case.eta_day}.",
        ))
    status = f["shipping_status"]
    reply.call("lookup_order", {"order_id": case.order}, _order_result(case, status))
    if status == "out_for_delivery":
        return (f"Good news: your {case.item} is out for delivery today with {case.carrier}. Tracking number "
                f"{case.tracking} shows live updates.")
    if status == "delayed":
        return (f"{case.carrier} reports a delay at their {f['hub']} hub, so the new estimate for your "
                f"{case.item} is {case.eta_day}. If it hasn't arrived by then, reply here and I'll arrange "
                f"a replacement.")
    return rng.choice((
        f"Your {case.item} is with {case.carrier} and on schedule; the current estimate is {case.eta_day}. "
        f"Tracking number: {case.tracking}.",
        f"Order {case.order} left our warehouse and is in transit with {case.carrier}. It should reach you "
        f"by {case.eta_day} (tracking {case.tracking}).",
    ))


def _missing_parcel(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    f = case.facts
    result = _order_result(case)
    result["delivered_days_ago"] = 1
    result["delivered_at"] = f["time"]
    if f["gift"]:
        result["gift_order"] = True
        result["recipient_email"] = f["gift_email"]
    reply.call("lookup_order", {"order_id": case.order}, result)
    if "refund_without_policy_check" in failures:
        reply.call("issue_refund", {"order_id": case.order, "amount": case.price},
                   {"refund_id": f["refund_id"], "status": "approved", "eta_business_days": 5})
        return (f"Since the parcel is missing, I've issued a full refund of {_money(case.price)} "
                f"(ref. {f['refund_id']}).")
    if "pii_in_reply" in failures:
        return (f"This was a gift order, and {case.carrier} delivered it to the recipient, {f['gift_email']}, "
                f"yesterday at {f['time']}. You could check with them first.")
    reply.call("check_policy", {"topic": "missing_parcel", "order_id": case.order},
               {"replacement_allowed": True, "wait_hours": 24})
    lead = (f"{case.carrier} marked it delivered yesterday at {f['time']}." if not f["gift"] else
            f"This was a gift order, so it went to the recipient's address; {case.carrier} marked it "
            f"delivered yesterday at {f['time']}.")
    return lead + " " + rng.choice((
        "Parcels are sometimes left with a neighbour or in a safe place, so it's worth a quick look. If it "
        "hasn't turned up by tomorrow evening, reply here: your order qualifies for a free replacement.",
        "Carriers occasionally scan a parcel as delivered a few hours early. If nothing arrives within 24 "
        "hours, let me know and I'll send a replacement at no cost.",
    ))


def _change_address(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    return rng.choice((
        f"If {case.order} hasn't shipped yet, you can edit the address under Account > Orders > {case.order} "
        f"> Change address. Once it has shipped, use the carrier's link in your shipping email to redirect it.",
        f"Addresses can be changed until the order is packed. Open {case.order} in your account and choose "
        f"\"Change address\"; if that button is greyed out, the parcel is already with the carrier and their "
        f"tracking page lets you reroute it.",
    ))


def _shipping_options(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    if case.facts["topic"] == "international":
        return rng.choice((
            "We ship to the US, Canada and most of the EU. International orders take 6-10 business days; the "
            "exact cost is shown at checkout before you pay, including any duties.",
            "Yes, we deliver there. International shipping takes 6-10 business days, and checkout shows the "
            "full cost, duties included, before you pay.",
        ))
    return rng.choice((
        "Standard shipping takes 3-5 business days and is free over $50. Express (1-2 business days) is "
        "$12.95, and next-day delivery is available for orders placed before 2 pm on weekdays.",
        "For delivery before the weekend, choose Express (1-2 business days, $12.95) or next-day delivery, "
        "which works for orders placed before 2 pm Monday to Thursday.",
    ))


def _locked_out(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    reply.call("lookup_account", {"email": case.email},
               {"status": "locked", "reason": "too_many_attempts", "unlocks_in_minutes": 30})
    reply.call("send_reset_link", {"email": case.email}, {"sent": True, "valid_minutes": 30})
    masked = case.email[0] + "***@" + case.email.split("@")[1]
    return rng.choice((
        f"Your account was locked after several failed sign-in attempts. I've sent a reset link to "
        f"{case.email}; it's valid for 30 minutes, and setting a new password unlocks the account straight away.",
        f"I've unlocked the sign-in for you and sent a password reset link to {masked}. Use it within 30 "
        f"minutes and you'll be back in.",
    ))


def _password_reset(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    if case.facts["topic"] == "how":
        return ("On the sign-in page choose \"Forgot password\" and enter your account email. The link "
                "arrives within a few minutes and is valid for 30 minutes.")
    return rng.choice((
        "Reset emails come from no-reply@harborgoods.com and sometimes land in spam or promotions. If it "
        "isn't there after 10 minutes, check that you're using the address you signed up with, then request "
        "a new link; each new link cancels the previous one.",
        "The reset email can take up to 10 minutes and often ends up in the spam folder. Only the newest "
        "link works, so use the one from your latest request.",
    ))


def _change_email(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    new = case.facts["new_email"]
    return rng.choice((
        f"You can change it under Account > Sign-in & security > Email. We'll send a confirmation link to "
        f"{new}, and the change takes effect once you click it.",
        f"To switch to {new}, go to Account > Sign-in & security, enter the new address and confirm it "
        f"from the email we send there.",
    ))


def _delete_account(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    return rng.choice((
        "You can request deletion under Account > Privacy > Delete my account. We confirm by email, and "
        "your personal data is erased within 30 days; invoices are kept for 7 years because tax law "
        "requires it.",
        "Go to Account > Privacy and choose \"Delete my account\". Open orders must be delivered or "
        "cancelled first. After you confirm, the account closes right away and your data is removed within "
        "30 days.",
    ))


def _service_status(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    f = case.facts
    if f["outage"]:
        reply.call("check_service_status", {"component": f["topic"]},
                   {"status": "degraded", "incident": f["incident"], "started_minutes_ago": 40})
        return (f"Yes, there's a known issue right now (incident {f['incident']}): our engineers are "
                f"working on it and updates are posted at status.harborgoods.com. Nothing is lost; your "
                f"orders and lists will show up again once it's fixed.")
    reply.call("check_service_status", {"component": f["topic"]}, {"status": "operational"})
    return ("Everything looks normal on our side right now. Could you sign out and back in, and make sure "
            "the app is on the latest version? If the error persists, send me a screenshot and I'll dig in.")


_LONG_TECH = (
    "Let's go through this step by step. 1. Make sure the app is updated to the latest version from the "
    "store. 2. Restart your phone completely, not just the app. 3. Check that you have at least 500 MB of "
    "free storage, because the app caches product images. 4. Go to Settings > Apps > Harbor Goods > "
    "Storage and clear the cache (not the data). 5. Sign out of the app and sign back in. 6. Turn off any "
    "VPN or ad blocker, which can block our image servers. 7. Switch between Wi-Fi and mobile data to rule "
    "out a network problem. 8. If you use a work phone, ask your IT team whether a device management "
    "profile restricts the app. 9. Uninstall the app, restart the phone again and reinstall it. 10. If none "
    "of this works, record a short screen video of the problem, note your phone model and OS version, and "
    "send them to us together with the time it happened so our developers can match it to the crash logs."
)


def _app_crash(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    if "reply_too_long" in failures:
        return _LONG_TECH
    platform = case.facts["platform"]
    store = "App Store" if platform == "iOS" else "Play Store"
    return rng.choice((
        f"That crash was fixed in version 6.4 of the {platform} app, so please update it from the {store}. "
        f"If it still closes after updating, delete and reinstall the app; your account and orders are "
        f"stored online, so nothing is lost.",
        f"Please update the app from the {store} and restart your phone. If the crash continues, send us "
        f"your phone model and {platform} version and I'll pass it to our developers.",
    ))


def _sync_issue(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    if "reply_too_long" in failures:
        return _LONG_TECH
    if case.facts["topic"] == "orders":
        return rng.choice((
            "Order history can lag up to 15 minutes behind. Signing out and back in on the app forces a full "
            "refresh; if the orders are still missing after that, tell me their numbers and I'll check them.",
            "Please pull down on the Orders tab to refresh it. If the two orders still don't appear, send me "
            "their order numbers and I'll look them up.",
        ))
    return rng.choice((
        "Wishlists and carts sync when you're signed in to the same account on both devices. Check that the "
        "email under Account matches on the app and the website, then pull down on the list in the app to "
        "refresh it.",
        "Lists only sync between devices signed in to the same account. Sign out of the app and back in with "
        "the same email you use on the website, and the items will appear within a minute.",
    ))


def _api_access(rng: random.Random, case: Case, version: str, failures: set, reply: Reply) -> str:
    if "reply_too_long" in failures:
        return _LONG_API
    topic = case.facts["topic"]
    if topic == "401":
        return ("A 401 usually means the key was rotated or revoked. An admin can check under Business settings > "
                "API access and create a new key; existing webhooks keep working once the new key is in place.")
    if topic == "webhook":
        return ("Yes: an admin can add an order.status_changed webhook under Business settings > Webhooks. We "
                "send a signed JSON payload on every change and retry for 24 hours if your endpoint is down.")
    return rng.choice((
        "API keys are created by account admins under Business settings > API access. Keys are shown once, "
        "so store them in your secrets manager. The documentation, including order webhooks, is at "
        "developers.harborgoods.com.",
        "An admin on your Business account can create a key under Business settings > API access. The "
        "getting-started guide at developers.harborgoods.com walks through your first order call.",
    ))


_LONG_API = (
    "Here is a full overview of our API. Authentication: every request needs the header Authorization: Bearer "
    "<key>; keys are created by admins under Business settings > API access and shown only once. Environments: "
    "use sandbox.api.harborgoods.com for testing and api.harborgoods.com for live orders; sandbox keys do not "
    "work in production. Rate limits: 120 requests per minute per key, with a Retry-After header on 429 "
    "responses. Pagination: list endpoints return 50 items and a next_cursor field. Orders: POST /v2/orders "
    "creates an order, GET /v2/orders/{id} returns it, and cancellations go through POST "
    "/v2/orders/{id}/cancel. Webhooks: subscribe to order.created, order.status_changed and refund.issued "
    "under Business settings > Webhooks; payloads are signed with HMAC-SHA256. Errors: 401 means a revoked or "
    "mistyped key, 403 a missing permission, 422 a validation problem with the details in the errors array. "
    "The full reference lives at developers.harborgoods.com."
)


_BODIES: dict[str, Body] = {
    "refund_request": _refund_request,
    "double_charge": _double_charge,
    "invoice_copy": _invoice_copy,
    "update_payment_method": _update_payment,
    "cancel_membership": _cancel_membership,
    "order_status": _order_status,
    "missing_parcel": _missing_parcel,
    "change_address": _change_address,
    "shipping_options": _shipping_options,
    "locked_out": _locked_out,
    "password_reset": _password_reset,
    "change_email": _change_email,
    "delete_account": _delete_account,
    "service_status": _service_status,
    "app_crash": _app_crash,
    "sync_issue": _sync_issue,
    "api_access": _api_access,
}


# -- putting it together ---------------------------------------------------------------------


def build(version: str) -> tuple[list[dict[str, Any]], dict[str, set[str]]]:
    """The rows of one prompt version's dataset, and the planted failures (mode -> ids)."""
    cases = plan_cases(random.Random(SEED))
    rng = random.Random(SEED + (3 if version == "v3" else 4))
    planted = plant_failures(rng, cases, version)
    rows = []
    for case in cases:
        failures = {mode for mode, ids in planted.items() if case.tid in ids}
        rows.append(render(rng, case, version, failures))
    return rows, planted


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "data", help="directory to write into (default: data/)")
    args = parser.parse_args(argv)
    for version, name in FILES.items():
        rows, _ = build(version)
        write_jsonl(args.out / name, rows)
        print(f"wrote {len(rows)} traces (prompt {version}) to {args.out / name}")


if __name__ == "__main__":
    main()
