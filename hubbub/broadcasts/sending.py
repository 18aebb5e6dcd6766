"""``broadcast.send``: the job kind that delivers a broadcast.

It takes the broadcast's pending recipients a batch at a time
(``HUBBUB_BROADCAST_BATCH_SIZE``), sends the message into each recipient's
conversation through the run's router — one ``send`` command per
recipient, all of a batch at once, so the router carries them to each
conversation shard in a few calls — and records the batch's outcomes in one
Postgres write, then reports counters and progress.

A re-run (a retry after a crash) never sends twice: it only takes
recipients still pending, and every message carries the ``client_msg_id``
``broadcast:<id>``, which the conversation answers with the message it
made the first time. Cancel: the gateway turns the pending recipients into
cancelled, so the next batch finds none, and cancels the job, which the
handler sees between batches; a batch already out is recorded as sent.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict

from hubbub.broadcasts import ledger
from hubbub.broadcasts.ledger import Delivery
from hubbub.chat.commands import Send, ask
from hubbub.errors import AppError
from hubbub.ids import new_id
from hubbub.jobs.context import JobCancelled, JobContext
from hubbub.jobs.registry import Policy, job_kind
from hubbub.storage.database import Database

__all__ = ["SendInput", "client_msg_id", "send"]


class SendInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    broadcast_id: UUID


def client_msg_id(broadcast_id: str) -> str:
    """The ``client_msg_id`` of a broadcast's message in every recipient's conversation."""
    return f"broadcast:{broadcast_id}"


@job_kind(
    "broadcast.send",
    SendInput,
    resources={"num_cpus": 0.1},
    entities=("conversation",),
    policy=Policy(max_attempts=3, backoff_seconds=2.0),  # a re-run sends nobody twice
)
async def send(context: JobContext, input: SendInput) -> dict[str, int]:
    """Send a broadcast's message into each of its pending recipients' conversations."""
    settings = context.settings
    assert settings is not None, "a worker gets resolved settings"
    async with context.database() as db:
        run = Sending(context, db, str(input.broadcast_id), settings.broadcast_batch_size)
        return await run.all()


@dataclass(frozen=True, slots=True)
class Message:
    body: str
    author: str


@dataclass(frozen=True)
class Sending:
    """One run over a broadcast's pending recipients."""

    context: JobContext
    db: Database
    broadcast_id: str
    batch_size: int

    async def all(self) -> dict[str, int]:
        """Send to every pending recipient; the counts per status at the end."""
        async with self._scope() as conn:
            row = await ledger.begin(conn, self.broadcast_id)
        if str(row["job_id"]) != self.context.job_id:
            raise AppError(
                "not_the_broadcasts_job",
                f"expected the job of broadcast {self.broadcast_id} ({row['job_id']}), "
                f"got job {self.context.job_id}: only its own job sends a broadcast",
            )
        if row["status"] == "cancelled":
            raise JobCancelled(self.context.job_id)
        message = Message(row["body"], str(row["created_by"]))
        self.context.step("sending")
        try:
            while batch := await self._next_batch():
                deliveries = await asyncio.gather(*(self._deliver(message, c) for c in batch))
                await self._record(list(deliveries))
        except JobCancelled:  # the job itself was cancelled: so is what it had left
            async with self._scope() as conn:
                await ledger.cancel(conn, self.broadcast_id)
            raise
        async with self._scope() as conn:
            status = await ledger.finish(conn, self.broadcast_id)
            counts = await ledger.tally(conn, self.broadcast_id)
        if status == "cancelled":
            raise JobCancelled(self.context.job_id)
        self.context.step("done")
        return counts

    async def _next_batch(self) -> list[str]:
        self.context.raise_if_cancelled()
        async with self._scope() as conn:
            return await ledger.pending(conn, self.broadcast_id, self.batch_size)

    async def _deliver(self, message: Message, conversation_id: str) -> Delivery:
        """Send into one conversation; a refusal (no such conversation, the
        sender not in it, a shard down) is that recipient's failure."""
        assert self.context.router is not None
        try:
            key = client_msg_id(self.broadcast_id)
            send = Send(message.author, message.body, key, str(new_id()))
            sent = await ask(self.context.router, self.context.tenant_id, conversation_id, send)
        except AppError as error:
            return Delivery(conversation_id, error=(error.code, error.message))
        return Delivery(conversation_id, sent["id"], sent["seq"])

    async def _record(self, deliveries: list[Delivery]) -> None:
        async with self._scope() as conn:
            await ledger.mark(conn, self.broadcast_id, deliveries)
            counts = await ledger.tally(conn, self.broadcast_id)
        total = sum(counts.values())
        done = total - counts["pending"]
        self.context.counters(done, total)
        self.context.progress(100 * done / total if total else 100)

    def _scope(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return self.db.tenant(self.context.tenant_id)
