"""The job entity: one job's lifecycle, progress and event seq.

The rules live in :mod:`hubbub.jobs.state` (pure); this module loads the
state from Postgres, turns decided events into SQL writes (the shard's group
commit) — every event a row of ``job_events``, the source of replay by
``after_seq`` — and into publications on channel ``job:{id}``, sent after
commit. The entity key is the job id; every command runs in its tenant's
row-level-security scope, so another tenant's job cannot even be loaded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from hubbub.actors.command import Command
from hubbub.actors.entity import Decision, Entity, Publication, Write
from hubbub.jobs import state as rules
from hubbub.jobs.state import JobEvent, JobState, Submission

__all__ = ["EVENT", "JobEntity", "channel"]

#: The bus event name of every job event; its data is the wire job event.
EVENT = "job:event"


def channel(job_id: str) -> str:
    """The bus topic of a job's events."""
    return f"job:{job_id}"


_LOAD = "SELECT * FROM jobs WHERE id = ANY($1::uuid[])"
_INSERT_JOB = """INSERT INTO jobs (id, tenant_id, kind, status, input, created_by,
  idempotency_key, request_hash, last_seq, created_at, updated_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9)"""
_INSERT_EVENT = """INSERT INTO job_events (tenant_id, job_id, seq, type, data, created_at)
  VALUES ($1, $2, $3, $4, $5, $6)"""
_SET_STATE = """UPDATE jobs SET status = $2, progress = $3, step = $4, done = $5, total = $6,
  result = $7, error = $8, attempts = $9, cancel_requested = $10, last_seq = $11,
  updated_at = $12, started_at = $13, finished_at = $14 WHERE id = $1"""


class JobEntity(Entity):
    """A job, hosted by the ``job`` shards.

    Owns: the job's status, attempts, cancel request, progress, step,
    counters, result, error and its event seq (gap-free). Concurrency: the
    shard runs its commands one at a time; ``handle`` never awaits.
    Durability: every event is a Write in the shard's group commit; replies
    and publications follow the commit. Failure: a failed commit drops the
    entity and the next command reloads it from Postgres.
    """

    kind = "job"
    state: JobState | None

    @classmethod
    async def load(cls, conn: asyncpg.Connection, keys: list[str]) -> dict[str, Any]:
        return {str(row["id"]): _job(row) for row in await conn.fetch(_LOAD, keys)}

    def handle(self, command: Command, now: datetime) -> Decision:
        writes: list[Write] = []
        if command.name == "submit":
            submission = Submission(**command.args)
            state, events = rules.submit(self.state, submission, now)
            if events:
                writes.append(_insert(state))
        else:
            events = rules.decide(self.state, command.name, command.args, now)
            assert self.state is not None  # decide refuses a job that does not exist
            state = self.state
        publications = []
        for event in events:
            state = rules.apply(state, event)
            wire = rules.event_view(state.id, state.seq, event)
            writes.append(Write(_INSERT_EVENT, _event_row(state, event)))
            publications.append(Publication(channel(state.id), EVENT, wire))
        if events:
            writes.append(Write(_SET_STATE, _state_row(state)))
        self.state = state
        return Decision(_reply(command, state), writes, publications)


def _reply(command: Command, state: JobState) -> dict[str, Any]:
    """The job's view; a worker's commands also learn whether to go on."""
    reply = rules.view(state)
    if command.name in ("start", "report", "finish"):
        attempt = command.args.get("attempt", state.attempts)
        reply["current"] = rules.is_current(state, attempt)
    return reply


def _job(row: asyncpg.Record) -> JobState:
    return JobState(
        id=str(row["id"]),
        tenant_id=str(row["tenant_id"]),
        kind=row["kind"],
        input=row["input"],
        created_by=str(row["created_by"]),
        request_hash=bytes(row["request_hash"]).hex(),
        idempotency_key=row["idempotency_key"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status=row["status"],
        progress=row["progress"],
        step=row["step"],
        done=row["done"],
        total=row["total"],
        result=row["result"],
        error=row["error"],
        attempts=row["attempts"],
        cancel_requested=row["cancel_requested"],
        seq=row["last_seq"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def _insert(state: JobState) -> Write:
    args = (
        state.id,
        state.tenant_id,
        state.kind,
        state.status,
        state.input,
        state.created_by,
        state.idempotency_key,
        bytes.fromhex(state.request_hash),
        state.created_at,
    )
    return Write(_INSERT_JOB, args)


def _event_row(state: JobState, event: JobEvent) -> tuple[Any, ...]:
    return (state.tenant_id, state.id, state.seq, event.type, event.data, event.at)


def _state_row(s: JobState) -> tuple[Any, ...]:
    return (
        s.id,
        s.status,
        s.progress,
        s.step,
        s.done,
        s.total,
        s.result,
        s.error,
        s.attempts,
        s.cancel_requested,
        s.seq,
        s.updated_at,
        s.started_at,
        s.finished_at,
    )
