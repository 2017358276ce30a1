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

Slots of the limit are handed over inside a worker. The pool sends each
worker a few calls ahead (:data:`AHEAD`) beside the ones it is making; a
worker that ends a call well starts its oldest queued call at once, on the
freed slot, and says so with the answer. Without that, a slot would sit idle
for the round trip through the runner's process (a few milliseconds on a busy
machine, for every call). The runner allows hand-overs only while the limit is
at its maximum and no call of its own process waits for a slot, so a 429
still halves what is in flight and nobody is passed in the queue; a call that
starts by hand-over gives up its place in the limit's queue.

The protocol: length-prefixed pickle frames on the worker's stdin and on a
private copy of its stdout (fd 1 itself is pointed at stderr, so a library
that prints cannot corrupt a frame). Both ends are our own processes. A
worker exits when its stdin closes, so a killed run leaves none behind.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import pickle
import struct
import sys
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Any

from .llm_call import is_throttled

__all__ = ["WorkerGone", "WorkerPool"]

_HEADER = struct.Struct(">I")
#: how long close() waits for a worker to close its clients and exit before killing it
_EXIT_GRACE_SECONDS = 5.0
#: a call not answered this long after its own timeout (from its start) counts as lost with a stuck worker
_SILENCE_SECONDS = 15.0
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


#: calls sent ahead to each worker beyond those it is making: a worker that ends a call well
#: starts its next one at once on the same slot of the limit (a *hand-over*), without the round
#: trip through this process that would otherwise leave the slot idle for a few milliseconds
AHEAD = 8


class _Call:
    """One attempt made through the pool, from its place in the limit's queue to its answer."""

    __slots__ = ("ident", "args", "bound", "worker", "slot", "done", "result", "timer")

    def __init__(self, ident: int, args: tuple[Any, ...], bound: float, result: asyncio.Future[dict[str, Any]]) -> None:
        self.ident = ident
        self.args = args  # (model, messages, timeout, params)
        self.bound = bound  # seconds from its start to its answer before its worker counts as stuck
        self.worker: _Worker | None = None  # where it was sent: queued there, or being made
        self.slot = False  # holds a slot of the limit (it was started, or is being sent to start)
        self.done = False  # ended here (answered, failed, abandoned): later news of it is stale
        self.result = result
        self.timer: asyncio.TimerHandle | None = None


class _Worker:
    __slots__ = ("proc", "pid", "ready", "pending", "calls", "running", "queued", "handover", "tail", "tasks", "gone")

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.ready = False
        self.pending: dict[int, asyncio.Future[Any]] = {}  # questions (ask)
        self.calls: dict[int, _Call] = {}  # attempts sent here, queued or being made
        self.running = 0  # of calls: started (holding a slot)
        self.queued = 0  # of calls: sent ahead, not started
        self.handover = False  # what this worker was last told
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.tasks: list[asyncio.Task[None]] = []
        self.gone: str | None = None

    def send(self, message: tuple[Any, ...]) -> bool:
        stdin = self.proc.stdin
        if self.gone is not None or stdin is None or stdin.is_closing():
            return False
        stdin.write(_frame(message))
        return True


class WorkerPool:
    """``size`` worker processes making the attempts of calls that hold slots of ``limit``.

    Runs on the runner's event loop. A worker that dies fails the attempts it
    was making with :class:`WorkerGone` (the runner retries them, here or on
    another worker) and its queued calls go back to the queue here; when none is
    left, :attr:`broken` is set and the runner makes its calls itself, and
    :attr:`problem` says why for the run's summary.
    """

    def __init__(self, size: int, limit: Any, on_ready: Callable[[], None] | None = None) -> None:
        self.size = size
        #: the runner's _AdaptiveLimit (slots taken, handed over and freed here)
        self.limit = limit
        self.workers: list[_Worker] = []
        self.problem: str | None = None
        self._on_ready = on_ready  # called once, when the first worker is ready
        self._ids = itertools.count()
        self._ready = asyncio.Event()
        self._closing = False
        self._starting: asyncio.Future[None] | None = None
        # calls with a place in the limit's queue, sent to no worker yet (oldest first)
        self._waiting: deque[_Call] = deque()
        #: calls started on a slot their worker handed over (for tests and bench/)
        self.handovers = 0
        limit.listener = self._policy

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

    # -- calls -------------------------------------------------------------------------------

    async def call(
        self, model: str, messages: list[dict[str, Any]], timeout: float, params: Mapping[str, Any], *, held: bool = False
    ) -> dict[str, Any]:
        """One attempt in a worker: the dict :func:`~pytest_failmodes.llm.attempt_once` returns.

        ``held``: the caller took a slot of the limit for it already; otherwise the call
        waits for one here, or starts on a slot a worker hands over. Either way the slot
        is freed (or handed on) when the answer comes, its outcome moving the limit."""
        try:
            await self._until_ready()
        except BaseException:
            if held:
                self.limit.give_back()
            raise
        c = _Call(next(self._ids), (model, messages, timeout, dict(params)), timeout + _SILENCE_SECONDS,
                  asyncio.get_running_loop().create_future())
        if held or self.limit.wait(c, functools.partial(self._granted, c)):
            worker = self._least_busy()
            if worker is None:
                self.limit.give_back()
                raise WorkerGone(self.problem or "no model worker is running")
            self._launch(c, worker)
        else:
            self._waiting.append(c)
            self._fill()
        try:
            return await c.result
        except asyncio.CancelledError:
            self._abandon(c)
            raise

    def _least_busy(self) -> _Worker | None:
        live = [w for w in self.workers if w.ready and w.gone is None]
        return min(live, key=lambda w: w.running + w.queued) if live else None

    def _launch(self, c: _Call, worker: _Worker) -> None:
        """Start ``c``, which holds a slot, in ``worker``."""
        c.slot = True
        c.worker = worker
        worker.calls[c.ident] = c
        worker.running += 1
        worker.send(("call", c.ident, *c.args))
        self._arm(c)

    def _granted(self, c: _Call) -> bool:
        """The limit took a slot for ``c`` (called by it, synchronously): start it, or decline."""
        if c.done or c.slot or c.result.done():
            return False  # abandoned (or being: cancelled), or started on a slot its worker handed over
        worker = c.worker
        if worker is None or worker.gone is not None:
            worker = self._least_busy()
            if worker is None:
                self._fail(c, WorkerGone(self.problem or "no model worker is running"))
                return False
            self._launch(c, worker)
            return True
        c.slot = True
        worker.queued -= 1
        worker.running += 1
        worker.send(("start", c.ident))  # a worker that started it by hand-over meanwhile ignores this
        self._arm(c)
        self._fill()
        return True

    def _fill(self) -> None:
        """Send the oldest waiting calls ahead to the workers with room in their queues."""
        waiting = self._waiting
        while waiting:
            c = waiting[0]
            if c.done or c.slot or c.worker is not None or c.result.done():
                waiting.popleft()
                continue
            room = [w for w in self.workers if w.ready and w.gone is None and w.queued < AHEAD]
            if not room:
                return
            worker = min(room, key=lambda w: w.running + w.queued)
            waiting.popleft()
            c.worker = worker
            worker.calls[c.ident] = c
            worker.queued += 1
            worker.send(("queue", c.ident, *c.args))

    def _arm(self, c: _Call) -> None:
        # the worker bounds the attempt by timeout + 5 s; this bound, from the call's start, is
        # for a worker that stops answering
        c.timer = asyncio.get_running_loop().call_later(c.bound, self._expire, c)

    def _drop(self, c: _Call) -> None:
        """``c`` ends here: out of its worker's books (its slot is the caller's business)."""
        c.done = True
        if c.timer is not None:
            c.timer.cancel()
        worker = c.worker
        if worker is not None and worker.calls.pop(c.ident, None) is not None:
            if c.slot:
                worker.running -= 1
            else:
                worker.queued -= 1

    def _fail(self, c: _Call, exc: BaseException) -> None:
        self._drop(c)
        if not c.result.done():
            c.result.set_exception(exc)

    def _expire(self, c: _Call) -> None:
        if c.done:
            return
        worker = c.worker
        assert worker is not None
        self._fail(c, WorkerGone(f"model worker {worker.pid} gave no answer within {c.bound:.0f} s"))
        worker.send(("cancel", c.ident))
        self.limit.give_back()

    def _abandon(self, c: _Call) -> None:
        """The caller gave up (shutdown, an outer timeout): the worker need not make the call."""
        if c.done:
            return
        worker, slot = c.worker, c.slot
        self._drop(c)
        if worker is not None:
            worker.send(("cancel", c.ident))
        if slot:
            self.limit.give_back()
        else:
            self.limit.withdraw(c)
            self._fill()

    def _done(self, worker: _Worker, ident: int, result: dict[str, Any], nxt: int | None) -> None:
        """A worker's answer to one call; ``nxt``: the queued call it started on that call's slot."""
        c = worker.calls.get(ident)  # None: abandoned or expired here, its slot freed then
        if c is not None:
            self._drop(c)
        n = worker.calls.get(nxt) if nxt is not None else None
        if n is not None and not n.slot:
            self.handovers += 1
            n.slot = True
            worker.queued -= 1
            worker.running += 1
            self.limit.withdraw(n)
            self._arm(n)
            if c is not None:
                self.limit.hand_over()
            else:
                self.limit.take()  # a call started on a slot freed here already: counted again
        elif c is not None:
            # not handed over (or to a call that had a slot of its own by then, or is gone)
            self.limit.free(throttled=is_throttled(result))
        if c is not None and not c.result.done():
            c.result.set_result(result)
        self._fill()

    def _policy(self) -> None:
        """Tell each worker whether it may hand slots over (only when it changes): called by
        the limit when that may have changed, and for a worker that became ready."""
        allow = self.limit.hand_over_allowed()
        for worker in self.workers:
            if worker.ready and worker.handover != allow and worker.send(("handover", allow)):
                worker.handover = allow

    # -- questions -----------------------------------------------------------------------------

    async def ask(self, what: str, *args: Any) -> Any:
        """A question for litellm in a worker (``"schema", model``: supports_response_schema)."""
        worker = await self._pick()
        ident = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        worker.pending[ident] = fut
        try:
            worker.send((what, ident, *args))
            return await asyncio.wait_for(asyncio.shield(fut), 120.0)
        except asyncio.TimeoutError:
            raise WorkerGone(f"model worker {worker.pid} gave no answer within 120 s") from None
        except (ConnectionError, RuntimeError) as exc:  # its stdin closed under us: it is exiting
            raise WorkerGone(f"model worker {worker.pid}: {exc}") from None
        finally:
            worker.pending.pop(ident, None)

    async def _until_ready(self) -> None:
        self.begin()
        assert self._starting is not None
        await asyncio.shield(self._starting)
        while True:
            live = [w for w in self.workers if w.gone is None]
            if not live:
                raise WorkerGone(self.problem or "no model worker is running")
            if any(w.ready for w in live):
                return
            self._ready.clear()
            await self._ready.wait()

    async def _pick(self) -> _Worker:
        await self._until_ready()
        return min((w for w in self.workers if w.ready and w.gone is None), key=lambda w: len(w.pending))

    # -- the pipes -----------------------------------------------------------------------------

    async def _read(self, worker: _Worker) -> None:
        assert worker.proc.stdout is not None
        reader = worker.proc.stdout
        try:
            while True:
                message = await _read_frame(reader)
                kind = message[0]
                if kind == "done":
                    self._done(worker, message[1], message[2], message[3])
                elif kind == "ready":
                    self._became_ready(worker)
                elif message[1] in worker.calls:  # "error": a bug in the worker, the call's answer
                    c = worker.calls[message[1]]
                    self._fail(c, WorkerGone(f"model worker {worker.pid}: {message[2]}"))
                    self.limit.give_back()
                else:
                    fut = worker.pending.get(message[1])
                    if fut is not None and not fut.done():
                        if kind == "error":
                            fut.set_exception(WorkerGone(f"model worker {worker.pid}: {message[2]}"))
                        else:
                            fut.set_result(message[2])
        except (asyncio.IncompleteReadError, ConnectionError, pickle.UnpicklingError, EOFError, struct.error):
            pass
        code = await worker.proc.wait()
        await asyncio.sleep(0)  # let the stderr reader take the last lines
        self._gone(worker, code)

    def _became_ready(self, worker: _Worker) -> None:
        first = not self.ready
        worker.ready = True
        self._ready.set()
        self._policy()
        if first and self._on_ready is not None:
            self._on_ready()
        self._fill()

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
        calls = list(worker.calls.values())
        worker.calls.clear()
        worker.running = worker.queued = 0
        # its queued calls were never made: back to the front of the queue here, in order
        making = [c for c in calls if c.slot]
        queued = [c for c in calls if not c.slot]
        for c in queued:
            c.worker = None
        self._waiting.extendleft(reversed(queued))
        for c in making:  # (a freed slot may go to one of the queued, elsewhere, at once)
            self._fail(c, WorkerGone(worker.gone))
            self.limit.give_back()
        if not self._closing and self.broken:
            self.problem = f"{worker.gone}; no model worker is left, calls are made in the main process"
        if self.broken:
            while self._waiting:
                c = self._waiting.popleft()
                if not c.done and not c.slot:
                    self.limit.withdraw(c)
                    self._fail(c, WorkerGone(self.problem or worker.gone))
        self._fill()
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
    queued: OrderedDict[int, tuple[Any, ...]] = OrderedDict()  # sent ahead: started on "start" or by hand-over
    handover = [False]

    def start(ident: int, args: tuple[Any, ...]) -> None:
        tasks[ident] = asyncio.ensure_future(make(ident, args))

    async def make(ident: int, args: tuple[Any, ...]) -> None:
        try:
            result = await attempt_once(litellm, *args)
            nxt = None
            if handover[0] and result["ok"] and queued:
                nxt, next_args = queued.popitem(last=False)
                start(nxt, next_args)  # on this call's slot, now: the runner is told with the answer
            writer.write(_frame(("done", ident, result, nxt)))
        except asyncio.CancelledError:
            return
        except Exception as exc:  # noqa: BLE001 - a bug here must reach the caller, not vanish
            writer.write(_frame(("error", ident, f"{type(exc).__name__}: {exc}"[:300])))
        finally:
            tasks.pop(ident, None)

    async def answer(ident: int, kind: str, args: tuple[Any, ...]) -> None:
        try:
            if kind != "schema":
                raise ValueError(f"unknown request {kind!r}")
            try:
                result = bool(litellm.supports_response_schema(model=args[0]))
            except Exception:  # noqa: BLE001 - unknown provider: no schema
                result = False
            writer.write(_frame(("result", ident, result)))
        except asyncio.CancelledError:
            return
        except Exception as exc:  # noqa: BLE001 - as in make()
            writer.write(_frame(("error", ident, f"{type(exc).__name__}: {exc}"[:300])))
        finally:
            tasks.pop(ident, None)

    while True:
        try:
            message = await _read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            break  # the runner closed our stdin, or died
        kind = message[0]
        if kind == "call":
            start(message[1], tuple(message[2:]))
        elif kind == "queue":
            queued[message[1]] = tuple(message[2:])
        elif kind == "start":
            args = queued.pop(message[1], None)
            if args is not None:  # else: started by hand-over already, or cancelled
                start(message[1], args)
        elif kind == "cancel":
            queued.pop(message[1], None)
            task = tasks.get(message[1])
            if task is not None:
                task.cancel()
        elif kind == "handover":
            handover[0] = bool(message[1])
        else:
            tasks[message[1]] = asyncio.ensure_future(answer(message[1], kind, tuple(message[2:])))
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
