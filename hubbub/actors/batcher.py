"""Coalescing of many small requests into few large ones.

Every hop in hubbub is batched with this one piece: the router's calls to a
shard, a shard's entity activations, and its group commits. Items submitted
while no flush can start accumulate and leave together, so a batch grows
with load instead of the queue: at low load a batch leaves after
``max_delay``; at high load it leaves full, or as soon as a flush slot frees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Owns: the pending items and the flush tasks it starts.

    Concurrency: at most ``max_concurrency`` flushes run at once; items are
    handed to ``flush`` in submission order.
    Failure: ``flush`` returns one result per item, in order; an exception
    instance among them fails only its item. A flush that raises fails every
    item of its batch; other batches are unaffected.
    """

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_size: int,
        max_delay: float,
        max_concurrency: int = 1,
    ) -> None:
        self._flush = flush
        self._max_size = max_size
        self._max_delay = max_delay
        self._max_concurrency = max_concurrency
        self._items: list[T] = []
        self._futures: list[asyncio.Future[R]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue ``item``; the future resolves with its result."""
        if self._closed:
            raise RuntimeError("batcher is closed")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._items.append(item)
        self._futures.append(future)
        if len(self._items) >= self._max_size:
            self._start_flushes()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self._max_delay, self._start_flushes
            )
        return future

    @property
    def pending(self) -> int:
        """Items waiting for a flush to start."""
        return len(self._items)

    async def close(self) -> None:
        """Flush what is pending, wait for every flush, accept nothing more."""
        self._closed = True
        while self._items or self._running:
            self._start_flushes()
            if self._running:
                await asyncio.wait(set(self._running))

    def _start_flushes(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._items and len(self._running) < self._max_concurrency:
            items, futures = self._items[: self._max_size], self._futures[: self._max_size]
            del self._items[: self._max_size], self._futures[: self._max_size]
            task = asyncio.get_running_loop().create_task(self._run(items, futures))
            self._running.add(task)
            task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._items and (len(self._items) >= self._max_size or self._timer is None):
            # Items queued behind a busy slot go now, together.
            self._start_flushes()

    async def _run(self, items: list[T], futures: list[asyncio.Future[R]]) -> None:
        try:
            results = await self._flush(items)
        except asyncio.CancelledError:
            for future in futures:
                future.cancel()
            raise
        except BaseException as exc:  # every item shares the batch's fate
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        if len(results) != len(items):
            error = RuntimeError(f"flush returned {len(results)} results for {len(items)} items")
            results = [error] * len(items)
        for future, result in zip(futures, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
