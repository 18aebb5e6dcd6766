"""The shard host: many entities of one kind inside one process.

This is the part of a shard actor that knows nothing of Ray (see
``runtime.py`` for the actor around it), so tests can drive it directly.
For each batch of commands it activates the entities it names (one batched
load per tenant), decides every command against its entity in order,
commits the staged writes of many entities together (group commit), and
only then replies and publishes. Commands of different entities run
concurrently; those of one entity strictly in the order they arrived. An
entity that keeps only part of its rows in memory may name rows a command
needs first (``Entity.missing``): that command and the later ones of its
entity wait, as they do for an activation, until the rows are read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from redis.asyncio import Redis

from hubbub.actors.batcher import Batcher
from hubbub.actors.command import Command, CommandCodec, Outcome
from hubbub.actors.entity import Entity
from hubbub.actors.group import EntityId, Failed, Group, PendingCommit, Staged
from hubbub.actors.group_commit import CommitRequest, commit_group, reset_error
from hubbub.actors.lease import Lease
from hubbub.actors.receipts import (
    PRUNE_EVERY_SECONDS,
    load_receipts,
    prune_receipts,
    receipt_write,
)
from hubbub.errors import AppError
from hubbub.metrics import (
    ACTIVATION_FAILURES,
    ACTIVATIONS,
    COMMANDS,
    ENTITIES_ACTIVE,
    PASSIVATIONS,
)
from hubbub.storage import pubsub
from hubbub.storage.database import Database

__all__ = ["ShardHost"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Active:
    """An activated entity, its idempotency receipts, and its latest commit."""

    entity: Entity
    receipts: dict[str, tuple[Any, asyncio.Future[Failed] | None]] = field(default_factory=dict)
    last_used: float = 0.0
    committing: asyncio.Future[Failed] | None = None


_Waiting = list[tuple[Command, asyncio.Future[Outcome]]]


class ShardHost:
    """Hosts the entities of one ``(kind, shard)``.

    Owns: the active entities of its shard, their idempotency receipts, the
    commands waiting for an entity to activate, and the shard's lease.
    Concurrency: one event loop. A command for an active entity is decided
    as soon as it arrives, in arrival order, with no task of its own; the
    commands of one call form a group with one commit and one settlement.
    A command for an inactive entity waits, with every later command for
    it, until its batched load; likewise a command whose entity lacks rows
    it needs, until they are read (after the entity's earlier writes are
    committed, so the read sees them). Commits run one at a time in
    submission order, so an entity's writes reach Postgres in the order
    decided.
    Durability: replies and publications only after commit; memory is a
    cache rebuilt from Postgres. Failure: an entity whose writes fail to
    commit is dropped (its next command reloads it) and only its commands
    fail: ``commit_refused`` when Postgres refused the writes themselves,
    a retriable error when they may commit on another try or were decided
    after the failed change (see ``group_commit``); every other entity's
    writes commit. A fenced shard refuses all writes and drops every
    active entity; a bug in one entity fails that command with
    ``internal_error`` and reloads that entity once what it decided before
    is settled; rows that cannot be read fail the commands waiting for them
    with a retriable error and drop the entity.
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
        #: Reads the batches the router sends, against this kind's commands.
        self.codec = CommandCodec(entity_cls.commands)
        self._entity_cls = entity_cls
        self._lease = lease
        self._db = db
        self._redis = redis
        self._idle_seconds = idle_seconds
        self._window = timedelta(hours=idempotency_window_hours)
        self._clock = clock
        self._active: dict[EntityId, _Active] = {}
        self._waiting: dict[EntityId, _Waiting] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._generation = 0  # bumped by every drop after a failed commit
        self._reset_at = 0  # groups older than this decided from dropped memory
        self._dropped: dict[EntityId, int] = {}  # the same, for one dropped entity
        self._handled = 0
        self._loads: Batcher[EntityId, _Active] = Batcher(
            self._load_batch, max_size=512, max_delay=0.0005, max_concurrency=4
        )
        self._latest_commit: asyncio.Future[Failed] | None = None
        self._commits: Batcher[PendingCommit, Failed] = Batcher(
            self._commit_batch, max_size=1024, max_delay=0.0005, max_concurrency=1
        )
        self._publishes: Batcher[tuple[str, bytes], None] = Batcher(
            self._publish_batch, max_size=1024, max_delay=0.0, max_concurrency=1
        )
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_idle())
        ENTITIES_ACTIVE.set_function(lambda: len(self._active))  # one host per shard process

    def enqueue(self, commands: Sequence[Command | AppError]) -> list[asyncio.Future[Outcome]]:
        """Take ``commands`` in order; one future outcome each. Synchronous.

        An AppError in place of a command (one :attr:`codec` could not read)
        is that command's answer.
        """
        loop = asyncio.get_running_loop()
        group = self._new_group()
        futures: list[asyncio.Future[Outcome]] = []
        for command in commands:
            future: asyncio.Future[Outcome] = loop.create_future()
            futures.append(future)
            if isinstance(command, AppError):
                future.set_result(Outcome(error=command))
            else:
                self._route(command, future, group)
        self._finish(group)
        self._handled += len(commands)
        COMMANDS.inc(len(commands))
        return futures

    async def handle(self, commands: Sequence[Command | AppError]) -> list[Outcome]:
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

    def passivate(self, tenant_id: str | None, key: str) -> bool:
        """Drop the entity from memory (its next command loads it) unless
        a commit of its is pending; whether it was dropped."""
        active = self._active.get((tenant_id, key))
        if active is None or not (active.committing is None or active.committing.done()):
            return False
        del self._active[(tenant_id, key)]
        PASSIVATIONS.inc()
        return True

    async def close(self) -> None:
        """Finish the work in flight, then stop."""
        self._sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sweeper
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        await self._loads.close()
        await self._commits.close()
        await self._publishes.close()

    def _new_group(self) -> Group:
        committed = asyncio.get_running_loop().create_future()
        return Group(committed, self._generation, self._clock())

    def _route(self, command: Command, future: asyncio.Future[Outcome], group: Group) -> None:
        """Decide ``command`` now, or queue it behind its entity's activation."""
        eid = (command.tenant_id, command.key)
        waiting = self._waiting.get(eid)
        if waiting is not None:
            waiting.append((command, future))
            return
        active = self._active.get(eid)
        if active is None:
            self._waiting[eid] = [(command, future)]
            group.activate.append(eid)
        elif not self._decide(active, command, future, group):
            del self._active[eid]  # its state is suspect: reload it after this commit
            self._waiting[eid] = []
            group.reload.append(eid)

    def _decide(
        self,
        active: _Active,
        command: Command,
        future: asyncio.Future[Outcome],
        group: Group,
    ) -> bool:
        """Stage ``command``'s outcome in ``group``, or hold it until the rows
        it needs are read; False if the entity failed."""
        eid = (command.tenant_id, command.key)
        key = command.idempotency_key
        receipt = active.receipts.get(key) if key else None
        if receipt is not None:
            group.staged.append((Staged(eid, reply=receipt[0], replay_of=receipt[1]), future))
            return True
        try:
            refs = active.entity.missing(command)
            if refs:
                self._hold(active, command, future, refs, group.generation)
                return True
            decision = active.entity.handle(command, group.now)
        except AppError as error:
            group.staged.append((Staged(eid, error=error), future))
            return True
        except Exception:  # a bug in the entity kind
            log.exception("%s %r failed to decide; reloading it", self.kind, command.key)
            failure = AppError("internal_error", "the command failed", status=500)
            group.staged.append((Staged(eid, error=failure), future))
            return False
        reply = decision.reply
        writes = group.writes.setdefault((command.tenant_id, command.key), [])
        writes.extend(decision.writes)
        if key:
            reply = orjson.loads(orjson.dumps(reply))  # a replay returns the same form
            writes.append(receipt_write(self.kind, command, reply))
            active.receipts[key] = (reply, group.committed)
        staged = Staged(eid, reply=reply, publications=tuple(decision.publications))
        group.staged.append((staged, future))
        active.last_used = time.monotonic()
        active.committing = group.committed
        return True

    def _hold(
        self,
        active: _Active,
        command: Command,
        future: asyncio.Future[Outcome],
        refs: frozenset[Hashable],
        generation: int,
    ) -> None:
        """Queue ``command`` and every later one of its entity behind reading ``refs``."""
        eid = (command.tenant_id, command.key)
        del self._active[eid]
        self._waiting[eid] = [(command, future)]
        self._spawn(self._fault_in(eid, active, refs, generation))

    def _finish(self, group: Group) -> None:
        """Submit the group's commit; settle it and start its activations."""
        requests = [
            CommitRequest(tenant, key, writes)
            for (tenant, key), writes in group.writes.items()
            if writes
        ]
        if requests:
            pending = PendingCommit(requests, group.staged, group.generation)
            commit = self._commits.submit(pending)
            commit.add_done_callback(lambda done: _copy_outcome(done, group.committed))
            self._latest_commit = commit
        else:
            group.committed.set_result({})
        if group.staged:
            self._spawn(self._settle(group))
        if group.activate:
            self._spawn(self._activate(group.activate))
        if group.reload:
            # Commits end in submission order: after the latest one, what the
            # suspect entities decided in earlier groups is settled too.
            self._spawn(self._activate(group.reload, after=self._latest_commit))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, group: Group) -> None:
        """Reply to every command of ``group`` once its commit is over: a
        command of an entity whose commit failed gets that entity's error."""
        failed = await group.committed
        for staged, future in group.staged:
            error = staged.error or failed.get(staged.entity)
            if error is None and staged.replay_of not in (None, group.committed):
                error = (await staged.replay_of).get(staged.entity)  # the original's fate
            if error is not None:
                _resolve(future, Outcome(error=error))
                continue
            _resolve(future, Outcome(reply=staged.reply))
            for publication in staged.publications:
                payload = pubsub.encode(publication.event, publication.data)
                self._publishes.submit((publication.channel, payload))

    async def _activate(
        self, eids: list[EntityId], after: asyncio.Future[None] | None = None
    ) -> None:
        """Load ``eids`` (after ``after`` is over), then decide what waits for them."""
        if after is not None:
            await asyncio.wait([after])  # only its end matters, not its outcome
        loaded = await asyncio.gather(*map(self._loads.submit, eids), return_exceptions=True)
        group = self._new_group()
        for eid, active in zip(eids, loaded, strict=True):
            if isinstance(active, BaseException):
                log.error("%s %r failed to activate", self.kind, eid[1], exc_info=active)
                ACTIVATION_FAILURES.inc()
                self._fail_waiting(eid)
            else:
                ACTIVATIONS.inc()
                self._resume(eid, active, group)
        self._finish(group)

    async def _fault_in(
        self, eid: EntityId, active: _Active, refs: frozenset[Hashable], generation: int
    ) -> None:
        """Read ``refs`` once ``active``'s writes are committed, then decide what waits."""
        if active.committing is not None:
            await asyncio.wait([active.committing])  # only its end matters, not its outcome
        if generation != self._generation:  # a failed commit: memory may be ahead of Postgres
            await self._activate([eid])
            return
        try:
            # One read for the commands queued behind this one too.
            wanted = refs.union(*(active.entity.missing(c) for c, _ in self._waiting[eid][1:]))
            async with self._db.tenant(eid[0]) as conn:
                loaded = await self._entity_cls.load_missing(conn, eid[1], wanted)
            active.entity.merge(wanted, loaded)
        except Exception:
            log.exception("%s %r failed to read the rows it needs", self.kind, eid[1])
            self._fail_waiting(eid)
            return
        group = self._new_group()
        self._resume(eid, active, group)
        self._finish(group)

    def _resume(self, eid: EntityId, active: _Active, group: Group) -> None:
        """Make ``active`` current and decide, in order, the commands that waited for it."""
        self._active[eid] = active
        for command, future in self._waiting.pop(eid):
            self._route(command, future, group)

    def _fail_waiting(self, eid: EntityId) -> None:
        """Fail the commands waiting for ``eid``, which stays inactive: the next one reloads it."""
        failure = AppError.unavailable("activation_failed", "could not load; retry")
        for _, future in self._waiting.pop(eid):
            _resolve(future, Outcome(error=failure))

    async def _load_batch(self, eids: list[EntityId]) -> list[_Active | BaseException]:
        tenants: dict[str | None, list[str]] = {}
        for tenant_id, key in eids:
            tenants.setdefault(tenant_id, []).append(key)
        loaded: dict[EntityId, _Active] = {}
        for tenant_id, keys in tenants.items():
            async with self._db.tenant(tenant_id) as conn:
                states = await self._entity_cls.load(conn, keys)
                replies = await load_receipts(conn, self.kind, keys, self._window)
            for key in keys:
                entity = self._entity_cls(key, tenant_id, states.get(key))
                loaded[(tenant_id, key)] = _Active(entity, last_used=time.monotonic())
            for row in replies:
                receipts = loaded[(tenant_id, row["entity_key"])].receipts
                receipts[row["idempotency_key"]] = (row["reply"], None)
        # Loaded state is committed state, valid whatever reset happened meanwhile.
        return [loaded[eid] for eid in eids]

    async def _commit_batch(self, pending: list[PendingCommit]) -> list[Failed]:
        """Commit the groups' writes; for each group, its entities whose commands fail.

        Writes decided from memory that a failed commit spoiled are not sent.
        An entity whose writes fail is dropped, and its commands fail in every
        later group of the batch too (they were decided after the failed change).
        """
        sent = [
            (index, request)
            for index, group in enumerate(pending)
            for request in group.requests
            if not self._spoiled(group, (request.tenant_id, request.key))
        ]
        outcomes = await commit_group(self._db, self._lease, [r for _, r in sent]) if sent else []
        errors: list[Failed] = [{} for _ in pending]
        first: dict[EntityId, int] = {}  # each failed entity's first group with a failure
        for (index, request), error in zip(sent, outcomes, strict=True):
            if error is not None:
                errors[index][(request.tenant_id, request.key)] = error
                first.setdefault((request.tenant_id, request.key), index)
        failed = [self._failed(i, group, errors[i], first) for i, group in enumerate(pending)]
        self._drop(first, fenced=any(e is not None and e.code == "shard_fenced" for e in outcomes))
        # Later groups are at least as new as the last: older marks are spent.
        horizon = pending[-1].generation
        self._dropped = {eid: at for eid, at in self._dropped.items() if at > horizon}
        return failed

    def _failed(
        self, index: int, group: PendingCommit, errors: Failed, first: dict[EntityId, int]
    ) -> Failed:
        """The entities of the ``index``-th group of a batch whose commands fail."""
        if not first and not self._dropped and group.generation >= self._reset_at:
            return {}  # the usual case: nothing failed, nothing is spoiled
        failed: Failed = {}
        awaiting = Counter(staged.entity for staged, _ in group.staged if staged.error is None)
        for eid, commands in awaiting.items():
            error = errors.get(eid)
            if error is not None and not error.retriable and commands > 1:
                error = reset_error()  # which of its commands Postgres refused is unknown
            if error is None and (self._spoiled(group, eid) or first.get(eid, index) < index):
                error = reset_error()
            if error is not None:
                failed[eid] = error
        return failed

    def _spoiled(self, group: PendingCommit, eid: EntityId) -> bool:
        """Whether ``group`` decided ``eid`` from memory since dropped."""
        return group.generation < max(self._reset_at, self._dropped.get(eid, 0))

    def _drop(self, eids: dict[EntityId, int], *, fenced: bool) -> None:
        """Forget ``eids`` (every active entity if ``fenced``): memory may
        hold changes Postgres lacks, or lack the new owner's."""
        if not eids:
            return
        self._generation += 1
        if fenced:
            self._reset_at = self._generation
            self._active.clear()
            return
        for eid in eids:
            self._active.pop(eid, None)
            self._dropped[eid] = self._generation

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
            for eid in [e for e, active in self._active.items() if active.last_used < horizon]:
                self.passivate(*eid)
            if self._lease.shard == 0 and time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                await self._prune_receipts()

    async def _prune_receipts(self) -> None:
        try:
            async with self._db.tenant(None) as conn:
                await prune_receipts(conn, self.kind, self._window)
        except Exception:  # the next sweep tries again
            log.exception("pruning expired %s receipts failed", self.kind)


def _resolve(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():  # the caller may have given up
        future.set_result(outcome)


def _copy_outcome(source: asyncio.Future[Failed], target: asyncio.Future[Failed]) -> None:
    if source.cancelled():
        target.cancel()
    elif (error := source.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())
