"""One run of a job's handler, on a Ray worker (a task of the launcher actor,
``hubbub.actors.runtime``, started by the job sweep).

The run talks to its job entity through a router of its own, like a
gateway: ``start`` (queued or retrying → running, if the job still waits on
this launch; a job cancelled meanwhile answers not current and the run ends
before the handler), then report batches while the handler runs, then ``finish``
with the result or the error. Reports leave in batches — one router call
per batch, at most every ``HUBBUB_JOB_REPORT_SECONDS`` — and each batch's
reply says whether the job was asked to stop, which the handler sees as
``context.cancelled``; a handler that reports nothing is still checked every
``HUBBUB_JOB_CHECK_SECONDS``. ``start``, every non-empty batch and ``finish``
carry idempotency keys, so the router retries them across a shard restart
and the entity applies each once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from hubbub.actors.command import Command, CommandBody
from hubbub.actors.router import Router
from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.jobs.commands import Finish, JobReport, Report, Start
from hubbub.jobs.context import JobCancelled, JobContext
from hubbub.jobs.registry import KINDS, JobKind

__all__ = ["Launch", "Reporter", "run_job"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Launch:
    """What a worker needs to run a job: sent as the task's JSON payload.

    ``launch_id`` is unique per launch: the idempotency keys of the run's
    commands derive from it, so a retried command is one command, while two
    launches of one job stay two (and only the first one starts it).
    """

    launch_id: str
    job_id: str
    tenant_id: str
    kind: str
    module: str
    input: dict[str, Any]
    entities: tuple[str, ...] = ()  # the kind's, for the run's router

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Launch:
        return cls(**{**payload, "entities": tuple(payload.get("entities", ()))})


async def run_job(payload: dict[str, Any], router: Router, settings: Settings) -> None:
    """Start the job, run its handler and finish it; the task's entry point."""
    launch = Launch.from_payload(payload)
    start = Start(launch.launch_id)
    started = await _ask(router, launch, start, key=f"start:{launch.launch_id}")
    if not started["current"]:
        return  # cancelled while queued, or another launch runs it
    attempt = started["attempts"]
    context = JobContext(launch.job_id, attempt, launch.tenant_id, router, settings)
    reporter = Reporter(router, launch, context, settings)
    reporter.start()
    try:
        finish = await _outcome(launch, context)
    finally:
        await reporter.close()
    await _ask(router, launch, finish, key=f"finish:{launch.launch_id}")


async def _outcome(launch: Launch, context: JobContext) -> Finish:
    """The attempt's end: the handler's result, or why it did not give one
    (a kind this worker cannot import fails the job too)."""
    attempt = context.attempt
    try:
        kind = KINDS.load(launch.module, launch.kind)
        result = await _call(kind, context, kind.input.model_validate(launch.input))
        orjson.dumps(result)  # the result must be JSON
    except JobCancelled:
        return Finish(attempt, "cancelled")
    except AppError as error:  # the handler's verdict on its input: not retried
        return _failed(attempt, error.code, error.message, retryable=False)
    except TypeError as error:
        if "JSON" in str(error):
            message = f"expected a JSON result from the handler: {error}"
            return _failed(attempt, "bad_result", message)
        return _raised(launch, attempt, error)
    except Exception as error:
        return _raised(launch, attempt, error)
    return Finish(attempt, "succeeded", result=result)


async def _call(kind: JobKind, context: JobContext, value: Any) -> Any:
    if inspect.iscoroutinefunction(kind.handler):
        return await kind.handler(context, value)
    return await asyncio.to_thread(kind.handler, context, value)  # keep the reporter running


def _raised(launch: Launch, attempt: int, error: Exception) -> Finish:
    log.warning("job %s (%s) failed", launch.job_id, launch.kind, exc_info=error)
    return _failed(attempt, "handler_failed", f"{type(error).__name__}: {error}")


def _failed(attempt: int, code: str, message: str, *, retryable: bool = True) -> Finish:
    error = {"code": code, "message": message}
    return Finish(attempt, "failed", error=error, retryable=retryable)


def _left(since: float, seconds: float) -> float:
    """What is left of ``seconds`` counted from ``since``."""
    return since + seconds - time.monotonic()


async def _until(event: asyncio.Event, seconds: float, *more: asyncio.Event) -> None:
    """Wait until ``event`` (or any of ``more``) is set, or ``seconds`` have passed."""
    waits = [asyncio.ensure_future(e.wait()) for e in (event, *more)]
    try:
        await asyncio.wait(waits, timeout=max(seconds, 0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _ask(router: Router, launch: Launch, body: CommandBody, key: str | None = None) -> Any:
    command = Command("job", launch.job_id, body, launch.tenant_id, key)
    return await router.send(command)


class Reporter:
    """Owns: the task sending a run's reports to its job entity.

    A report after a quiet spell leaves at once; the ones that follow it
    within ``HUBBUB_JOB_REPORT_SECONDS`` wait out that interval and leave
    together. A run that reports nothing still asks every
    ``HUBBUB_JOB_CHECK_SECONDS`` whether it was cancelled.
    Concurrency: one task; one batch in flight at a time, so batches arrive
    in order. Failure: a batch the router could not deliver is logged and
    counted in ``lost`` (its events are missing from the job's stream; the
    final status still comes with ``finish``).
    """

    def __init__(
        self, router: Router, launch: Launch, context: JobContext, settings: Settings
    ) -> None:
        self._router = router
        self._launch = launch
        self._context = context
        self._every = settings.job_report_seconds
        self._check_every = settings.job_check_seconds
        self._closing = asyncio.Event()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._batches = 0
        self._last_sent = time.monotonic()  # any batch, a check too
        self._last_reported = -math.inf  # a batch of reports
        self.lost = 0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._context.on_first_report = lambda: loop.call_soon_threadsafe(self._arrived.set)
        self._task = loop.create_task(self._run())

    async def close(self) -> None:
        """Send what is left, then stop."""
        self._closing.set()
        if self._task is not None:
            await self._task
        await self._flush(self._context.take())

    async def _run(self) -> None:
        while not self._closing.is_set():
            await _until(self._arrived, _left(self._last_sent, self._check_every), self._closing)
            if self._arrived.is_set():
                await _until(self._closing, _left(self._last_reported, self._every))
                self._arrived.clear()
            if not self._closing.is_set():
                await self._flush(self._context.take())

    async def _flush(self, reports: list[JobReport]) -> None:
        """One batch (empty: only a check for cancellation)."""
        self._last_sent = time.monotonic()
        if reports:
            self._last_reported = self._last_sent
            self._batches += 1
        key = f"report:{self._launch.launch_id}:{self._batches}" if reports else None
        batch = Report(self._context.attempt, reports)
        try:
            reply = await _ask(self._router, self._launch, batch, key)
        except AppError as error:
            self.lost += len(reports)
            log.error("job %s: a report batch was lost: %s", self._launch.job_id, error)
            return
        if not reply["current"] or reply["cancel_requested"]:
            self._context.stop()
