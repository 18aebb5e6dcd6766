"""Admission of numbered batches in the order their sender numbered them.

Ray does not promise that an async actor starts calls in the order one
caller sent them, but per-key order needs exactly that. Each router numbers
its batches per shard; the shard admits batch ``n`` of an origin only after
batch ``n - 1`` was admitted. A batch whose predecessor never comes (its
call was lost with a dead process) is admitted after ``gap_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

__all__ = ["Sequencer"]


@dataclass(slots=True)
class _Origin:
    next: int
    seen: float = field(default_factory=time.monotonic)
    waiters: dict[int, asyncio.Future[None]] = field(default_factory=dict)


class Sequencer:
    """Owns: the next expected batch number of each origin.

    Concurrency: one event loop. ``admit`` returns to a batch's caller
    before any later batch of the same origin resumes, so what the caller
    does synchronously next happens in number order. Failure: a gap is
    skipped after ``gap_timeout``; a batch older than expected is admitted
    at once.
    """

    def __init__(self, gap_timeout: float = 2.0, forget_after: float = 3600.0) -> None:
        self._origins: dict[str, _Origin] = {}
        self._gap_timeout = gap_timeout
        self._forget_after = forget_after

    async def admit(self, origin: str, number: int) -> None:
        """Return once every earlier batch of ``origin`` has been admitted."""
        state = self._origins.get(origin)
        if state is None:  # the first batch seen from this origin, or since a restart
            self._forget_idle()
            state = self._origins[origin] = _Origin(next=number)
        state.seen = time.monotonic()
        if number > state.next:
            waiter = asyncio.get_running_loop().create_future()
            state.waiters[number] = waiter
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, self._gap_timeout)
            state.waiters.pop(number, None)
        state.next = max(state.next, number + 1)
        for waiting, waiter in state.waiters.items():
            if waiting <= state.next and not waiter.done():
                waiter.set_result(None)

    def _forget_idle(self) -> None:
        horizon = time.monotonic() - self._forget_after
        for origin in [o for o, state in self._origins.items() if state.seen < horizon]:
            del self._origins[origin]
