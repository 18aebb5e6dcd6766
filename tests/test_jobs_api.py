"""Jobs over HTTP with a real gateway, job shards and Ray workers: a submitted
job runs on a worker and succeeds with its progress in order; the same
Idempotency-Key gives the same job; bad input answers 422 naming the field
and creates nothing; a failing handler fails the job with its error; cancel
ends a queued job at once, stops a running one cooperatively and answers
409 for a finished one; lists filter and page; another tenant's job is 404;
a tenant's API key submits and follows its jobs, within its scopes; a
private kind's job is seen only by its creator and the tenant's managers; a
job command with a field of the wrong type is refused naming the field."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from hubbub.actors.command import Command
from hubbub.errors import AppError
from hubbub.jobs.commands import Cancel
from hubbub.services import ROUTER
from tests.support.chat import new_team
from tests.support.jobs import JOBS, SseStream, open_stream, submit, unique_key, until_final
from tests.test_api_keys import keyed, new_key, pro_tenant


async def _job_rows(conn: asyncpg.Connection, tenant_id: str) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM jobs WHERE tenant_id = $1", uuid.UUID(tenant_id)
    )


async def test_a_job_runs_on_a_worker_and_succeeds_with_its_progress_in_order(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    status, accepted = await submit(team, owner, "demo.count", {"to": 5})
    assert status == 202, accepted
    job_id = accepted["id"]
    assert accepted == {
        "id": job_id,
        "status": "queued",
        "stream_url": f"{JOBS}/{job_id}/stream",
        "status_url": f"{JOBS}/{job_id}",
    }
    events = await until_final(gateway, team, owner, job_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    statuses = [e["data"]["status"] for e in events if e["type"] == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    assert events[-1]["data"] == {"status": "succeeded", "result": {"counted": 5}}
    progress = [e["data"]["progress"] for e in events if e["type"] == "progress"]
    assert progress == sorted(progress) and progress[-1] == 100.0
    steps = [e["data"]["name"] for e in events if e["type"] == "step"]
    assert steps == ["counting", "done"]
    output = "".join(e["data"]["chunk"] for e in events if e["type"] == "output")
    assert output == "1\n2\n3\n4\n5\n"
    assert all(e["job_id"] == job_id for e in events)

    status, job = await team.call("GET", f"{JOBS}/{job_id}", owner)
    assert status == 200, job
    assert (job["status"], job["progress"], job["done"], job["total"]) == ("succeeded", 100, 5, 5)
    assert (job["result"], job["error"], job["attempts"]) == ({"counted": 5}, None, 1)
    assert job["last_seq"] == len(events)
    assert job["started_at"] and job["finished_at"]
    status, page = await team.call("GET", f"{JOBS}/{job_id}/events?after_seq=2", owner)
    assert status == 200, page
    assert page["items"] == events[2:] and page["last_seq"] == len(events)
    rows = await owner_conn.fetch(
        "SELECT seq, type FROM job_events WHERE job_id = $1 ORDER BY seq", uuid.UUID(job_id)
    )
    assert [(r["seq"], r["type"]) for r in rows] == [(e["seq"], e["type"]) for e in events]


async def test_reports_reach_the_job_in_batches_merged_and_in_order(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "demo.count", {"to": 300})
    events = await until_final(gateway, team, owner, accepted["id"])
    # 300 counts report 900 times (counters, progress, output) and log 10 lines;
    # batches merge runs, so far fewer events reach the stream, none lost.
    assert len(events) < 300
    output = "".join(e["data"]["chunk"] for e in events if e["type"] == "output")
    assert output == "".join(f"{n}\n" for n in range(1, 301))
    logs = [e["data"]["text"] for e in events if e["type"] == "log"]
    assert logs == [f"counted to {n}" for n in range(30, 301, 30)]
    last = [e for e in events if e["type"] == "progress"][-1]["data"]
    assert last == {"progress": 100.0, "done": 300, "total": 300}


async def test_the_same_idempotency_key_gives_the_same_job(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    key = unique_key()
    answers = await asyncio.gather(
        *(submit(team, owner, "demo.count", {"to": 2}, key) for _ in range(4))
    )
    assert {status for status, _ in answers} == {202}
    assert len({body["id"] for _, body in answers}) == 1
    assert await _job_rows(owner_conn, team.tenant_id) == 1
    events = await until_final(gateway, team, owner, answers[0][1]["id"])
    assert [e["data"]["status"] for e in events if e["type"] == "status"].count("running") == 1
    again_status, again = await submit(team, owner, "demo.count", {"to": 2}, key)
    assert (again_status, again["id"], again["status"]) == (202, answers[0][1]["id"], "succeeded")
    status, problem = await submit(team, owner, "demo.count", {"to": 3}, key)
    assert (status, problem["code"]) == (422, "idempotency_key_reused")
    assert await _job_rows(owner_conn, team.tenant_id) == 1


async def test_bad_input_answers_422_naming_the_field_and_creates_nothing(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    cases = [
        ("no.such.kind", {}, "unknown_job_kind", "kind"),
        ("demo.count", {}, "validation_failed", "input.to"),
        ("demo.count", {"to": 0}, "validation_failed", "input.to"),
        ("demo.count", {"to": 3, "extra": 1}, "validation_failed", "input.extra"),
    ]
    for kind, value, code, field in cases:
        status, problem = await submit(team, owner, kind, value, unique_key())
        assert (status, problem["code"]) == (422, code), problem
        assert [e["field"] for e in problem["errors"]] == [field], problem
    status, problem = await team.call("POST", JOBS, owner, {"input": {}})
    assert (status, problem["errors"][0]["field"]) == (422, "kind")
    assert await _job_rows(owner_conn, team.tenant_id) == 0


async def test_a_handler_that_raises_fails_the_job_with_its_error(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "test.fail")
    events = await until_final(gateway, team, owner, accepted["id"])
    assert events[-1]["data"] == {
        "status": "failed",
        "error": {"code": "handler_failed", "message": "RuntimeError: the handler broke"},
    }
    assert [e["data"]["name"] for e in events if e["type"] == "step"] == ["failing"]


async def test_cancelling_a_queued_job_ends_it_at_once_and_a_finished_one_answers_409(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "test.unplaceable")
    status, job = await team.call("POST", f"{JOBS}/{accepted['id']}/cancel", owner)
    assert (status, job["status"], job["finished_at"] is not None) == (200, "cancelled", True)
    events = await until_final(gateway, team, owner, accepted["id"])
    assert [e["data"] for e in events] == [{"status": "queued"}, {"status": "cancelled"}]
    status, problem = await team.call("POST", f"{JOBS}/{accepted['id']}/cancel", owner)
    assert (status, problem["code"], problem["job_status"]) == (409, "job_finished", "cancelled")


async def test_a_job_command_with_a_field_of_the_wrong_type_is_refused_naming_it(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "test.unplaceable")
    wrong = Cancel(actor=7)  # type: ignore[arg-type]  # structs do not validate on construction
    with pytest.raises(AppError) as refused:
        await gateway.app[ROUTER].send(Command("job", accepted["id"], wrong, team.tenant_id))
    assert (refused.value.code, refused.value.status) == ("validation_failed", 422)
    assert refused.value.errors[0].field == "actor"
    status, job = await team.call("GET", f"{JOBS}/{accepted['id']}", owner)
    assert (status, job["status"]) == (200, "queued")
    # It never gets a worker: cancelled, it frees its place in Ray's queue for later tests.
    await team.call("POST", f"{JOBS}/{accepted['id']}/cancel", owner)


async def test_cancelling_a_running_job_stops_its_handler(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "test.hold")
    async with open_stream(gateway, team, owner, accepted["id"]) as stream:
        seen = []
        while not any(e.event == "step" for e in seen):
            seen.extend(await stream.until(len(seen) + 1))
        status, job = await team.call("POST", f"{JOBS}/{accepted['id']}/cancel", owner)
        assert (status, job["status"], job["cancel_requested"]) == (200, "running", True)
        rest = [frame.json() for frame in await stream.events()]
    assert [e["data"] for e in rest if e["type"] == "status"] == [
        {"status": "running", "cancel_requested": True},
        {"status": "cancelled"},
    ]


async def test_only_the_creator_or_a_manager_cancels(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    owner, member = team.people
    _, accepted = await submit(team, owner, "test.unplaceable")
    status, problem = await team.call("POST", f"{JOBS}/{accepted['id']}/cancel", member)
    assert (status, problem["code"]) == (403, "insufficient_role")
    status, job = await team.call("POST", f"{JOBS}/{accepted['id']}/cancel", owner)
    assert (status, job["status"]) == (200, "cancelled")


async def test_jobs_list_newest_first_by_kind_and_status_page_by_page(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    ids = []
    for _ in range(3):
        _, accepted = await submit(team, owner, "test.unplaceable")
        ids.append(accepted["id"])
    await team.call("POST", f"{JOBS}/{ids[0]}/cancel", owner)
    _, counted = await submit(team, owner, "demo.count", {"to": 1})
    await until_final(gateway, team, owner, counted["id"])

    async def listed(query: str) -> tuple[list[str], str | None]:
        status, page = await team.call("GET", f"{JOBS}?{query}", owner)
        assert status == 200, page
        return [job["id"] for job in page["items"]], page["next_cursor"]

    first, cursor = await listed("kind=test.unplaceable&limit=2")
    assert first == [ids[2], ids[1]] and cursor
    assert await listed(f"kind=test.unplaceable&limit=2&cursor={cursor}") == ([ids[0]], None)
    assert await listed("status=cancelled") == ([ids[0]], None)
    assert await listed("status=succeeded") == ([counted["id"]], None)
    status, problem = await team.call("GET", f"{JOBS}?status=sleeping", owner)
    assert (status, problem["errors"][0]["field"]) == (422, "status")
    for job_id in ids[1:]:
        await team.call("POST", f"{JOBS}/{job_id}/cancel", owner)


async def test_another_tenants_job_is_not_found_on_every_route(gateway: TestServer) -> None:
    ours, theirs = await new_team(gateway, 1), await new_team(gateway, 1)
    _, accepted = await submit(theirs, theirs.people[0], "test.unplaceable")
    one = f"{JOBS}/{accepted['id']}"
    stranger = ours.people[0]
    for method, path in [
        ("GET", one),
        ("GET", f"{one}/events"),
        ("GET", f"{one}/stream"),
        ("POST", f"{one}/cancel"),
    ]:
        status, problem = await ours.call(method, path, stranger)
        assert (status, problem["code"]) == (404, "not_found"), (path, problem)
    # Naming their tenant does not help a non-member either.
    status, _ = await ours.call("GET", one, stranger, tenant=theirs.tenant_id)
    assert status == 404
    status, _ = await theirs.call("POST", f"{one}/cancel", theirs.people[0])
    assert status == 200


async def test_an_api_key_submits_and_follows_its_tenants_jobs(gateway: TestServer) -> None:
    owner, tenant = await pro_tenant(gateway)
    writer = await new_key(gateway, tenant["id"], owner, ["write"])
    reader = await new_key(gateway, tenant["id"], owner, ["read"])
    body = {"kind": "demo.count", "input": {"to": 3}}
    status, accepted = await keyed(gateway, "POST", JOBS, writer["key"], body)
    assert status == 202, accepted
    headers = {"X-API-Key": reader["key"]}
    url = gateway.make_url(f"{JOBS}/{accepted['id']}/stream")
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        assert response.status == 200
        events = [frame.json() for frame in await SseStream(response).events()]
    assert events[-1]["data"] == {"status": "succeeded", "result": {"counted": 3}}
    status, job = await keyed(gateway, "GET", f"{JOBS}/{accepted['id']}", reader["key"])
    assert (status, job["created_by"]) == (200, writer["id"])  # the key's service account

    status, refused = await keyed(gateway, "POST", JOBS, reader["key"], body)
    assert (status, refused["code"]) == (403, "insufficient_scope")
    other_owner, other = await pro_tenant(gateway)
    stranger = await new_key(gateway, other["id"], other_owner, ["admin"])
    status, _ = await keyed(gateway, "GET", f"{JOBS}/{accepted['id']}", stranger["key"])
    assert status == 404


async def test_a_private_job_is_seen_by_its_creator_and_the_tenants_managers_only(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 3)
    owner, creator, member = team.people
    _, private = await submit(team, creator, "test.private", {"ms": 10})
    _, shared = await submit(team, creator, "demo.count", {"to": 1})
    await until_final(gateway, team, creator, private["id"])
    one = f"{JOBS}/{private['id']}"
    for path in (one, f"{one}/events", f"{one}/stream"):
        status, _ = await team.call("GET", path, member)
        assert status == 404, path
    status, _ = await team.call("POST", f"{one}/cancel", member)
    assert status == 404
    _, page = await team.call("GET", JOBS, member)
    assert [job["id"] for job in page["items"]] == [shared["id"]]
    for who in (creator, owner):
        _, page = await team.call("GET", JOBS, who)
        assert {job["id"] for job in page["items"]} == {private["id"], shared["id"]}
        status, job = await team.call("GET", one, who)
        assert (status, job["status"]) == (200, "succeeded")
