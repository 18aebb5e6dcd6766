"""The commands of the job entity: one frozen type per command.

Commands come from three places: the API (:class:`Submit`, :class:`Cancel`,
:class:`Retry`), the job sweep (:class:`Dispatch`, :class:`Lost`,
:class:`Supervise`) and the worker running the handler (:class:`Start`,
:class:`Report`, :class:`Finish`). They cross Ray as tagged msgspec structs
(``hubbub.actors.command``): the shard decodes each against
:data:`JobCommand`, so a body with a field of the wrong type answers 422
``validation_failed`` naming the field, for that command alone.

A :class:`Report` carries what a handler's context recorded
(``hubbub.jobs.context``), one typed value per report (:data:`JobReport`).
Pure values only: no I/O here, so the rules, the entity, the worker and
every edge import them alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from hubbub.actors.command import CommandBody

__all__ = [
    "Cancel",
    "CountersReport",
    "Dispatch",
    "Finish",
    "JobCommand",
    "JobReport",
    "LogReport",
    "Lost",
    "OutputReport",
    "ProgressReport",
    "Report",
    "Retry",
    "Start",
    "StepReport",
    "Submit",
    "Supervise",
]


class Submit(CommandBody, frozen=True):
    """A validated ``POST /jobs``: what a new job starts from.

    ``job_id`` is fixed by an Idempotency-Key (``hubbub.jobs.dispatch``), so
    the same submission again gets the same job; ``request_hash`` (hex
    SHA-256 of ``{kind, input}``) tells a retry from a reuse of the key.
    """

    job_id: str
    tenant_id: str
    kind: str
    input: dict[str, Any]
    created_by: str
    request_hash: str
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


class Dispatch(CommandBody, frozen=True):
    """The sweep picked the job: it waits on launch ``launch_id`` from now."""

    launch_id: str


class Start(CommandBody, frozen=True):
    """Launch ``launch_id``'s worker starts the job, if it still waits on that launch."""

    launch_id: str


class ProgressReport(msgspec.Struct, frozen=True, tag="progress"):
    """The job is ``progress`` percent done (0 to 100)."""

    progress: float


class CountersReport(msgspec.Struct, frozen=True, tag="counters"):
    """``done`` items of ``total`` (None: not known yet)."""

    done: int
    total: int | None = None


class StepReport(msgspec.Struct, frozen=True, tag="step"):
    """The job entered step ``name``."""

    name: str


class LogReport(msgspec.Struct, frozen=True, tag="log"):
    """A line for the job's followers."""

    text: str


class OutputReport(msgspec.Struct, frozen=True, tag="output"):
    """A piece of streamed output."""

    chunk: str


#: What a handler's context reports; progress and counters both become
#: ``progress`` events.
JobReport = ProgressReport | CountersReport | StepReport | LogReport | OutputReport


class Report(CommandBody, frozen=True):
    """A batch of attempt ``attempt``'s reports (empty: only asks whether to go on)."""

    attempt: int
    reports: list[JobReport] = msgspec.field(default_factory=list)


class Finish(CommandBody, frozen=True):
    """Attempt ``attempt`` ended: ``result`` if it succeeded, else ``error``
    (``{code, message}``); ``retryable=False`` for a handler's verdict on
    its input, which no retry changes."""

    attempt: int
    outcome: Literal["succeeded", "failed", "cancelled"]
    result: Any = None
    error: dict[str, str] | None = None
    retryable: bool = True


class Lost(CommandBody, frozen=True):
    """Launch ``launch_id`` has no task any more (None: a job that started
    before launches were recorded)."""

    launch_id: str | None


class Supervise(CommandBody, frozen=True):
    """End a running attempt past its timeout, or one asked to stop more than
    ``grace`` seconds ago."""

    grace: float


class Cancel(CommandBody, frozen=True):
    """``actor`` (a tenant member with ``role``) cancels the job."""

    actor: str
    role: str | None = None


class Retry(CommandBody, frozen=True):
    """``actor`` (a tenant member with ``role``) runs a failed or timed out job again."""

    actor: str
    role: str | None = None


#: Every command of the job kind.
JobCommand = Submit | Dispatch | Start | Report | Finish | Lost | Supervise | Cancel | Retry
