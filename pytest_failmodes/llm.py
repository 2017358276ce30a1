"""Model calls through litellm: concurrent, bounded, retried, measured.

One :class:`Runner` per process runs every model call of the run (judges,
targets, paraphrases) on an asyncio loop in a background thread, under one
concurrency limit. On 429 the limit halves and recovers one step per run of
successes (additive increase, multiplicative decrease); Retry-After is
honoured; 5xx, timeouts and connection errors back off exponentially with
jitter. A call that still fails after its retry budget is an *error*, never a
verdict.

litellm is imported on the first call, never at module import.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .llm_call import (  # noqa: F401 - the attempt lives below both the runner and the workers
    REDACTED,
    THIRD_PARTY,
    _classify,
    _first_line,
    _retry_after,
    attempt_once,
    is_throttled,
    call_secrets,
    load_litellm,
    quiet_third_party,
    redact,
)

__all__ = ["Runner", "Completion", "ModelError", "ModelStats", "attempt_once", "load_litellm", "quiet_third_party", "resolve_workers"]

T = TypeVar("T")

def call_params(
    extra: Mapping[str, Any], temperature: float, max_tokens: int | None, api_base: str | None
) -> dict[str, Any]:
    """The litellm parameters of a call (without model and messages), as every
    model-backed part (judges, paraphrases, equivalence checks) sends them."""
    params: dict[str, Any] = dict(extra)
    params["temperature"] = temperature
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    if api_base:
        params["api_base"] = api_base
    return params


class ModelError(Exception):
    """A model call failed for good (after retries, or not retryable)."""


@dataclass(frozen=True)
class Completion:
    content: str
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    latency: float


@dataclass
class ModelStats:
    """Per-model figures for the summary; mergeable across xdist workers."""

    calls: int = 0
    cache_hits: int = 0
    errors: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cost_known: bool = True
    latencies: list[float] = field(default_factory=list)
    #: of ``calls``: made by a model worker process / answered through a provider's batch API
    worker_calls: int = 0
    batch_calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def merge(self, other: Mapping[str, Any]) -> None:
        for key in ("calls", "cache_hits", "errors", "retries", "prompt_tokens", "completion_tokens", "cost"):
            setattr(self, key, getattr(self, key) + other[key])
        for key in ("worker_calls", "batch_calls"):
            setattr(self, key, getattr(self, key) + other.get(key, 0))
        self.cost_known = self.cost_known and other["cost_known"]
        self.latencies.extend(other["latencies"])

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        data = sorted(self.latencies)
        k = min(len(data) - 1, max(0, round(q * (len(data) - 1))))
        return data[k]


class _AdaptiveLimit:
    """At most ``current`` calls in flight; halves on 429, grows back by one per ``current`` successes.

    Waiters are served first come, first served. A waiter is a task in
    :meth:`acquire`, or a callback given to :meth:`wait` (the model worker pool's
    calls), called on this loop, synchronously, when a slot is taken for it; it
    returns False when it no longer wants the slot.
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.current = maximum
        self.in_flight = 0
        self._streak = 0
        # ordered, with O(1) withdrawal: a pool call that starts on a slot its worker handed
        # over leaves its place here
        self._waiters: OrderedDict[object, Callable[[], bool]] = OrderedDict()
        # the acquire() waiters the worker pool may take over (model calls), and the others
        self._movable: dict[object, None] = {}
        self._fixed = 0
        #: called when hand_over_allowed() may have changed (set by the worker pool)
        self.listener: Callable[[], None] | None = None

    def hand_over_allowed(self) -> bool:
        """Whether an ending call's slot may go straight to a queued pool call: only at the
        maximum (after a 429 the calls in flight must drop) and with no call of this process
        waiting (it would be passed in the queue)."""
        return self.current >= self.maximum and self._fixed == 0

    def wait(self, key: object, grant: Callable[[], bool]) -> bool:
        """Take a slot now (True), or queue ``grant`` under ``key`` for the next free one."""
        if self.in_flight < self.current and not self._waiters:
            self.in_flight += 1
            return True
        self._waiters[key] = grant
        return False

    def withdraw(self, key: object) -> None:
        """Take ``key``'s place out of the queue (no-op once it was granted)."""
        self._waiters.pop(key, None)

    async def acquire(self, *, movable: bool = False) -> bool:
        """Wait for a slot (True). ``movable``: :meth:`move_waiters` may instead send this
        waiter away without one (False), to the model worker pool."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def grant() -> bool:
            if fut.done():  # cancelled, or moved, while it waited
                return False
            fut.set_result(True)
            return True

        if self.wait(fut, grant):
            return True
        if movable:
            self._movable[fut] = None
        else:
            self._fixed += 1
            if self._fixed == 1:
                self._changed()
        try:
            return await fut
        except asyncio.CancelledError:
            self.withdraw(fut)
            if fut.done() and not fut.cancelled() and fut.result():
                self.give_back()  # granted, then cancelled before it could run: the next waiter's
            raise
        finally:
            if movable:
                self._movable.pop(fut, None)
            else:
                self._fixed -= 1
                if self._fixed == 0:
                    self._changed()

    def move_waiters(self) -> None:
        """Every movable acquire() still waiting returns False, without a slot, at once."""
        for fut in list(self._movable):
            self.withdraw(fut)
            if not fut.done():
                fut.set_result(False)
        self._movable.clear()

    def _changed(self) -> None:
        if self.listener is not None:
            self.listener()

    async def release(self, *, throttled: bool = False) -> None:
        self.free(throttled=throttled)

    def free(self, *, throttled: bool = False) -> None:
        """A call ended: its slot is free, and its outcome moves the limit."""
        self.in_flight -= 1
        self._settle(throttled)
        self._grant()

    def hand_over(self) -> None:
        """A call ended well and its slot went straight to the next call (the count stays)."""
        self._settle(False)
        self._grant()

    def give_back(self) -> None:
        """A slot taken for a call that did not run: free again, the limit unmoved."""
        self.in_flight -= 1
        self._grant()

    def take(self) -> None:
        """A call started without a slot (a hand-over the runner could not back): count it."""
        self.in_flight += 1

    def _settle(self, throttled: bool) -> None:
        if throttled:
            at_maximum = self.current >= self.maximum
            self.current = max(1, self.current // 2)
            self._streak = 0
            if at_maximum and self.current < self.maximum:
                self._changed()
        else:
            self._streak += 1
            if self._streak >= self.current and self.current < self.maximum:
                self.current += 1
                self._streak = 0
                if self.current == self.maximum:
                    self._changed()

    def _grant(self) -> None:
        while self.in_flight < self.current and self._waiters:
            _key, grant = self._waiters.popitem(last=False)
            self.in_flight += 1
            if not grant():
                self.in_flight -= 1


class Runner:
    """Runs coroutines that make model calls, from synchronous code.

    ``submit(coro)`` returns a :class:`concurrent.futures.Future`; inside the
    coroutine, ``await runner.complete(...)`` makes one model call under the
    shared limit with retries.
    """

    def __init__(
        self,
        *,
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        seed: int | None = None,
        workers: int = 1,
        workers_after: int = 0,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        #: model worker processes (1: every call in this process); see pytest_failmodes.workers
        self.workers = workers
        #: start the workers only once this many attempts were made (auto: a small run never pays for them)
        self.workers_after = workers_after
        self._pool: Any = None
        self._attempts = 0
        self._schema_support: dict[str, bool] = {}
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stats: dict[str, ModelStats] = {}
        self._stats_lock = threading.Lock()
        self._rng = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="failmodes-llm", daemon=True)
        self._thread.start()
        self._limit: _AdaptiveLimit = self.call_soon(self._make_limit).result()
        self._litellm: Any = None
        self._closed = False

    async def _make_limit(self) -> _AdaptiveLimit:
        return _AdaptiveLimit(self.max_concurrency)

    # -- scheduling -----------------------------------------------------------------------
    def call_soon(self, factory: Callable[[], Coroutine[Any, Any, T]]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(factory(), self._loop)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule a coroutine on the runner's loop."""
        if self._closed:
            coro.close()
            raise RuntimeError("runner is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def _shutdown() -> None:
            # the calls first (a cancelled attempt tells its worker), then the pool, whose own
            # tasks keep reading the workers' pipes until they exit
            keep = self._pool.own_tasks() if self._pool is not None else set()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and t not in keep]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._pool is not None:
                await self._pool.close()
            # litellm caches one HTTP client per event loop and never closes it; a target
            # that calls litellm itself runs on this loop too, even when we made no call
            litellm = self._litellm or sys.modules.get("litellm")
            if litellm is not None and hasattr(litellm, "close_litellm_async_clients"):
                quiet_third_party()
                await litellm.close_litellm_async_clients()

        try:
            asyncio.run_coroutine_threadsafe(_shutdown(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- stats -----------------------------------------------------------------------------
    def model_stats(self, model: str) -> ModelStats:
        with self._stats_lock:
            return self.stats.setdefault(model, ModelStats())

    def record_hit(self, model: str) -> None:
        stats = self.model_stats(model)
        with self._stats_lock:
            stats.cache_hits += 1

    def error_count(self) -> int:
        """Calls (of every model and target) that failed for good so far."""
        with self._stats_lock:
            return sum(s.errors for s in self.stats.values())

    def stats_dict(self) -> dict[str, dict[str, Any]]:
        with self._stats_lock:
            return {m: s.to_dict() for m, s in self.stats.items()}

    # -- one model call ----------------------------------------------------------------------
    async def complete(self, model: str, messages: list[dict[str, Any]], **params: Any) -> Completion:
        """One chat completion with the shared limit, retries and per-call timeout.

        The limit, the retries and the back-off stay in this process whether the
        attempt runs here or in a model worker process (``workers``): every worker
        shares the one limit, and a 429 seen by any of them halves it for all.
        """
        stats = self.model_stats(model)
        timeout = float(params.pop("timeout", self.timeout))
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            result = await self._attempt(model, messages, timeout, params)
            if result["ok"]:
                return self._completed(model, stats, result)
            kind, retryable = result["kind"], result["retryable"]
            last = f"{kind}: {result['message']}"
            if not retryable or attempt == self.max_retries:
                with self._stats_lock:
                    stats.errors += 1
                suffix = f" after {attempt + 1} attempts" if retryable else ""
                raise ModelError(f"{model}: {last}{suffix}")
            retry_after = result["retry_after"]
            wait = retry_after if retry_after is not None else self._backoff(attempt)
            with self._stats_lock:
                stats.retries += 1
            await asyncio.sleep(min(wait, self.max_backoff))
        raise ModelError(f"{model}: {last}")  # pragma: no cover - loop always returns or raises

    async def _attempt(self, model: str, messages: list[dict[str, Any]], timeout: float, params: Mapping[str, Any]) -> dict[str, Any]:
        """One attempt on a slot of the shared limit (taken and freed here, its outcome moving
        the limit), in a model worker process when the pool serves it, else in this process."""
        while True:
            pool = self._pool_for_call()
            held = False
            if pool is not None:
                break
            if not await self._limit.acquire(movable=self.workers > 1):
                continue  # (auto) the workers became ready while this call waited: it goes to them
            held = True
            self._attempts += 1
            pool = self._pool_for_call()  # (auto) the workers may have become ready meanwhile
            if pool is not None:
                break
            quiet_third_party()
            try:
                result = await attempt_once(await self._load(), model, messages, timeout, params)
            except BaseException:
                self._limit.give_back()  # cancelled: the call was not made
                raise
            await self._limit.release(throttled=is_throttled(result))
            return result
        if not held:
            self._attempts += 1
        from .workers import WorkerGone

        try:
            result = await pool.call(model, messages, timeout, params, held=held)
        except WorkerGone as exc:
            # the attempt is lost with its worker, not answered: retried like a dropped connection
            return {"ok": False, "kind": "model worker exited", "retryable": True, "retry_after": 0.0, "message": str(exc)}
        result["worker"] = True
        return result

    async def _load(self) -> Any:
        if self._litellm is None:
            self._litellm = await asyncio.to_thread(load_litellm)
        return self._litellm

    def _pool_for_call(self) -> Any:
        """The worker pool this attempt goes to, or ``None`` to make it in this process."""
        if self.workers <= 1:
            return None
        if self._pool is None:
            if self._attempts < self.workers_after:
                return None
            self.start_workers()
        pool = self._pool
        assert pool is not None
        if pool.broken:
            return None  # every worker failed to start or died: the run goes on here (pool.problem says why)
        if pool.ready or self.workers_after == 0:
            return pool  # an explicit worker count waits for its workers; auto keeps going here meanwhile
        return None

    def start_workers(self) -> None:
        """Start the model worker processes now (a run that knows it will need them, at
        collection, so their imports overlap it). No-op with one worker or when started."""
        if self.workers <= 1 or self._pool is not None or self._closed:
            return
        from .workers import WorkerPool

        # auto: the calls waiting here for a slot when the first worker is ready go to the workers
        self._pool = WorkerPool(self.workers, self._limit, on_ready=self._limit.move_waiters if self.workers_after else None)
        if threading.current_thread() is self._thread:
            self._pool.begin()
        else:
            self._loop.call_soon_threadsafe(self._pool.begin)

    @property
    def worker_problem(self) -> str | None:
        """Why model worker processes could not (all) be used, for one warning line; ``None`` while they work."""
        return None if self._pool is None else self._pool.problem

    async def supports_response_schema(self, model: str) -> bool:
        """Whether litellm knows ``model`` to take a JSON schema (``response_format``).

        Asked of a worker when explicit workers make the calls, so this process never
        imports litellm for it; memoised per model."""
        if model not in self._schema_support:
            pool = self._pool_for_call() if self.workers_after == 0 else None
            if pool is not None:
                from .workers import WorkerGone

                try:
                    value = bool(await pool.ask("schema", model))
                except WorkerGone:
                    value = False
            else:
                try:
                    value = bool((await self._load()).supports_response_schema(model=model))
                except Exception:  # noqa: BLE001 - unknown provider: fall back to strict parsing
                    value = False
            self._schema_support[model] = value
        return self._schema_support[model]

    async def guarded(self, label: str, make_call: Callable[[], Awaitable[T]]) -> T:
        """Run a call of the application (a target) under the shared limit, with retries.

        Rate limits (429), server errors (5xx) and timeouts are retried like
        model calls; any other exception is the application's answer and is
        raised at once. Stats are kept under ``label``.
        """
        stats = self.model_stats(label)
        for attempt in range(self.max_retries + 1):
            await self._limit.acquire()
            # an application that calls litellm itself runs into the same warnings
            quiet_third_party()
            started = time.perf_counter()
            try:
                result = await asyncio.wait_for(make_call(), timeout=self.timeout)
            except Exception as exc:  # noqa: BLE001 - classified below
                status = getattr(exc, "status_code", None)
                throttled = status == 429
                # SDK timeouts and dropped connections (openai/litellm/httpx) are named so
                kind = type(exc).__name__
                retryable = (
                    throttled
                    or isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError))
                    or kind.endswith(("Timeout", "TimeoutError", "ConnectionError"))
                    or status == 408
                    or (isinstance(status, int) and status >= 500)
                )
                await self._limit.release(throttled=throttled)
                if not retryable or attempt == self.max_retries:
                    with self._stats_lock:
                        stats.errors += 1
                    raise
                with self._stats_lock:
                    stats.retries += 1
                wait = (_retry_after(exc) if throttled else None) or self._backoff(attempt)
                await asyncio.sleep(min(wait, self.max_backoff))
                continue
            latency = time.perf_counter() - started
            await self._limit.release()
            with self._stats_lock:
                stats.calls += 1
                stats.latencies.append(latency)
                stats.cost_known = False
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def call_budget(self) -> float:
        """The longest one call can take with all its retries and waits between them."""
        return (self.max_retries + 1) * (self.timeout + 5.0) + self.max_retries * self.max_backoff + 30.0

    def _backoff(self, attempt: int) -> float:
        # full jitter: spreads retries of many calls that failed together
        return self._rng.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))

    def _completed(self, model: str, stats: ModelStats, result: Mapping[str, Any]) -> Completion:
        content = result["content"]
        p_tok, c_tok, cost, latency = result["prompt_tokens"], result["completion_tokens"], result["cost"], result["latency"]
        with self._stats_lock:
            stats.calls += 1
            if result.get("worker"):
                stats.worker_calls += 1
            stats.prompt_tokens += p_tok
            stats.completion_tokens += c_tok
            stats.latencies.append(latency)
            if cost is None:
                stats.cost_known = False
            else:
                stats.cost += cost
        if not isinstance(content, str):
            with self._stats_lock:
                stats.errors += 1
            raise ModelError(f"{model}: reply has no text content")
        return Completion(content, p_tok, c_tok, cost, latency)


def gather_map(runner: Runner, items: list[Any], func: Callable[[Any], Awaitable[T]]) -> list[Future[T]]:
    """Submit ``func(item)`` for every item; the runner's limit bounds the calls in flight."""
    return [runner.submit(func(item)) for item in items]  # type: ignore[arg-type]


#: ``auto``: attempts made in this process before the worker processes start. Each worker
#: imports litellm (seconds of CPU); a run with fewer calls than this is done sooner without them
AUTO_WORKERS_AFTER = 500
#: ``auto`` never starts more workers than this, whatever the cores
MAX_AUTO_WORKERS = 8


def resolve_workers(value: str | int, *, xdist_worker: bool = False) -> tuple[int, int]:
    """``(workers, workers_after)`` for a ``--failmodes-model-workers`` value.

    ``auto``: one worker per core (at most :data:`MAX_AUTO_WORKERS`), started after
    :data:`AUTO_WORKERS_AFTER` attempts; 1 (every call in this process) on one core
    and in an xdist worker, where xdist's processes already use the cores. A number
    is used as given, from the first call (per xdist worker under ``-n``).
    """
    if value == "auto":
        cores = min(os.cpu_count() or 1, MAX_AUTO_WORKERS)
        if xdist_worker or cores <= 1:
            return 1, 0
        return cores, AUTO_WORKERS_AFTER
    return int(value), 0
