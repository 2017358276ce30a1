"""Model worker processes: litellm's client CPU spread over the cores.

litellm spends several milliseconds of CPU per call in the client (the openai
SDK, pydantic models, pricing), so one process tops out near a hundred-odd
calls per second whatever the concurrency. A :class:`WorkerPool` (owned by
the :class:`~pytest_failmodes.llm.Runner`, on its event loop) starts N
processes running ``python -m pytest_failmodes.workers``; each has its own
event loop and its own litellm and makes the single *attempts* it is sent.

Everything that decides a result stays in the runner's process: the one
concurrency limit and its AIMD back-off, the retries, the cache and the
statistics. A worker only turns ``(model, messages, params)`` into the plain
data of :func:`~pytest_failmodes.llm.attempt_once`, so a run's verdicts do
not depend on which process made a call, or in what order.

The protocol: length-prefixed pickle frames on the worker's stdin and on a
private copy of its stdout (fd 1 itself is pointed at stderr, so a library
that prints cannot corrupt a frame). Both ends are our own processes. A
worker exits when its stdin closes, so a killed run leaves none behind.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pickle
import struct
import sys
from collections import deque
from collections.abc import Mapping
from typing import Any

__all__ = ["WorkerGone", "WorkerPool"]

_HEADER = struct.Struct(">I")
#: how long close() waits for a worker to close its clients and exit before killing it
_EXIT_GRACE_SECONDS = 5.0
#: stderr lines of a worker kept to explain its death
_TAIL_LINES = 20


class WorkerGone(Exception):
    """The worker making an attempt exited (or none could start): the attempt has no answer."""


def _frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(size))


class _Worker:
    __slots__ = ("proc", "pid", "ready", "pending", "tail", "tasks", "gone")

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.ready = False
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.tasks: list[asyncio.Task[None]] = []
        self.gone: str | None = None


class WorkerPool:
    """``size`` worker processes; :meth:`call` sends one attempt to the least busy one.

    Runs on the runner's event loop. A worker that dies fails the attempts it
    held with :class:`WorkerGone` (the runner retries them, here or on another
    worker); when none is left, :attr:`broken` is set and the runner makes its
    calls itself, and :attr:`problem` says why for the run's summary.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.workers: list[_Worker] = []
        self.problem: str | None = None
        self._ids = itertools.count()
        self._ready = asyncio.Event()
        self._closing = False
        self._starting: asyncio.Future[None] | None = None

    @property
    def ready(self) -> bool:
        return any(w.ready and w.gone is None for w in self.workers)

    @property
    def broken(self) -> bool:
        """Started, and no worker is left (or none could be spawned)."""
        started = self._starting is not None and self._starting.done()
        return started and all(w.gone is not None for w in self.workers)

    def begin(self) -> None:
        """Start spawning the processes (on the pool's event loop; returns at once)."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self.start())

    async def start(self) -> None:
        """Spawn the processes (each reports ready after importing litellm, later)."""
        env = dict(os.environ)
        env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        for _ in range(self.size):
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "pytest_failmodes.workers",
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                    env=env,
                    limit=2**26,
                )
            except OSError as exc:
                self.problem = f"model worker processes could not start ({exc}); calls are made in the main process"
                break
            worker = _Worker(proc)
            self.workers.append(worker)
            worker.tasks = [
                asyncio.ensure_future(self._read(worker)),
                asyncio.ensure_future(self._read_stderr(worker)),
            ]
        if not self.workers:
            self._ready.set()  # wake waiters: broken, they go back to the main process

    async def call(self, model: str, messages: list[dict[str, Any]], timeout: float, params: Mapping[str, Any]) -> dict[str, Any]:
        """One attempt in a worker: the dict :func:`~pytest_failmodes.llm.attempt_once` returns."""
        # the worker bounds the attempt by timeout + 5 s; this bound is for a worker that stops answering
        return await self._request(("call", model, messages, timeout, dict(params)), timeout + 15.0)  # type: ignore[no-any-return]

    async def ask(self, what: str, *args: Any) -> Any:
        """A question for litellm in a worker (``"schema", model``: supports_response_schema)."""
        return await self._request((what, *args), 120.0)

    async def _request(self, message: tuple[Any, ...], timeout: float) -> Any:
        worker = await self._pick()
        ident = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        worker.pending[ident] = fut
        try:
            assert worker.proc.stdin is not None
            worker.proc.stdin.write(_frame((message[0], ident, *message[1:])))
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            raise WorkerGone(f"model worker {worker.pid} gave no answer within {timeout:.0f} s") from None
        except (ConnectionError, RuntimeError) as exc:  # its stdin closed under us: it is exiting
            raise WorkerGone(f"model worker {worker.pid}: {exc}") from None
        except asyncio.CancelledError:
            # the caller gave up (shutdown, an outer timeout): the worker need not finish the call
            if worker.gone is None and worker.proc.stdin is not None and not worker.proc.stdin.is_closing():
                worker.proc.stdin.write(_frame(("cancel", ident)))
            raise
        finally:
            worker.pending.pop(ident, None)

    async def _pick(self) -> _Worker:
        self.begin()
        assert self._starting is not None
        await asyncio.shield(self._starting)
        while True:
            live = [w for w in self.workers if w.gone is None]
            if not live:
                raise WorkerGone(self.problem or "no model worker is running")
            ready = [w for w in live if w.ready]
            if ready:
                return min(ready, key=lambda w: len(w.pending))
            self._ready.clear()
            await self._ready.wait()

    async def _read(self, worker: _Worker) -> None:
        assert worker.proc.stdout is not None
        reader = worker.proc.stdout
        try:
            while True:
                message = await _read_frame(reader)
                if message[0] == "ready":
                    worker.ready = True
                    self._ready.set()
                    continue
                fut = worker.pending.get(message[1])
                if fut is not None and not fut.done():
                    if message[0] == "error":
                        fut.set_exception(WorkerGone(f"model worker {worker.pid}: {message[2]}"))
                    else:
                        fut.set_result(message[2])
        except (asyncio.IncompleteReadError, ConnectionError, pickle.UnpicklingError, EOFError, struct.error):
            pass
        code = await worker.proc.wait()
        await asyncio.sleep(0)  # let the stderr reader take the last lines
        self._gone(worker, code)

    async def _read_stderr(self, worker: _Worker) -> None:
        assert worker.proc.stderr is not None
        async for raw in worker.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                worker.tail.append(line)

    def _gone(self, worker: _Worker, code: int | None) -> None:
        last = next((line for line in reversed(worker.tail) if line.strip()), "")
        worker.gone = f"model worker {worker.pid} exited with status {code}" + (f": {last[:300]}" if last else "")
        for fut in worker.pending.values():
            if not fut.done():
                fut.set_exception(WorkerGone(worker.gone))
        if not self._closing and self.broken:
            self.problem = f"{worker.gone}; no model worker is left, calls are made in the main process"
        self._ready.set()  # waiters look again: maybe at nothing

    def own_tasks(self) -> set[asyncio.Future[Any]]:
        """The pool's own tasks (spawning, reading the pipes): :meth:`close` ends them."""
        own: set[asyncio.Future[Any]] = {t for w in self.workers for t in w.tasks}
        if self._starting is not None:
            own.add(self._starting)
        return own

    async def close(self) -> None:
        """Close every worker's stdin (it closes its clients and exits); kill what does not."""
        self._closing = True
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)
        for worker in self.workers:
            if worker.proc.stdin is not None and not worker.proc.stdin.is_closing():
                worker.proc.stdin.close()
        for worker in self.workers:
            try:
                await asyncio.wait_for(worker.proc.wait(), _EXIT_GRACE_SECONDS)
            except asyncio.TimeoutError:
                worker.proc.kill()
                await worker.proc.wait()
        for worker in self.workers:
            for task in worker.tasks:
                try:
                    await asyncio.wait_for(task, 1.0)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    pass


# -- the worker process -------------------------------------------------------------------


async def _serve(out_fd: int) -> None:
    from .llm_call import attempt_once, load_litellm

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0))
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, os.fdopen(out_fd, "wb", buffering=0))
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    litellm = await asyncio.to_thread(load_litellm)
    writer.write(_frame(("ready", os.getpid())))
    tasks: dict[int, asyncio.Task[None]] = {}

    async def run(ident: int, kind: str, args: tuple[Any, ...]) -> None:
        try:
            if kind == "call":
                model, messages, timeout, params = args
                result: Any = await attempt_once(litellm, model, messages, timeout, params)
            elif kind == "schema":
                try:
                    result = bool(litellm.supports_response_schema(model=args[0]))
                except Exception:  # noqa: BLE001 - unknown provider: no schema
                    result = False
            else:
                raise ValueError(f"unknown request {kind!r}")
            writer.write(_frame(("result", ident, result)))
        except asyncio.CancelledError:
            return
        except Exception as exc:  # noqa: BLE001 - a bug here must reach the caller, not vanish
            writer.write(_frame(("error", ident, f"{type(exc).__name__}: {exc}"[:300])))
        finally:
            tasks.pop(ident, None)

    while True:
        try:
            message = await _read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            break  # the runner closed our stdin, or died
        if message[0] == "cancel":
            task = tasks.get(message[1])
            if task is not None:
                task.cancel()
            continue
        tasks[message[1]] = asyncio.ensure_future(run(message[1], message[0], tuple(message[2:])))
    for task in list(tasks.values()):
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
    if hasattr(litellm, "close_litellm_async_clients"):
        await litellm.close_litellm_async_clients()
    await writer.drain()


def main() -> None:
    """Entry point of ``python -m pytest_failmodes.workers`` (started by :class:`WorkerPool`)."""
    out_fd = os.dup(1)
    os.dup2(2, 1)  # what a library prints goes to stderr, never into a frame
    try:
        asyncio.run(_serve(out_fd))
    except KeyboardInterrupt:
        pass
    sys.stderr.flush()
    # the interpreter's teardown of litellm's modules takes a second or more and decides nothing
    os._exit(0)


if __name__ == "__main__":
    main()
