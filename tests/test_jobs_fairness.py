"""Tenants take turns for the cluster: when Ray's queue of launched jobs is
full (``HUBBUB_JOB_LAUNCH_BACKLOG``), the next free place goes to the
tenant with the fewest jobs active, not to the one that queued first.

This module's only gateway is its own (no module-wide gateway sweeps
beside it with another backlog)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp.test_utils import TestServer

from tests.support.chat import new_team
from tests.support.jobs import JOBS, submit


async def test_a_free_place_in_rays_queue_goes_to_the_tenant_whose_turn_it_is(
    serve: Callable[..., Awaitable[TestServer]], owner_conn: asyncpg.Connection
) -> None:
    server = await serve(job_launch_backlog=2)
    busy, quiet = await new_team(server, 1), await new_team(server, 1)
    # Jobs that never get a worker: launched, they hold their place in Ray's queue.
    held = [(await submit(busy, busy.people[0], "test.unplaceable"))[1]["id"] for _ in range(3)]
    await _until_launched(owner_conn, held[:2])
    _, late = await submit(quiet, quiet.people[0], "test.unplaceable")
    await asyncio.sleep(0.5)  # rounds run: the queue is full, nothing more is launched
    assert await _launched(owner_conn, [held[2], late["id"]]) == set()

    await busy.call("POST", f"{JOBS}/{held[0]}/cancel", busy.people[0])
    await _until_launched(owner_conn, [late["id"]])  # quiet's first, before busy's third
    assert await _launched(owner_conn, [held[2]]) == set()
    for job_id in held[1:]:
        await busy.call("POST", f"{JOBS}/{job_id}/cancel", busy.people[0])
    await quiet.call("POST", f"{JOBS}/{late['id']}/cancel", quiet.people[0])


async def _launched(conn: asyncpg.Connection, job_ids: list[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT id FROM jobs WHERE id = ANY($1::uuid[]) AND launch_id IS NOT NULL",
        [uuid.UUID(j) for j in job_ids],
    )
    return {str(row["id"]) for row in rows}


async def _until_launched(conn: asyncpg.Connection, job_ids: list[str]) -> None:
    for _ in range(600):
        if await _launched(conn, job_ids) == set(job_ids):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"jobs {job_ids} were not launched")
