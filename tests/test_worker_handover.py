"""The model worker pool's books, driven frame by frame without processes.

A worker that ends a call well may start its next queued call on the freed slot
(a hand-over) and say so with the answer; the runner may meanwhile have granted
that call a slot of its own, or cancelled it, or the worker may die. Each test
feeds the pool the frames a worker would send, in an order that can happen,
and checks the limit's count against what the workers are really making.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from pytest_failmodes import workers as workers_module
from pytest_failmodes.llm import _AdaptiveLimit
from pytest_failmodes.workers import AHEAD, WorkerGone, WorkerPool, _Worker

OK = {"ok": True, "content": "{}", "prompt_tokens": 1, "completion_tokens": 1, "cost": None, "latency": 0.01}
THROTTLED = {"ok": False, "kind": "rate limited (429)", "retryable": True, "retry_after": 0.0, "message": "slow down"}


class _Stdin:
    def __init__(self) -> None:
        self.frames: list[tuple[Any, ...]] = []

    def write(self, data: bytes) -> None:
        self.frames.append(pickle.loads(data[4:]))

    def is_closing(self) -> bool:
        return False


class _Proc:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.stdin = _Stdin()


class Books:
    """A pool of two fake workers, ready, on a limit of ``maximum``."""

    def __init__(self, maximum: int) -> None:
        self.limit = _AdaptiveLimit(maximum)
        self.pool = WorkerPool(2, self.limit)
        self.pool._starting = asyncio.get_running_loop().create_future()
        self.pool._starting.set_result(None)
        self.workers = [_Worker(_Proc(100 + k)) for k in range(2)]  # type: ignore[arg-type]
        self.pool.workers = self.workers
        for worker in self.workers:
            self.pool._became_ready(worker)
        self.calls: list[asyncio.Task[dict[str, Any]]] = []

    async def submit(self, n: int) -> None:
        for k in range(n):
            self.calls.append(asyncio.ensure_future(self.pool.call("m", [{"role": "user", "content": f"q{k}"}], 10.0, {})))
        await asyncio.sleep(0)  # each runs up to its wait

    def sent(self, worker: _Worker, kind: str) -> list[int]:
        return [f[1] for f in worker.proc.stdin.frames if f[0] == kind]  # type: ignore[attr-defined]

    def told(self, worker: _Worker) -> list[bool]:
        return [f[1] for f in worker.proc.stdin.frames if f[0] == "handover"]  # type: ignore[attr-defined]

    def making(self) -> int:
        return sum(w.running for w in self.workers)

    def check(self) -> None:
        """The limit counts exactly the calls the workers make; queue counts match the calls."""
        assert self.limit.in_flight == self.making()
        for worker in self.workers:
            if worker.gone is None:
                assert worker.running == sum(1 for c in worker.calls.values() if c.slot)
                assert worker.queued == sum(1 for c in worker.calls.values() if not c.slot) <= AHEAD


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def test_a_worker_hands_its_slot_to_its_next_queued_call() -> None:
    async def scenario() -> None:
        books = Books(2)
        w0, w1 = books.workers
        assert books.told(w0) == [True] and books.told(w1) == [True]  # at the maximum, nobody waiting here
        await books.submit(6)
        started = books.sent(w0, "call") + books.sent(w1, "call")
        queued0, queued1 = books.sent(w0, "queue"), books.sent(w1, "queue")
        assert len(started) == 2 and len(queued0) == len(queued1) == 2  # 2 on slots, 4 sent ahead
        books.check()
        first = books.sent(w0, "call")[0]
        books.pool._done(w0, first, OK, queued0[0])  # ended well, started its oldest queued call
        await asyncio.sleep(0)
        assert books.calls[first].done() and books.calls[first].result() == OK
        assert books.pool.handovers == 1 and books.limit.in_flight == 2
        assert queued0[0] not in books.limit._waiters  # its place in the queue is given up
        assert books.sent(w0, "start") == []  # nothing to tell: it runs already
        books.check()
        # a plain end (no queued call started) frees the slot: the oldest waiting call gets it
        other = books.sent(w1, "call")[0]
        books.pool._done(w1, other, OK, None)
        assert books.sent(w1, "start") == [queued1[0]]
        books.check()

    run(scenario)


def test_a_call_granted_a_slot_and_handed_one_too_holds_one() -> None:
    async def scenario() -> None:
        books = Books(2)
        w0, w1 = books.workers
        await books.submit(4)
        a, b = books.sent(w0, "call")[0], books.sent(w1, "call")[0]
        (q,) = books.sent(w0, "queue")[:1]
        books.pool._done(w1, b, OK, None)  # w1's slot is freed here: the oldest waiting call is q, on w0
        assert books.sent(w0, "start") == [q]
        books.check()
        # w0 had started q by hand-over before the "start" reached it: its report comes now
        books.pool._done(w0, a, OK, q)
        assert books.pool.handovers == 0  # q had its own slot: a's slot is freed, not handed on
        books.check()
        assert books.limit.in_flight == 2  # q, and the next waiting call started on the freed slot
        for task in books.calls:
            task.cancel()
        await asyncio.gather(*books.calls, return_exceptions=True)
        assert books.limit.in_flight == 0 and not books.limit._waiters
        books.check()

    run(scenario)


def test_a_cancelled_queued_call_is_withdrawn_and_a_hand_over_to_it_frees_the_slot() -> None:
    async def scenario() -> None:
        books = Books(2)
        w0, _w1 = books.workers
        await books.submit(5)
        a = books.sent(w0, "call")[0]
        q = books.sent(w0, "queue")[0]
        books.calls[q].cancel()
        await asyncio.sleep(0)
        assert books.sent(w0, "cancel") == [q] and q not in books.limit._waiters
        books.check()
        # the worker had started q by hand-over before the cancel reached it (and drops it on the
        # cancel): q is gone here, so a's slot is freed and goes to the oldest waiting call
        books.pool._done(w0, a, OK, q)
        assert books.pool.handovers == 0 and books.limit.in_flight == 2
        books.check()

    run(scenario)


def test_a_hand_over_from_a_call_abandoned_here_is_counted_again() -> None:
    async def scenario() -> None:
        books = Books(1)
        w0, w1 = books.workers
        await books.submit(3)
        c0 = books.sent(w0, "call")[0]
        (c1,), (c2,) = books.sent(w1, "queue"), books.sent(w0, "queue")
        books.calls[c0].cancel()  # its slot goes to the oldest waiting call, c1
        await asyncio.sleep(0)
        assert books.sent(w1, "start") == [c1]
        # w0 had ended c0 and started c2 on its slot before the cancel reached it: both c1 and
        # c2 are being made, and the count says so (over the limit until one ends)
        books.pool._done(w0, c0, OK, c2)
        assert books.limit.in_flight == 2
        books.check()
        books.pool._done(w1, c1, OK, None)
        books.pool._done(w0, c2, OK, None)
        await asyncio.sleep(0)
        assert books.limit.in_flight == 0 and [t.result() for t in books.calls[1:]] == [OK, OK]
        books.check()

    run(scenario)


def test_after_a_429_hand_overs_stop_until_the_limit_is_back_at_its_maximum() -> None:
    async def scenario() -> None:
        books = Books(4)
        w0, w1 = books.workers
        await books.submit(12)
        books.check()
        running0 = books.sent(w0, "call")
        books.pool._done(w0, running0[0], THROTTLED, None)
        assert books.limit.current == 2
        assert books.told(w0) == [True, False] and books.told(w1) == [True, False]
        # a hand-over that crossed the news on the way is still counted (the count stays 3)
        q = books.sent(w0, "queue")[0]
        books.pool._done(w0, running0[1], OK, q)
        assert books.limit.in_flight == 3
        books.check()
        # with hand-overs off, calls end and free their slots: from the first such end on, no
        # more are in flight than the limit allows; successes grow it one step per `current`,
        # and at 4 the workers hear they may hand over again
        while books.limit.current < 4:
            worker = next(w for w in books.workers if w.running)
            ident = next(i for i, c in worker.calls.items() if c.slot)
            books.pool._done(worker, ident, OK, None)
            assert books.limit.in_flight <= books.limit.current
            books.check()
            assert books.told(w0)[-1] is (books.limit.current == 4)
        assert books.told(w0)[-1] is True and books.told(w1)[-1] is True

    run(scenario)


def test_a_call_of_this_process_waiting_turns_hand_overs_off() -> None:
    async def scenario() -> None:
        books = Books(1)
        w0, w1 = books.workers
        await books.submit(3)
        target = asyncio.ensure_future(books.limit.acquire())  # a target call (guarded): not movable
        await asyncio.sleep(0)
        assert books.told(w0)[-1] is False and books.told(w1)[-1] is False
        running = next(w for w in books.workers if w.running)
        books.pool._done(running, next(iter(running.calls)), OK, None)
        # first come, first served: the pool's older calls first, then the target
        while not target.done():
            worker = next(w for w in books.workers if w.running)
            books.pool._done(worker, next(i for i, c in worker.calls.items() if c.slot), OK, None)
            await asyncio.sleep(0)
        assert target.result() is True
        assert books.told(w0)[-1] is True  # nobody of this process waits any more
        await books.limit.release()
        await asyncio.gather(*books.calls)

    run(scenario)


def test_a_dead_worker_fails_what_it_was_making_and_its_queue_goes_to_the_other() -> None:
    async def scenario() -> None:
        books = Books(2)
        w0, w1 = books.workers
        await books.submit(6)
        making = books.sent(w0, "call")
        queued = books.sent(w0, "queue")
        books.pool._gone(w0, -9)
        await asyncio.sleep(0)
        assert all(isinstance(books.calls[i].exception(), WorkerGone) for i in making)
        assert all(not books.calls[i].done() for i in queued)  # never made: not lost, not retried
        assert set(queued) <= set(books.sent(w1, "queue") + books.sent(w1, "call") + books.sent(w1, "start"))
        books.check()
        while any(not t.done() for t in books.calls):
            if not w1.running:
                await asyncio.sleep(0)
                continue
            ident = next(i for i, c in w1.calls.items() if c.slot)
            books.pool._done(w1, ident, OK, None)
            books.check()
            await asyncio.sleep(0)
        assert books.limit.in_flight == 0
        books.pool._gone(w1, 0)
        assert books.pool.broken

    run(scenario)


def test_a_started_call_without_an_answer_is_lost_after_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers_module, "_SILENCE_SECONDS", -9.9)  # bound = 10 s timeout - 9.9 s

    async def scenario() -> None:
        books = Books(1)
        w0, w1 = books.workers
        await books.submit(2)
        (first,) = books.sent(w0, "call") + books.sent(w1, "call")
        worker = w0 if books.sent(w0, "call") else w1
        with pytest.raises(WorkerGone, match="gave no answer within 0 s"):
            await books.calls[first]
        assert books.sent(worker, "cancel") == [first]
        books.check()
        await asyncio.sleep(0)
        assert books.limit.in_flight == 1  # the slot went on to the second call
        # its late answer changes nothing
        books.pool._done(worker, first, OK, None)
        books.check()
        for task in books.calls:
            task.cancel()
        await asyncio.gather(*books.calls, return_exceptions=True)

    run(scenario)
