"""A loopback OpenAI-compatible chat server for tests and benchmarks.

``FakeLLM`` serves ``POST /v1/chat/completions`` (JSON and SSE-streamed),
``GET /v1/models``, and the files and batches endpoints (``/v1/files``,
``/v1/batches``: see ``FakeBatches``) on 127.0.0.1, from a background thread,
so that client code goes through its real HTTP stack (litellm -> openai SDK ->
httpx/aiohttp)::

    with FakeLLM(latency=0.05) as server:
        server.script("first reply", rate_limited(retry_after=2), "third reply")
        litellm.completion(model="openai/fake-judge", api_base=server.base_url, ...)
        assert server.call_count == 1

What a request gets, in order of precedence:

1. the next scripted reply (``script(...)``), if any are queued;
2. a fault drawn by ``fault_rate`` (429 / 500 / hang, mixed), if configured;
3. ``responder(request_json)``, or ``default_reply``.

A reply is a ``str`` (the assistant's content) or a ``Reply`` (made by the
helpers ``text``, ``rate_limited``, ``server_error``, ``hang``, ``malformed``,
``not_a_completion``, ``wrong_schema``).

Every request is recorded (``requests``), with credential-bearing header values
dropped: only *whether* an auth header was sent is kept, so tests can assert
that no API key reached the record.

Also a script for benchmarks: ``python tests/fakellm.py --port 0 --latency-ms 50``
prints ``base_url=http://127.0.0.1:PORT/v1`` on stdout and serves until
SIGINT/SIGTERM (or ``--max-seconds``), then prints a ``calls=N ...`` summary.
Run it as a separate process when measuring: in-process, the server's threads
compete with the client for the GIL.

Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import itertools
import http.server
import ipaddress
import json
import random
import select
import signal
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal, Union

__all__ = [
    "FakeBatches",
    "FakeLLM",
    "FaultRate",
    "RecordedRequest",
    "Reply",
    "fakellm_server",
    "hang",
    "loopback_only",
    "malformed",
    "not_a_completion",
    "rate_limited",
    "rejected",
    "server_error",
    "text",
    "wrong_schema",
]

HOST: Final = "127.0.0.1"
#: a hang never outlives this, whatever a test asks for (and ends at stop())
MAX_HANG_SECONDS: Final = 60.0
#: request bodies above this are refused (413); a test never needs more
MAX_BODY_BYTES: Final = 8 * 1024 * 1024
#: uploads to /v1/files are refused above this (a 2,000-request batch file is a few MB)
MAX_FILE_BYTES: Final = 256 * 1024 * 1024
#: idle keep-alive connections are closed after this many seconds
IDLE_TIMEOUT_SECONDS: Final = 30.0
#: how long stop() waits for connection threads before giving up on them
JOIN_TIMEOUT_SECONDS: Final = 5.0
#: streamed replies are cut into at most this many content chunks
MAX_STREAM_CHUNKS: Final = 64
#: the ``created`` field of every response: fixed so replies are reproducible
CREATED: Final = 1_700_000_000

# Header names whose values may carry a credential; never recorded.
_SECRET_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "openai-api-key", "x-goog-api-key", "cookie"}
)
_AUTH_HEADERS: Final = frozenset({"authorization", "api-key", "x-api-key", "openai-api-key"})

ReplyKind = Literal["ok", "429", "500", "hang", "malformed", "not_a_completion", "wrong_schema", "rejected"]


# --------------------------------------------------------------------- replies


@dataclasses.dataclass(frozen=True)
class Reply:
    """One scripted server behaviour. Build it with the helper functions below."""

    kind: ReplyKind = "ok"
    content: str | None = "ok"
    #: OpenAI-style tool calls: ``[{"name": ..., "arguments": {...} or "json"}]``
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    #: override the computed token counts
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    #: seconds to wait before answering; ``None`` = the server's latency
    latency: float | None = None
    #: 429 only: value of the Retry-After header (seconds), ``None`` = no header
    retry_after: float | None = None
    #: hang only: seconds to hold the connection open without answering
    hang_seconds: float | None = None
    #: malformed / not_a_completion / 429 / 500: the exact body to send
    body: bytes | None = None
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


def text(
    content: str | None,
    *,
    tool_calls: Iterable[Mapping[str, Any]] = (),
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    finish_reason: str | None = None,
    latency: float | None = None,
) -> Reply:
    """A normal 200 chat completion whose message content is ``content``."""
    calls = tuple(tool_calls)
    return Reply(
        content=content,
        tool_calls=calls,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=finish_reason or ("tool_calls" if calls else "stop"),
        latency=latency,
    )


def rate_limited(retry_after: float | None = 1, *, latency: float | None = None) -> Reply:
    """HTTP 429 with an OpenAI error body and (unless ``None``) a Retry-After header."""
    headers: tuple[tuple[str, str], ...] = ()
    if retry_after is not None:
        value = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
        headers = (("Retry-After", value),)
    return Reply(
        kind="429",
        content=None,
        status=429,
        retry_after=retry_after,
        headers=headers,
        latency=latency,
        body=_error_body("Rate limit reached for fake-judge (fakellm).", "rate_limit_exceeded", "requests"),
    )


def server_error(status: int = 500, *, latency: float | None = None) -> Reply:
    """An HTTP 5xx with an OpenAI error body."""
    if not 500 <= status <= 599:
        raise ValueError(f"server_error() needs a 5xx status, got {status!r}")
    return Reply(
        kind="500",
        content=None,
        status=status,
        latency=latency,
        body=_error_body("The server had an error while processing your request (fakellm).", None, "server_error"),
    )


def rejected(status: int = 401) -> Reply:
    """An HTTP 4xx whose error message echoes every credential header the request
    carried, as some providers do: what a client must never put in its own reports."""
    if not 400 <= status <= 499:
        raise ValueError(f"rejected() needs a 4xx status, got {status!r}")
    return Reply(kind="rejected", content=None, status=status)


def hang(seconds: float | None = None) -> Reply:
    """Accept the request and never answer: the client must time out.

    The connection is held for ``seconds`` (default: the server's
    ``hang_seconds``, capped at ``MAX_HANG_SECONDS``), or until the client gives
    up and disconnects, or until the server stops, whichever comes first; then
    it is closed without a response.
    """
    return Reply(kind="hang", content=None, hang_seconds=seconds)


def malformed(body: bytes = b'{"id": "chatcmpl-broken", "choices": [{"message": {"content": "tru') -> Reply:
    """HTTP 200 whose body is not valid JSON (a streamed request gets it as an SSE event)."""
    return Reply(kind="malformed", content=None, body=body)


def not_a_completion(payload: Any = None) -> Reply:
    """HTTP 200 with valid JSON that is not a chat completion (no ``choices``)."""
    obj = {"result": "ok", "verdict": "pass"} if payload is None else payload
    return Reply(kind="not_a_completion", content=None, body=json.dumps(obj).encode())


def wrong_schema(payload: Any = None, *, latency: float | None = None) -> Reply:
    """A well-formed chat completion whose *content* is JSON of the wrong shape.

    What a model does when it ignores ``response_format``: the HTTP exchange
    succeeds, the reply parses as JSON, and the caller's schema check must
    reject it. ``payload`` (default ``{"answer": "maybe"}``) is JSON-encoded as
    the message content; pass a ``str`` to send it verbatim.
    """
    obj = {"answer": "maybe"} if payload is None else payload
    content = obj if isinstance(obj, str) else json.dumps(obj)
    return Reply(kind="wrong_schema", content=content, latency=latency)


def _error_body(message: str, code: str | None, type_: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()


ReplyLike = Union[str, Reply]
Responder = Callable[[dict[str, Any]], ReplyLike]


def _as_reply(value: object) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return text(value)
    raise TypeError(f"a fakellm reply must be a str or a Reply, got {type(value).__name__}: {value!r}")


@dataclasses.dataclass(frozen=True)
class FaultRate:
    """Make a share of chat calls fail, reproducibly.

    ``rate`` of the calls get a fault, chosen by ``weights`` among ``"429"``,
    ``"500"`` and ``"hang"``. The draw for a call depends only on ``seed``, the
    request body and how many times that same body was seen before: the n-th
    attempt at a given request always gets the same outcome, whatever order
    concurrent requests arrive in, so a retrying client sees a reproducible run.
    """

    rate: float
    seed: int = 0
    weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: {"429": 1.0, "500": 1.0, "hang": 1.0})
    retry_after: float | None = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"FaultRate.rate must be within [0, 1], got {self.rate!r}")
        unknown = set(self.weights) - {"429", "500", "hang"}
        if unknown:
            raise ValueError(f"FaultRate.weights: unknown fault kinds {sorted(unknown)!r}; use '429', '500', 'hang'")
        if not self.weights or sum(self.weights.values()) <= 0:
            raise ValueError("FaultRate.weights must give at least one kind a positive weight")

    def draw(self, body: bytes, attempt: int) -> Reply | None:
        """The fault for the ``attempt``-th (0-based) sighting of ``body``, or ``None``."""
        digest = hashlib.sha256(b"%d:%d:" % (self.seed, attempt) + body).digest()
        rng = random.Random(digest)
        if rng.random() >= self.rate:
            return None
        kinds = sorted(self.weights)
        kind = rng.choices(kinds, weights=[self.weights[k] for k in kinds])[0]
        if kind == "429":
            return rate_limited(self.retry_after)
        if kind == "500":
            return server_error()
        return hang()


# ------------------------------------------------------------------- recording


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it. Never holds a credential."""

    seq: int
    method: str
    path: str
    #: header values, except credential-bearing ones (see ``auth_present``)
    headers: Mapping[str, str]
    #: whether an Authorization / api-key header was sent (its value is not kept)
    auth_present: bool
    #: the parsed JSON body, or ``None`` (GET, or a body that is not JSON)
    json: dict[str, Any] | None
    #: what the server answered: a ``Reply.kind`` ("ok", "429", "500", "hang",
    #: "malformed", "not_a_completion", "wrong_schema"), or "bad_request",
    #: "not_found", "responder_error"
    outcome: str = ""
    stream: bool = False

    @property
    def model(self) -> str | None:
        return None if self.json is None else self.json.get("model")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [] if self.json is None else list(self.json.get("messages") or [])


def _redact(headers: Iterable[tuple[str, str]]) -> tuple[dict[str, str], bool]:
    kept: dict[str, str] = {}
    auth = False
    for name, value in headers:
        low = name.lower()
        if low in _AUTH_HEADERS and value.strip():
            auth = True
        if low in _SECRET_HEADERS or "secret" in low or "token" in low or low.endswith("-key"):
            kept[low] = "<redacted>"
        else:
            kept[low] = value
    return kept, auth


# ---------------------------------------------------------------------- server


def _count_tokens(text_: str) -> int:
    # whitespace words: deterministic, and enough to tell prompts apart in tests
    return len(text_.split())


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or []:
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        if isinstance(content, str):
            total += _count_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    total += _count_tokens(part["text"])
    return max(total, 1)


def _tool_calls_json(reply: Reply, seq: int) -> list[dict[str, Any]]:
    out = []
    for i, call in enumerate(reply.tool_calls):
        args = call.get("arguments", {})
        out.append(
            {
                "id": str(call.get("id") or f"call_{seq}_{i}"),
                "type": "function",
                "function": {
                    "name": str(call["name"]),
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
        )
    return out


def _chunks(content: str) -> list[str]:
    """Split ``content`` into at most MAX_STREAM_CHUNKS pieces that join back exactly."""
    if not content:
        return []
    size = max(1, -(-len(content) // MAX_STREAM_CHUNKS))
    # cut on word boundaries when the words are small enough, like a tokenizer would
    words = content.split(" ")
    if len(words) <= MAX_STREAM_CHUNKS:
        return [w if i == 0 else " " + w for i, w in enumerate(words)]
    return [content[i : i + size] for i in range(0, len(content), size)]


class _HTTPServer(http.server.ThreadingHTTPServer):
    """Tracks its connection threads and sockets so stop() can end them all."""

    daemon_threads = True
    # 32+ clients connecting at once must not overflow the accept backlog
    # (the default of 5 costs a 1 s SYN retransmit per dropped connection)
    request_queue_size = 1024

    def __init__(self, owner: FakeLLM, address: tuple[str, int]) -> None:
        self.owner = owner
        self._conn_lock = threading.Lock()
        self._conns: dict[threading.Thread, socket.socket] = {}
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"fakellm-conn-{client_address[1]}",
            daemon=True,
        )
        with self._conn_lock:
            self._conns[thread] = request
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hangs up mid-reply is normal here (timeouts, hangs)
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        self.owner._note_error(f"connection handler crashed: {exc!r}")

    def close_connections(self) -> list[threading.Thread]:
        with self._conn_lock:
            conns = list(self._conns.items())
        for _, sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return [t for t, _ in conns]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes; with Nagle on, the body waits
    # for the client's delayed ACK (~40 ms), which would swamp any latency setting
    disable_nagle_algorithm = True
    server_version = "fakellm/1"
    timeout = IDLE_TIMEOUT_SECONDS
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # tests assert on the record, not on stderr

    # -- routing

    def do_GET(self) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            owner._record(self, None, "ok", stream=False)
            data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "fakellm"} for m in owner.models]
            self._send_json(200, {"object": "list", "data": data})
        elif path.startswith(("/v1/files", "/v1/batches")):
            owner._record(self, None, "ok", stream=False)
            status, payload = owner.batches.get(path)
            if isinstance(payload, bytes):
                self._send_bytes(status, payload)
            else:
                self._send_json(status, payload)
        else:
            owner._record(self, None, "not_found", stream=False)
            self._send_json(404, json.loads(_error_body(f"no route GET {path}", None, "invalid_request_error")))

    def do_POST(self) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0].rstrip("/")
        raw = self._read_body(MAX_FILE_BYTES if path == "/v1/files" else MAX_BODY_BYTES)
        if raw is None:
            return
        if path.startswith(("/v1/files", "/v1/batches")):
            owner._record(self, None, "ok", stream=False)
            status, payload = owner.batches.post(path, self.headers.get("Content-Type", ""), raw)
            self._send_json(status, payload)
            return
        if path not in ("/v1/chat/completions", "/chat/completions"):
            owner._record(self, None, "not_found", stream=False)
            self._send_json(404, json.loads(_error_body(f"no route POST {path}", None, "invalid_request_error")))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            owner._record(self, body if isinstance(body, dict) else None, "bad_request", stream=False)
            msg = "fakellm: the request body must be a JSON object with 'model' and a 'messages' list"
            self._send_json(400, json.loads(_error_body(msg, None, "invalid_request_error")))
            return
        owner._chat(self, body, raw)

    # -- plumbing

    def _read_body(self, limit: int = MAX_BODY_BYTES) -> bytes | None:
        length_header = self.headers.get("Content-Length", "")
        if not length_header.isdigit():
            self._send_json(411, json.loads(_error_body("Content-Length required", None, "invalid_request_error")))
            self.close_connection = True
            return None
        length = int(length_header)
        if length > limit:
            self._send_json(413, json.loads(_error_body("request body too large", None, "invalid_request_error")))
            self.close_connection = True
            return None
        return self.rfile.read(length)

    def _send_bytes(self, status: int, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, obj: Any, headers: Sequence[tuple[str, str]] = ()) -> None:
        self._send_bytes(status, json.dumps(obj).encode(), headers)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_event(self, data: str) -> None:
        payload = f"data: {data}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _client_gone(self) -> bool:
        """True once the client has closed its end (a timed-out client does)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True


class FakeLLM:
    """An OpenAI-compatible chat server on 127.0.0.1, scripted per test.

    Parameters:
        responder: ``(request_json) -> str | Reply``, used when nothing is scripted.
        replies: replies to serve first, in order (same as ``script(*replies)``).
        latency: seconds before each answer, or ``(request_json) -> seconds``.
        fault_rate: a ``FaultRate``, or a float (the rate, default seed 0).
        default_reply: the content when there is no script and no responder.
        hang_seconds: how long ``hang()`` holds a connection (capped).
        models: ids listed by ``GET /v1/models``.
        port: 0 (default) picks a free ephemeral port.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        replies: Iterable[ReplyLike] = (),
        latency: float | Callable[[dict[str, Any]], float] = 0.0,
        fault_rate: FaultRate | float | None = None,
        default_reply: str = "ok",
        hang_seconds: float = 30.0,
        models: Sequence[str] = ("fake-judge",),
        port: int = 0,
    ) -> None:
        self.responder = responder
        self.latency = latency
        self.fault_rate = FaultRate(fault_rate) if isinstance(fault_rate, (int, float)) else fault_rate
        self.default_reply = default_reply
        self.hang_seconds = min(float(hang_seconds), MAX_HANG_SECONDS)
        self.models = tuple(models)
        self._port = port
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: deque[Reply] = deque(_as_reply(r) for r in replies)
        self._requests: list[RecordedRequest] = []
        self._outcomes: Counter[str] = Counter()
        self._seen_bodies: Counter[bytes] = Counter()
        self._errors: list[str] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: the files and batches endpoints (``/v1/files``, ``/v1/batches``)
        self.batches = FakeBatches(self)

    # -- lifecycle

    def start(self) -> FakeLLM:
        if self._httpd is not None:
            raise RuntimeError("FakeLLM is already running")
        self._stop.clear()
        self._httpd = _HTTPServer(self, (HOST, self._port))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fakellm-serve", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end hangs and keep-alive connections, close every socket."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stop.set()  # wakes latency sleeps and hangs
        self.batches.release()
        httpd.shutdown()
        thread.join(JOIN_TIMEOUT_SECONDS)
        deadline = time.monotonic() + JOIN_TIMEOUT_SECONDS
        for conn_thread in httpd.close_connections():
            conn_thread.join(max(0.0, deadline - time.monotonic()))
        httpd.server_close()
        self._httpd = self._thread = None
        stuck = httpd.close_connections()
        if stuck or thread.is_alive():
            raise RuntimeError(f"fakellm: {len(stuck)} connection thread(s) did not stop within {JOIN_TIMEOUT_SECONDS}s")

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.stop()
        if exc_type is None and self._errors:
            raise AssertionError("fakellm: errors while serving:\n" + "\n".join(self._errors))

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeLLM is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What to pass as ``api_base``: ``http://127.0.0.1:PORT/v1``."""
        return f"http://{HOST}:{self.port}/v1"

    # -- scripting

    def script(self, *replies: ReplyLike) -> None:
        """Queue replies, served in order before any fault draw or responder."""
        converted = [_as_reply(r) for r in replies]
        with self._lock:
            self._queue.extend(converted)

    @property
    def pending(self) -> int:
        """Scripted replies not served yet."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Forget recorded requests, counts and queued replies."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._outcomes.clear()
            self._seen_bodies.clear()
            self._errors.clear()
            self._max_in_flight = self._in_flight

    # -- observations (all thread-safe snapshots)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order (GETs included)."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/chat/completions")]

    @property
    def call_count(self) -> int:
        """Number of chat-completion requests received (every outcome)."""
        return len(self.chat_requests)

    @property
    def outcomes(self) -> Counter[str]:
        """Chat requests per outcome: ``{"ok": 10, "429": 2, ...}``."""
        with self._lock:
            return Counter(self._outcomes)

    @property
    def max_in_flight(self) -> int:
        """The most chat requests the server was handling at the same moment."""
        with self._lock:
            return self._max_in_flight

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def wait_for_in_flight(self, count: int, timeout: float = 10.0) -> bool:
        """Block until exactly ``count`` chat requests are being handled.

        Returns False if ``timeout`` ran out first. A hang counts as in flight
        until its client disconnects (or the hang ends), so ``count=0`` is how a
        test observes that a timed-out client really hung up.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == count, timeout)

    def wait_until_idle(self, timeout: float = 10.0) -> bool:
        """``wait_for_in_flight(0, timeout)``."""
        return self.wait_for_in_flight(0, timeout)

    @property
    def errors(self) -> list[str]:
        """Responder exceptions and handler crashes (``__exit__`` raises on these)."""
        with self._lock:
            return list(self._errors)

    # -- internals (called from connection threads)

    def _note_error(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)

    def _record(self, handler: _Handler, body: dict[str, Any] | None, outcome: str, *, stream: bool) -> None:
        headers, auth = _redact(handler.headers.items())
        with self._lock:
            rec = RecordedRequest(
                seq=len(self._requests),
                method=handler.command,
                path=handler.path,
                headers=headers,
                auth_present=auth,
                json=body,
                outcome=outcome,
                stream=stream,
            )
            self._requests.append(rec)
            if handler.command == "POST":
                self._outcomes[outcome] += 1

    def _choose(self, body: dict[str, Any], raw: bytes) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            attempt = self._seen_bodies[raw]
            self._seen_bodies[raw] += 1
        if self.fault_rate is not None:
            fault = self.fault_rate.draw(raw, attempt)
            if fault is not None:
                return fault
        if self.responder is None:
            return text(self.default_reply)
        return _as_reply(self.responder(body))

    def _latency_for(self, reply: Reply, body: dict[str, Any]) -> float:
        if reply.latency is not None:
            return max(0.0, reply.latency)
        latency = self.latency(body) if callable(self.latency) else self.latency
        return max(0.0, float(latency))

    def _chat(self, handler: _Handler, body: dict[str, Any], raw: bytes) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._idle.notify_all()
        try:
            self._chat_in_flight(handler, body, raw)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._idle.notify_all()

    def _chat_in_flight(self, handler: _Handler, body: dict[str, Any], raw: bytes) -> None:
        stream = bool(body.get("stream"))
        try:
            reply = self._choose(body, raw)
            delay = self._latency_for(reply, body)
        except Exception as exc:  # a bug in the test's responder: make it loud
            self._note_error(f"responder raised {exc!r} for request {body!r}")
            self._record(handler, body, "responder_error", stream=stream)
            err = _error_body(f"fakellm responder raised {type(exc).__name__}", None, "server_error")
            handler._send_bytes(500, err)
            return
        self._record(handler, body, reply.kind, stream=stream)
        if delay and self._stop.wait(delay):
            handler.close_connection = True
            return
        if reply.kind == "hang":
            self._hang(handler, reply)
            return
        if reply.kind == "rejected":
            echoed = "; ".join(f"{k}: {v}" for k, v in handler.headers.items() if k.lower() in _SECRET_HEADERS)
            message = f"API key not valid. Please pass a valid API key. (received {echoed or 'no key'})"
            handler._send_bytes(reply.status, _error_body(message, "invalid_api_key", "invalid_request_error"))
            return
        if reply.body is not None:
            if stream and reply.status == 200:  # a broken stream, not a JSON body
                handler._start_stream()
                handler._send_event(reply.body.decode("utf-8", "replace"))
                handler._send_event("[DONE]")
                handler._end_stream()
            else:
                handler._send_bytes(reply.status, reply.body, reply.headers)
            return
        if stream:
            self._send_stream(handler, body, reply)
        else:
            handler._send_json(200, self._completion(body, reply), reply.headers)

    def _hang(self, handler: _Handler, reply: Reply) -> None:
        seconds = min(reply.hang_seconds if reply.hang_seconds is not None else self.hang_seconds, MAX_HANG_SECONDS)
        deadline = time.monotonic() + seconds
        # bounded: ends at the deadline, when the client leaves, or at stop()
        while not self._stop.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline or handler._client_gone():
                break
        handler.close_connection = True

    def _usage(self, body: Mapping[str, Any], reply: Reply) -> dict[str, int]:
        prompt = reply.prompt_tokens if reply.prompt_tokens is not None else _prompt_tokens(body)
        completion = reply.completion_tokens
        if completion is None:
            completion = _count_tokens(reply.content or "") + 8 * len(reply.tool_calls)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _next_id(self) -> str:
        with self._lock:
            return f"chatcmpl-fake-{next(self._ids)}"

    def _completion(self, body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
        cid = self._next_id()
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = _tool_calls_json(reply, int(cid.rsplit("-", 1)[1]))
        return {
            "id": cid,
            "object": "chat.completion",
            "created": CREATED,
            "model": body.get("model"),
            "system_fingerprint": "fakellm",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
            "usage": self._usage(body, reply),
        }

    def _send_stream(self, handler: _Handler, body: Mapping[str, Any], reply: Reply) -> None:
        cid = self._next_id()
        base = {"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": body.get("model")}

        def chunk(delta: dict[str, Any], finish: str | None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return json.dumps({**base, "choices": [choice]})

        handler._start_stream()
        handler._send_event(chunk({"role": "assistant", "content": ""}, None))
        for piece in _chunks(reply.content or ""):
            handler._send_event(chunk({"content": piece}, None))
        if reply.tool_calls:
            calls = _tool_calls_json(reply, int(cid.rsplit("-", 1)[1]))
            handler._send_event(chunk({"tool_calls": [{"index": i, **c} for i, c in enumerate(calls)]}, None))
        handler._send_event(chunk({}, reply.finish_reason))
        options = body.get("stream_options")
        if isinstance(options, Mapping) and options.get("include_usage"):
            handler._send_event(json.dumps({**base, "choices": [], "usage": self._usage(body, reply)}))
        handler._send_event("[DONE]")
        handler._end_stream()


# ------------------------------------------------------------- files and batches

BatchFault = Literal["error", "expire"]


class FakeBatches:
    """``/v1/files`` and ``/v1/batches`` of a :class:`FakeLLM`, in OpenAI's shapes.

    An uploaded batch file is answered line by line with the server's own
    reply logic (script, faults, responder, default), without its latency;
    each answered line counts as one paid call (``paid``). A batch starts
    processing ``latency`` seconds after it is created, or, while ``hold`` is
    set, only once :meth:`release` is called (a test kills its client in
    between). ``item_fault(body)`` may return ``"error"`` (that line gets a
    500 in the error file) or ``"expire"`` (not processed: the batch ends
    ``expired``, that line in the error file). Standard library only.
    """

    def __init__(self, owner: FakeLLM) -> None:
        self.owner = owner
        self.latency = 0.0
        self.hold = False
        self.item_fault: Callable[[dict[str, Any]], BatchFault | None] | None = None
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._threads: list[threading.Thread] = []
        self.created = 0
        self.paid = 0

    def release(self) -> None:
        """Let held batches run (and end every wait at stop())."""
        self._released.set()

    # -- observations

    @property
    def ids(self) -> list[str]:
        with self._lock:
            return list(self._batches)

    def status(self, batch_id: str) -> str:
        with self._lock:
            return str(self._batches[batch_id]["status"])

    def wait_for(self, predicate: Callable[[FakeBatches], bool], timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)

    # -- HTTP

    def _new_file(self, data: bytes, purpose: str, filename: str) -> dict[str, Any]:
        with self._lock:
            file_id = f"file-fake-{next(self._ids)}"
            obj = {
                "id": file_id, "object": "file", "bytes": len(data), "created_at": CREATED, "filename": filename,
                "purpose": purpose, "status": "processed", "status_details": None,
            }
            self._files[file_id] = (obj, data)
        return obj

    def post(self, path: str, content_type: str, raw: bytes) -> tuple[int, Any]:
        if path == "/v1/files":
            import email.parser
            import email.policy

            head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
            fields: dict[str, tuple[str, bytes]] = {}
            if message.is_multipart():
                for part in message.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    fields[str(name)] = (str(part.get_filename() or ""), part.get_payload(decode=True) or b"")
            if "file" not in fields or "purpose" not in fields:
                return 400, json.loads(_error_body("fakellm: a file upload needs 'file' and 'purpose' parts", None, "invalid_request_error"))
            filename, data = fields["file"]
            return 200, self._new_file(data, fields["purpose"][1].decode(), filename or "upload.jsonl")
        if path == "/v1/batches":
            try:
                body = json.loads(raw)
                file_id = body["input_file_id"]
            except (ValueError, KeyError, TypeError):
                return 400, json.loads(_error_body("fakellm: a batch needs an input_file_id", None, "invalid_request_error"))
            with self._lock:
                if file_id not in self._files:
                    return 404, json.loads(_error_body(f"no such file {file_id}", None, "invalid_request_error"))
                batch_id = f"batch_fake_{next(self._ids)}"
                batch = {
                    "id": batch_id, "object": "batch", "endpoint": body.get("endpoint", "/v1/chat/completions"),
                    "errors": None, "input_file_id": file_id, "completion_window": body.get("completion_window", "24h"),
                    "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": CREATED,
                    "in_progress_at": None, "expires_at": CREATED + 86400, "finalizing_at": None, "completed_at": None,
                    "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                    "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": body.get("metadata") or {},
                }
                self._batches[batch_id] = batch
                self.created += 1
                snapshot = json.loads(json.dumps(batch))
            thread = threading.Thread(target=self._process, args=(batch_id,), name=f"fakellm-{batch_id}", daemon=True)
            self._threads.append(thread)
            thread.start()
            return 200, snapshot
        if path.startswith("/v1/batches/") and path.endswith("/cancel"):
            batch_id = path.split("/")[3]
            with self._lock:
                batch = self._batches.get(batch_id)
                if batch is None:
                    return 404, json.loads(_error_body(f"no such batch {batch_id}", None, "invalid_request_error"))
                if batch["status"] not in ("completed", "failed", "expired", "cancelled"):
                    batch["status"] = "cancelled"
                return 200, json.loads(json.dumps(batch))
        return 404, json.loads(_error_body(f"no route POST {path}", None, "invalid_request_error"))

    def get(self, path: str) -> tuple[int, Any]:
        parts = path.split("/")
        with self._lock:
            if path == "/v1/batches":
                data = [json.loads(json.dumps(b)) for b in reversed(self._batches.values())]
                first = data[0]["id"] if data else None
                last = data[-1]["id"] if data else None
                return 200, {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": False}
            if len(parts) == 4 and parts[2] == "batches" and parts[3] in self._batches:
                return 200, json.loads(json.dumps(self._batches[parts[3]]))
            if len(parts) >= 4 and parts[2] == "files" and parts[3] in self._files:
                obj, data = self._files[parts[3]]
                return (200, data) if len(parts) == 5 and parts[4] == "content" else (200, dict(obj))
        return 404, json.loads(_error_body(f"no route GET {path}", None, "invalid_request_error"))

    # -- processing

    def _process(self, batch_id: str) -> None:
        owner = self.owner
        if self.hold:
            self._released.wait()
        elif self.latency:
            owner._stop.wait(self.latency)
        with self._lock:
            batch = self._batches[batch_id]
            if batch["status"] == "cancelled":
                return
            lines = self._files[batch["input_file_id"]][1].decode("utf-8").splitlines()
            batch["status"] = "in_progress"
            batch["in_progress_at"] = CREATED
            batch["request_counts"]["total"] = len(lines)
        out: list[str] = []
        errors: list[str] = []
        expired = False
        for n, line in enumerate(lines):
            request = json.loads(line)
            body = request["body"]
            fault = self.item_fault(body) if self.item_fault is not None else None
            entry: dict[str, Any] = {"id": f"batch_req_{n}", "custom_id": request["custom_id"], "error": None}
            if fault == "expire":
                expired = True
                entry["response"] = None
                entry["error"] = {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}
                errors.append(json.dumps(entry))
                continue
            reply = owner._choose(body, json.dumps(body, sort_keys=True).encode()) if fault is None else server_error()
            if reply.kind in ("ok", "wrong_schema"):
                entry["response"] = {"status_code": 200, "request_id": f"req_{n}", "body": owner._completion(body, reply)}
                out.append(json.dumps(entry))
                key = "completed"
                with self._lock:
                    self.paid += 1  # a provider bills the items it answered
            else:
                status = reply.status if reply.status >= 400 else 500
                entry["response"] = {"status_code": status, "request_id": f"req_{n}", "body": json.loads(_error_body("fakellm batch item failed", None, "server_error"))}
                errors.append(json.dumps(entry))
                key = "failed"
            with self._lock:
                batch["request_counts"][key] += 1
        output = self._new_file(("\n".join(out) + "\n").encode() if out else b"", "batch_output", f"{batch_id}_output.jsonl")
        error = self._new_file(("\n".join(errors) + "\n").encode(), "batch_output", f"{batch_id}_error.jsonl") if errors else None
        with self._lock:
            batch["output_file_id"] = output["id"]
            batch["error_file_id"] = error["id"] if error else None
            batch["status"] = "expired" if expired else "completed"
            batch["completed_at" if not expired else "expired_at"] = CREATED



def _is_loopback(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def loopback_only() -> Iterator[list[str]]:
    """Refuse, and record, every connection or DNS lookup that is not loopback.

    Patches ``socket.getaddrinfo`` and ``socket.socket.connect`` /
    ``connect_ex`` (what httpx, aiohttp and asyncio all go through) for the
    duration; yields the list of refused targets, which a test asserts empty.
    Unix-domain sockets are allowed. Process-wide: do not nest with another
    patch of the same functions.
    """
    blocked: list[str] = []
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def refuse(target: str) -> OSError:
        blocked.append(target)
        return ConnectionRefusedError(f"loopback_only: refused a non-loopback connection to {target}")

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host):
            raise refuse(f"{host}:{port}")
        return real_getaddrinfo(host, port, *args, **kwargs)

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise refuse(f"{address[0]}:{address[1]}")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield blocked
    finally:
        socket.getaddrinfo = real_getaddrinfo
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]


@contextlib.contextmanager
def fakellm_server(*, guard: bool = True, **kwargs: Any) -> Iterator[FakeLLM]:
    """A running ``FakeLLM(**kwargs)``; the body of a pytest fixture.

    With ``guard`` (the default) the block also runs under ``loopback_only()``
    and fails if anything tried to reach a non-loopback address.
    """
    with contextlib.ExitStack() as stack:
        blocked = stack.enter_context(loopback_only()) if guard else []
        server = stack.enter_context(FakeLLM(**kwargs))
        yield server
    if blocked:
        raise AssertionError(f"fakellm: non-loopback connections were attempted: {blocked}")


# ------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Loopback OpenAI-compatible chat server (127.0.0.1 only).")
    parser.add_argument("--port", type=int, default=0, help="0 = a free ephemeral port (default)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every answer")
    parser.add_argument("--reply", default="ok", help="the content of every reply")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of calls that fail (429/500/hang)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --fault-rate")
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="exit after this long (a forgotten server)")
    args = parser.parse_args(argv)

    faults = FaultRate(args.fault_rate, seed=args.seed) if args.fault_rate > 0 else None
    server = FakeLLM(
        latency=args.latency_ms / 1000.0,
        fault_rate=faults,
        default_reply=args.reply,
        hang_seconds=args.hang_seconds,
        port=args.port,
    )
    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    with server:
        print(f"base_url={server.base_url}", flush=True)
        deadline = time.monotonic() + args.max_seconds
        while not done.wait(0.5) and time.monotonic() < deadline:
            pass
        print(f"calls={server.call_count} max_in_flight={server.max_in_flight} outcomes={dict(server.outcomes)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
