"""Async signup (Fostr's ``signup/async``): one POST answers 202 with a job
and a stream link; the link alone — no bearer token — opens the job's
Server-Sent Events, which walk through validating → creating_user →
creating_tenant → running_migrations → seeding and end with the new tenant
and, the first time a link delivers that end, the account's tokens. The
password never reaches the job, the tokens are stored nowhere, the link
expires, and a retried request or run creates nothing twice."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from hubbub.errors import AppError
from hubbub.jobs.commands import StepReport
from hubbub.jobs.context import JobContext
from hubbub.provisioning import SIGNUP_JOBS
from hubbub.provisioning.provision import STEPS, provision
from hubbub.provisioning.signups import prune_signups
from hubbub.provisioning.wire import ProvisionInput
from hubbub.services import ROUTER, SETTINGS
from hubbub.storage.database import Database
from tests.support.accounts import PASSWORD, sign_up
from tests.support.jobs import JOBS, SseEvent
from tests.support.signups import (
    SIGNUP,
    new_signup_body,
    signup_stream,
    start_signup,
    stream_status,
)
from tests.support.tenants import call


async def _signed_up(server: TestServer, body: dict[str, Any]) -> tuple[dict, list[SseEvent]]:
    """The 202 answer of a signup and every event of its stream."""
    status, accepted = await start_signup(server, body)
    assert status == 202, accepted
    async with signup_stream(server, accepted["stream_url"]) as stream:
        return accepted, await stream.events()


def _result(frames: list[SseEvent]) -> dict[str, Any]:
    final = frames[-1].json()
    assert (final["type"], final["data"]["status"]) == ("status", "succeeded"), final
    return final["data"]["result"]


def _account(result: dict[str, Any]) -> dict[str, Any]:
    """A signup's result without the tokens one link delivered."""
    return {k: result[k] for k in ("tenant_id", "tenant_name", "tenant_slug", "user_id")}


async def test_the_stream_shows_each_step_in_order_and_ends_with_tokens_that_work(
    gateway: TestServer,
) -> None:
    body = new_signup_body()
    accepted, frames = await _signed_up(gateway, body)
    events = [frame.json() for frame in frames]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {e["job_id"] for e in events} == {accepted["job_id"]}
    assert [e["data"]["name"] for e in events if e["type"] == "step"] == list(STEPS)
    progress = [e["data"]["progress"] for e in events if e["type"] == "progress"]
    assert progress == sorted(progress) and progress[-1] == 100
    result = _result(frames)
    assert result["tenant_name"] == body["tenant_name"]

    token = result["access_token"]
    status, me = await call(gateway, "GET", "/api/v1/auth/me", token)
    assert (status, me["id"], me["email"]) == (200, result["user_id"], body["email"])
    status, tenant = await call(gateway, "GET", f"/api/v1/tenants/{result['tenant_id']}", token)
    assert (status, tenant["name"], tenant["slug"]) == (
        200,
        body["tenant_name"],
        result["tenant_slug"],
    )
    headers = {"X-Tenant-Id": result["tenant_id"]}
    status, channels = await call(gateway, "GET", "/api/v1/conversations", token, **headers)
    assert status == 200, channels
    assert [(c["kind"], c["title"]) for c in channels["items"]] == [("channel", "general")]
    refresh = {"refresh_token": result["refresh_token"]}
    status, refreshed = await call(gateway, "POST", "/api/v1/auth/refresh", json=refresh)
    assert (status, refreshed["user"]["id"]) == (200, result["user_id"])
    login = {"email": body["email"], "password": PASSWORD}
    status, _ = await call(gateway, "POST", "/api/v1/auth/login", json=login)
    assert status == 200


async def test_resuming_with_last_event_id_gets_the_rest_once_then_the_tokens(
    gateway: TestServer,
) -> None:
    status, accepted = await start_signup(gateway, new_signup_body())
    assert status == 202, accepted
    async with signup_stream(gateway, accepted["stream_url"]) as stream:
        first = await stream.until(3)
    async with signup_stream(gateway, accepted["stream_url"], **{"Last-Event-ID": "3"}) as stream:
        rest = await stream.events()
    seqs = [int(frame.id or 0) for frame in first + rest]
    assert seqs == list(range(1, len(seqs) + 1))
    assert _result(rest)["access_token"]


async def test_neither_the_password_nor_the_tokens_are_stored_with_the_job(
    gateway: TestServer, owner_conn: Any
) -> None:
    accepted, frames = await _signed_up(gateway, new_signup_body())
    tokens = _result(frames)
    job = await owner_conn.fetchrow(
        "SELECT * FROM jobs WHERE id = $1", uuid.UUID(accepted["job_id"])
    )
    assert set(job["input"]) == {"user_id", "tenant_id", "email", "name", "tenant_name"}
    assert set(job["result"]) == {"tenant_id", "tenant_name", "tenant_slug", "user_id"}
    events = await owner_conn.fetch(
        "SELECT data::text FROM job_events WHERE job_id = $1", job["id"]
    )
    for secret in (PASSWORD, tokens["access_token"], tokens["refresh_token"]):
        assert not any(secret in row["data"] for row in events)
    signup = await owner_conn.fetchrow(
        "SELECT password_hash FROM account_signups WHERE job_id = $1", job["id"]
    )
    assert signup["password_hash"] is None
    token = accepted["stream_url"].split("/")[-2]
    links = await owner_conn.fetch(
        "SELECT token_hash FROM signup_streams WHERE job_id = $1", job["id"]
    )
    # Only the link's hash is kept.
    assert [bytes(row["token_hash"]) for row in links] == [hashlib.sha256(token.encode()).digest()]


async def test_the_job_and_its_tokens_are_not_readable_through_the_jobs_routes(
    gateway: TestServer,
) -> None:
    accepted, frames = await _signed_up(gateway, new_signup_body())
    result = _result(frames)
    token, job_id = result["access_token"], accepted["job_id"]
    for tenant_id in (result["tenant_id"], str(SIGNUP_JOBS)):
        headers = {"X-Tenant-Id": tenant_id}
        for path in (f"{JOBS}/{job_id}", f"{JOBS}/{job_id}/events", f"{JOBS}/{job_id}/stream"):
            status, problem = await call(gateway, "GET", path, token, **headers)
            assert (status, problem["code"]) == (404, "not_found"), (tenant_id, path, problem)
    headers = {"X-Tenant-Id": result["tenant_id"]}
    status, jobs = await call(gateway, "GET", JOBS, token, **headers)
    assert (status, jobs["items"]) == (200, [])


async def test_bad_input_is_422_naming_each_field_and_files_nothing(
    gateway: TestServer, owner_conn: Any
) -> None:
    cases = [
        ({"email": "not-an-email"}, "email"),
        ({"password": "short"}, "password"),
        ({"tenant_name": "   "}, "tenant_name"),
        ({"name": ""}, "name"),
        ({"extra": 1}, "extra"),
    ]
    for change, field in cases:
        body = new_signup_body(**change)
        status, problem = await start_signup(gateway, body)
        assert (status, problem["code"]) == (422, "validation_failed"), problem
        assert [e["field"] for e in problem["errors"]] == [field], problem
    body = new_signup_body()
    del body["tenant_name"]
    status, problem = await start_signup(gateway, body)
    assert (status, [e["field"] for e in problem["errors"]]) == (422, ["tenant_name"])
    filed = await owner_conn.fetchval(
        "SELECT count(*) FROM account_signups WHERE email = $1", body["email"]
    )
    assert filed == 0


async def test_an_email_with_an_account_is_409_as_the_sync_signup_answers(
    gateway: TestServer,
) -> None:
    base = str(gateway.make_url("")).rstrip("/")
    taken = (await sign_up(base))["user"]["email"]
    status, problem = await start_signup(gateway, new_signup_body(email=taken.upper()))
    assert (status, problem["code"]) == (409, "email_taken"), problem
    # An account made by an async signup counts as well.
    body = new_signup_body()
    await _signed_up(gateway, body)
    status, problem = await start_signup(gateway, new_signup_body(email=body["email"]))
    assert (status, problem["code"]) == (409, "email_taken"), problem


async def test_a_link_hands_out_the_tokens_once_and_a_retry_with_the_key_gets_a_fresh_link(
    gateway: TestServer,
) -> None:
    body, key = new_signup_body(), f"signup-{uuid.uuid4().hex}"
    status, accepted = await start_signup(gateway, body, key)
    assert status == 202, accepted
    async with signup_stream(gateway, accepted["stream_url"]) as stream:
        first = _result(await stream.events())
    async with signup_stream(gateway, accepted["stream_url"]) as stream:
        replayed = _result(await stream.events())
    assert replayed == _account(first)  # the same end, without tokens this time
    # A client that lost its tokens logs in, or retries with its key and password.
    status, retried = await start_signup(gateway, body, key)
    assert status == 202, retried
    async with signup_stream(gateway, retried["stream_url"]) as stream:
        fresh = _result(await stream.events())
    status, me = await call(gateway, "GET", "/api/v1/auth/me", fresh["access_token"])
    assert (status, me["id"]) == (200, first["user_id"])


async def test_two_streams_of_one_link_at_once_hand_out_one_set_of_tokens(
    gateway: TestServer,
) -> None:
    status, accepted = await start_signup(gateway, new_signup_body())
    assert status == 202, accepted

    async def follow() -> dict[str, Any]:
        async with signup_stream(gateway, accepted["stream_url"]) as stream:
            return _result(await stream.events())

    results = await asyncio.gather(follow(), follow())
    assert sorted("refresh_token" in result for result in results) == [False, True]


async def test_expired_links_and_signups_past_the_retention_are_pruned_and_nothing_else(
    serve: Callable[..., Awaitable[TestServer]], gateway: TestServer, db: Database, owner_conn: Any
) -> None:
    short = await serve(signup_stream_minutes=0.0005)  # 30 ms
    links = []
    for server in (short, gateway, short):
        status, accepted = await start_signup(server, new_signup_body())
        assert status == 202, accepted
        links.append(accepted)
    expired, live, old = links
    await owner_conn.execute(
        "UPDATE account_signups SET created_at = now() - interval '91 days' WHERE job_id = $1",
        uuid.UUID(old["job_id"]),
    )
    # Wait out the short links (the server's clock is this one); no time is asserted.
    wait = datetime.fromisoformat(old["expires_at"]) - datetime.now(UTC)
    await asyncio.sleep(wait.total_seconds() + 0.01)

    assert await prune_signups(db, timedelta(days=90)) >= 3  # two links and a signup
    jobs = [uuid.UUID(link["job_id"]) for link in links]
    kept_links = await owner_conn.fetch(
        "SELECT job_id FROM signup_streams WHERE job_id = ANY($1::uuid[])", jobs
    )
    kept_signups = await owner_conn.fetch(
        "SELECT job_id FROM account_signups WHERE job_id = ANY($1::uuid[])", jobs
    )
    assert [str(row["job_id"]) for row in kept_links] == [live["job_id"]]
    assert {str(row["job_id"]) for row in kept_signups} == {expired["job_id"], live["job_id"]}


async def test_the_access_log_shows_the_links_route_never_its_token(
    gateway: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    status, accepted = await start_signup(gateway, new_signup_body())
    assert status == 202, accepted
    token = accepted["stream_url"].split("/")[-2]
    with caplog.at_level(logging.INFO, logger="hubbub.access"):
        async with signup_stream(gateway, accepted["stream_url"]) as stream:
            await stream.events()
        await stream_status(gateway, f"{SIGNUP}/{token}x/stream")  # a wrong link too
    paths = [r.__dict__["path"] for r in caplog.records if r.name == "hubbub.access"]
    assert paths == [f"{SIGNUP}/{{stream_token}}/stream"] * 2
    assert not any(token in r.getMessage() for r in caplog.records)


async def test_no_method_or_mistyped_tail_puts_a_links_token_in_any_log(
    gateway: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    status, accepted = await start_signup(gateway, new_signup_body())
    assert status == 202, accepted
    token = accepted["stream_url"].split("/")[-2]
    tried = [
        (method, f"{SIGNUP}/{token}{tail}")
        for method in ("HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
        for tail in ("/stream", "/stream/", "")
    ] + [("GET", f"{SIGNUP}/{token}/stream/more"), ("GET", f"{SIGNUP}/{token}")]
    with caplog.at_level(logging.DEBUG):
        async with aiohttp.ClientSession() as http:
            for method, path in tried:
                async with http.request(method, gateway.make_url(path)) as response:
                    assert response.status in (404, 405), (method, path, response.status)
    access = [r for r in caplog.records if r.name == "hubbub.access"]
    assert len(access) == len(tried)
    assert all(r.__dict__["path"].startswith(f"{SIGNUP}/{{stream_token}}") for r in access)
    assert not any(token in f"{r.getMessage()} {r.__dict__}" for r in caplog.records)


async def test_an_unknown_link_is_404(gateway: TestServer) -> None:
    for token in ("nope", "A" * 43):
        status, problem = await stream_status(gateway, f"{SIGNUP}/{token}/stream")
        assert (status, problem["code"]) == (404, "not_found"), problem


async def test_an_expired_link_is_404(serve: Callable[..., Awaitable[TestServer]]) -> None:
    server = await serve(signup_stream_minutes=0.0005)  # 30 ms
    status, accepted = await start_signup(server, new_signup_body())
    assert status == 202, accepted
    expires_at = datetime.fromisoformat(accepted["expires_at"])
    # Wait out the link (the server's clock is this one); no time is asserted.
    await asyncio.sleep((expires_at - datetime.now(UTC)).total_seconds() + 0.01)
    status, problem = await stream_status(server, accepted["stream_url"])
    assert (status, problem["code"]) == (404, "not_found"), problem


async def test_a_retried_signup_with_the_same_key_is_the_same_job_and_creates_nothing_twice(
    gateway: TestServer, owner_conn: Any
) -> None:
    body, key = new_signup_body(), f"signup-{uuid.uuid4().hex}"
    status, first = await start_signup(gateway, body, key)
    assert status == 202, first
    status, again = await start_signup(gateway, body, key)
    assert (status, again["job_id"]) == (202, first["job_id"])
    assert again["stream_url"] != first["stream_url"]  # a fresh link to the same stream
    async with signup_stream(gateway, first["stream_url"]) as stream:
        result = _result(await stream.events())
    # After the account exists, the same request still finds its job.
    status, late = await start_signup(gateway, body, key)
    assert (status, late["job_id"]) == (202, first["job_id"])
    async with signup_stream(gateway, late["stream_url"]) as stream:
        again = _result(await stream.events())
    assert _account(again) == _account(result)
    assert again["refresh_token"] != result["refresh_token"]  # the fresh link's own session
    users = await owner_conn.fetchval(
        "SELECT count(*) FROM users WHERE lower(email) = lower($1)", body["email"]
    )
    tenants = await owner_conn.fetchval(
        "SELECT count(*) FROM tenant_members WHERE user_id = $1", uuid.UUID(result["user_id"])
    )
    assert (users, tenants) == (1, 1)


async def test_the_same_key_with_another_password_or_tenant_name_is_refused(
    gateway: TestServer,
) -> None:
    body, key = new_signup_body(), f"signup-{uuid.uuid4().hex}"
    status, first = await start_signup(gateway, body, key)
    assert status == 202, first
    for change in ({"password": "another password"}, {"tenant_name": "Another"}):
        status, problem = await start_signup(gateway, body | change, key)
        assert (status, problem["code"]) == (422, "idempotency_key_reused"), (change, problem)


async def test_a_retried_run_finds_its_account_and_tenant_instead_of_making_new_ones(
    gateway: TestServer, owner_conn: Any
) -> None:
    accepted, frames = await _signed_up(gateway, new_signup_body())
    first = _result(frames)
    job = await owner_conn.fetchrow(
        "SELECT input FROM jobs WHERE id = $1", uuid.UUID(accepted["job_id"])
    )
    app = gateway.app
    context = JobContext(accepted["job_id"], 2, str(SIGNUP_JOBS), app[ROUTER], app[SETTINGS])
    again = await provision(context, ProvisionInput.model_validate(job["input"]))
    assert again == _account(first)
    members = await owner_conn.fetchval(
        "SELECT count(*) FROM tenant_members WHERE user_id = $1", uuid.UUID(first["user_id"])
    )
    assert members == 1
    steps = [r.name for r in context.take() if isinstance(r, StepReport)]
    assert steps == list(STEPS)


async def test_invite_only_deployments_refuse_async_signup(
    serve: Callable[..., Awaitable[TestServer]],
) -> None:
    server = await serve(signup_policy="invite_only")
    status, problem = await start_signup(server, new_signup_body())
    assert (status, problem["code"]) == (403, "signup_invite_only"), problem


async def test_one_email_gets_one_account_when_register_races_the_job(
    gateway: TestServer, owner_conn: Any
) -> None:
    """Whoever is first gets the account; the other is told `email_taken` —
    the job by failing with it, `register` by its 409."""
    body = new_signup_body()
    status, accepted = await start_signup(gateway, body)
    assert status == 202, accepted
    account = {"email": body["email"], "password": PASSWORD, "name": "Racer"}
    registered, _ = await call(gateway, "POST", "/api/v1/auth/register", json=account)
    async with signup_stream(gateway, accepted["stream_url"]) as stream:
        final = (await stream.events())[-1].json()["data"]
    if registered == 201:
        assert final == {
            "status": "failed",
            "error": {"code": "email_taken", "message": final["error"]["message"]},
        }
    else:
        assert (registered, final["status"]) == (409, "succeeded"), final
    users = await owner_conn.fetchval(
        "SELECT count(*) FROM users WHERE lower(email) = lower($1)", body["email"]
    )
    assert users == 1


async def test_a_run_whose_email_was_taken_meanwhile_fails_email_taken_and_creates_nothing(
    gateway: TestServer, owner_conn: Any
) -> None:
    taken = (await sign_up(str(gateway.make_url("")).rstrip("/")))["user"]["email"]
    # A signup filed before that account existed (as the gateway files one).
    job_id, user_id, tenant_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await owner_conn.execute(
        """INSERT INTO account_signups (job_id, user_id, new_tenant_id, email, password_hash,
           device) VALUES ($1, $2, $3, $4, 'not a real hash', 'test')""",
        job_id,
        user_id,
        tenant_id,
        taken,
    )
    app = gateway.app
    context = JobContext(str(job_id), 1, str(SIGNUP_JOBS), app[ROUTER], app[SETTINGS])
    input = ProvisionInput(
        user_id=user_id, tenant_id=tenant_id, email=taken, name="Late", tenant_name="Late Co"
    )
    with pytest.raises(AppError) as raised:
        await provision(context, input)
    assert raised.value.code == "email_taken"
    made = await owner_conn.fetchval(
        "SELECT count(*) FROM users WHERE id = $1", user_id
    ) + await owner_conn.fetchval("SELECT count(*) FROM tenants WHERE id = $1", tenant_id)
    assert made == 0
