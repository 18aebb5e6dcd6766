"""The rules of one job, pure: ``submit``, ``decide`` and ``apply``.

No I/O, no clock (``now`` is passed in), no Ray. A job moves through
:data:`TRANSITIONS` — queued → running → succeeded | failed | cancelled,
with ``retrying`` and ``timed_out`` reserved for the retry and timeout
policies — and every change is a :class:`JobEvent` that takes the job's next
``seq``: the stream is gap-free, so a follower that sees n then n + 2 knows
it missed one. Event types are those of the SSE stream: ``status``,
``progress``, ``step``, ``log`` and ``output``.

Commands come from two places: the API (``submit``, ``cancel``) and the
worker running the handler (``start``, ``report``, ``finish``). A worker's
command for an attempt that is no longer current (a duplicate launch, a job
cancelled meanwhile) changes nothing; its reply tells the worker to stop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
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
    "coalesce",
    "decide",
    "event_view",
    "is_current",
    "submit",
    "view",
]

STATUSES = ("queued", "running", "retrying", "succeeded", "failed", "cancelled", "timed_out")
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
#: Every status change a job may make; anything else is a bug.
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "cancelled"}),
    "running": frozenset({"succeeded", "failed", "cancelled", "timed_out", "retrying"}),
    "retrying": frozenset({"running", "cancelled", "failed"}),
}
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


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One change of a job: its ``type`` and ``data`` are what followers see."""

    type: str
    data: dict[str, Any]
    at: datetime


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


def _start(state: JobState, args: dict[str, Any], now: datetime) -> list[JobEvent]:
    if state.status != "queued":
        return []  # a duplicate launch, or cancelled while queued: the worker stops
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
        data = {"status": "succeeded", "result": args.get("result")}
    elif outcome == "cancelled" or state.cancel_requested:
        data = {"status": "cancelled"}  # a handler that fails while asked to stop was stopping
    else:
        data = {"status": "failed", "error": args["error"]}
    return [JobEvent("status", data, now)]


def _cancel(state: JobState, args: dict[str, Any], now: datetime) -> list[JobEvent]:
    if args["actor"] != state.created_by and args.get("role") not in _MANAGERS:
        raise AppError(
            "insufficient_role",
            "expected the job's creator or a tenant owner or admin to cancel it",
            status=403,
        )
    if state.status in TERMINAL:
        raise AppError(
            "job_finished",
            f"expected a queued or running job, got one that is {state.status}",
            status=409,
            extra={"job_status": state.status},
        )
    if state.status == "queued":
        return [JobEvent("status", {"status": "cancelled"}, now)]
    if state.cancel_requested:
        return []
    return [JobEvent("status", {"status": state.status, "cancel_requested": True}, now)]


_DECIDERS: dict[str, Callable[[JobState, dict[str, Any], datetime], list[JobEvent]]] = {
    "start": _start,
    "report": _report,
    "finish": _finish,
    "cancel": _cancel,
}


def is_current(state: JobState, attempt: int) -> bool:
    """Whether a worker's ``attempt`` is the one the job is running now."""
    return state.status == "running" and attempt == state.attempts


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
    """``state`` after ``event`` (the event takes the next seq)."""
    state.seq += 1
    state.updated_at = event.at
    data = event.data
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
    state.cancel_requested = state.cancel_requested or bool(data.get("cancel_requested"))
    if "attempt" in data:
        state.attempts = data["attempt"]
        state.started_at = state.started_at or at
    if status in TERMINAL:
        state.finished_at = at
        state.result = data.get("result")
        state.error = data.get("error")
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
