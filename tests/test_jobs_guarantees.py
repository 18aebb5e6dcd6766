"""Issue 5's guarantees under failure: the job shard's process killed while a
handler streams reports loses and repeats nothing — report batches carry
idempotency keys, so the worker's router retries them into the restarted
shard, which applies each once — and a follower on the gateway still gets
every event once, in order, to the final status."""

from __future__ import annotations

import os
import signal
import uuid

import asyncpg
from aiohttp.test_utils import TestServer

from hubbub.actors.router import shard_index
from hubbub.services import ROUTER
from tests.support.chat import new_team
from tests.support.jobs import open_stream, submit


async def test_killing_the_job_shard_mid_run_loses_and_repeats_no_event(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "demo.count", {"to": 150, "pause_ms": 10})
    job_id = accepted["id"]
    shards = gateway.app[ROUTER].shards("job")
    victim = shards[shard_index(job_id, len(shards))]
    before = await victim.stats()
    async with open_stream(gateway, team, owner, job_id) as stream:
        seen = await stream.until(5)  # running, and reporting
        os.kill(before["pid"], signal.SIGKILL)
        seen += await stream.events()
    after = await victim.stats()
    assert after["pid"] != before["pid"] and after["epoch"] > before["epoch"]

    events = [frame.json() for frame in seen]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["data"] == {"status": "succeeded", "result": {"counted": 150}}
    output = "".join(e["data"]["chunk"] for e in events if e["type"] == "output")
    assert output == "".join(f"{n}\n" for n in range(1, 151))  # every chunk, once
    rows = await owner_conn.fetch(
        "SELECT seq FROM job_events WHERE job_id = $1 ORDER BY seq", uuid.UUID(job_id)
    )
    assert [row["seq"] for row in rows] == [e["seq"] for e in events]
