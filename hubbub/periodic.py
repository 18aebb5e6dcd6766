"""A round of work repeated every interval in the background, until closed.

Used by the sweeps every gateway runs (snoozed conversations, tenant
purges, pruning): a round that fails is logged and the next one runs as
usual. :func:`hubbub.services.every` makes one a start hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Periodic"]

log = logging.getLogger(__name__)


class Periodic:
    """Owns: one task. Concurrency: rounds never overlap; the first runs one
    interval after ``start``, or at once after a :meth:`kick` (kicks during
    a round give one more round, at least ``gap`` seconds after it).
    Failure: a round that raises is logged and counted in ``failures``; the
    loop goes on."""

    def __init__(
        self,
        name: str,
        interval: float,
        round: Callable[[], Awaitable[object]],
        gap: float = 0.0,
    ) -> None:
        self.name = name
        self._interval = interval
        self._gap = gap
        self._round = round
        self._task: asyncio.Task[None] | None = None
        self._kicked = asyncio.Event()
        self.failures = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def kick(self) -> None:
        """Run the next round now rather than when the interval is up."""
        self._kicked.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kicked.wait(), self._interval)
            self._kicked.clear()
            try:
                await self._round()
            except Exception:
                self.failures += 1
                log.exception("%s failed; trying again in %.1fs", self.name, self._interval)
            await asyncio.sleep(self._gap)
