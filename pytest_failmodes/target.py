"""Targets: run the application under test over a dataset's inputs.

A definition file's ``target:`` names a fixture that returns a callable
(sync or async) taking the input text and returning the output text, a
:class:`Trace`, or a mapping of trace fields. Every input is run through the
same runner as the judges: one concurrency limit, retries of 429/5xx and
timeouts, and (opt-in) the cache. An input whose call still fails is an
error in every mode, never a pass or a fail.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .judge import ModelContext
    from .trace import Trace

__all__ = ["TargetSpec", "produce", "app_caller", "output_of", "TraceWriter"]


@dataclass(frozen=True)
class TargetSpec:
    fixture: str
    cache: bool = False
    version: str = ""

    def __repr__(self) -> str:
        return f"target({self.fixture})"


def _as_trace(source: Trace, result: Any) -> Trace:
    from .trace import Trace

    if isinstance(result, str):
        return source.model_copy(update={"output": result})
    if isinstance(result, Trace):
        data = result.model_dump()
    elif isinstance(result, dict):
        data = dict(result)
    else:
        raise TypeError(f"the target returned {type(result).__name__}; expected str, Trace or a mapping")
    # the dataset's id and metadata identify the trace; the target adds to them
    data["id"] = source.id
    data["metadata"] = {**source.metadata, **(data.get("metadata") or {})}
    data.setdefault("input", source.input)
    data.setdefault("labels", source.labels)
    return Trace.model_validate(data)


def app_caller(app: Callable[[str], Any]) -> Callable[[str], Awaitable[Any]]:
    """``app`` as a coroutine function: an async app is awaited on the loop, a sync one
    runs in a worker thread (it may block on I/O), and an awaitable it returns is awaited."""
    is_async = inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(getattr(app, "__call__", None))

    async def call(text: str) -> Any:
        if is_async:
            return await app(text)
        result = await asyncio.to_thread(app, text)
        return await result if inspect.isawaitable(result) else result

    return call


def output_of(result: Any) -> str:
    """The output text of what an app returned: a str, a Trace or a mapping of trace fields."""
    if isinstance(result, str):
        return result
    from .trace import Trace

    return _as_trace(Trace(id="-", input="", output=""), result).output or ""


def produce(
    spec: TargetSpec,
    app: Callable[[str], Any],
    inputs: Iterable[Trace],
    ctx: ModelContext,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Trace], dict[str, str]]:
    """Run ``app`` over every input concurrently; ``(traces, {id: error})`` in input order."""
    sources = list(inputs)
    runner = ctx.runner
    label = f"target:{spec.fixture}"
    call = app_caller(app)

    async def one(source: Trace) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            result = await runner.guarded(label, lambda: call(source.input or ""))
            trace = _as_trace(source, result)
            return json.loads(trace.model_dump_json())

        if not spec.cache:
            return await run()
        from .cache import cache_key

        key = cache_key(kind="target", target=spec.fixture, version=spec.version, input=source.input)
        return await ctx.cached(key, label, run)

    from .trace import Trace

    futures = [runner.submit(one(s)) for s in sources]
    traces: list[Trace] = []
    failed: dict[str, str] = {}
    for done, (source, fut) in enumerate(zip(sources, futures), 1):
        try:
            traces.append(Trace.model_validate(fut.result()))
        except Exception as exc:  # noqa: BLE001 - an input the app could not answer is an error
            failed[source.id] = f"{type(exc).__name__}: {exc}"[:500]
            traces.append(source)
        if progress:
            progress(done, len(sources))
    return traces, failed


class TraceWriter:
    """Appends produced traces to a JSONL file; safe with several processes (xdist)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def truncate(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("", encoding="utf-8")

    def write(self, traces: Iterable[Trace], failed: Iterable[str] = ()) -> None:
        skip = set(failed)
        lines = "".join(t.model_dump_json(exclude_none=True) + "\n" for t in traces if t.id not in skip)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            try:
                import fcntl

                fcntl.flock(fh, fcntl.LOCK_EX)
            except (ImportError, OSError):
                pass  # no advisory locks here: a single process still writes whole lines
            fh.write(lines)
            fh.flush()
