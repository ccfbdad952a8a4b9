"""Photos that wait for the model, asked in batches, with a bounded queue and a deadline per request.

What arrives within `wait_s` of a first photo, up to `max_batch`, goes to the model in one call, on
`workers` threads (one for an in-process model; several keep a vLLM server's continuous batching busy).
A full queue refuses at once (Busy, with the seconds to wait), and a photo whose deadline passed, or
whose client stopped waiting, is never sent to the model.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Busy(Exception):  # noqa: N818 - said to the client as it is: the coach is busy
    """The queue is full: the client should retry after `retry_after_s`."""

    def __init__(self, waiting: int, retry_after_s: int):
        super().__init__(f"{waiting} photos are waiting for the model: retry in {retry_after_s} s")
        self.waiting, self.retry_after_s = waiting, retry_after_s


class Expired(Exception):  # noqa: N818 - said to the client as it is: the deadline expired
    """The request's deadline passed before the model answered it."""


@dataclass(eq=False)
class _Waiting(Generic[T]):
    item: T
    deadline: float  # time.monotonic()
    future: Future
    request_id: str


class Batcher(Generic[T, R]):
    """Calls `answer` on batches of items, in order; each item gets its own result or exception."""

    def __init__(
        self,
        answer: Callable[[Sequence[T]], list[R]],
        *,
        max_batch: int,
        wait_s: float,
        workers: int = 1,
        max_queue: int = 64,
        on_batch: Callable[[int, float], None] | None = None,
    ):
        self.answer, self.max_batch, self.wait_s, self.workers = answer, max_batch, wait_s, workers
        self.on_batch = on_batch  # (size, seconds) of every model call, for the metrics
        self.batches: list[int] = []  # sizes of the batches sent, oldest first (for tests)
        self._queue: queue.Queue[_Waiting[T]] = queue.Queue(maxsize=max_queue)
        self._seconds_per_batch = 1.0  # a running estimate, for Retry-After
        for number in range(workers):
            threading.Thread(target=self._work, name=f"coach-batcher-{number}", daemon=True).start()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    async def submit(self, item: T, deadline: float, request_id: str = "") -> R:
        """The item's result; Busy when the queue is full, Expired when the deadline passes first."""
        waiting = _Waiting(item, deadline, Future(), request_id)
        try:
            self._queue.put_nowait(waiting)
        except queue.Full:
            raise Busy(self.waiting, self.retry_after_s()) from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(waiting.future), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise Expired(f"no answer within the request's deadline ({request_id or 'request'})") from None

    def retry_after_s(self) -> int:
        """Seconds until the queue has room again, at the recent pace of the model."""
        batches_ahead = self.waiting / max(1, self.max_batch * self.workers)
        return max(1, math.ceil(batches_ahead * self._seconds_per_batch))

    def _work(self) -> None:
        while True:
            batch = [self._queue.get()]
            gather_until = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, gather_until - time.monotonic())))
                except queue.Empty:
                    break
            now = time.monotonic()
            # A request whose client gave up (its future cancelled) or whose deadline passed is not asked.
            live = [w for w in batch if not w.future.cancelled() and w.deadline > now]
            for dropped in (w for w in batch if w.future.cancelled() or w.deadline <= now):
                _settle(dropped.future, error=Expired(f"deadline passed in the queue ({dropped.request_id})"))
            if live:
                self._ask(live)

    def _ask(self, batch: list[_Waiting[T]]) -> None:
        started = time.monotonic()
        self.batches.append(len(batch))
        try:
            results = self.answer([w.item for w in batch])
        except Exception as exc:  # noqa: BLE001 - one failed batch answers its requests, never the server
            log.exception("coaching a batch of %d failed (requests %s)", len(batch), [w.request_id for w in batch])
            for waiting in batch:
                _settle(waiting.future, error=exc)
            return
        seconds = time.monotonic() - started
        self._seconds_per_batch = 0.7 * self._seconds_per_batch + 0.3 * seconds
        if self.on_batch is not None:
            self.on_batch(len(batch), seconds)
        log.info("answered a batch of %d in %.2f s (requests %s)", len(batch), seconds, [w.request_id for w in batch])
        for waiting, result in zip(batch, results, strict=True):
            _settle(waiting.future, result=result)


def _settle(future: Future, result=None, error: BaseException | None = None) -> None:
    """Answer a future nobody may be waiting on any more (its client's deadline passed)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass  # cancelled: the client stopped waiting
