"""The events of a job: one frozen type per change, and their wire view.

Every event but the bookkeeping ones (:class:`Launched`,
:class:`Unlaunched`: changes of the job's row that followers never see) takes
the job's next ``seq`` and is what its followers get, as
``{job_id, seq, type, data, at}`` (:func:`stream_event`; docs/events.md),
``type`` one of ``status``, ``progress``, ``step``, ``log`` and ``output``;
a status event's ``data`` holds the new ``status`` and what came with it.
That view is written here, once, next to each event (:attr:`type` and
:attr:`data`); a row of ``job_events`` stores the same ``type`` and ``data``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

__all__ = [
    "CancelRequested",
    "Cancelled",
    "Failed",
    "JobEvent",
    "Launched",
    "Logged",
    "OutputWritten",
    "Progressed",
    "Queued",
    "Requeued",
    "Retrying",
    "Started",
    "StatusEvent",
    "StepEntered",
    "Succeeded",
    "TimedOut",
    "Unlaunched",
    "event_view",
    "stream_event",
]


@dataclass(frozen=True, slots=True)
class _Event:
    at: datetime
    #: A change of the job's row only: no seq, no follower sees it.
    bookkeeping: ClassVar[bool] = False
    #: The event's wire type (a bookkeeping event's is its name in logs only).
    type: ClassVar[str]

    @property
    def data(self) -> dict[str, Any]:
        """The event's wire ``data``."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Launched(_Event):
    """The sweep dispatched the job: it waits on launch ``launch_id``."""

    launch_id: str
    bookkeeping: ClassVar[bool] = True
    type: ClassVar[str] = "launch"


@dataclass(frozen=True, slots=True)
class Unlaunched(_Event):
    """The job's launch never started: it waits to be launched again."""

    bookkeeping: ClassVar[bool] = True
    type: ClassVar[str] = "unlaunch"


@dataclass(frozen=True, slots=True)
class StatusEvent(_Event):
    """A change of the job's status to :attr:`status` (checked against
    ``TRANSITIONS`` when applied)."""

    type: ClassVar[str] = "status"
    status: ClassVar[str]

    @property
    def data(self) -> dict[str, Any]:
        return {"status": self.status}


@dataclass(frozen=True, slots=True)
class Queued(StatusEvent):
    """The job was submitted."""

    status: ClassVar[str] = "queued"


@dataclass(frozen=True, slots=True)
class Requeued(StatusEvent):
    """A failed or timed out job is run again by hand, from the start."""

    status: ClassVar[str] = "queued"

    @property
    def data(self) -> dict[str, Any]:
        return {"status": self.status, "retry": True}


@dataclass(frozen=True, slots=True)
class Started(StatusEvent):
    """Attempt ``attempt`` started running."""

    attempt: int
    status: ClassVar[str] = "running"

    @property
    def data(self) -> dict[str, Any]:
        return {"status": self.status, "attempt": self.attempt}


@dataclass(frozen=True, slots=True)
class CancelRequested(StatusEvent):
    """The running job was asked to stop."""

    status: ClassVar[str] = "running"

    @property
    def data(self) -> dict[str, Any]:
        return {"status": self.status, "cancel_requested": True}


@dataclass(frozen=True, slots=True)
class Retrying(StatusEvent):
    """An attempt failed with ``error``; the next one starts at ``retry_at``."""

    error: dict[str, str]
    retry_at: datetime
    status: ClassVar[str] = "retrying"

    @property
    def data(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.error, "retry_at": self.retry_at.isoformat()}


@dataclass(frozen=True, slots=True)
class Succeeded(StatusEvent):
    """The handler returned ``result``."""

    result: Any
    status: ClassVar[str] = "succeeded"

    @property
    def data(self) -> dict[str, Any]:
        return {"status": self.status, "result": self.result}


@dataclass(frozen=True, slots=True)
class Cancelled(StatusEvent):
    """The job ended cancelled; ``forced``: it did not stop within the grace period."""

    forced: bool = False
    status: ClassVar[str] = "cancelled"

    @property
    def data(self) -> dict[str, Any]:
        return {"status": self.status, "forced": True} if self.forced else {"status": self.status}


@dataclass(frozen=True, slots=True)
class Failed(StatusEvent):
    """The job ended failed with ``error`` (no attempt left, or not retryable)."""

    error: dict[str, str]
    status: ClassVar[str] = "failed"

    @property
    def data(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.error}


@dataclass(frozen=True, slots=True)
class TimedOut(Failed):
    """The job's last attempt ran past its timeout."""

    status: ClassVar[str] = "timed_out"


@dataclass(frozen=True, slots=True)
class Progressed(_Event):
    """The job's progress and counters are now these."""

    progress: float
    done: int | None
    total: int | None
    type: ClassVar[str] = "progress"

    @property
    def data(self) -> dict[str, Any]:
        return {"progress": self.progress, "done": self.done, "total": self.total}


@dataclass(frozen=True, slots=True)
class StepEntered(_Event):
    """The job entered step ``name``."""

    name: str
    type: ClassVar[str] = "step"

    @property
    def data(self) -> dict[str, Any]:
        return {"name": self.name}


@dataclass(frozen=True, slots=True)
class Logged(_Event):
    """A line for the job's followers."""

    text: str
    type: ClassVar[str] = "log"

    @property
    def data(self) -> dict[str, Any]:
        return {"text": self.text}


@dataclass(frozen=True, slots=True)
class OutputWritten(_Event):
    """A piece of the job's streamed output (a batch's chunks merged)."""

    chunk: str
    type: ClassVar[str] = "output"

    @property
    def data(self) -> dict[str, Any]:
        return {"chunk": self.chunk}


JobEvent = (
    Launched
    | Unlaunched
    | Queued
    | Requeued
    | Started
    | CancelRequested
    | Retrying
    | Succeeded
    | Cancelled
    | Failed
    | TimedOut
    | Progressed
    | StepEntered
    | Logged
    | OutputWritten
)


def stream_event(
    job_id: str, seq: int, type: str, data: dict[str, Any], at: datetime
) -> dict[str, Any]:
    """The wire shape of a job event: ``{job_id, seq, type, data, at}``."""
    return {"job_id": job_id, "seq": seq, "type": type, "data": data, "at": at.isoformat()}


def event_view(job_id: str, seq: int, event: JobEvent) -> dict[str, Any]:
    """The wire shape of ``event``, the job's event ``seq``."""
    return stream_event(job_id, seq, event.type, event.data, event.at)
