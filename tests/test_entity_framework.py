"""The entity framework: shards on Ray, the batching router, group commit,
idempotency, ordering, fencing and recovery from a killed shard process.

Driven through the real router into real shard actors on a local Ray, with
the small ``tally`` kind of ``tests/support/tally.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator

import pytest

from hubbub.actors.command import (
    Command,
    CommandCodec,
    Outcome,
    decode_outcomes,
    encode_commands,
    encode_outcomes,
)
from hubbub.actors.entity import Write
from hubbub.actors.group_commit import statement_runs
from hubbub.actors.lease import acquire_lease
from hubbub.actors.router import Router, shard_index
from hubbub.actors.runtime import open_shards
from hubbub.actors.shard import ShardHost
from hubbub.config import Settings
from hubbub.errors import AppError, FieldError
from hubbub.storage.database import Database
from hubbub.storage.redis import connect_redis
from tests.support.tally import Add, Corrupt, Entry, Get, Tally, TallyCommand

TENANT = str(uuid.uuid4())


def add(
    key: str, amount: int = 1, *, idem: str | None = None, sender: str | None = None
) -> Command:
    return Command("tally", key, Add(amount, sender), tenant_id=TENANT, idempotency_key=idem)


@pytest.fixture(scope="module")
async def router(ray_cluster: Settings) -> AsyncIterator[Router]:
    settings = ray_cluster.model_copy(update={"command_timeout_seconds": 60.0})
    shards = await asyncio.to_thread(open_shards, Tally, settings.shards, settings)
    router = Router({"tally": shards}, settings)
    yield router
    await router.close()


async def entries(owner_conn, key: str) -> list[tuple[int, int]]:
    rows = await owner_conn.fetch(
        "SELECT seq, amount FROM tally_entries WHERE tally = $1 ORDER BY seq", key
    )
    return [(row["seq"], row["amount"]) for row in rows]


def test_a_key_always_maps_to_the_same_shard() -> None:
    assert [shard_index("conversation-42", 8) for _ in range(3)] == [
        shard_index("conversation-42", 8)
    ] * 3
    spread = {shard_index(str(uuid.uuid4()), 4) for _ in range(200)}
    assert spread == {0, 1, 2, 3}


async def test_ten_thousand_keys_live_in_a_handful_of_shard_processes(router: Router) -> None:
    prefix = uuid.uuid4().hex
    keys = [f"{prefix}-{n}" for n in range(10_000)]
    replies = await asyncio.gather(*(router.send(add(key)) for key in keys))
    assert all(reply == {"seq": 1, "total": 1} for reply in replies)
    stats = await asyncio.gather(*(ref.stats() for ref in router.shards("tally")))
    assert len({s["pid"] for s in stats}) == len(stats) == 2
    assert sum(s["active_entities"] for s in stats) >= 10_000


async def test_commands_for_one_key_apply_in_the_order_each_sender_sent_them(
    router: Router, owner_conn
) -> None:
    key = f"order-{uuid.uuid4().hex}"
    senders, per_sender = 20, 50
    sends = [
        (sender, asyncio.ensure_future(router.send(add(key, n, sender=str(sender)))))
        for n in range(per_sender)
        for sender in range(senders)
    ]
    seqs: dict[int, list[int]] = {}
    for sender, reply in sends:
        seqs.setdefault(sender, []).append((await reply)["seq"])
    for sender_seqs in seqs.values():
        assert sender_seqs == sorted(sender_seqs)
    written = await entries(owner_conn, key)
    assert [seq for seq, _ in written] == list(range(1, senders * per_sender + 1))


async def test_a_repeated_idempotency_key_takes_effect_once(router: Router, owner_conn) -> None:
    key = f"idem-{uuid.uuid4().hex}"
    first = await router.send(add(key, 5, idem="pay-1"))
    again = await router.send(add(key, 5, idem="pay-1"))
    together = await asyncio.gather(*(router.send(add(key, 7, idem="pay-2")) for _ in range(5)))
    assert first == again == {"seq": 1, "total": 5}
    assert together == [{"seq": 2, "total": 12}] * 5
    assert await entries(owner_conn, key) == [(1, 5), (2, 7)]


async def test_a_refused_command_changes_nothing(router: Router, owner_conn) -> None:
    key = f"refused-{uuid.uuid4().hex}"
    with pytest.raises(AppError) as refused:
        await router.send(Command("tally", key, Add("lots"), tenant_id=TENANT))  # type: ignore[arg-type]
    assert refused.value.code == "validation_failed"
    assert refused.value.errors[0].field == "amount"
    assert await router.send(Command("tally", key, Get(), tenant_id=TENANT)) == {
        "seq": 0,
        "total": 0,
    }
    assert await entries(owner_conn, key) == []


async def test_tenants_never_share_an_entity(router: Router) -> None:
    key = f"shared-name-{uuid.uuid4().hex}"
    await router.send(add(key, 3))
    other = Command("tally", key, Get(), tenant_id=str(uuid.uuid4()))
    assert await router.send(other) == {"seq": 0, "total": 0}


async def test_killing_a_shard_mid_stream_loses_no_acknowledged_command(
    router: Router, owner_conn
) -> None:
    prefix = uuid.uuid4().hex
    keys = [f"{prefix}-{n}" for n in range(8)]
    acked: dict[str, list[dict]] = {key: [] for key in keys}
    victim = router.shards("tally")[0]
    before = await victim.stats()
    halfway = asyncio.Event()

    async def stream(key: str) -> None:
        for n in range(1, 101):
            acked[key].append(await router.send(add(key, n, idem=f"{key}-{n}")))
            if n == 30:
                halfway.set()

    streams = asyncio.gather(*(stream(key) for key in keys))
    await halfway.wait()
    os.kill(before["pid"], signal.SIGKILL)
    await streams

    after = await victim.stats()
    assert after["pid"] != before["pid"] and after["epoch"] > before["epoch"]
    for key in keys:
        assert [reply["seq"] for reply in acked[key]] == list(range(1, 101))
        assert await entries(owner_conn, key) == [(n, n) for n in range(1, 101)]


def test_group_commit_sends_each_statement_once_for_many_entities_in_each_entitys_order() -> None:
    sends = [[Write("message", (n,)), Write("head", (n,))] for n in range(100)]
    readd = [Write("remove member", ("ann",)), Write("add member", ("ann",))]
    runs = list(statement_runs([readd, *sends, [Write("message", (100,)), *readd]]))
    assert runs == [
        ("remove member", [("ann",)]),
        ("add member", [("ann",)]),
        ("message", [(n,) for n in range(101)]),
        ("head", [(n,) for n in range(100)]),
        ("remove member", [("ann",)]),
        ("add member", [("ann",)]),
    ]


def test_batches_cross_the_ray_boundary_unchanged() -> None:
    commands = [add("a", 3, idem="k1", sender="s"), Command("tally", "b", Get())]
    assert CommandCodec(TallyCommand).decode(encode_commands(commands)) == commands
    refused = AppError(
        "validation_failed",
        "bad",
        status=422,
        retriable=False,
        errors=(FieldError("body", "amount", "expected an integer"),),
        extra={"limit": 5},
    )
    outcomes = [Outcome(reply={"seq": 1}), Outcome(reply=None), Outcome(error=refused)]
    decoded = decode_outcomes(encode_outcomes(outcomes))
    assert decoded[:2] == outcomes[:2]
    assert decoded[2].error is not None and decoded[2].error.to_wire() == refused.to_wire()
    assert decoded[2].error.status == 422


def test_a_malformed_body_fails_its_own_command_not_the_batch() -> None:
    good, bad = add("a", 3), Command("tally", "b", Add("lots"))  # type: ignore[arg-type]
    decoded = CommandCodec(TallyCommand).decode(encode_commands([good, bad, good]))
    assert decoded[0] == decoded[2] == good
    assert isinstance(decoded[1], AppError)
    assert decoded[1].code == "validation_failed" and decoded[1].status == 422
    assert [(e.location, e.field) for e in decoded[1].errors] == [("body", "amount")]


async def test_a_bug_in_an_entity_fails_its_command_and_reloads_it(
    migrated: Settings, db: Database, owner_conn
) -> None:
    """The broken command fails alone; the entity comes back from Postgres,
    after what it decided before the bug is committed."""
    redis = connect_redis(migrated.redis_url or "")
    lease = await acquire_lease(db.pool, "tally", 901, "owner")
    host = ShardHost(Tally, lease, db, redis, idle_seconds=60, idempotency_window_hours=1)
    key = f"buggy-{uuid.uuid4().hex}"
    corrupt = Command("tally", key, Corrupt(), tenant_id=TENANT)
    try:
        first, broken, after = await host.handle([add(key, 5), corrupt, add(key, 1)])
        assert first.reply == {"seq": 1, "total": 5}
        assert broken.error is not None and broken.error.code == "internal_error"
        assert after.reply == {"seq": 2, "total": 6}
        assert await entries(owner_conn, key) == [(1, 5), (2, 1)]
    finally:
        await host.close()
        await redis.aclose()


async def test_an_entity_reloaded_after_a_bug_sees_its_earlier_commit_still_in_flight(
    migrated: Settings, db: Database, owner_conn
) -> None:
    """The call with the bug writes nothing itself; the reload still waits for
    the earlier call's commit, or it would read the entity without it."""
    redis = connect_redis(migrated.redis_url or "")
    lease = await acquire_lease(db.pool, "tally", 902, "owner")
    host = ShardHost(Tally, lease, db, redis, idle_seconds=60, idempotency_window_hours=1)
    key = f"buggy-{uuid.uuid4().hex}"
    corrupt = Command("tally", key, Corrupt(), tenant_id=TENANT)
    try:
        await host.handle([add(key, 0)])  # active, so the next calls decide at once
        async with owner_conn.transaction():
            # Writers wait for this lock, readers do not: the next commit hangs.
            await owner_conn.execute("LOCK TABLE tally_entries IN EXCLUSIVE MODE")
            [first] = host.enqueue([add(key, 5)])
            broken, after = host.enqueue([corrupt, add(key, 1)])
            await asyncio.sleep(0.5)  # time for a reload that would not wait
        assert (await first).reply == {"seq": 2, "total": 5}
        assert (await broken).error is not None
        assert (await after).reply == {"seq": 3, "total": 6}
        assert await entries(owner_conn, key) == [(1, 0), (2, 5), (3, 1)]
    finally:
        await host.close()
        await redis.aclose()


def entry(key: str, seq: object) -> Command:
    return Command("tally", key, Entry(seq), tenant_id=TENANT)  # type: ignore[arg-type]


async def test_rows_outside_memory_are_read_after_the_pending_commit_and_in_order(
    migrated: Settings, db: Database, owner_conn
) -> None:
    """A command that needs rows memory lacks waits, with the later commands
    of its entity, until the rows are read — after the entity's earlier
    writes are committed; rows that cannot be read fail what waits for them."""
    redis = connect_redis(migrated.redis_url or "")
    lease = await acquire_lease(db.pool, "tally", 902, "owner")
    host = ShardHost(Tally, lease, db, redis, idle_seconds=60, idempotency_window_hours=1)
    key = f"faulting-{uuid.uuid4().hex}"
    get = Command("tally", key, Get(), tenant_id=TENANT)
    try:
        outcomes = await host.handle([add(key, 5), entry(key, 1), add(key, 2), entry(key, 3), get])
        assert [o.reply for o in outcomes[:3]] == [
            {"seq": 1, "total": 5},
            {"seq": 1, "amount": 5},  # read after the add before it was committed
            {"seq": 2, "total": 7},
        ]
        assert outcomes[3].error is not None and outcomes[3].error.code == "not_found"
        assert outcomes[4].reply == {"seq": 2, "total": 7}
        assert [o.reply for o in await host.handle([add(key, 1), entry(key, 3)])] == [
            {"seq": 3, "total": 8},
            {"seq": 3, "amount": 1},  # "no entry 3" was forgotten when entry 3 came
        ]
        unreadable, behind = await host.handle([entry(key, "not a seq"), add(key, 1)])
        for failed in (unreadable, behind):
            assert failed.error is not None and failed.error.retriable
        assert (await host.handle([add(key, 1)]))[0].reply == {"seq": 4, "total": 9}
        assert await entries(owner_conn, key) == [(1, 5), (2, 2), (3, 1), (4, 1)]
    finally:
        await host.close()
        await redis.aclose()


async def test_a_deposed_shard_cannot_write(migrated: Settings, db: Database, owner_conn) -> None:
    """The lease fence: once another owner took the shard, commits fail."""
    redis = connect_redis(migrated.redis_url or "")
    lease = await acquire_lease(db.pool, "tally", 900, "old-owner")
    host = ShardHost(Tally, lease, db, redis, idle_seconds=60, idempotency_window_hours=1)
    key = f"fenced-{uuid.uuid4().hex}"
    try:
        assert (await host.handle([add(key)]))[0].reply == {"seq": 1, "total": 1}
        await acquire_lease(db.pool, "tally", 900, "new-owner")
        [outcome] = await host.handle([add(key)])
        assert outcome.error is not None and outcome.error.code == "shard_fenced"
        assert outcome.error.retriable
        assert await entries(owner_conn, key) == [(1, 1)]
    finally:
        await host.close()
        await redis.aclose()
