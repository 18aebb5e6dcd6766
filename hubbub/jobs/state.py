"""The rules of one job, pure: ``submit``, ``decide`` and ``apply``.

No I/O, no clock (``now`` is passed in), no Ray. A job moves through
:data:`TRANSITIONS` — queued → running → succeeded | failed | cancelled |
timed_out, through ``retrying`` between attempts — and every change is a
:class:`JobEvent` that takes the job's next ``seq``: the stream is
gap-free, so a follower that sees n then n + 2 knows it missed one. Event
types are those of the SSE stream: ``status``, ``progress``, ``step``,
``log`` and ``output``. Bookkeeping of launches (``launch``, ``unlaunch``)
changes the job's row but is no event: followers never see it.

Commands come from three places: the API (``submit``, ``cancel``,
``retry``), the job sweep (``dispatch``, ``lost``, ``supervise``) and the
worker running the handler (``start``, ``report``, ``finish``). A worker's
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

__all__ = [
    "EVENT_TYPES",
    "REPORT_TYPES",
    "STATUSES",
    "TERMINAL",
    "TRANSITIONS",
    "JobEvent",
    "JobState",
    "Report",
    "Submission",
    "apply",
    "backoff",
    "coalesce",
    "decide",
    "event_view",
    "is_current",
    "is_waiting",
    "submit",
    "view",
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
#: Changes of a job's row that are not events of its stream.
BOOKKEEPING = frozenset({"launch", "unlaunch"})
#: The longest wait between two attempts, whatever the backoff.
MAX_BACKOFF_SECONDS = 3600.0
EVENT_TYPES = ("status", "progress", "step", "log", "output")
#: What a handler's context reports, ``(type, data)``; ``counters`` and
#: ``progress`` both become ``progress`` events.
REPORT_TYPES = ("progress", "counters", "step", "log", "output")
_MANAGERS = frozenset({"owner", "admin"})

Report = tuple[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated ``POST /jobs``: what a new job starts from."""

    job_id: str
    tenant_id: str
    kind: str
    input: dict[str, Any]
    created_by: str
    request_hash: str  # hex SHA-256 of {kind, input}
    idempotency_key: str | None = None
    priority: int = 0
    conflict_key: str | None = None
    run_at: datetime | None = None
    max_attempts: int = 1
    backoff_seconds: float = 1.0
    timeout_seconds: float | None = None
    concurrency: int | None = None
    schedule_id: str | None = None
    private: bool = False

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> Submission:
        """The submission a ``submit`` command carries (times as RFC 3339 text)."""
        run_at = args.get("run_at")
        return cls(**{**args, "run_at": None if run_at is None else datetime.fromisoformat(run_at)})


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


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One change of a job: its ``type`` and ``data`` are what followers see
    (a :data:`BOOKKEEPING` type is a change of the row only)."""

    type: str
    data: dict[str, Any]
    at: datetime

    @property
    def bookkeeping(self) -> bool:
        return self.type in BOOKKEEPING


def submit(
    state: JobState | None, submission: Submission, now: datetime
) -> tuple[JobState, list[JobEvent]]:
    """The job ``submission`` names, and the events creating it (none if it exists).

    A retried submission (same id: same creator and Idempotency-Key) with the
    same body gets the existing job; with another body it is refused.
    """
    if state is not None:
        if state.created_by != submission.created_by or (
            state.request_hash != submission.request_hash
        ):
            raise AppError(
                "idempotency_key_reused",
                "this Idempotency-Key was used with another request body; "
                "expected the same body, or a new key for a new job",
                status=422,
            )
        return state, []
    job = JobState(
        id=submission.job_id,
        tenant_id=submission.tenant_id,
        kind=submission.kind,
        input=submission.input,
        created_by=submission.created_by,
        request_hash=submission.request_hash,
        idempotency_key=submission.idempotency_key,
        created_at=now,
        updated_at=now,
        priority=submission.priority,
        conflict_key=submission.conflict_key,
        run_at=submission.run_at,
        max_attempts=submission.max_attempts,
        attempt_budget=submission.max_attempts,
        backoff_seconds=submission.backoff_seconds,
        timeout_seconds=submission.timeout_seconds,
        concurrency=submission.concurrency,
        schedule_id=submission.schedule_id,
        private=submission.private,
    )
    return job, [JobEvent("status", {"status": "queued"}, now)]


def decide(
    state: JobState | None, name: str, args: dict[str, Any], now: datetime
) -> list[JobEvent]:
    """The events command ``name`` causes; AppError to refuse it unchanged."""
    if state is None:
        raise AppError.not_found("job")
    decider = _DECIDERS.get(name)
    if decider is None:
        raise AppError("unknown_command", f"jobs have no command {name!r}")
    return decider(state, args, now)


def _dispatch(state: JobState, args: dict[str, Any], now: datetime) -> list[JobEvent]:
    """The sweep picked this job: it waits on launch ``launch_id`` from now."""
    if not is_waiting(state, now):
        return []
    return [JobEvent("launch", {"launch_id": args["launch_id"]}, now)]


def _start(state: JobState, args: dict[str, Any], now: datetime) -> list[JobEvent]:
    if state.status not in ("queued", "retrying") or args["launch_id"] != state.launch_id:
        return []  # cancelled meanwhile, or a launch that is not (or no longer) the job's
    return [JobEvent("status", {"status": "running", "attempt": state.attempts + 1}, now)]


def _report(state: JobState, args: dict[str, Any], now: datetime) -> list[JobEvent]:
    if not is_current(state, args["attempt"]):
        return []
    return coalesce(state, [(kind, data) for kind, data in args["reports"]], now)


def _finish(state: JobState, args: dict[str, Any], now: datetime) -> list[JobEvent]:
    if not is_current(state, args["attempt"]):
        return []
    outcome = args["outcome"]
    if outcome == "succeeded":
        return [JobEvent("status", {"status": "succeeded", "result": args.get("result")}, now)]
    if outcome == "cancelled" or state.cancel_requested:
        return [JobEvent("status", {"status": "cancelled"}, now)]  # it was stopping
    return _attempt_failed(state, args["error"], now, retry=args.get("retryable", True))


def _lost(state: JobState, args: dict[str, Any], now: datetime) -> list[JobEvent]:
    """Launch ``launch_id`` has no task any more (its worker died, or the
    launch never reached Ray): the attempt it ran failed, or the job waits
    to be launched again."""
    if args["launch_id"] != state.launch_id or state.status in TERMINAL:
        return []
    if state.status != "running":
        return [JobEvent("unlaunch", {}, now)]
    if state.cancel_requested:
        return [JobEvent("status", {"status": "cancelled"}, now)]
    error = {"code": "worker_lost", "message": "the worker running the job stopped"}
    return _attempt_failed(state, error, now)


def _supervise(state: JobState, args: dict[str, Any], now: datetime) -> list[JobEvent]:
    """A running attempt past its timeout ends; one asked to stop that has
    not within ``grace`` seconds is cancelled (the sweep then kills it)."""
    if state.status != "running":
        return []
    if state.deadline is not None and now >= state.deadline:
        seconds = state.timeout_seconds
        error = {"code": "timed_out", "message": f"the attempt ran longer than {seconds:g} s"}
        return _attempt_failed(state, error, now, final="timed_out")
    asked = state.cancel_requested_at
    if asked is not None and now >= asked + timedelta(seconds=args["grace"]):
        return [JobEvent("status", {"status": "cancelled", "forced": True}, now)]
    return []


def _attempt_failed(
    state: JobState,
    error: dict[str, str],
    now: datetime,
    *,
    final: str = "failed",
    retry: bool = True,
) -> list[JobEvent]:
    """The job retries after a backoff while its budget lasts, else ends ``final``."""
    if retry and state.attempts < state.attempt_budget:
        at = now + timedelta(seconds=backoff(state))
        data = {"status": "retrying", "error": error, "retry_at": at.isoformat()}
        return [JobEvent("status", data, now)]
    return [JobEvent("status", {"status": final, "error": error}, now)]


def backoff(state: JobState) -> float:
    """Seconds before the next attempt: ``backoff_seconds`` doubled per
    attempt made, capped, times a jitter in [0.5, 1) drawn from the job and
    attempt (so it is the same on every replay, and jobs failing together
    spread out)."""
    base = min(state.backoff_seconds * 2 ** max(state.attempts - 1, 0), MAX_BACKOFF_SECONDS)
    digest = hashlib.blake2b(f"{state.id}:{state.attempts}".encode(), digest_size=8).digest()
    return base * (0.5 + int.from_bytes(digest) / 2**65)


def _retry(state: JobState, args: dict[str, Any], now: datetime) -> list[JobEvent]:
    _check_actor(state, args, "retry")
    if state.status not in RETRYABLE:
        raise AppError(
            "job_not_retryable",
            f"expected a failed or timed out job, got one that is {state.status}",
            status=409,
            extra={"job_status": state.status},
        )
    return [JobEvent("status", {"status": "queued", "retry": True}, now)]


def _check_actor(state: JobState, args: dict[str, Any], what: str) -> None:
    if args["actor"] != state.created_by and args.get("role") not in _MANAGERS:
        if state.private:  # not theirs to see, let alone change
            raise AppError.not_found("job")
        raise AppError(
            "insufficient_role",
            f"expected the job's creator or a tenant owner or admin to {what} it",
            status=403,
        )


def _cancel(state: JobState, args: dict[str, Any], now: datetime) -> list[JobEvent]:
    _check_actor(state, args, "cancel")
    if state.status in TERMINAL:
        raise AppError(
            "job_finished",
            f"expected a queued or running job, got one that is {state.status}",
            status=409,
            extra={"job_status": state.status},
        )
    if state.status != "running":  # queued, or retrying: nothing runs
        return [JobEvent("status", {"status": "cancelled"}, now)]
    if state.cancel_requested:
        return []
    return [JobEvent("status", {"status": state.status, "cancel_requested": True}, now)]


_DECIDERS: dict[str, Callable[[JobState, dict[str, Any], datetime], list[JobEvent]]] = {
    "dispatch": _dispatch,
    "start": _start,
    "report": _report,
    "finish": _finish,
    "lost": _lost,
    "supervise": _supervise,
    "cancel": _cancel,
    "retry": _retry,
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


def coalesce(state: JobState, reports: Sequence[Report], now: datetime) -> list[JobEvent]:
    """The events of a batch of reports, in order, merged between steps and logs:
    all progress and counters reports there give one ``progress`` event with
    their latest values, all output chunks one ``output`` event, each where
    its first report was."""
    events: list[JobEvent] = []
    progress = {"progress": state.progress, "done": state.done, "total": state.total}
    progress_at: int | None = None
    chunks: dict[int, list[str]] = {}  # output event index -> its chunks
    output_at: int | None = None
    for kind, data in reports:
        if kind in ("progress", "counters"):
            progress = progress | data
            if progress_at is None:
                progress_at = len(events)
                events.append(JobEvent("progress", {}, now))
            events[progress_at] = JobEvent("progress", dict(progress), now)
        elif kind == "output":
            if output_at is None:
                output_at = len(events)
                chunks[output_at] = []
                events.append(JobEvent("output", {}, now))
            chunks[output_at].append(data["chunk"])
        else:
            events.append(JobEvent(kind, data, now))
            progress_at = output_at = None
    for at, parts in chunks.items():
        events[at] = JobEvent("output", {"chunk": "".join(parts)}, now)
    return events


def apply(state: JobState, event: JobEvent) -> JobState:
    """``state`` after ``event`` (an event of the stream takes the next seq)."""
    state.updated_at = event.at
    data = event.data
    if event.type == "launch":
        state.launch_id, state.launched_at = data["launch_id"], event.at
        return state
    if event.type == "unlaunch":
        state.launch_id = state.launched_at = None
        return state
    state.seq += 1
    if event.type == "progress":
        state.progress, state.done, state.total = data["progress"], data["done"], data["total"]
    elif event.type == "step":
        state.step = data["name"]
    elif event.type == "status":
        _apply_status(state, data, event.at)
    return state


def _apply_status(state: JobState, data: dict[str, Any], at: datetime) -> None:
    status = data["status"]
    if status != state.status and status not in TRANSITIONS.get(state.status, ()):
        raise AssertionError(f"a job cannot go from {state.status} to {status}")
    state.status = status
    if data.get("cancel_requested") and not state.cancel_requested:
        state.cancel_requested, state.cancel_requested_at = True, at
    if "attempt" in data:
        state.attempts = data["attempt"]
        state.started_at = state.started_at or at
        timeout = state.timeout_seconds
        state.deadline = None if timeout is None else at + timedelta(seconds=timeout)
    if status == "retrying":
        state.error = data["error"]
        state.retry_at = datetime.fromisoformat(data["retry_at"])
        state.launch_id = state.launched_at = state.deadline = None
    if data.get("retry"):  # by hand: now, with a new budget of attempts, from the start
        state.attempt_budget = state.attempts + state.max_attempts
        state.run_at = None
        state.progress, state.step, state.done, state.total = 0.0, None, None, None
        state.result = state.error = state.finished_at = state.retry_at = None
        state.launch_id = state.launched_at = state.cancel_requested_at = None
        state.cancel_requested = False
    if status in TERMINAL:
        state.finished_at = at
        state.result = data.get("result")
        state.error = data.get("error")
        state.deadline = None
        if status == "succeeded":
            state.progress = 100.0


def view(state: JobState) -> dict[str, Any]:
    """The wire shape of a job (issue 5's "Wire names")."""
    return {
        "id": state.id,
        "tenant_id": state.tenant_id,
        "kind": state.kind,
        "status": state.status,
        "progress": state.progress,
        "step": state.step,
        "done": state.done,
        "total": state.total,
        "result": state.result,
        "error": state.error,
        "attempts": state.attempts,
        "max_attempts": state.max_attempts,
        "priority": state.priority,
        "conflict_key": state.conflict_key,
        "run_at": _time(state.run_at),
        "retry_at": _time(state.retry_at),
        "cancel_requested": state.cancel_requested,
        "last_seq": state.seq,
        "created_by": state.created_by,
        "created_at": state.created_at.isoformat(),
        "started_at": _time(state.started_at),
        "finished_at": _time(state.finished_at),
    }


def event_view(job_id: str, seq: int, event: JobEvent) -> dict[str, Any]:
    """The wire shape of a job event: ``{job_id, seq, type, data, at}``."""
    return {
        "job_id": job_id,
        "seq": seq,
        "type": event.type,
        "data": event.data,
        "at": event.at.isoformat(),
    }


def _time(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()
