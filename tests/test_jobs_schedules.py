"""Recurring job schedules: cron expressions evaluated in the tenant's
timezone, managed by owners and admins, fired by the job sweep from
Postgres — so a schedule due while no gateway ran fires on the first round
of the next one, once — and checked like any input."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
from aiohttp.test_utils import TestServer

from hubbub.jobs.schedules import next_fire
from tests.support.chat import Team, new_team
from tests.support.jobs import JOBS, until_status

SCHEDULES = "/api/v1/job-schedules"


def test_the_next_time_is_found_in_the_timezone_given() -> None:
    after = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo
    assert next_fire("0 9 * * *", "Asia/Tokyo", after) == datetime(2026, 12, 4, 0, 0, tzinfo=UTC)
    assert next_fire("0 9 * * *", "UTC", after) == datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    # New York leaves daylight saving time on 1 November 2026: 09:00 is 14:00 UTC after it.
    before = datetime(2026, 10, 31, 14, 0, tzinfo=UTC)
    assert next_fire("0 9 * * *", "America/New_York", before) == datetime(
        2026, 11, 1, 14, 0, tzinfo=UTC
    )


async def test_a_schedule_first_fires_at_its_next_time_in_the_tenants_timezone(
    gateway: TestServer,
) -> None:
    team = await _team_in(gateway, "Asia/Tokyo")
    owner = team.people[0]
    status, schedule = await team.call("POST", SCHEDULES, owner, _daily_count())
    assert status == 201, schedule
    due = datetime.fromisoformat(schedule["next_run_at"])
    assert (due.astimezone(UTC).hour, due.minute) == (0, 0)  # 09:00 in Tokyo
    assert schedule["last_run_at"] is None
    status, page = await team.call("GET", SCHEDULES, owner)
    assert [s["id"] for s in page["items"]] == [schedule["id"]]


async def test_a_schedule_due_while_no_gateway_ran_fires_once_on_the_next_one(
    serve: Callable[..., Awaitable[TestServer]], owner_conn: asyncpg.Connection
) -> None:
    first = await serve()
    team = await _team_in(first, "Europe/Paris")
    owner = team.people[0]
    _, schedule = await team.call("POST", SCHEDULES, owner, _daily_count())
    await first.close()
    # Every gateway was down when the schedule came due.
    await owner_conn.execute(
        "UPDATE job_schedules SET next_run_at = now() - interval '1 hour' WHERE id = $1",
        uuid.UUID(schedule["id"]),
    )
    second = await serve()
    team = Team(second, team.tenant_id, team.people)
    fired = await _until_fired(team, schedule["id"])
    job = await until_status(team, owner, fired["last_job_id"], "succeeded")
    assert (job["kind"], job["result"], job["created_by"]) == (
        "demo.count",
        {"counted": 2},
        owner.user_id,
    )
    assert datetime.fromisoformat(fired["next_run_at"]) > datetime.now(UTC)
    await asyncio.sleep(0.5)  # a few more sweep rounds
    status, page = await team.call("GET", f"{JOBS}?kind=demo.count", owner)
    assert (status, [j["id"] for j in page["items"]]) == (200, [job["id"]])  # fired once


async def test_schedules_are_managed_by_owners_and_admins_of_their_tenant(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 2)
    owner, member = team.people
    status, refused = await team.call("POST", SCHEDULES, member, _daily_count())
    assert (status, refused["code"]) == (403, "insufficient_role")
    _, schedule = await team.call("POST", SCHEDULES, owner, _daily_count())
    one = f"{SCHEDULES}/{schedule['id']}"
    status, _ = await team.call("DELETE", one, member)
    assert status == 403
    other = await new_team(gateway, 1)
    status, _ = await other.call("DELETE", one, other.people[0])
    assert status == 404
    status, page = await other.call("GET", SCHEDULES, other.people[0])
    assert page["items"] == []
    status, _ = await team.call("DELETE", one, owner)
    assert status == 204
    status, page = await team.call("GET", SCHEDULES, owner)
    assert page["items"] == []
    status, _ = await team.call("DELETE", one, owner)
    assert status == 404


async def test_a_bad_schedule_is_refused_naming_its_field(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    cases = [
        ({"kind": "demo.count", "input": {"to": 2}, "cron": "61 * * * *"}, "cron"),
        ({"kind": "demo.count", "input": {"to": 2}, "cron": "0 9 * * * *"}, "cron"),
        ({"kind": "demo.count", "input": {"to": 0}, "cron": "0 9 * * *"}, "input.to"),
        ({"kind": "no.such", "input": {}, "cron": "0 9 * * *"}, "kind"),
    ]
    for body, field in cases:
        status, refused = await team.call("POST", SCHEDULES, owner, body)
        assert status == 422, refused
        assert [e["field"] for e in refused["errors"]] == [field]
    status, page = await team.call("GET", SCHEDULES, owner)
    assert page["items"] == []


def _daily_count() -> dict:
    return {"kind": "demo.count", "input": {"to": 2}, "cron": "0 9 * * *"}


async def _team_in(server: TestServer, timezone: str) -> Team:
    team = await new_team(server, 1)
    owner = team.people[0]
    path = f"/api/v1/tenants/{team.tenant_id}"
    status, tenant = await team.call("PATCH", path, owner, {"timezone": timezone})
    assert status == 200, tenant
    return team


async def _until_fired(team: Team, schedule_id: str) -> dict:
    for _ in range(600):
        _, page = await team.call("GET", SCHEDULES, team.people[0])
        [schedule] = [s for s in page["items"] if s["id"] == schedule_id]
        if schedule["last_job_id"] is not None:
            return schedule
        await asyncio.sleep(0.05)
    raise AssertionError(f"schedule {schedule_id} did not fire")
