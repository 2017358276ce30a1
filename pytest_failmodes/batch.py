"""Judge calls through a provider's batch API (``judge: {batch: true}``, ``--failmodes-batch``).

A nightly run over 100k traces needs no client concurrency this way, and
providers bill batch calls at about half price. The calls a pass submits are
gathered (per model and endpoint) until the pass stops adding to them, then
written as one JSONL file, uploaded (``litellm.acreate_file``) and submitted
(``litellm.acreate_batch``); the batch is polled (``aretrieve_batch``) with a
progress line, and its output file read (``afile_content``).

Resuming: before anything is submitted, the uploaded file's id, and then the
batch id, are stored in the run's cache for every request it holds. A run that
was interrupted finds them there and waits for the same batch (or submits the
uploaded file, if it was killed between the two steps and the provider lists
no batch made from it) instead of paying again. Without a cache nothing can be
resumed, and a rerun submits a new batch.

A request the batch did not answer (failed, expired, a cancelled or failed
batch, a provider litellm has no batch API for) is made as a live call, with
the runner's limit and retries: the batch saves money, it never decides a
verdict on its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import ResultCache
    from .llm import Completion, Runner

__all__ = ["BatchQueue", "SUPPORTED_PROVIDERS"]

#: providers whose files and batches endpoints litellm drives (OpenAI and compatible servers)
SUPPORTED_PROVIDERS = ("openai",)
#: OpenAI's limit of requests in one batch
MAX_BATCH_REQUESTS = 50_000
#: call parameters that say where and how to connect; the rest goes into each request's body
_CONNECTION = frozenset(
    {"api_base", "base_url", "api_key", "api_version", "organization", "extra_headers", "timeout", "custom_llm_provider"}
)
_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_KEY_PREFIX = "batch-request:"


@dataclass
class _Request:
    custom_id: str
    body: dict[str, Any]
    future: asyncio.Future[dict[str, Any] | None]


@dataclass
class _Group:
    """Requests for one model at one endpoint: what one batch file may hold."""

    model: str
    provider_model: str
    connection: dict[str, Any]
    requests: dict[str, _Request] = field(default_factory=dict)
    changed: float = 0.0
    flusher: asyncio.Task[None] | None = None


class BatchQueue:
    """Gathers model calls into provider batches; one per :class:`~pytest_failmodes.judge.ModelContext`.

    ``complete(model, messages, **params)`` answers like ``Runner.complete``: from
    the batch when it answered the request, else by a live call. ``quiet``
    seconds without a new request (and none on its way) close a batch; ``poll``
    is the seconds between status checks; ``progress(line)`` gets a line per
    submission and status change.
    """

    def __init__(
        self,
        runner: Runner,
        cache: ResultCache | None,
        *,
        quiet: float = 2.0,
        poll: float = 10.0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.runner = runner
        self.cache = cache
        self.quiet = quiet
        self.poll = poll
        self.progress = progress
        #: why some calls were made live instead (one line each, for the run's summary)
        self.problems: list[str] = []
        self._groups: dict[str, _Group] = {}
        #: calls that entered a batched judgement and have not yet been queued or answered
        self.arriving = 0
        self._litellm: Any = None

    # -- the caller's side ------------------------------------------------------------
    async def complete(
        self, model: str, messages: list[dict[str, Any]], *, arrived: Callable[[], None] | None = None, **params: Any
    ) -> Completion:
        """One chat completion, answered by a batch when the provider has a batch API.

        ``arrived()`` is called once the request is queued (see :attr:`arriving`)."""
        from .cache import content_key
        from .llm import Completion, load_litellm

        if self._litellm is None:
            self._litellm = await asyncio.to_thread(load_litellm)
        litellm = self._litellm
        connection = {k: v for k, v in params.items() if k in _CONNECTION}
        try:
            provider_model, provider, _key, _base = litellm.get_llm_provider(model=model, api_base=connection.get("api_base"))
        except Exception:  # noqa: BLE001 - litellm cannot place the model: the live call reports it
            provider_model, provider = model, None
        if provider not in SUPPORTED_PROVIDERS:
            self._problem(
                f"judge batch: litellm has no batch API for provider {provider!r} ({model}); those calls are made live"
            )
            if arrived is not None:
                arrived()
            return await self.runner.complete(model, messages, **params)
        body = {k: v for k, v in params.items() if k not in _CONNECTION}
        body.update(model=provider_model, messages=messages)
        # the request's identity: credentials and connection details are not part of it
        custom_id = content_key({"model": model, "api_base": connection.get("api_base"), "body": body})
        group_key = content_key({"model": model, "connection": {k: repr(v) for k, v in connection.items()}})
        group = self._groups.get(group_key)
        if group is None:
            group = self._groups[group_key] = _Group(model, provider_model, connection)
        request = group.requests.get(custom_id)
        if request is None:
            future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
            request = group.requests[custom_id] = _Request(custom_id, body, future)
            group.changed = time.monotonic()
            if group.flusher is None:
                group.flusher = asyncio.ensure_future(self._flush_when_quiet(group_key))
        if arrived is not None:
            arrived()
        answer = await asyncio.shield(request.future)
        if answer is None:
            return await self.runner.complete(model, messages, **params)
        self._record(model, answer)
        return Completion(answer["content"], answer["prompt_tokens"], answer["completion_tokens"], None, 0.0)

    def _record(self, model: str, answer: Mapping[str, Any]) -> None:
        stats = self.runner.model_stats(model)
        with self.runner._stats_lock:
            stats.calls += 1
            stats.batch_calls += 1
            stats.prompt_tokens += answer["prompt_tokens"]
            stats.completion_tokens += answer["completion_tokens"]
            stats.cost_known = False  # batch prices are the provider's; litellm's map has none

    def _problem(self, line: str) -> None:
        if line not in self.problems:
            self.problems.append(line)
            self._say(f"WARNING: {line}")

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    # -- gathering ----------------------------------------------------------------------
    async def _flush_when_quiet(self, group_key: str) -> None:
        group = self._groups[group_key]
        while True:
            await asyncio.sleep(min(self.quiet, 0.25))
            full = len(group.requests) >= MAX_BATCH_REQUESTS
            if full or (self.arriving == 0 and time.monotonic() - group.changed >= self.quiet):
                break
        # later requests start the next batch of this group
        del self._groups[group_key]
        requests = list(group.requests.values())
        try:
            await self._run(group, requests)
        except Exception as exc:  # noqa: BLE001 - any failure of the batch path: the calls go live
            from .llm import _first_line

            self._problem(f"judge batch for {group.model} failed ({_first_line(exc)}); {len(requests)} calls are made live")
        finally:
            for request in requests:
                if not request.future.done():
                    request.future.set_result(None)

    # -- one batch's life -------------------------------------------------------------------
    async def _run(self, group: _Group, requests: list[_Request]) -> None:
        from .llm import load_litellm

        litellm = await asyncio.to_thread(load_litellm)
        conn = dict(group.connection)
        conn.pop("timeout", None)
        known = await asyncio.to_thread(self._stored, [r.custom_id for r in requests])
        by_batch: dict[str, list[_Request]] = {}
        by_file: dict[str, list[_Request]] = {}
        fresh: list[_Request] = []
        for request in requests:
            record = known.get(request.custom_id)
            if record and record.get("batch_id"):
                by_batch.setdefault(record["batch_id"], []).append(request)
            elif record and record.get("file_id"):
                by_file.setdefault(record["file_id"], []).append(request)
            else:
                fresh.append(request)
        for file_id, held in by_file.items():
            # killed between upload and submission: the provider may have the batch anyway
            batch_id = await self._batch_of_file(litellm, conn, file_id)
            if batch_id is None:
                batch_id = await self._submit_file(litellm, conn, file_id, held)
            else:
                await asyncio.to_thread(self._store, held, {"file_id": file_id, "batch_id": batch_id})
            by_batch.setdefault(batch_id, []).extend(held)
        for batch_id, held in by_batch.items():
            self._say(f"judge batch {batch_id}: resuming the batch an earlier run submitted ({len(held)} calls)")
        if fresh:
            lines = "".join(
                json.dumps({"custom_id": r.custom_id, "method": "POST", "url": "/v1/chat/completions", "body": r.body}) + "\n"
                for r in fresh
            )
            created = await litellm.acreate_file(
                file=("failmodes-batch.jsonl", lines.encode("utf-8")), purpose="batch", custom_llm_provider="openai", **conn
            )
            await asyncio.to_thread(self._store, fresh, {"file_id": created.id})
            batch_id = await self._submit_file(litellm, conn, created.id, fresh)
            by_batch.setdefault(batch_id, []).extend(fresh)
        await asyncio.gather(*(self._await_batch(litellm, conn, batch_id, held) for batch_id, held in by_batch.items()))

    async def _submit_file(self, litellm: Any, conn: Mapping[str, Any], file_id: str, held: list[_Request]) -> str:
        batch = await litellm.acreate_batch(
            completion_window="24h", endpoint="/v1/chat/completions", input_file_id=file_id,
            custom_llm_provider="openai", metadata={"created_by": "pytest-failmodes"}, **conn,
        )
        await asyncio.to_thread(self._store, held, {"file_id": file_id, "batch_id": batch.id})
        self._say(f"judge batch {batch.id}: submitted {len(held)} calls")
        return str(batch.id)

    async def _batch_of_file(self, litellm: Any, conn: Mapping[str, Any], file_id: str) -> str | None:
        try:
            listed = await litellm.alist_batches(limit=100, custom_llm_provider="openai", **conn)
        except Exception:  # noqa: BLE001 - no listing: submit the uploaded file (at worst paid twice, never wrong)
            return None
        for batch in _field(listed, "data") or []:
            if _field(batch, "input_file_id") == file_id:
                return str(_field(batch, "id"))
        return None

    async def _await_batch(self, litellm: Any, conn: Mapping[str, Any], batch_id: str, held: list[_Request]) -> None:
        last = None
        while True:
            batch = await litellm.aretrieve_batch(batch_id=batch_id, custom_llm_provider="openai", **conn)
            counts = getattr(batch, "request_counts", None)
            done = getattr(counts, "completed", 0) or 0
            total = getattr(counts, "total", 0) or len(held)
            state = (batch.status, done)
            if state != last:
                self._say(f"judge batch {batch_id}: {batch.status}, {done:,} of {total:,} calls done")
                last = state
            if batch.status in _TERMINAL:
                break
            await asyncio.sleep(self.poll)
        answers: dict[str, dict[str, Any]] = {}
        if getattr(batch, "output_file_id", None):
            content = await litellm.afile_content(file_id=batch.output_file_id, custom_llm_provider="openai", **conn)
            answers = _answers(content.content if hasattr(content, "content") else bytes(content))
        missing = 0
        for request in held:
            answer = answers.get(request.custom_id)
            if answer is None:
                missing += 1
            if not request.future.done():
                request.future.set_result(answer)
        if missing:
            self._problem(
                f"judge batch {batch_id} ended {batch.status} without an answer for {missing} of {len(held)} calls; "
                "those are made live"
            )

    # -- the cache's record of submitted requests ----------------------------------------
    def _stored(self, custom_ids: list[str]) -> dict[str, dict[str, Any]]:
        if self.cache is None:
            return {}
        out = {}
        for custom_id in custom_ids:
            value = self.cache.get(_KEY_PREFIX + custom_id)
            if value is not None:
                out[custom_id] = value
        return out

    def _store(self, requests: list[_Request], record: dict[str, Any]) -> None:
        if self.cache is not None:
            self.cache.put_many((_KEY_PREFIX + r.custom_id, record) for r in requests)


def _field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``: litellm returns some listings as plain dicts."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _answers(content: bytes) -> dict[str, dict[str, Any]]:
    """custom_id -> the parts of a completion a caller uses, for every line answered with a 200 and text."""
    out: dict[str, dict[str, Any]] = {}
    for raw in content.decode("utf-8", "replace").splitlines():
        try:
            line = json.loads(raw)
            response = line.get("response") or {}
            if response.get("status_code") != 200:
                continue
            body = response["body"]
            text = body["choices"][0]["message"]["content"]
            usage = body.get("usage") or {}
            if not isinstance(text, str):
                continue
            out[str(line["custom_id"])] = {
                "content": text,
                "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                "completion_tokens": int(usage.get("completion_tokens") or 0),
            }
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            continue  # an unusable line: that call is made live
    return out
