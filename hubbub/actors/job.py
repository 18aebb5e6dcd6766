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
from hubbub.actors.untyped import Untyped
from hubbub.jobs import state as rules
from hubbub.jobs.state import JobEvent, JobState, Submission

__all__ = ["ENDED", "EVENT", "JobEntity", "channel", "state_from_row"]

#: The bus event name of every job event; its data is the wire job event.
EVENT = "job:event"
#: The bus topic where a job that stops running says so: its slot under a
#: concurrency limit is free, and the job sweeps need not wait for their round.
ENDED = "jobs:ended"


def channel(job_id: str) -> str:
    """The bus topic of a job's events."""
    return f"job:{job_id}"


_LOAD = "SELECT * FROM jobs WHERE id = ANY($1::uuid[])"
_INSERT_JOB = """INSERT INTO jobs (id, tenant_id, kind, status, input, created_by,
  idempotency_key, request_hash, last_seq, created_at, updated_at, priority, conflict_key,
  run_at, max_attempts, attempt_budget, backoff_seconds, timeout_seconds, schedule_id, private,
  concurrency)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9, $10, $11, $12, $13, $13, $14, $15, $16,
  $17, $18)"""
_INSERT_EVENT = """INSERT INTO job_events (tenant_id, job_id, seq, type, data, created_at)
  VALUES ($1, $2, $3, $4, $5, $6)"""
_SET_STATE = """UPDATE jobs SET status = $2, progress = $3, step = $4, done = $5, total = $6,
  result = $7, error = $8, attempts = $9, cancel_requested = $10, last_seq = $11,
  updated_at = $12, started_at = $13, finished_at = $14, attempt_budget = $15, launch_id = $16,
  launched_at = $17, retry_at = $18, deadline = $19, cancel_requested_at = $20 WHERE id = $1"""


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
    commands = Untyped
    state: JobState | None

    @classmethod
    async def load(cls, conn: asyncpg.Connection, keys: list[str]) -> dict[str, Any]:
        return {str(row["id"]): state_from_row(row) for row in await conn.fetch(_LOAD, keys)}

    def handle(self, command: Command, now: datetime) -> Decision:
        writes: list[Write] = []
        was_running = self.state is not None and self.state.status == "running"
        if command.body.name == "submit":
            submission = Submission.from_args(command.body.args)
            state, events = rules.submit(self.state, submission, now)
            if events:
                writes.append(_insert(state))
        else:
            events = rules.decide(self.state, command.body.name, command.body.args, now)
            assert self.state is not None  # decide refuses a job that does not exist
            state = self.state
        publications = []
        for event in events:
            state = rules.apply(state, event)
            if event.bookkeeping:
                continue
            wire = rules.event_view(state.id, state.seq, event)
            writes.append(Write(_INSERT_EVENT, _event_row(state, event)))
            publications.append(Publication(channel(state.id), EVENT, wire))
        if events:
            writes.append(Write(_SET_STATE, _state_row(state)))
        if was_running and state.status != "running":
            ended = {"tenant_id": state.tenant_id, "kind": state.kind}
            publications.append(Publication(ENDED, "job:ended", ended))
        self.state = state
        return Decision(_reply(command, state), writes, publications)


def _reply(command: Command, state: JobState) -> dict[str, Any]:
    """The job's view; a worker's commands also learn whether to go on, and
    the sweep which launch the job waits on."""
    reply = rules.view(state)
    if command.body.name == "start":
        reply["current"] = rules.is_current(state, state.attempts) and (
            state.launch_id == command.body.args["launch_id"]
        )
    elif command.body.name in ("report", "finish"):
        reply["current"] = rules.is_current(state, command.body.args["attempt"])
    elif command.body.name == "dispatch":
        reply["launch_id"] = state.launch_id
    return reply


def state_from_row(row: asyncpg.Record) -> JobState:
    """A job as its row in ``jobs`` stores it."""
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
        priority=row["priority"],
        conflict_key=row["conflict_key"],
        run_at=row["run_at"],
        max_attempts=row["max_attempts"],
        attempt_budget=row["attempt_budget"],
        backoff_seconds=row["backoff_seconds"],
        timeout_seconds=row["timeout_seconds"],
        launch_id=row["launch_id"],
        launched_at=row["launched_at"],
        retry_at=row["retry_at"],
        deadline=row["deadline"],
        cancel_requested_at=row["cancel_requested_at"],
        schedule_id=None if row["schedule_id"] is None else str(row["schedule_id"]),
        private=row["private"],
        concurrency=row["concurrency"],
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
        state.priority,
        state.conflict_key,
        state.run_at,
        state.max_attempts,
        state.backoff_seconds,
        state.timeout_seconds,
        state.schedule_id,
        state.private,
        state.concurrency,
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
        s.attempt_budget,
        s.launch_id,
        s.launched_at,
        s.retry_at,
        s.deadline,
        s.cancel_requested_at,
    )
