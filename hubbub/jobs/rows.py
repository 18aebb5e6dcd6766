"""A job's rows: the ``jobs`` and ``job_events`` tables, and the one mapping
between a row of ``jobs`` and a :class:`~hubbub.jobs.state.JobState`.

Every field of the state is a column of the same name (``seq`` is stored as
``last_seq``); ids are uuid columns held as text, the request hash a bytea
held as hex. The job entity writes through these definitions, the reads
(``hubbub.jobs.reads``) map rows back through them.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import asyncpg

from hubbub.jobs.events import JobEvent
from hubbub.jobs.state import JobState
from hubbub.storage.table import Table

__all__ = ["CHANGING", "JOBS", "JOB_EVENTS", "event_row", "job_row", "state_from_row"]

#: (state field, column) of every field of a job.
_FIELDS = tuple((f.name, "last_seq" if f.name == "seq" else f.name) for f in fields(JobState))
_UUIDS = ("id", "tenant_id", "created_by", "schedule_id")
#: Columns its submission fixes: a job's commands never change them.
_FIXED = frozenset(
    {
        "id",
        "tenant_id",
        "kind",
        "input",
        "created_by",
        "request_hash",
        "idempotency_key",
        "created_at",
        "priority",
        "conflict_key",
        "max_attempts",
        "backoff_seconds",
        "timeout_seconds",
        "concurrency",
        "schedule_id",
        "private",
    }
)

JOBS = Table("jobs", tuple(column for _, column in _FIELDS))
JOB_EVENTS = Table(
    "job_events",
    ("tenant_id", "job_id", "seq", "type", "data", "created_at"),
    key=("job_id", "seq"),
)
#: What a job's commands change: the columns of its ``UPDATE``.
CHANGING = tuple(column for column in JOBS.columns if column not in _FIXED)


def state_from_row(row: asyncpg.Record) -> JobState:
    """A job as its row in ``jobs`` stores it."""
    values = {name: row[column] for name, column in _FIELDS}
    for name in _UUIDS:
        if values[name] is not None:
            values[name] = str(values[name])
    values["request_hash"] = bytes(values["request_hash"]).hex()
    return JobState(**values)


def job_row(state: JobState) -> dict[str, Any]:
    """The job's row in ``jobs``, by column (see :data:`JOBS`)."""
    row = {column: getattr(state, name) for name, column in _FIELDS}
    row["request_hash"] = bytes.fromhex(state.request_hash)
    return row


def event_row(state: JobState, event: JobEvent) -> dict[str, Any]:
    """``event``'s row in ``job_events``: the job's latest event, ``state.seq``."""
    return {
        "tenant_id": state.tenant_id,
        "job_id": state.id,
        "seq": state.seq,
        "type": event.type,
        "data": event.data,
        "created_at": event.at,
    }
