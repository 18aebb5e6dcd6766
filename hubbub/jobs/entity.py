"""The job entity: one job's lifecycle, progress and event seq.

The rules live in :mod:`hubbub.jobs.state` (pure), its commands in
:mod:`hubbub.jobs.commands` and its events in :mod:`hubbub.jobs.events`;
this module loads the state from Postgres, turns decided events into SQL
writes (the shard's group commit, through the tables of
:mod:`hubbub.jobs.rows`) — every event a row of ``job_events``, the source of
replay by ``after_seq`` — and into publications on channel ``job:{id}``,
sent after commit. The entity key is the job id; every command runs in its
tenant's row-level-security scope, so another tenant's job cannot even be
loaded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from hubbub.actors.command import Command
from hubbub.actors.entity import Decision, Entity, Publication, Write
from hubbub.jobs import state as rules
from hubbub.jobs.commands import Dispatch, Finish, JobCommand, Report, Start, Submit
from hubbub.jobs.events import event_view
from hubbub.jobs.rows import CHANGING, JOB_EVENTS, JOBS, event_row, job_row, state_from_row
from hubbub.jobs.state import JobState
from hubbub.jobs.view import view
from hubbub.metrics import JOB_RUN_DURATION

__all__ = ["ENDED", "EVENT", "JobEntity", "channel"]

#: The bus event name of every job event; its data is the wire job event.
EVENT = "job:event"
#: The bus topic where a job that stops running says so: its slot under a
#: concurrency limit is free, and the job sweeps need not wait for their round.
ENDED = "jobs:ended"


def channel(job_id: str) -> str:
    """The bus topic of a job's events."""
    return f"job:{job_id}"


_LOAD = "SELECT * FROM jobs WHERE id = ANY($1::uuid[])"
_INSERT_JOB = JOBS.insert()
_INSERT_EVENT = JOB_EVENTS.insert()
_SET_STATE = JOBS.update(CHANGING)


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
    commands = JobCommand
    state: JobState | None

    @classmethod
    async def load(cls, conn: asyncpg.Connection, keys: list[str]) -> dict[str, Any]:
        return {str(row["id"]): state_from_row(row) for row in await conn.fetch(_LOAD, keys)}

    def handle(self, command: Command, now: datetime) -> Decision:
        body = command.body
        writes: list[Write] = []
        was_running = self.state is not None and self.state.status == "running"
        if isinstance(body, Submit):
            state, events = rules.submit(self.state, body, now)
            if events:
                writes.append(Write(_INSERT_JOB, JOBS.row(job_row(state))))
        else:
            events = rules.decide(self.state, body, now)
            assert self.state is not None  # decide refuses a job that does not exist
            state = self.state
        publications = []
        for event in events:
            rules.apply(state, event)
            if event.bookkeeping:
                continue
            writes.append(Write(_INSERT_EVENT, JOB_EVENTS.row(event_row(state, event))))
            publications.append(
                Publication(channel(state.id), EVENT, event_view(state.id, state.seq, event))
            )
        if events:
            writes.append(Write(_SET_STATE, JOBS.update_row(job_row(state), CHANGING)))
        if was_running and state.status != "running":
            ended = {"tenant_id": state.tenant_id, "kind": state.kind}
            publications.append(Publication(ENDED, "job:ended", ended))
            _observe_run(state, now)
        self.state = state
        return Decision(_reply(body, state), writes, publications)


def _observe_run(state: JobState, now: datetime) -> None:
    """Time from the job's first start to now, when it stops running (the
    metric is observed as decided: a commit that then fails is rare)."""
    if state.started_at is not None:
        seconds = (now - state.started_at).total_seconds()
        JOB_RUN_DURATION.labels(state.kind, state.status).observe(seconds)


def _reply(body: JobCommand, state: JobState) -> dict[str, Any]:
    """The job's view; a worker's commands also learn whether to go on, and
    the sweep which launch the job waits on."""
    reply = view(state)
    match body:
        case Start(launch_id=launch_id):
            current = rules.is_current(state, state.attempts) and state.launch_id == launch_id
            reply["current"] = current
        case Report(attempt=attempt) | Finish(attempt=attempt):
            reply["current"] = rules.is_current(state, attempt)
        case Dispatch():
            reply["launch_id"] = state.launch_id
    return reply
