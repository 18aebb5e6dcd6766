"""The shard host: many entities of one kind inside one process.

This is the part of a shard actor that knows nothing of Ray (see
``runtime.py`` for the actor around it), so tests can drive it directly.
For each batch of commands it activates the entities it names (one batched
load per tenant), decides every command against its entity in order,
commits the staged writes of many entities together (group commit), and
only then replies and publishes. Commands of different entities run
concurrently; those of one entity strictly in the order they arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from redis.asyncio import Redis

from hubbub.actors.batcher import Batcher
from hubbub.actors.command import Command, Outcome
from hubbub.actors.entity import Entity, Publication, Write
from hubbub.actors.group_commit import CommitRequest, commit_group
from hubbub.actors.lease import Lease
from hubbub.errors import AppError
from hubbub.storage import pubsub
from hubbub.storage.database import Database

__all__ = ["ShardHost"]

log = logging.getLogger(__name__)

EntityId = tuple[str | None, str]  # (tenant_id, key): tenants never share an entity

_RECORD_REPLY = """INSERT INTO entity_commands (kind, entity_key, idempotency_key, tenant_id, reply)
VALUES ($1, $2, $3, $4, $5)"""
_PRUNE_REPLIES = """DELETE FROM entity_commands WHERE ctid = ANY(ARRAY(
  SELECT ctid FROM entity_commands WHERE kind = $1 AND created_at < now() - $2::interval
  LIMIT 10000))"""
_PRUNE_EVERY_SECONDS = 600.0
_LOAD_REPLIES = """SELECT entity_key, idempotency_key, reply FROM entity_commands
WHERE kind = $1 AND entity_key = ANY($2::text[]) AND created_at > now() - $3::interval"""


@dataclass(slots=True)
class _Active:
    """An activated entity and its idempotency receipts."""

    entity: Entity
    receipts: dict[str, tuple[Any, asyncio.Future[None] | None]] = field(default_factory=dict)
    last_used: float = 0.0


@dataclass(slots=True)
class _Mailbox:
    """Commands waiting for one entity, and whether a drain task runs."""

    queue: deque[tuple[Command, asyncio.Future[Outcome]]] = field(default_factory=deque)
    draining: bool = False


@dataclass(frozen=True, slots=True)
class _Staged:
    """A decided command waiting for its commit."""

    reply: Any = None
    error: AppError | None = None
    publications: tuple[Publication, ...] = ()
    replay_of: asyncio.Future[None] | None = None  # an earlier, maybe uncommitted, reply


@dataclass(frozen=True, slots=True)
class _PendingCommit:
    request: CommitRequest
    generation: int


class ShardHost:
    """Hosts the entities of one ``(kind, shard)``.

    Owns: the active entities of its shard, their mailboxes and idempotency
    receipts, and the shard's lease. Concurrency: one event loop. Commands
    enter an entity's mailbox synchronously, in the order ``enqueue`` sees
    them; one drain task per busy entity decides everything queued, commits
    it as one group, and settles it before taking more. Durability: replies
    and publications only after commit; memory is a cache rebuilt from
    Postgres. Failure: a failed commit drops every active entity (the next
    command reloads it) and fails the staged commands with a retriable
    error; a fenced shard refuses all writes; a bug in one entity fails its
    commands with ``internal_error`` and drops that entity only.
    """

    def __init__(
        self,
        entity_cls: type[Entity],
        lease: Lease,
        db: Database,
        redis: Redis,
        *,
        idle_seconds: float,
        idempotency_window_hours: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kind = entity_cls.kind
        self._entity_cls = entity_cls
        self._lease = lease
        self._db = db
        self._redis = redis
        self._idle_seconds = idle_seconds
        self._window = timedelta(hours=idempotency_window_hours)
        self._clock = clock
        self._active: dict[EntityId, _Active] = {}
        self._mailboxes: dict[EntityId, _Mailbox] = {}
        self._drains: set[asyncio.Task[None]] = set()
        self._generation = 0
        self._handled = 0
        self._loads: Batcher[EntityId, _Active] = Batcher(
            self._load_batch, max_size=512, max_delay=0.0005, max_concurrency=4
        )
        self._commits: Batcher[_PendingCommit, None] = Batcher(
            self._commit_batch, max_size=1024, max_delay=0.0005, max_concurrency=1
        )
        self._publishes: Batcher[tuple[str, bytes], None] = Batcher(
            self._publish_batch, max_size=1024, max_delay=0.0, max_concurrency=1
        )
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_idle())

    def enqueue(self, commands: list[Command]) -> list[asyncio.Future[Outcome]]:
        """Queue ``commands`` in order; one future outcome each. Synchronous."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Outcome]] = []
        for command in commands:
            eid = (command.tenant_id, command.key)
            mailbox = self._mailboxes.setdefault(eid, _Mailbox())
            future: asyncio.Future[Outcome] = loop.create_future()
            mailbox.queue.append((command, future))
            futures.append(future)
            if not mailbox.draining:
                mailbox.draining = True
                task = loop.create_task(self._drain(eid, mailbox))
                self._drains.add(task)
                task.add_done_callback(self._drains.discard)
        self._handled += len(commands)
        return futures

    async def handle(self, commands: list[Command]) -> list[Outcome]:
        """Run ``commands``; one outcome each, in order."""
        return list(await asyncio.gather(*self.enqueue(commands)))

    def stats(self) -> dict[str, Any]:
        """What a test or an operator may want to see of this shard."""
        return {
            "kind": self.kind,
            "shard": self._lease.shard,
            "epoch": self._lease.epoch,
            "pid": os.getpid(),
            "active_entities": len(self._active),
            "commands_handled": self._handled,
        }

    async def close(self) -> None:
        """Finish the work in flight, then stop."""
        self._sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sweeper
        if self._drains:
            await asyncio.wait(set(self._drains))
        await self._loads.close()
        await self._commits.close()
        await self._publishes.close()

    async def _drain(self, eid: EntityId, mailbox: _Mailbox) -> None:
        try:
            while mailbox.queue:
                batch = list(mailbox.queue)
                mailbox.queue.clear()
                outcomes = await self._process(eid, [command for command, _ in batch])
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            mailbox.draining = False
            if self._mailboxes.get(eid) is mailbox and not mailbox.queue:
                del self._mailboxes[eid]

    async def _process(self, eid: EntityId, commands: list[Command]) -> list[Outcome]:
        active = self._active.get(eid)
        if active is None:
            try:
                active = await self._loads.submit(eid)
            except Exception:
                log.exception("%s %r failed to activate", self.kind, eid[1])
                failure = AppError.unavailable("activation_failed", "could not load; retry")
                return [Outcome(error=failure)] * len(commands)
        try:
            staged, writes, fresh = self._decide_all(active, commands)
        except Exception:  # a bug in the entity kind: its state is suspect
            log.exception("%s %r failed to decide; dropping it", self.kind, eid[1])
            self._active.pop(eid, None)
            failure = AppError("internal_error", "the command failed", status=500)
            return [Outcome(error=failure)] * len(commands)
        committed = self._commit_future(eid[0], writes)
        for idempotency_key, reply in fresh.items():
            active.receipts[idempotency_key] = (reply, committed)
        outcomes = await self._settle(staged, committed)
        active.last_used = time.monotonic()
        return outcomes

    def _decide_all(
        self, active: _Active, commands: list[Command]
    ) -> tuple[list[_Staged], list[Write], dict[str, Any]]:
        """Decide in order; returns staged results, writes, and new receipts."""
        now = self._clock()
        staged: list[_Staged] = []
        writes: list[Write] = []
        fresh: dict[str, Any] = {}
        for command in commands:
            key = command.idempotency_key
            if key in fresh:  # the same key twice in one batch
                staged.append(_Staged(reply=fresh[key]))
                continue
            receipt = active.receipts.get(key) if key else None
            if receipt is not None:
                staged.append(_Staged(reply=receipt[0], replay_of=receipt[1]))
                continue
            try:
                decision = active.entity.handle(command, now)
            except AppError as error:
                staged.append(_Staged(error=error))
                continue
            reply = decision.reply
            writes.extend(decision.writes)
            if key:
                reply = orjson.loads(orjson.dumps(reply))  # a replay returns the same form
                fresh[key] = reply
                writes.append(self._receipt_write(command, reply))
            staged.append(_Staged(reply=reply, publications=tuple(decision.publications)))
        return staged, writes, fresh

    def _receipt_write(self, command: Command, reply: Any) -> Write:
        return Write(
            _RECORD_REPLY,
            (self.kind, command.key, command.idempotency_key, command.tenant_id, reply),
        )

    def _commit_future(self, tenant_id: str | None, writes: list[Write]) -> asyncio.Future[None]:
        if writes:
            request = CommitRequest(tenant_id, writes)
            return self._commits.submit(_PendingCommit(request, self._generation))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def _settle(
        self, staged: list[_Staged], committed: asyncio.Future[None]
    ) -> list[Outcome]:
        try:
            await committed
        except AppError as error:
            return [Outcome(error=item.error or error) for item in staged]
        outcomes: list[Outcome] = []
        for item in staged:
            if item.replay_of is not None and item.replay_of is not committed:
                try:
                    await item.replay_of
                except AppError as error:
                    outcomes.append(Outcome(error=error))
                    continue
            outcomes.append(Outcome(reply=item.reply, error=item.error))
            for publication in item.publications:
                payload = pubsub.encode(publication.event, publication.data)
                self._publishes.submit((publication.channel, payload))
        return outcomes

    async def _load_batch(self, eids: list[EntityId]) -> list[_Active | BaseException]:
        tenants: dict[str | None, list[str]] = {}
        for tenant_id, key in eids:
            tenants.setdefault(tenant_id, []).append(key)
        loaded: dict[EntityId, _Active] = {}
        for tenant_id, keys in tenants.items():
            async with self._db.tenant(tenant_id) as conn:
                states = await self._entity_cls.load(conn, keys)
                replies = await conn.fetch(_LOAD_REPLIES, self.kind, keys, self._window)
            for key in keys:
                entity = self._entity_cls(key, tenant_id, states.get(key))
                loaded[(tenant_id, key)] = _Active(entity, last_used=time.monotonic())
            for row in replies:
                receipts = loaded[(tenant_id, row["entity_key"])].receipts
                receipts[row["idempotency_key"]] = (row["reply"], None)
        # Loaded state is committed state, valid whatever reset happened meanwhile.
        return [self._active.setdefault(eid, loaded[eid]) for eid in eids]

    async def _commit_batch(self, pending: list[_PendingCommit]) -> list[BaseException | None]:
        generation = self._generation
        current = [p.request for p in pending if p.generation == generation]
        stale = AppError.unavailable("shard_reset", "the shard reloaded its state; retry")
        try:
            if current:
                await commit_group(self._db, self._lease, current)
        except Exception as exc:
            log.error(
                "commit of %d requests failed; dropping active entities",
                len(current),
                exc_info=not isinstance(exc, AppError),
            )
            self._reset()
            failure = (
                exc
                if isinstance(exc, AppError)
                else AppError.unavailable(
                    "commit_failed", "the change may not have been saved; retry"
                )
            )
            return [failure] * len(pending)
        return [None if p.generation == generation else stale for p in pending]

    def _reset(self) -> None:
        """Forget every active entity: memory may hold changes Postgres lacks."""
        self._generation += 1
        self._active.clear()

    async def _publish_batch(self, messages: list[tuple[str, bytes]]) -> list[None]:
        try:
            await pubsub.publish_many(self._redis, messages)
        except Exception:
            # Committed events are in Postgres; receivers repair the gap by seq.
            log.exception("publishing %d events failed", len(messages))
        return [None] * len(messages)

    async def _sweep_idle(self) -> None:
        """Passivate idle entities; shard 0 also prunes expired receipts."""
        period = min(max(self._idle_seconds / 4, 0.5), 30.0)
        next_prune = time.monotonic()
        while True:
            await asyncio.sleep(period)
            horizon = time.monotonic() - self._idle_seconds
            idle = [
                eid
                for eid, active in self._active.items()
                if active.last_used < horizon and eid not in self._mailboxes
            ]
            for eid in idle:
                del self._active[eid]
            if self._lease.shard == 0 and time.monotonic() >= next_prune:
                next_prune = time.monotonic() + _PRUNE_EVERY_SECONDS
                await self._prune_receipts()

    async def _prune_receipts(self) -> None:
        try:
            async with self._db.tenant(None) as conn:
                await conn.execute(_PRUNE_REPLIES, self.kind, self._window)
        except Exception:  # the next sweep tries again
            log.exception("pruning expired %s receipts failed", self.kind)
