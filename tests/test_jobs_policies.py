"""Issue 5's policies, end to end on real workers: a failed attempt is
retried after a backoff, a killed worker never leaves its job running, an
attempt past its timeout ends, a job deaf to cancellation is killed after
the grace period, a failed job is retried by hand, concurrency limits and
priority decide what runs next, a conflict key admits one active job, and
``run_at`` holds a job until its time."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import psutil
import pytest
import ray
from aiohttp.test_utils import TestServer

from hubbub.jobs import sweep
from hubbub.services import SETTINGS
from tests.support.chat import new_team
from tests.support.jobs import JOBS, submit, until_final, until_status, worker_pid


async def test_a_failed_attempt_is_retried_and_the_stream_shows_it(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "test.flaky")
    events = await until_final(gateway, team, owner, accepted["id"])
    statuses = [e["data"] for e in events if e["type"] == "status"]
    assert [s["status"] for s in statuses] == [
        "queued",
        "running",
        "retrying",
        "running",
        "succeeded",
    ]
    assert statuses[2]["error"]["code"] == "handler_failed" and "retry_at" in statuses[2]
    assert statuses[-1]["result"] == {"attempt": 2}
    _, job = await team.call("GET", f"{JOBS}/{accepted['id']}", owner)
    assert (job["attempts"], job["max_attempts"], job["error"]) == (2, 3, None)


async def test_a_handler_refusing_its_input_fails_at_once(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "test.refusing")
    job = await until_status(team, owner, accepted["id"], "failed")
    assert (job["attempts"], job["error"]["code"]) == (1, "bad_input")


async def test_a_killed_worker_fails_its_job_with_a_clear_error(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "test.stubborn")
    os.kill(await worker_pid(team, owner, accepted["id"]), signal.SIGKILL)
    job = await until_status(team, owner, accepted["id"], "failed", "succeeded")
    assert job["status"] == "failed"
    assert job["error"]["code"] == "worker_lost"


async def test_a_killed_worker_is_retried_by_the_kinds_policy(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "test.stubborn_retried", {"gives_in_at": 2})
    os.kill(await worker_pid(team, owner, accepted["id"]), signal.SIGKILL)
    job = await until_status(team, owner, accepted["id"], "succeeded", "failed")
    assert (job["status"], job["attempts"], job["result"]) == ("succeeded", 2, {"attempt": 2})


async def test_jobs_of_a_restarted_launcher_are_retried(gateway: TestServer) -> None:
    """The launcher actor owns every job task: when it dies they die with
    it, and the sweep finds their jobs lost."""
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "test.stubborn_retried", {"gives_in_at": 2})
    pid = await worker_pid(team, owner, accepted["id"])
    namespace = gateway.app[SETTINGS].ray_namespace
    ray.kill(ray.get_actor("launcher", namespace=namespace), no_restart=False)
    job = await until_status(team, owner, accepted["id"], "succeeded", "failed")
    assert (job["status"], job["attempts"]) == ("succeeded", 2)
    await _until_gone(pid)  # the first attempt's worker went with its owner


async def test_an_attempt_past_its_timeout_ends_timed_out_and_its_worker_is_killed(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "test.overrunning")
    pid = await worker_pid(team, owner, accepted["id"])
    job = await until_status(team, owner, accepted["id"], "timed_out")
    assert job["error"]["code"] == "timed_out"
    await _until_gone(pid)


async def test_a_job_deaf_to_cancel_is_cancelled_after_the_grace_period(
    serve: Callable[..., Awaitable[TestServer]],
) -> None:
    server = await serve(job_cancel_grace_seconds=0.3)
    team = await new_team(server, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "test.stubborn")
    pid = await worker_pid(team, owner, accepted["id"])
    status, job = await team.call("POST", f"{JOBS}/{accepted['id']}/cancel", owner)
    assert (status, job["status"], job["cancel_requested"]) == (200, "running", True)
    events = await until_final(server, team, owner, accepted["id"])
    assert events[-1]["data"] == {"status": "cancelled", "forced": True}
    await _until_gone(pid)


async def test_a_failed_job_is_retried_by_hand_and_its_stream_goes_on(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 2)
    owner, member = team.people
    _, accepted = await submit(team, member, "test.fail")
    job_id = accepted["id"]
    first = await until_final(gateway, team, member, job_id)
    assert first[-1]["data"]["status"] == "failed"

    status, retried = await team.call("POST", f"{JOBS}/{job_id}/retry", owner)
    assert (status, retried["status"]) == (200, "queued")  # an owner may retry any job
    again = await until_status(team, member, job_id, "failed")
    assert again["attempts"] == 2
    status, page = await team.call("GET", f"{JOBS}/{job_id}/events?limit=1000", member)
    statuses = [e["data"]["status"] for e in page["items"] if e["type"] == "status"]
    assert statuses == ["queued", "running", "failed", "queued", "running", "failed"]
    seqs = [e["seq"] for e in page["items"]]
    assert seqs == list(range(1, len(seqs) + 1))  # one stream, gap-free


async def test_retry_refuses_a_succeeded_job_another_member_and_another_tenant(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 2)
    owner, member = team.people
    _, accepted = await submit(team, owner, "demo.count", {"to": 1})
    await until_status(team, owner, accepted["id"], "succeeded")
    status, refused = await team.call("POST", f"{JOBS}/{accepted['id']}/retry", owner)
    assert (status, refused["code"], refused["job_status"]) == (
        409,
        "job_not_retryable",
        "succeeded",
    )

    _, failing = await submit(team, owner, "test.fail")
    await until_status(team, owner, failing["id"], "failed")
    status, refused = await team.call("POST", f"{JOBS}/{failing['id']}/retry", member)
    assert (status, refused["code"]) == (403, "insufficient_role")
    stranger = (await new_team(gateway, 1)).people[0]
    other = await new_team(gateway, 1)
    status, _ = await other.call("POST", f"{JOBS}/{failing['id']}/retry", stranger)
    assert status == 404
    _, job = await team.call("GET", f"{JOBS}/{failing['id']}", owner)
    assert (job["status"], job["attempts"]) == ("failed", 1)  # nothing changed


async def test_a_concurrency_limit_holds_jobs_queued_and_priority_picks_the_next(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, first = await submit(team, owner, "test.single", {"ms": 1500})
    await until_status(team, owner, first["id"], "running")
    _, low = await submit(team, owner, "test.single", {"ms": 10}, priority=-5)
    _, high = await submit(team, owner, "test.single", {"ms": 10}, priority=5)
    _, waiting = await team.call("GET", f"{JOBS}/{low['id']}", owner)
    assert (waiting["status"], waiting["priority"]) == ("queued", -5)
    low_job = await until_status(team, owner, low["id"], "succeeded")
    high_job = await until_status(team, owner, high["id"], "succeeded")
    first_job = await until_status(team, owner, first["id"], "succeeded")
    starts = [_at(job["started_at"]) for job in (high_job, low_job)]
    assert _at(first_job["finished_at"]) <= starts[0] <= starts[1]


async def test_jobs_held_back_by_a_limit_do_not_hold_up_other_tenants_jobs(
    gateway: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep's batch is of jobs that may launch now: a tenant with many
    jobs queued behind its concurrency limit never fills it."""
    monkeypatch.setattr(sweep, "_BATCH", 3)
    busy = await new_team(gateway, 1)
    _, first = await submit(busy, busy.people[0], "test.single", {"ms": 2000})
    await until_status(busy, busy.people[0], first["id"], "running")
    queued = [
        (await submit(busy, busy.people[0], "test.single", {"ms": 2000}))[1] for _ in range(7)
    ]
    other = await new_team(gateway, 1)
    _, accepted = await submit(other, other.people[0], "demo.count", {"to": 1})
    await until_status(other, other.people[0], accepted["id"], "succeeded")
    _, page = await busy.call("GET", f"{JOBS}?status=queued", busy.people[0])
    assert len(page["items"]) >= 5  # still waiting their turn behind the limit
    for job in queued:
        await busy.call("POST", f"{JOBS}/{job['id']}/cancel", busy.people[0])


async def test_a_conflict_key_admits_one_active_job(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    status, first = await submit(team, owner, "test.project", {"project": "apollo", "ms": 800})
    assert status == 202
    status, refused = await submit(team, owner, "test.project", {"project": "apollo"})
    assert (status, refused["code"], refused["active_job_id"]) == (409, "job_conflict", first["id"])
    status, _ = await submit(team, owner, "test.project", {"project": "gemini"})
    assert status == 202  # another key
    other = await new_team(gateway, 1)
    status, _ = await submit(other, other.people[0], "test.project", {"project": "apollo"})
    assert status == 202  # another tenant
    await until_status(team, owner, first["id"], "succeeded")
    status, _ = await submit(team, owner, "test.project", {"project": "apollo"})
    assert status == 202  # the key is free again


async def test_two_hundred_jobs_at_once_all_finish_within_the_limit_and_the_conflict_key(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    limited = [submit(team, owner, "test.limited", {"ms": 20}) for _ in range(180)]
    conflicting = [
        submit(team, owner, "test.project", {"project": "x", "ms": 500}) for _ in range(20)
    ]
    replies = await asyncio.gather(*limited, *conflicting)
    assert all(status == 202 for status, _ in replies[:180])
    admitted = [body["id"] for status, body in replies[180:] if status == 202]
    refused = [body for status, body in replies[180:] if status == 409]
    assert len(admitted) == 1 and len(refused) == 19
    assert {body["active_job_id"] for body in refused} == set(admitted)

    ids = [body["id"] for _, body in replies[:180]] + admitted
    jobs = [await until_status(team, owner, job_id, "succeeded") for job_id in ids]
    spans = [(_at(job["started_at"]), _at(job["finished_at"])) for job in jobs[:180]]
    assert _most_at_once(spans) <= 3


async def test_a_job_with_run_at_waits_for_its_time(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    run_at = datetime.now(UTC) + timedelta(seconds=1.5)
    status, accepted = await submit(team, owner, "demo.count", {"to": 1}, run_at=run_at.isoformat())
    assert (status, accepted["status"]) == (202, "queued")
    _, waiting = await team.call("GET", f"{JOBS}/{accepted['id']}", owner)
    assert (waiting["status"], datetime.fromisoformat(waiting["run_at"])) == ("queued", run_at)
    job = await until_status(team, owner, accepted["id"], "succeeded")
    assert datetime.fromisoformat(job["started_at"]) >= run_at


async def test_run_at_and_priority_are_checked(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    far = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    for extra, field in (
        ({"run_at": far}, "run_at"),
        ({"run_at": "2026-12-03T10:00:00"}, "run_at"),  # no timezone
        ({"priority": 1000}, "priority"),
    ):
        status, refused = await submit(team, owner, "demo.count", {"to": 1}, **extra)
        assert status == 422, refused
        assert [e["field"] for e in refused["errors"]] == [field]
    status, page = await team.call("GET", JOBS, owner)
    assert page["items"] == []  # nothing was created


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The most spans (start, end) open at one time."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = running = 0
    for _, change in edges:  # an end sorts before a start at the same time
        running += change
        most = max(most, running)
    return most


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _until_gone(pid: int) -> None:
    for _ in range(600):
        if not _alive(pid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"worker {pid} is still alive")
