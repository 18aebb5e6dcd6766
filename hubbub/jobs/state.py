"""The rules of one job, pure: ``submit``, ``decide`` and ``apply``.

No I/O, no clock (``now`` is passed in), no Ray. A job moves through
:data:`TRANSITIONS` — queued → running → succeeded | failed | cancelled |
timed_out, through ``retrying`` between attempts — and every change is a
:mod:`~hubbub.jobs.events` event that takes the job's next ``seq``: the
stream is gap-free, so a follower that sees n then n + 2 knows it missed
one. Bookkeeping of launches (``Launched``, ``Unlaunched``) changes the
job's row but is no event: followers never see it.

``decide`` dispatches on the command's type (:mod:`hubbub.jobs.commands`)
through one table of deciders, ``apply`` on the event's type through one
table of appliers, updating the state in place. A worker's
command for a launch or attempt that is no longer current (a job cancelled
or timed out meanwhile, a launch declared lost) changes nothing; its reply
tells the worker to stop.

An attempt that ends without success — the handler raised, its worker was
lost, it ran past its timeout — is retried while the job's attempt budget
lasts (``retrying`` until ``retry_at``: exponential backoff with jitter),
and otherwise ends the job ``failed`` (``timed_out`` for a timeout). A
handler's ``AppError`` is a verdict on its input, never retried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hubbub.errors import AppError
from hubbub.jobs.commands import (
    Cancel,
    CountersReport,
    Dispatch,
    Finish,
    JobCommand,
    JobReport,
    LogReport,
    Lost,
    OutputReport,
    ProgressReport,
    Report,
    Retry,
    Start,
    StepReport,
    Submit,
    Supervise,
)
from hubbub.jobs.events import (
    Cancelled,
    CancelRequested,
    Failed,
    JobEvent,
    Launched,
    Logged,
    OutputWritten,
    Progressed,
    Queued,
    Requeued,
    Retrying,
    Started,
    StepEntered,
    Succeeded,
    TimedOut,
    Unlaunched,
)

__all__ = [
    "STATUSES",
    "TERMINAL",
    "TRANSITIONS",
    "JobState",
    "apply",
    "backoff",
    "coalesce",
    "decide",
    "is_current",
    "is_waiting",
    "submit",
]

STATUSES = ("queued", "running", "retrying", "succeeded", "failed", "cancelled", "timed_out")
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
#: Statuses a retry by hand starts over from.
RETRYABLE = frozenset({"failed", "timed_out"})
#: Every status change a job may make; anything else is a bug.
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "cancelled"}),
    "running": frozenset({"succeeded", "failed", "cancelled", "timed_out", "retrying"}),
    "retrying": frozenset({"running", "cancelled"}),
    "failed": frozenset({"queued"}),
    "timed_out": frozenset({"queued"}),
}
#: The longest wait between two attempts, whatever the backoff.
MAX_BACKOFF_SECONDS = 3600.0
_MANAGERS = frozenset({"owner", "admin"})


@dataclass(slots=True)
class JobState:
    id: str
    tenant_id: str
    kind: str
    input: dict[str, Any]
    created_by: str
    request_hash: str
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    status: str = "queued"
    progress: float = 0.0
    step: str | None = None
    done: int | None = None
    total: int | None = None
    result: Any = None
    error: dict[str, str] | None = None
    attempts: int = 0
    cancel_requested: bool = False
    seq: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    priority: int = 0
    conflict_key: str | None = None
    run_at: datetime | None = None
    max_attempts: int = 1
    attempt_budget: int = 1
    backoff_seconds: float = 1.0
    timeout_seconds: float | None = None
    launch_id: str | None = None
    launched_at: datetime | None = None
    retry_at: datetime | None = None
    deadline: datetime | None = None
    cancel_requested_at: datetime | None = None
    concurrency: int | None = None
    schedule_id: str | None = None
    private: bool = False


def submit(state: JobState | None, job: Submit, now: datetime) -> tuple[JobState, list[JobEvent]]:
    """The job ``job`` submits, and the events creating it (none if it exists).

    A retried submission (same id: same creator and Idempotency-Key) with the
    same body gets the existing job; with another body it is refused.
    """
    if state is not None:
        if state.created_by != job.created_by or state.request_hash != job.request_hash:
            raise AppError(
                "idempotency_key_reused",
                "this Idempotency-Key was used with another request body; "
                "expected the same body, or a new key for a new job",
                status=422,
            )
        return state, []
    created = JobState(
        id=job.job_id,
        tenant_id=job.tenant_id,
        kind=job.kind,
        input=job.input,
        created_by=job.created_by,
        request_hash=job.request_hash,
        idempotency_key=job.idempotency_key,
        created_at=now,
        updated_at=now,
        priority=job.priority,
        conflict_key=job.conflict_key,
        run_at=job.run_at,
        max_attempts=job.max_attempts,
        attempt_budget=job.max_attempts,
        backoff_seconds=job.backoff_seconds,
        timeout_seconds=job.timeout_seconds,
        concurrency=job.concurrency,
        schedule_id=job.schedule_id,
        private=job.private,
    )
    return created, [Queued(now)]


def decide(state: JobState | None, command: JobCommand, now: datetime) -> list[JobEvent]:
    """The events ``command`` causes; AppError to refuse it unchanged.

    :func:`submit` decides a :class:`Submit`; every other command needs the job.
    """
    if state is None:
        raise AppError.not_found("job")
    decider = _DECIDERS.get(type(command))
    if decider is None:
        raise AppError("unknown_command", f"jobs have no command {type(command).__name__}")
    return decider(state, command, now)


def _dispatch(state: JobState, command: Dispatch, now: datetime) -> list[JobEvent]:
    if not is_waiting(state, now):
        return []
    return [Launched(now, command.launch_id)]


def _start(state: JobState, command: Start, now: datetime) -> list[JobEvent]:
    if state.status not in ("queued", "retrying") or command.launch_id != state.launch_id:
        return []  # cancelled meanwhile, or a launch that is not (or no longer) the job's
    return [Started(now, state.attempts + 1)]


def _report(state: JobState, command: Report, now: datetime) -> list[JobEvent]:
    if not is_current(state, command.attempt):
        return []
    return coalesce(state, command.reports, now)


def _finish(state: JobState, command: Finish, now: datetime) -> list[JobEvent]:
    if not is_current(state, command.attempt):
        return []
    if command.outcome == "succeeded":
        return [Succeeded(now, command.result)]
    if command.outcome == "cancelled" or state.cancel_requested:
        return [Cancelled(now)]  # it was stopping
    error = command.error or {"code": "handler_failed", "message": "the handler failed"}
    return _attempt_failed(state, error, now, retry=command.retryable)


def _lost(state: JobState, command: Lost, now: datetime) -> list[JobEvent]:
    """The launch has no task any more (its worker died, or the launch never
    reached Ray): the attempt it ran failed, or the job waits to be
    launched again."""
    if command.launch_id != state.launch_id or state.status in TERMINAL:
        return []
    if state.status != "running":
        return [Unlaunched(now)]
    if state.cancel_requested:
        return [Cancelled(now)]
    error = {"code": "worker_lost", "message": "the worker running the job stopped"}
    return _attempt_failed(state, error, now)


def _supervise(state: JobState, command: Supervise, now: datetime) -> list[JobEvent]:
    """A running attempt past its timeout ends; one asked to stop that has
    not within ``grace`` seconds is cancelled (the sweep then kills it)."""
    if state.status != "running":
        return []
    if state.deadline is not None and now >= state.deadline:
        seconds = state.timeout_seconds
        error = {"code": "timed_out", "message": f"the attempt ran longer than {seconds:g} s"}
        return _attempt_failed(state, error, now, final=TimedOut)
    asked = state.cancel_requested_at
    if asked is not None and now >= asked + timedelta(seconds=command.grace):
        return [Cancelled(now, forced=True)]
    return []


def _attempt_failed(
    state: JobState,
    error: dict[str, str],
    now: datetime,
    *,
    final: type[Failed] = Failed,
    retry: bool = True,
) -> list[JobEvent]:
    """The job retries after a backoff while its budget lasts, else ends ``final``."""
    if retry and state.attempts < state.attempt_budget:
        return [Retrying(now, error, now + timedelta(seconds=backoff(state)))]
    return [final(now, error)]


def backoff(state: JobState) -> float:
    """Seconds before the next attempt: ``backoff_seconds`` doubled per
    attempt made, capped, times a jitter in [0.5, 1) drawn from the job and
    attempt (so it is the same on every replay, and jobs failing together
    spread out)."""
    base = min(state.backoff_seconds * 2 ** max(state.attempts - 1, 0), MAX_BACKOFF_SECONDS)
    digest = hashlib.blake2b(f"{state.id}:{state.attempts}".encode(), digest_size=8).digest()
    return base * (0.5 + int.from_bytes(digest) / 2**65)


def _retry(state: JobState, command: Retry, now: datetime) -> list[JobEvent]:
    _check_actor(state, command, "retry")
    if state.status not in RETRYABLE:
        raise AppError(
            "job_not_retryable",
            f"expected a failed or timed out job, got one that is {state.status}",
            status=409,
            extra={"job_status": state.status},
        )
    return [Requeued(now)]


def _check_actor(state: JobState, command: Cancel | Retry, what: str) -> None:
    if command.actor != state.created_by and command.role not in _MANAGERS:
        if state.private:  # not theirs to see, let alone change
            raise AppError.not_found("job")
        raise AppError(
            "insufficient_role",
            f"expected the job's creator or a tenant owner or admin to {what} it",
            status=403,
        )


def _cancel(state: JobState, command: Cancel, now: datetime) -> list[JobEvent]:
    _check_actor(state, command, "cancel")
    if state.status in TERMINAL:
        raise AppError(
            "job_finished",
            f"expected a queued or running job, got one that is {state.status}",
            status=409,
            extra={"job_status": state.status},
        )
    if state.status != "running":  # queued, or retrying: nothing runs
        return [Cancelled(now)]
    if state.cancel_requested:
        return []
    return [CancelRequested(now)]


_DECIDERS: dict[type, Callable[[JobState, Any, datetime], list[JobEvent]]] = {
    Dispatch: _dispatch,
    Start: _start,
    Report: _report,
    Finish: _finish,
    Lost: _lost,
    Supervise: _supervise,
    Cancel: _cancel,
    Retry: _retry,
}


def is_current(state: JobState, attempt: int) -> bool:
    """Whether a worker's ``attempt`` is the one the job is running now."""
    return state.status == "running" and attempt == state.attempts


def is_waiting(state: JobState, now: datetime) -> bool:
    """Whether the job is due and waits for a launch."""
    if state.launch_id is not None or state.status not in ("queued", "retrying"):
        return False
    due = state.retry_at if state.status == "retrying" else state.run_at
    return due is None or due <= now


def coalesce(state: JobState, reports: Sequence[JobReport], now: datetime) -> list[JobEvent]:
    """The events of a batch of reports, in order, merged between steps and logs:
    all progress and counters reports there give one ``progress`` event with
    their latest values, all output chunks one ``output`` event, each where
    its first report was."""
    events: list[JobEvent] = []
    progress, done, total = state.progress, state.done, state.total
    progress_at: int | None = None
    chunks: dict[int, list[str]] = {}  # output event index -> its chunks
    output_at: int | None = None
    for report in reports:
        match report:
            case ProgressReport() | CountersReport():
                if isinstance(report, ProgressReport):
                    progress = report.progress
                else:
                    done, total = report.done, report.total
                if progress_at is None:
                    progress_at = len(events)
                    events.append(Progressed(now, progress, done, total))
                events[progress_at] = Progressed(now, progress, done, total)
            case OutputReport(chunk=chunk):
                if output_at is None:
                    output_at = len(events)
                    chunks[output_at] = []
                    events.append(OutputWritten(now, ""))
                chunks[output_at].append(chunk)
            case StepReport(name=name):
                events.append(StepEntered(now, name))
                progress_at = output_at = None
            case LogReport(text=text):
                events.append(Logged(now, text))
                progress_at = output_at = None
    for at, parts in chunks.items():
        events[at] = OutputWritten(now, "".join(parts))
    return events


def apply(state: JobState, event: JobEvent) -> JobState:
    """``state`` after ``event``, updated in place (an event of the stream
    takes the next seq)."""
    state.updated_at = event.at
    if not event.bookkeeping:
        state.seq += 1
    _APPLIERS[type(event)](state, event)
    return state


def _launched(state: JobState, event: Launched) -> None:
    state.launch_id, state.launched_at = event.launch_id, event.at


def _unlaunched(state: JobState, event: Unlaunched) -> None:
    state.launch_id = state.launched_at = None


def _progressed(state: JobState, event: Progressed) -> None:
    state.progress, state.done, state.total = event.progress, event.done, event.total


def _step_entered(state: JobState, event: StepEntered) -> None:
    state.step = event.name


def _streamed(state: JobState, event: Logged | OutputWritten) -> None:
    """A log line or output: only followers see it."""


def _move(state: JobState, status: str) -> None:
    if status != state.status and status not in TRANSITIONS.get(state.status, ()):
        raise AssertionError(f"a job cannot go from {state.status} to {status}")
    state.status = status


def _queued(state: JobState, event: Queued) -> None:
    _move(state, event.status)


def _started(state: JobState, event: Started) -> None:
    _move(state, event.status)
    state.attempts = event.attempt
    state.started_at = state.started_at or event.at
    timeout = state.timeout_seconds
    state.deadline = None if timeout is None else event.at + timedelta(seconds=timeout)


def _cancel_requested(state: JobState, event: CancelRequested) -> None:
    _move(state, event.status)
    if not state.cancel_requested:
        state.cancel_requested, state.cancel_requested_at = True, event.at


def _retrying(state: JobState, event: Retrying) -> None:
    _move(state, event.status)
    state.error, state.retry_at = event.error, event.retry_at
    state.launch_id = state.launched_at = state.deadline = None


def _requeued(state: JobState, event: Requeued) -> None:
    """By hand: now, with a new budget of attempts, from the start."""
    _move(state, event.status)
    state.attempt_budget = state.attempts + state.max_attempts
    state.run_at = None
    state.progress, state.step, state.done, state.total = 0.0, None, None, None
    state.result = state.error = state.finished_at = state.retry_at = None
    state.launch_id = state.launched_at = state.cancel_requested_at = None
    state.cancel_requested = False


def _ended(state: JobState, status: str, at: datetime, result: Any, error: Any) -> None:
    _move(state, status)
    state.finished_at, state.result, state.error, state.deadline = at, result, error, None


def _succeeded(state: JobState, event: Succeeded) -> None:
    _ended(state, event.status, event.at, event.result, None)
    state.progress = 100.0


def _cancelled(state: JobState, event: Cancelled) -> None:
    _ended(state, event.status, event.at, None, None)


def _failed(state: JobState, event: Failed) -> None:
    _ended(state, event.status, event.at, None, event.error)


_APPLIERS: dict[type, Callable[[JobState, Any], None]] = {
    Launched: _launched,
    Unlaunched: _unlaunched,
    Progressed: _progressed,
    StepEntered: _step_entered,
    Logged: _streamed,
    OutputWritten: _streamed,
    Queued: _queued,
    Requeued: _requeued,
    Started: _started,
    CancelRequested: _cancel_requested,
    Retrying: _retrying,
    Succeeded: _succeeded,
    Cancelled: _cancelled,
    Failed: _failed,
    TimedOut: _failed,
}
