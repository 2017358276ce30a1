"""One model call attempt, as plain data: litellm loaded quietly, one ``acompletion``
attempt classified, its cost read, secrets kept out of its error text.

The :class:`~pytest_failmodes.llm.Runner` (in this process) and the model worker
processes (:mod:`pytest_failmodes.workers`) both make their attempts here, so
neither imports the other.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["THROTTLED", "attempt_once", "is_throttled", "call_secrets", "load_litellm", "quiet_third_party", "redact", "REDACTED", "THIRD_PARTY"]

_SECRET_PARAMS = ("api_key", "api-key", "authorization", "token", "secret", "password")


#: the packages a model call runs through; what they warn is theirs to fix, not a verdict
THIRD_PARTY = (
    "litellm", "openai", "httpx", "httpcore", "h11", "pydantic", "pydantic_core", "aiohttp", "aiohappyeyeballs",
    "yarl", "multidict", "anyio", "jiter", "tiktoken", "tokenizers",
)
_THIRD_PARTY_MODULES = rf"({'|'.join(THIRD_PARTY)})(\.|$)"


def quiet_third_party() -> None:
    """Ignore warnings raised inside the model-call libraries (:data:`THIRD_PARTY`).

    Under ``-W error`` or ``filterwarnings = error``, a warning such a library
    emits in the middle of a call (litellm 1.110 imports modules on the first
    call, and pydantic warns while building their schemas) would be raised as an
    exception and turn every verdict into an error. ``warnings.catch_warnings``
    cannot help: it swaps the process-wide filter list, and calls run in the
    runner's thread while pytest swaps that list for every test in the main
    thread (Python < 3.14 has no per-thread filters). So one filter, scoped to
    those packages' modules (warnings our code or the user's code emits are
    attributed to their own modules and are untouched), is kept first in the
    current list: pytest puts a fresh list in place per test, and the next call
    puts the filter back in front.
    """
    import warnings

    first = warnings.filters[0] if warnings.filters else None
    module = first[3] if first is not None else None
    if first is not None and first[0] == "ignore" and getattr(module, "pattern", None) == _THIRD_PARTY_MODULES:
        return
    warnings.filterwarnings("ignore", module=_THIRD_PARTY_MODULES)


def load_litellm() -> Any:
    """Import litellm without its network fetch of the model price map at import.

    Also builds litellm's reply types once: their first construction emits
    pydantic deprecation warnings. Those, and whatever else litellm and the
    libraries under it warn, are ignored (:func:`quiet_third_party`).
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    quiet_third_party()
    import litellm
    from litellm.types.utils import Delta, Message

    Message(content="")
    Delta(content="")
    litellm.suppress_debug_info = True
    return litellm


#: the ``kind`` of an attempt refused with 429: it halves the shared limit
THROTTLED = "rate limited (429)"


def is_throttled(result: Mapping[str, Any]) -> bool:
    """Whether an attempt's result (from :func:`attempt_once`) was a 429."""
    return not result["ok"] and result["kind"] == THROTTLED


async def attempt_once(
    litellm: Any, model: str, messages: list[dict[str, Any]], timeout: float, params: Mapping[str, Any]
) -> dict[str, Any]:
    """One ``acompletion`` attempt as plain data (what a worker process sends back):
    ``{"ok": True, content, prompt_tokens, completion_tokens, cost, latency}`` or
    ``{"ok": False, kind, retryable, retry_after, message}`` (the message redacted)."""
    started = time.perf_counter()
    try:
        response = await asyncio.wait_for(
            litellm.acompletion(model=model, messages=messages, timeout=timeout, max_retries=0, **params),
            timeout=timeout + 5.0,
        )
    except Exception as exc:  # noqa: BLE001 - classified below; nothing escapes unreported
        kind, retryable, retry_after = _classify(exc, litellm)
        message = _first_line(exc, call_secrets(model, params, litellm))
        return {"ok": False, "kind": kind, "retryable": retryable, "retry_after": retry_after, "message": message}
    latency = time.perf_counter() - started
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, KeyError, TypeError):
        content = None
    usage = getattr(response, "usage", None)
    return {
        "ok": True,
        "content": content if isinstance(content, str) else None,
        "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
        "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
        "cost": _cost(response, litellm),
        "latency": latency,
    }


def _cost(response: Any, litellm: Any) -> float | None:
    """The call's cost from litellm's local price map; ``None`` when the model has no price."""
    hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, Mapping) and "response_cost" in hidden:
        # litellm priced the reply already (None: not in its price map); pricing it
        # again took about a tenth of the CPU time of a call (bench/judge.py)
        value = hidden["response_cost"]
        try:
            return None if value is None else float(value)
        except (TypeError, ValueError):
            return None
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:  # noqa: BLE001 - unknown models have no price; cost is then unknown
        return None


def _classify(exc: BaseException, litellm: Any) -> tuple[str, bool, float | None]:
    """(description, retryable, retry-after seconds) for a failed call."""
    if isinstance(exc, asyncio.TimeoutError) or isinstance(exc, litellm.Timeout):
        return "timed out", True, None
    if isinstance(exc, Warning):
        # a library's warning raised as an error because pytest put a fresh filter list
        # in place between our filter and the call: the next attempt restores the filter
        return f"{type(exc).__name__} raised as an error", True, 0.0
    status = getattr(exc, "status_code", None)
    if isinstance(exc, litellm.RateLimitError) or status == 429:
        return THROTTLED, True, _retry_after(exc)
    if isinstance(status, int) and status >= 500:
        # litellm reports unparseable replies and refused connections as 500 too
        return f"server error ({status})", True, None
    if isinstance(exc, litellm.APIConnectionError):
        return "connection error", True, None
    if isinstance(status, int):
        return f"request rejected ({status})", status in (408, 409), None
    return type(exc).__name__, False, None


def _retry_after(exc: BaseException) -> float | None:
    # litellm keeps the provider's headers here; exc.response.headers is empty
    headers = getattr(exc, "litellm_response_headers", None) or getattr(
        getattr(exc, "response", None), "headers", None
    ) or {}
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
    except Exception:  # noqa: BLE001 - odd header containers: no hint
        return None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _first_line(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else type(exc).__name__
    # redacted before it is cut: a key cut in two would no longer match
    return redact(msg, secrets)[:300]


#: the mark a credential's value leaves in error text
REDACTED = "[redacted]"
#: values shorter than this are not treated as credentials (they would redact ordinary words)
_MIN_SECRET = 8
_SECRET_NAME = re.compile(r"(?i)(api[-_]?key|token|secret|passw(or)?d|credential|auth|access[-_]?key|private[-_]?key)")


def call_secrets(model: str, params: Mapping[str, Any], litellm: Any = None) -> list[str]:
    """The values of every credential a call may have sent, whatever their shape:
    secret-named parameters (``api_key``) and header values (``extra_headers``), the
    key litellm resolved for the model's provider, credentials in ``api_base``, and
    every environment variable whose name says it holds a credential (litellm reads
    the provider's own from the environment: ``GEMINI_API_KEY``, ``AZURE_AD_TOKEN``...).
    Longest first, so a key that contains another is redacted whole."""
    found: set[str] = set()

    def add(value: object) -> None:
        if isinstance(value, str) and len(value.strip()) >= _MIN_SECRET:
            found.add(value.strip())
            if value.lower().startswith(("bearer ", "basic ")):
                found.add(value.split(None, 1)[1].strip())

    for name, value in params.items():
        if _SECRET_NAME.search(name):
            add(value)
        elif name in ("extra_headers", "headers") and isinstance(value, Mapping):
            for header, header_value in value.items():
                if _SECRET_NAME.search(str(header)) or str(header).lower() in ("cookie", "x-goog-api-key"):
                    add(header_value)
    base = params.get("api_base")
    if isinstance(base, str):
        from urllib.parse import parse_qsl, urlsplit

        try:
            parts = urlsplit(base)
            add(parts.password)
            for _k, v in parse_qsl(parts.query):
                add(v)
        except ValueError:
            pass
    if litellm is not None:
        try:
            add(litellm.get_llm_provider(model=model, api_base=base if isinstance(base, str) else None)[3])
        except Exception:  # noqa: BLE001 - an unknown provider resolves no key
            pass
    for name, value in os.environ.items():
        if _SECRET_NAME.search(name):
            add(value)
    return sorted(found, key=len, reverse=True)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` without the values in ``secrets`` (and without anything shaped like an
    OpenAI ``sk-`` key): error messages can echo request headers; keys never reach reports."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return re.sub(r"(sk-[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]+", r"\1…", text)
