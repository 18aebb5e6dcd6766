"""Group commit when Postgres refuses part of a batch.

One entity's writes that Postgres cannot store (a NUL in text that slipped
past the edge, a violated constraint) must not sink the other entities of
its batch, of any tenant: they commit and are answered as usual, the
refused entity's command gets ``commit_refused`` (not retriable), and only
that entity leaves memory. Shard hosts run in the test process, so the
commands of one call land in one group commit, and the NUL reaches
Postgres: these calls bypass the edge that refuses it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from hubbub.actors.command import Command, Outcome
from hubbub.actors.group_commit import commit_error
from hubbub.actors.lease import acquire_lease
from hubbub.actors.shard import ShardHost
from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.storage.database import Database, connect_owner
from hubbub.storage.redis import connect_redis
from tests.support.chat import LocalConversations
from tests.support.tally import Add, Tally

TENANTS = [str(uuid.uuid4()) for _ in range(4)]
NUL = "sent by\x00a client the edge missed"

Eid = tuple[str, str]  # (tenant, tally)


def new_tally(tenant: str, name: str) -> Eid:
    return (tenant, f"{name}-{uuid.uuid4().hex}")


def add(eid: Eid, amount: int = 1, sender: str | None = None) -> Command:
    tenant, key = eid
    return Command("tally", key, Add(amount, sender), tenant_id=tenant)


def failed(outcome: Outcome) -> tuple[str, int, bool]:
    assert outcome.error is not None, outcome
    return outcome.error.code, outcome.error.status, outcome.error.retriable


REFUSED = ("commit_refused", 422, False)
RESET = ("shard_reset", 503, True)


@pytest.fixture
async def host(migrated: Settings, db: Database) -> AsyncIterator[ShardHost]:
    redis = connect_redis(migrated.redis_url or "")
    lease = await acquire_lease(db.pool, "tally", 910, uuid.uuid4().hex)
    shard = ShardHost(Tally, lease, db, redis, idle_seconds=600, idempotency_window_hours=1)
    yield shard
    await shard.close()
    await redis.aclose()


@pytest.fixture
async def blocker(migrated: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A second owner connection, to hold a lock a commit will wait for."""
    assert migrated.database_url is not None
    conn = await connect_owner(migrated.database_url)
    yield conn
    await conn.close()


async def amounts(owner_conn: asyncpg.Connection, *eids: Eid) -> list[list[int]]:
    """Each tally's committed amounts, in seq order."""
    rows = await owner_conn.fetch(
        "SELECT tally, array_agg(amount ORDER BY seq) AS amounts FROM tally_entries"
        " WHERE tally = ANY($1::text[]) GROUP BY tally",
        [key for _, key in eids],
    )
    found = {row["tally"]: list(row["amounts"]) for row in rows}
    return [found.get(key, []) for _, key in eids]


async def hold_seq_2(blocker: asyncpg.Connection, eid: Eid) -> None:
    """Insert ``eid``'s seq 2 in ``blocker``'s open transaction: the shard's
    insert of it waits (unique check) until that transaction ends."""
    tenant, key = eid
    await blocker.execute(
        "INSERT INTO tally_entries (tally, seq, tenant_id, amount) VALUES ($1, 2, $2, 0)",
        key,
        tenant,
    )


async def waiting_for(watcher: asyncpg.Connection, blocker: asyncpg.Connection) -> int:
    """The pid of the backend waiting for ``blocker``'s transaction, once it waits."""
    async with asyncio.timeout(30):
        while True:
            pid = await watcher.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                blocker.get_server_pid(),
            )
            if pid is not None:
                return pid
            await asyncio.sleep(0.01)


async def test_a_change_postgres_refuses_fails_alone_and_every_other_entity_commits(
    host: ShardHost, owner_conn: asyncpg.Connection
) -> None:
    good = [new_tally(tenant, "good") for tenant in TENANTS for _ in range(25)]
    poisoned = new_tally(TENANTS[1], "poisoned")
    await host.handle([add(eid) for eid in [*good, poisoned]])  # all active, seq 1

    batch = [add(eid, 2) for eid in good[:50]] + [add(poisoned, 5, NUL)]
    outcomes = await host.handle(batch + [add(eid, 2) for eid in good[50:]])  # one commit

    assert failed(outcomes.pop(50)) == REFUSED
    assert [o.reply for o in outcomes] == [{"seq": 2, "total": 3}] * len(good)
    assert await amounts(owner_conn, *good) == [[1, 2]] * len(good)
    assert await amounts(owner_conn, poisoned) == [[1]]
    assert host.stats()["active_entities"] == len(good)  # only the refused one left memory
    [after] = await host.handle([add(poisoned, 4)])
    assert after.reply == {"seq": 2, "total": 5}  # from committed state
    assert await amounts(owner_conn, poisoned) == [[1, 4]]


async def test_a_message_with_a_nul_fails_only_its_send(
    small_window: LocalConversations, owner_conn: asyncpg.Connection
) -> None:
    """The probe that found this: a message body with a NUL, past the edge,
    sent in one batch with sends to other conversations."""
    chat = small_window
    owner, ann, _ = chat.team.people
    poisoned, *others = [await chat.create(owner, ann) for _ in range(4)]
    sends = [chat.send(cid, who, f"m-{n}") for n, cid in enumerate(others) for who in (owner, ann)]
    bad, *outcomes = await chat.run(chat.send(poisoned, owner, "bad", body=NUL), *sends)
    assert failed(bad) == REFUSED
    first = outcomes[0].unwrap()["seq"]  # a conversation's first message
    assert [o.unwrap()["seq"] for o in outcomes] == [first, first + 1] * len(others)
    assert (await chat.ask(chat.send(poisoned, ann, "fine")))["seq"] == first
    messages = await owner_conn.fetch(
        "SELECT conversation_id::text AS cid, count(*) AS n FROM conversation_messages"
        " WHERE conversation_id = ANY($1::uuid[]) GROUP BY conversation_id",
        [uuid.UUID(cid) for cid in (poisoned, *others)],
    )
    assert {row["cid"]: row["n"] for row in messages} == {poisoned: 1} | dict.fromkeys(others, 2)


async def test_commands_decided_after_a_refused_change_are_not_saved_and_may_be_sent_again(
    host: ShardHost, owner_conn: asyncpg.Connection, blocker: asyncpg.Connection
) -> None:
    """Later commands of the refused entity, in its batch or in the next,
    were decided from memory holding the refused change: they fail
    retriably, and nothing of them is written; other entities commit."""
    waiter, poisoned = new_tally(TENANTS[0], "waiter"), new_tally(TENANTS[1], "poisoned")
    other = new_tally(TENANTS[2], "other")
    await host.handle([add(waiter), add(poisoned), add(other)])
    held = blocker.transaction()
    await held.start()
    await hold_seq_2(blocker, waiter)
    first = host.enqueue([add(waiter), add(poisoned, 5, NUL)])
    same_batch = host.enqueue([add(poisoned, 1)])
    await waiting_for(owner_conn, blocker)  # that commit is in flight
    next_batch = host.enqueue([add(poisoned, 1), add(other)])
    await held.rollback()

    assert (await first[0]).reply == {"seq": 2, "total": 2}
    assert failed(await first[1]) == REFUSED
    assert failed(await same_batch[0]) == RESET
    assert failed(await next_batch[0]) == RESET
    assert (await next_batch[1]).reply == {"seq": 2, "total": 2}
    assert await amounts(owner_conn, waiter, poisoned, other) == [[1, 1], [1], [1, 1]]
    [again] = await host.handle([add(poisoned, 1)])
    assert again.reply == {"seq": 2, "total": 2}


async def test_commands_of_the_refused_entity_in_its_call_are_not_told_apart(
    host: ShardHost, owner_conn: asyncpg.Connection
) -> None:
    """The commands of one entity in one call commit together: which of them
    Postgres refused is unknown, so each gets a retriable error; sent again
    one by one, the good one commits and the bad one is refused."""
    poisoned, other = new_tally(TENANTS[0], "p"), new_tally(TENANTS[2], "o")
    await host.handle([add(poisoned)])
    mine, bad, theirs = await host.handle([add(poisoned, 2), add(poisoned, 5, NUL), add(other)])
    assert failed(mine) == RESET and failed(bad) == RESET
    assert theirs.reply == {"seq": 1, "total": 1}
    [mine] = await host.handle([add(poisoned, 2)])
    [bad] = await host.handle([add(poisoned, 5, NUL)])
    assert mine.reply == {"seq": 2, "total": 3}
    assert failed(bad) == REFUSED
    assert await amounts(owner_conn, poisoned, other) == [[1, 2], [1]]


async def test_a_lost_connection_fails_only_the_entities_of_its_commit_retriably(
    host: ShardHost, owner_conn: asyncpg.Connection, blocker: asyncpg.Connection
) -> None:
    cut, idle = new_tally(TENANTS[3], "cut"), new_tally(TENANTS[3], "idle")
    await host.handle([add(cut), add(idle)])
    held = blocker.transaction()
    await held.start()
    await hold_seq_2(blocker, cut)
    [lost] = host.enqueue([add(cut, 2)])
    await owner_conn.execute(
        "SELECT pg_terminate_backend($1)", await waiting_for(owner_conn, blocker)
    )
    assert failed(await lost) == ("commit_failed", 503, True)
    await held.rollback()
    assert host.stats()["active_entities"] == 1  # the other entity stays in memory
    [again] = await host.handle([add(cut, 2)])
    assert again.reply == {"seq": 2, "total": 3}
    assert await amounts(owner_conn, cut) == [[1, 2]]


@pytest.mark.parametrize(
    ("failure", "answer"),
    [
        (asyncpg.exceptions.CharacterNotInRepertoireError("NUL in text"), REFUSED),
        (asyncpg.exceptions.UntranslatableCharacterError("\\u0000 in jsonb"), REFUSED),
        (asyncpg.exceptions.DataError("invalid input for query argument $1"), REFUSED),
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), REFUSED),
        (asyncpg.exceptions.CheckViolationError("check"), REFUSED),
        (asyncpg.exceptions.ProgramLimitExceededError("index row too large"), REFUSED),
        (asyncpg.exceptions.UndefinedColumnError("a bug"), ("internal_error", 500, False)),
        (asyncpg.exceptions.ConnectionDoesNotExistError("gone"), ("commit_failed", 503, True)),
        (asyncpg.exceptions.AdminShutdownError("restart"), ("commit_failed", 503, True)),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock"), ("commit_failed", 503, True)),
        (asyncpg.exceptions.SerializationError("race"), ("commit_failed", 503, True)),
        (asyncpg.exceptions.ReadOnlySQLTransactionError("standby"), ("commit_failed", 503, True)),
        (asyncpg.exceptions.InterfaceError("connection is closed"), ("commit_failed", 503, True)),
        (ConnectionResetError(), ("commit_failed", 503, True)),
        (TimeoutError(), ("commit_failed", 503, True)),
        (AppError.unavailable("shard_fenced", "deposed"), ("shard_fenced", 503, True)),
    ],
)
def test_a_commit_failure_is_retriable_unless_postgres_refused_the_writes_themselves(
    failure: Exception, answer: tuple[str, int, bool]
) -> None:
    assert failed(Outcome(error=commit_error(failure))) == answer
