"""What a running handler gets: a :class:`JobContext` to report through.

Every reporting method only records a report (no I/O, safe from the handler's
thread or loop); the worker's reporter hears of the first report of each batch
and sends what accumulated as one batch to the job entity
(``hubbub.jobs.worker``). ``cancelled`` turns true once the job was asked to
stop — the reply to a batch says so — and a handler that sees it should stop
soon, by returning or with :meth:`JobContext.raise_if_cancelled`.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from hubbub.jobs.commands import (
    CountersReport,
    JobReport,
    LogReport,
    OutputReport,
    ProgressReport,
    StepReport,
)
from hubbub.storage.database import Database

if TYPE_CHECKING:
    from hubbub.actors.router import Router
    from hubbub.config import Settings

__all__ = ["JobCancelled", "JobContext"]

#: Longest text of one ``step``, ``log`` or ``output`` report, in characters.
MAX_TEXT = 65_536


class JobCancelled(Exception):
    """Raised by a handler that stops because its job was cancelled."""


class JobContext:
    """Owns: one run's unsent reports and its cancellation flag.

    Concurrency: the handler (on the worker's loop or in a thread) appends
    reports, the reporter takes them; a deque makes both atomic.
    """

    def __init__(
        self,
        job_id: str,
        attempt: int,
        tenant_id: str = "",
        router: Router | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.tenant_id = tenant_id
        #: The run's router, for commands to the entity kinds the job kind
        #: names in ``entities`` (from an ``async`` handler).
        self.router = router
        #: The deployment's settings (resolved service URLs included), for a
        #: handler that opens a connection of its own.
        self.settings = settings
        self._reports: deque[JobReport] = deque()
        self._cancelled = False
        #: Called (from whichever thread reports) when a report finds none unsent.
        self.on_first_report: Callable[[], None] | None = None

    def progress(self, pct: float) -> None:
        """The job is ``pct`` percent done (0 to 100)."""
        if not (isinstance(pct, int | float) and math.isfinite(pct) and 0 <= pct <= 100):
            raise ValueError(f"expected a progress between 0 and 100, got {pct!r}")
        self._record(ProgressReport(float(pct)))

    def counters(self, done: int, total: int | None = None) -> None:
        """``done`` items of ``total`` (None: not known yet)."""
        if done < 0 or (total is not None and total < 0):
            raise ValueError(f"expected counts of at least 0, got done={done}, total={total}")
        self._record(CountersReport(int(done), total))

    def step(self, name: str) -> None:
        """The job entered step ``name``."""
        self._record(StepReport(_text(name, "step")))

    def log(self, text: str) -> None:
        """A line for the job's followers."""
        self._record(LogReport(_text(text, "log")))

    def output(self, chunk: str) -> None:
        """A piece of streamed output (tokens, rows); a batch's chunks leave merged."""
        self._record(OutputReport(_text(chunk, "output")))

    @property
    def cancelled(self) -> bool:
        """Whether the job was asked to stop (or is no longer this run's)."""
        return self._cancelled

    @contextlib.asynccontextmanager
    async def database(self, size: int = 1) -> AsyncIterator[Database]:
        """A pool of ``size`` connections to the deployment's Postgres, as the
        application role, for this run (its loop is its own); closed after."""
        settings = self.settings
        if settings is None or not settings.database_url:
            raise RuntimeError("a job's run gets the deployment's resolved settings")
        db = await Database.connect(settings.database_url, role=settings.app_role, size=size)
        try:
            yield db
        finally:
            await db.close()

    def raise_if_cancelled(self) -> None:
        if self._cancelled:
            raise JobCancelled(self.job_id)

    def take(self) -> list[JobReport]:
        """The reports recorded since the last call, in order."""
        taken = []
        while self._reports:
            taken.append(self._reports.popleft())
        return taken

    def stop(self) -> None:
        """Mark the run cancelled (the reporter learned it from the job)."""
        self._cancelled = True

    def _record(self, report: JobReport) -> None:
        self._reports.append(report)
        if len(self._reports) == 1 and self.on_first_report is not None:
            self.on_first_report()


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected the {what} as a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise ValueError(f"expected a {what} of at most {MAX_TEXT} characters, got {len(value)}")
    return value
