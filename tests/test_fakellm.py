"""The loopback OpenAI-compatible server, driven through litellm's real HTTP path.

These tests also pin the litellm behaviour the judge is built on: how errors
surface, that ``max_retries=0`` really disables retries, that ``response_format``
passes through, and that nothing but 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import os

# Without this, importing litellm fetches the model price map from GitHub.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import asyncio  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Awaitable, Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

import litellm  # noqa: E402
import pytest  # noqa: E402
from fakellm import (  # noqa: E402
    FakeLLM,
    FaultRate,
    fakellm_server,
    hang,
    loopback_only,
    malformed,
    not_a_completion,
    rate_limited,
    server_error,
    text,
    wrong_schema,
)
from litellm.exceptions import MidStreamFallbackError  # noqa: E402

# pydantic builds litellm's response models (and, from litellm 1.110, its lazily
# imported modules' TypedDicts) on first use and warns about ReadOnly items; under
# filterwarnings=error that warning would turn a reply into an APIConnectionError.
# These tests pin litellm's own behaviour; how the plugin keeps such warnings from
# changing a verdict is tested in test_third_party_warnings.py.
pytestmark = pytest.mark.filterwarnings("ignore:Items? .* using the .ReadOnly. qualifier:UserWarning")

T = TypeVar("T")

MODEL = "openai/fake-judge"
KEY = "sk-test-DO-NOT-LEAK-7f3a"
#: the client-side timeout for calls that are expected to hang
SHORT_TIMEOUT = 0.5
#: for calls that must succeed; generous so a loaded CI box does not flake
TIMEOUT = 20.0


def call_kwargs(server: FakeLLM, content: str = "Is the sky blue?", **extra: Any) -> dict[str, Any]:
    """The litellm call pattern the judge uses."""
    params: dict[str, Any] = {
        "model": MODEL,
        "api_base": server.base_url,
        "api_key": KEY,
        "messages": [{"role": "user", "content": content}],
        "max_retries": 0,
        "timeout": TIMEOUT,
    }
    params.update(extra)
    return params


def arun(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine in a fresh loop, then close litellm's loop-bound clients.

    litellm caches one aiohttp-backed client per event loop and never closes it;
    left open, its sockets surface later as ResourceWarnings in unrelated tests.
    """

    async def main() -> T:
        try:
            return await make()
        finally:
            await litellm.close_litellm_async_clients()

    return asyncio.run(main())


@pytest.fixture(autouse=True)
def _main_thread_loop() -> Iterator[None]:
    """Give the main thread an event loop that we close.

    litellm's sync path calls asyncio.get_event_loop(), which (Python 3.11)
    creates and installs a loop nobody closes; the next asyncio.run() drops it
    and it is collected as an "unclosed event loop" ResourceWarning, failing
    whichever test happens to trigger the collection.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        asyncio.set_event_loop(None)
        loop.close()


@pytest.fixture(autouse=True)
def _close_sync_clients() -> Iterator[None]:
    """Close the sync clients litellm cached during the test.

    litellm keeps one sync OpenAI client per key and base URL and never closes it;
    their sockets surfaced as "unclosed socket" ResourceWarnings when the xdist
    worker that ran these tests exited (19 lines at the end of every suite run).
    """
    yield
    cache = litellm.in_memory_llm_clients_cache
    for key, client in list(getattr(cache, "cache_dict", {}).items()):
        close = getattr(client, "close", None)
        if close is not None and not inspect.iscoroutinefunction(close):
            close()
            cache.delete_cache(key)


@pytest.fixture
def server() -> Iterator[FakeLLM]:
    with fakellm_server() as srv:
        yield srv


def echo(request: dict[str, Any]) -> str:
    return "echo: " + request["messages"][-1]["content"]


# ----------------------------------------------------------------- replies


def test_sync_completion_returns_content_usage_model_and_id(server: FakeLLM) -> None:
    server.script(text("The sky is blue.", prompt_tokens=11, completion_tokens=4))

    response = litellm.completion(**call_kwargs(server))

    assert response.choices[0].message.content == "The sky is blue."
    assert response.usage.prompt_tokens == 11
    assert response.usage.completion_tokens == 4
    assert response.usage.total_tokens == 15
    assert response.model == "fake-judge"
    assert response.id.startswith("chatcmpl-fake-")
    (request,) = server.chat_requests
    assert request.model == "fake-judge"
    assert request.messages == [{"role": "user", "content": "Is the sky blue?"}]
    assert request.outcome == "ok"
    assert not request.stream


def test_default_usage_counts_words(server: FakeLLM) -> None:
    server.script("one two three")

    response = litellm.completion(**call_kwargs(server, content="four words right here"))

    assert response.usage.prompt_tokens == 4
    assert response.usage.completion_tokens == 3


def test_async_completion(server: FakeLLM) -> None:
    server.responder = echo

    response = arun(lambda: litellm.acompletion(**call_kwargs(server, content="ping")))

    assert response.choices[0].message.content == "echo: ping"
    assert server.call_count == 1
    assert server.chat_requests[0].headers["x-stainless-async"].startswith("async")


# litellm's usage chunk reads a pydantic attribute deprecated since 2.11; under
# filterwarnings=error that aborts the stream with MidStreamFallbackError
@pytest.mark.filterwarnings("ignore:Accessing the 'model_(computed_)?fields' attribute on the instance:DeprecationWarning")
def test_sync_stream_joins_to_the_reply_and_reports_usage(server: FakeLLM) -> None:
    server.script(text("a streamed reply in five pieces", completion_tokens=6))

    stream = litellm.completion(**call_kwargs(server, stream=True, stream_options={"include_usage": True}))
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = getattr(chunk, "usage", None) or usage

    assert len(pieces) > 1
    assert "".join(pieces) == "a streamed reply in five pieces"
    assert usage is not None and usage.completion_tokens == 6
    assert server.chat_requests[0].stream


def test_async_stream(server: FakeLLM) -> None:
    server.responder = echo

    async def consume() -> str:
        stream = await litellm.acompletion(**call_kwargs(server, content="stream me", stream=True))
        parts = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
        return "".join(parts)

    assert arun(consume) == "echo: stream me"


def test_tool_calls_come_back_as_openai_tool_calls(server: FakeLLM) -> None:
    server.script(text(None, tool_calls=[{"name": "lookup_order", "arguments": {"order": "42"}}]))

    message = litellm.completion(**call_kwargs(server)).choices[0].message

    (call,) = message.tool_calls
    assert call.function.name == "lookup_order"
    assert json.loads(call.function.arguments) == {"order": "42"}


def test_scripted_replies_come_first_then_the_responder(server: FakeLLM) -> None:
    server.responder = echo
    server.script("first", "second")
    contents = [litellm.completion(**call_kwargs(server, content=f"q{i}")).choices[0].message.content for i in range(3)]

    assert contents == ["first", "second", "echo: q2"]
    assert server.pending == 0
    assert [r.seq for r in server.requests] == [0, 1, 2]


def test_response_format_reaches_the_responder_unchanged(server: FakeLLM) -> None:
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "verdict",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"critique": {"type": "string"}, "verdict": {"enum": ["pass", "fail"]}},
                "required": ["critique", "verdict"],
                "additionalProperties": False,
            },
        },
    }
    seen: list[Any] = []

    def judge(request: dict[str, Any]) -> str:
        seen.append(request.get("response_format"))
        return json.dumps({"critique": "fine", "verdict": "pass"})

    server.responder = judge
    # "fake-judge" is unknown to litellm's price map (supports_response_schema is
    # False for it), yet an openai/ model still sends response_format as given
    reply = litellm.completion(**call_kwargs(server, response_format=schema, temperature=0, max_tokens=64))
    litellm.completion(**call_kwargs(server, response_format={"type": "json_object"}))

    assert json.loads(reply.choices[0].message.content)["verdict"] == "pass"
    assert seen == [schema, {"type": "json_object"}]
    assert server.chat_requests[0].json is not None
    assert server.chat_requests[0].json["temperature"] == 0
    assert server.chat_requests[0].json["max_tokens"] == 64


def test_models_endpoint() -> None:
    with fakellm_server(models=("fake-judge", "fake-target")) as server:
        with urllib.request.urlopen(server.base_url + "/models", timeout=TIMEOUT) as response:
            listing = json.load(response)

    assert [m["id"] for m in listing["data"]] == ["fake-judge", "fake-target"]
    assert server.call_count == 0  # GETs are recorded but are not chat calls
    assert [r.method for r in server.requests] == ["GET"]


def test_cost_comes_from_the_local_price_map(server: FakeLLM) -> None:
    server.script(text("ok", prompt_tokens=1000, completion_tokens=1000))

    response = litellm.completion(**call_kwargs(server, model="openai/gpt-4o-mini"))

    assert server.chat_requests[0].model == "gpt-4o-mini"
    expected = litellm.cost_per_token(model="gpt-4o-mini", prompt_tokens=1000, completion_tokens=1000)
    assert response._hidden_params["response_cost"] == pytest.approx(sum(expected))
    assert response._hidden_params["response_cost"] > 0


# ------------------------------------------------------------------ faults


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_429_is_a_rate_limit_error_carrying_retry_after(server: FakeLLM, mode: str) -> None:
    server.script(rate_limited(retry_after=7))

    with pytest.raises(litellm.RateLimitError) as excinfo:
        if mode == "sync":
            litellm.completion(**call_kwargs(server))
        else:
            arun(lambda: litellm.acompletion(**call_kwargs(server)))

    assert excinfo.value.status_code == 429
    # the provider's headers live here (excinfo.value.response.headers is empty);
    # the judge reads Retry-After from this
    assert excinfo.value.litellm_response_headers["retry-after"] == "7"
    assert server.call_count == 1, "max_retries=0 must mean exactly one attempt"


def test_without_max_retries_the_sdk_retries_silently(server: FakeLLM) -> None:
    # why every call passes max_retries=0: the openai SDK's default is 2
    # retries, honouring Retry-After, invisible to the caller
    server.script(rate_limited(retry_after=0.01), rate_limited(retry_after=0.01), "third time lucky")
    params = call_kwargs(server)
    del params["max_retries"]

    response = litellm.completion(**params)

    assert response.choices[0].message.content == "third time lucky"
    assert server.outcomes == {"429": 2, "ok": 1}
    assert [r.headers["x-stainless-retry-count"] for r in server.chat_requests] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, litellm.InternalServerError),
        (502, litellm.BadGatewayError),
        (503, litellm.ServiceUnavailableError),
        (504, litellm.Timeout),  # a gateway timeout is reported as a client timeout
    ],
)
def test_5xx_raises(server: FakeLLM, status: int, error: type[Exception]) -> None:
    server.script(server_error(status))

    with pytest.raises(error) as excinfo:
        litellm.completion(**call_kwargs(server))

    assert excinfo.value.status_code == status  # type: ignore[attr-defined]
    assert server.outcomes == {"500": 1}


def test_5xx_async(server: FakeLLM) -> None:
    server.script(server_error())

    with pytest.raises(litellm.InternalServerError):
        arun(lambda: litellm.acompletion(**call_kwargs(server)))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_hang_ends_in_a_timeout_and_the_client_hangs_up(server: FakeLLM, mode: str) -> None:
    server.script(hang())  # held for up to 30 s unless the client leaves
    params = call_kwargs(server, timeout=SHORT_TIMEOUT)

    with pytest.raises(litellm.Timeout):
        if mode == "sync":
            litellm.completion(**params)
        else:
            arun(lambda: litellm.acompletion(**params))

    assert server.outcomes == {"hang": 1}
    # the hang is released by the client's disconnect, long before its 30 s
    assert server.wait_until_idle(timeout=10)


def test_malformed_body_raises(server: FakeLLM) -> None:
    server.script(malformed(), malformed())

    # an HTTP 200 with broken JSON surfaces as a 500-class error, like a real 5xx
    with pytest.raises(litellm.InternalServerError, match="Unterminated string"):
        litellm.completion(**call_kwargs(server))
    with pytest.raises(litellm.InternalServerError):
        arun(lambda: litellm.acompletion(**call_kwargs(server)))
    assert server.outcomes == {"malformed": 2}


def test_malformed_stream_raises(server: FakeLLM) -> None:
    server.script(malformed())

    with pytest.raises(MidStreamFallbackError):
        for _ in litellm.completion(**call_kwargs(server, stream=True)):
            pass


def test_a_body_that_is_not_a_completion_raises(server: FakeLLM) -> None:
    server.script(not_a_completion({"result": "pass"}))

    with pytest.raises(litellm.InternalServerError, match="choices"):
        litellm.completion(**call_kwargs(server))


def test_a_stream_that_is_not_a_completion_yields_no_content(server: FakeLLM) -> None:
    # litellm does not reject it: a streaming caller sees an empty reply and
    # must treat "no content" as an error itself
    server.script(not_a_completion({"result": "pass"}))

    try:
        chunks = list(litellm.completion(**call_kwargs(server, stream=True)))
    except MidStreamFallbackError as exc:
        # litellm 1.110 and later raise instead: the stream ended with no finish_reason
        assert "finish_reason" in str(exc)
        return
    assert not any(c.choices and c.choices[0].delta.content for c in chunks)


def test_wrong_schema_content_passes_the_transport(server: FakeLLM) -> None:
    server.script(wrong_schema({"answer": "maybe"}))

    response = litellm.completion(**call_kwargs(server, response_format={"type": "json_object"}))

    # the HTTP layer is happy; rejecting this is the judge's parser's job
    assert json.loads(response.choices[0].message.content) == {"answer": "maybe"}
    assert server.outcomes == {"wrong_schema": 1}


def test_a_responder_that_raises_fails_the_test_loudly() -> None:
    def broken(request: dict[str, Any]) -> str:
        raise KeyError("verdict")

    with pytest.raises(AssertionError, match="responder raised KeyError"):
        with FakeLLM(broken) as server:
            with pytest.raises(litellm.InternalServerError):
                litellm.completion(**call_kwargs(server))
            assert server.outcomes == {"responder_error": 1}


# ---------------------------------------------------------- fault rate


def _ask_all(server: FakeLLM, questions: list[str], timeout: float = SHORT_TIMEOUT) -> dict[str, str]:
    """Send every question concurrently; map each to how the client saw it end."""

    async def one(question: str) -> str:
        try:
            response = await litellm.acompletion(**call_kwargs(server, content=question, timeout=timeout))
        except litellm.RateLimitError:
            return "429"
        except litellm.InternalServerError:
            return "500"
        except litellm.Timeout:
            return "hang"
        content = response.choices[0].message.content
        assert content == "echo: " + question
        return "ok"

    async def everything() -> list[str]:
        return list(await asyncio.gather(*(one(q) for q in questions)))

    return dict(zip(questions, arun(everything)))


def test_fault_rate_is_reproducible_and_classified_correctly() -> None:
    questions = [f"question {i}" for i in range(60)]
    faults = FaultRate(0.3, seed=11)

    # hangs last 3 s; a client timeout of 2 s tells them apart from answers that are only
    # slow because the machine is loaded (0.5 s misread those as hangs on a busy CI box)
    with fakellm_server(responder=echo, fault_rate=faults, hang_seconds=3.0) as first:
        seen = _ask_all(first, questions, timeout=2.0)
        assert first.wait_until_idle(timeout=10)
    with fakellm_server(responder=echo, fault_rate=faults, hang_seconds=3.0) as second:
        seen_again = _ask_all(second, list(reversed(questions)), timeout=2.0)

    # every call ended in a reply or a typed error, and the client's view
    # matches what the server actually did, call by call
    server_view = {r.messages[-1]["content"]: r.outcome for r in first.chat_requests}
    assert seen == server_view
    counts = first.outcomes
    assert sum(counts.values()) == len(questions) == first.call_count
    assert set(counts) == {"ok", "429", "500", "hang"}, counts
    assert 0 < len(questions) - counts["ok"] < len(questions) // 2
    # same seed, different arrival order: the same call fails the same way
    assert seen_again == seen


def test_fault_draws_depend_on_seed_body_and_attempt_only() -> None:
    faults = FaultRate(0.3, seed=5)
    bodies = [b'{"n": %d}' % i for i in range(2000)]

    first = [faults.draw(b, 0) for b in bodies]
    kinds = [f.kind if f else "ok" for f in first]

    assert kinds == [(f.kind if f else "ok") for f in (faults.draw(b, 0) for b in bodies)]
    share = sum(k != "ok" for k in kinds) / len(kinds)
    assert 0.25 < share < 0.35
    assert {"429", "500", "hang"} <= set(kinds)
    # a retry (attempt 1) is a fresh draw, so most failed calls can recover
    retried = [faults.draw(b, 1) for b, k in zip(bodies, kinds) if k != "ok"]
    assert sum(r is None for r in retried) > len(retried) // 2
    assert [faults.draw(b, 0) for b in bodies[:50]] != [FaultRate(0.3, seed=6).draw(b, 0) for b in bodies[:50]]
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultRate(0.3, weights={"timeout": 1})
    with pytest.raises(ValueError, match="rate"):
        FaultRate(1.5)


def test_only_listed_fault_kinds_are_drawn() -> None:
    faults = FaultRate(1.0, seed=1, weights={"429": 1}, retry_after=3)
    replies = [faults.draw(b"%d" % i, 0) for i in range(50)]

    assert all(r is not None and r.kind == "429" and ("Retry-After", "3") in r.headers for r in replies)


# --------------------------------------------------------- concurrency


def test_concurrent_calls_overlap_on_the_server() -> None:
    with fakellm_server(responder=echo, latency=0.05) as server:

        async def burst() -> list[str]:
            calls = [litellm.acompletion(**call_kwargs(server, content=f"q{i}")) for i in range(32)]
            return [r.choices[0].message.content for r in await asyncio.gather(*calls)]

        contents = arun(burst)

    assert contents == [f"echo: q{i}" for i in range(32)]
    assert server.call_count == 32
    assert server.max_in_flight > 1
    assert server.in_flight == 0


def test_per_request_latency_function_sees_the_request() -> None:
    asked: list[str] = []

    def latency(request: dict[str, Any]) -> float:
        asked.append(request["messages"][-1]["content"])
        return 0.0

    with fakellm_server(latency=latency) as server:
        litellm.completion(**call_kwargs(server, content="slow one"))

    assert asked == ["slow one"]


# ------------------------------------------------- recording and secrets


def test_the_record_never_holds_the_api_key(server: FakeLLM) -> None:
    server.script("a", "b")
    litellm.completion(**call_kwargs(server))
    arun(lambda: litellm.acompletion(**call_kwargs(server)))

    assert server.call_count == 2
    assert all(r.auth_present for r in server.requests)
    assert all(r.headers["authorization"] == "<redacted>" for r in server.requests)
    assert KEY not in repr(server.requests)
    assert KEY[3:] not in repr(server.requests)


def test_redaction_covers_other_credential_headers(server: FakeLLM) -> None:
    secret = "hunter2-credential"
    body = json.dumps({"model": "fake-judge", "messages": [{"role": "user", "content": "x"}]}).encode()
    for headers in ({"api-key": secret}, {"X-Api-Key": secret, "X-Session-Token": secret}, {}):
        request = urllib.request.Request(
            server.base_url + "/chat/completions", data=body, headers={"Content-Type": "application/json", **headers}
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            assert response.status == 200

    assert [r.auth_present for r in server.requests] == [True, True, False]
    assert secret not in repr(server.requests)


def test_bad_requests_are_rejected_and_recorded(server: FakeLLM) -> None:
    request = urllib.request.Request(
        server.base_url + "/chat/completions", data=b'{"model": "m"}', headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=TIMEOUT)
    excinfo.value.close()

    assert excinfo.value.code == 400
    assert server.outcomes == {"bad_request": 1}


# ------------------------------------------------------------ lifecycle


def test_stop_releases_a_hang_and_leaves_no_threads_or_listener() -> None:
    server = FakeLLM(hang_seconds=60).start()
    port = server.port
    server.script(hang())
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
    raised: list[BaseException] = []

    def client() -> None:
        request = urllib.request.Request(server.base_url + "/chat/completions", data=body)
        try:
            urllib.request.urlopen(request, timeout=60)
        except Exception as exc:  # the server hangs up without answering
            raised.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        assert server.wait_for_in_flight(1, timeout=10), "the hang never began"
    finally:
        server.stop()
    thread.join(timeout=10)

    assert not thread.is_alive(), "stop() must end a hang in progress"
    assert len(raised) == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("fakellm")]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_server_listens_on_loopback_only(server: FakeLLM) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server._httpd is not None and server._httpd.server_address[0] == "127.0.0.1"


# -------------------------------------------------------- network guard


def test_loopback_guard_refuses_and_records_other_hosts() -> None:
    originals = (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex)
    with loopback_only() as blocked:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("192.0.2.1", 80), timeout=1)
        with pytest.raises(ConnectionRefusedError):
            socket.getaddrinfo("api.openai.com", 443)
        # litellm reports a refused connection as a 500, not APIConnectionError
        with pytest.raises(litellm.InternalServerError, match="Connection error"):
            litellm.completion(model=MODEL, api_base="http://192.0.2.1/v1", api_key=KEY,
                               messages=[{"role": "user", "content": "x"}], max_retries=0, timeout=2)

    assert blocked[:2] == ["192.0.2.1:80", "api.openai.com:443"]
    assert len(blocked) >= 3
    assert (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex) == originals


_PROBE = r"""
import asyncio, json, os, sys

def is_loopback(host):
    return host in (None, "localhost", "::1") or str(host).startswith("127.")

attempts = []
def audit(event, args):
    # an exception raised here aborts the operation: nothing leaves the machine
    if event == "socket.getaddrinfo" and not is_loopback(args[0]):
        attempts.append(f"dns {args[0]}")
        raise OSError("blocked by test")
    if event == "socket.connect" and isinstance(args[1], tuple) and not is_loopback(args[1][0]):
        attempts.append(f"connect {args[1][0]}")
        raise OSError("blocked by test")
sys.addaudithook(audit)

import litellm
base_url = sys.argv[1]
if base_url != "-":
    kw = dict(model="openai/fake-judge", api_base=base_url, api_key="sk-test",
              messages=[{"role": "user", "content": "hi"}], max_retries=0, timeout=20)
    assert litellm.completion(**kw).choices[0].message.content == "ok"
    async def main():
        try:
            r = await litellm.acompletion(**kw)
            assert r.choices[0].message.content == "ok"
        finally:
            await litellm.close_litellm_async_clients()
    asyncio.run(main())
    assert "".join(c.choices[0].delta.content or "" for c in litellm.completion(stream=True, **kw)) == "ok"
print("ATTEMPTS=" + json.dumps(attempts))
"""


def _probe(base_url: str, *, local_price_map: bool) -> list[str]:
    env = dict(os.environ)
    env.pop("LITELLM_LOCAL_MODEL_COST_MAP", None)
    if local_price_map:
        env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, base_url], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("ATTEMPTS=")]
    attempts: list[str] = json.loads(line.removeprefix("ATTEMPTS="))
    return attempts


def test_fresh_process_import_and_calls_stay_on_loopback(server: FakeLLM) -> None:
    assert _probe(server.base_url, local_price_map=True) == []
    assert server.call_count == 3


def test_without_the_local_price_map_flag_import_reaches_for_github() -> None:
    # the reason for LITELLM_LOCAL_MODEL_COST_MAP=True (the probe blocks the lookup)
    attempts = _probe("-", local_price_map=False)
    assert "dns raw.githubusercontent.com" in attempts


# ------------------------------------------------------------------ CLI


def test_cli_serves_until_interrupted() -> None:
    script = Path(__file__).with_name("fakellm.py")
    with subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--latency-ms", "5", "--reply", "from the cli"],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline().strip()
            assert first.startswith("base_url=http://127.0.0.1:")
            base_url = first.removeprefix("base_url=")
            with loopback_only() as blocked:
                response = litellm.completion(
                    model=MODEL, api_base=base_url, api_key=KEY,
                    messages=[{"role": "user", "content": "x"}], max_retries=0, timeout=TIMEOUT,
                )
            assert response.choices[0].message.content == "from the cli"
            assert blocked == []
        finally:
            proc.send_signal(2)  # SIGINT
            out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "calls=1 " in out
