"""Platform staff: the operator command that grants it, the staff-only
routes (users, ban/unban, lock/unlock, audit log), their audit rows, and
banned or locked accounts refused at login and refresh."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from hubbub.config import Settings
from tests.conftest import REPO_ROOT
from tests.support.accounts import PASSWORD, unique_email
from tests.test_auth_sessions import call, login, new_account

STAFF = "/api/v1/staff"


async def hubbub_staff(settings: Settings, *args: str) -> tuple[int, str]:
    """Run ``hubbub staff ...`` as an operator would: ``(exit status, output)``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    assert settings.database_url is not None
    env = inherited | {
        "HUBBUB_DATABASE_URL": settings.database_url,
        "HUBBUB_LOG_FORMAT": "console",
        "PYTHONPATH": str(REPO_ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubbub",
        "staff",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


@pytest.fixture(scope="module")
async def staff_tokens(gateway: TestServer, migrated: Settings) -> dict[str, Any]:
    """An account made staff by the operator command."""
    tokens = await new_account(gateway)
    status, output = await hubbub_staff(migrated, "grant", tokens["user"]["email"].upper())
    assert status == 0, output
    assert f"{tokens['user']['email']} is now staff" in output
    return tokens


async def act(
    server: TestServer, staff: dict[str, Any], action: str, user_id: str, reason: str = "test"
) -> tuple[int, Any]:
    path = f"{STAFF}/users/{user_id}/{action}"
    status, body, _ = await call(
        server, "POST", path, staff["access_token"], json={"reason": reason}
    )
    return status, body


async def audit_rows(conn: asyncpg.Connection, target_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM staff_audit_log WHERE target_id = $1 ORDER BY id", uuid.UUID(target_id)
    )


async def test_non_staff_are_refused_everywhere(gateway: TestServer) -> None:
    someone = await new_account(gateway)
    token, target = someone["access_token"], someone["user"]["id"]
    for method, path in [
        ("GET", f"{STAFF}/users"),
        ("GET", f"{STAFF}/audit-log"),
        *(("POST", f"{STAFF}/users/{target}/{a}") for a in ("ban", "unban", "lock", "unlock")),
    ]:
        json = {"reason": "x"} if method == "POST" else None
        status, problem, _ = await call(gateway, method, path, token, json=json)
        assert (status, problem["code"]) == (403, "staff_only"), path
    status, problem, _ = await call(gateway, "GET", f"{STAFF}/users")
    assert (status, problem["code"]) == (401, "unauthenticated")


async def test_users_are_listed_newest_first_by_email_substring_page_by_page(
    gateway: TestServer, staff_tokens: dict[str, Any]
) -> None:
    marker = uuid.uuid4().hex[:10]
    ids = []
    for _ in range(3):
        email = unique_email(f"list-{marker}")
        body = {"email": email, "password": PASSWORD, "name": "Listed"}
        status, made, _ = await call(gateway, "POST", "/api/v1/auth/register", json=body)
        assert status == 201, made
        ids.append(made["user"]["id"])
    seen, cursor = [], None
    while True:
        query = f"?email={marker.upper()}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = await call(
            gateway, "GET", f"{STAFF}/users{query}", staff_tokens["access_token"]
        )
        assert status == 200, page
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [item["id"] for item in seen] == list(reversed(ids))
    assert {item["is_staff"] for item in seen} == {False}
    assert {item["banned_at"] for item in seen} == {None}

    bad = f"{STAFF}/users?cursor=nope&limit=0"
    status, problem, _ = await call(gateway, "GET", bad, staff_tokens["access_token"])
    assert status == 422 and {e["field"] for e in problem["errors"]} == {"cursor", "limit"}


async def test_a_ban_ends_sessions_refuses_login_and_refresh_and_is_audited(
    gateway: TestServer, staff_tokens: dict[str, Any], owner_conn: asyncpg.Connection
) -> None:
    target = await new_account(gateway)
    second = await login(gateway, target["user"]["email"])
    user_id = target["user"]["id"]

    status, view = await act(gateway, staff_tokens, "ban", user_id, "spam")
    assert status == 200 and view["banned_at"] is not None and view["locked_at"] is None
    for tokens in (target, second):
        status, problem, _ = await call(gateway, "GET", "/api/v1/auth/me", tokens["access_token"])
        assert (status, problem["code"]) == (401, "session_revoked")
    body = {"email": target["user"]["email"], "password": PASSWORD}
    status, problem, _ = await call(gateway, "POST", "/api/v1/auth/login", json=body)
    assert (status, problem["code"]) == (403, "account_banned")
    refresh = {"refresh_token": second["refresh_token"]}
    status, problem, _ = await call(gateway, "POST", "/api/v1/auth/refresh", json=refresh)
    assert (status, problem["code"]) == (403, "account_banned")
    wrong = {"email": target["user"]["email"], "password": "not the password"}
    status, problem, _ = await call(gateway, "POST", "/api/v1/auth/login", json=wrong)
    assert (status, problem["code"]) == (401, "invalid_credentials"), "no hint without the password"

    (row,) = await audit_rows(owner_conn, user_id)
    assert row["actor_id"] == uuid.UUID(staff_tokens["user"]["id"])
    assert (row["action"], row["reason"]) == ("ban", "spam")
    assert row["before"] == {"is_staff": False, "banned": False, "locked": False}
    assert row["after"] == {"is_staff": False, "banned": True, "locked": False}
    assert row["at"] is not None

    status, _ = await act(gateway, staff_tokens, "ban", user_id)
    assert status == 200
    assert len(await audit_rows(owner_conn, user_id)) == 1, "a ban that changes nothing"
    status, view = await act(gateway, staff_tokens, "unban", user_id, "appeal")
    assert status == 200 and view["banned_at"] is None
    assert "access_token" in await login(gateway, target["user"]["email"])
    assert [r["action"] for r in await audit_rows(owner_conn, user_id)] == ["ban", "unban"]


async def test_a_lock_has_its_own_code_and_is_lifted_by_unlock(
    gateway: TestServer, staff_tokens: dict[str, Any], owner_conn: asyncpg.Connection
) -> None:
    target = await new_account(gateway)
    user_id = target["user"]["id"]
    status, view = await act(gateway, staff_tokens, "lock", user_id, "takeover suspected")
    assert status == 200 and view["locked_at"] is not None
    status, problem, _ = await call(gateway, "GET", "/api/v1/auth/me", target["access_token"])
    assert (status, problem["code"]) == (401, "session_revoked")
    body = {"email": target["user"]["email"], "password": PASSWORD}
    status, problem, _ = await call(gateway, "POST", "/api/v1/auth/login", json=body)
    assert (status, problem["code"]) == (403, "account_locked_by_staff")
    refresh = {"refresh_token": target["refresh_token"]}
    status, problem, _ = await call(gateway, "POST", "/api/v1/auth/refresh", json=refresh)
    assert (status, problem["code"]) == (403, "account_locked_by_staff")

    status, view = await act(gateway, staff_tokens, "unlock", user_id)
    assert status == 200 and view["locked_at"] is None
    assert "access_token" in await login(gateway, target["user"]["email"])
    rows = await audit_rows(owner_conn, user_id)
    assert [(r["action"], r["after"]["locked"]) for r in rows] == [
        ("lock", True),
        ("unlock", False),
    ]


async def test_bad_staff_requests_change_nothing(
    gateway: TestServer, staff_tokens: dict[str, Any], owner_conn: asyncpg.Connection
) -> None:
    me = staff_tokens["user"]["id"]
    status, problem = await act(gateway, staff_tokens, "ban", me)
    assert (status, problem["code"]) == (409, "cannot_act_on_self")
    status, problem = await act(gateway, staff_tokens, "lock", str(uuid.uuid4()))
    assert (status, problem["code"]) == (404, "not_found")
    target = (await new_account(gateway))["user"]["id"]
    path = f"{STAFF}/users/{target}/ban"
    status, problem, _ = await call(gateway, "POST", path, staff_tokens["access_token"], json={})
    assert (status, problem["errors"][0]["field"]) == (422, "reason")
    status, problem, _ = await call(
        gateway,
        "POST",
        f"{STAFF}/users/not-a-uuid/ban",
        staff_tokens["access_token"],
        json={"reason": "x"},
    )
    assert status == 422
    assert await audit_rows(owner_conn, target) == []
    assert (
        await owner_conn.fetchval("SELECT banned_at FROM users WHERE id = $1", uuid.UUID(target))
        is None
    )


async def test_the_audit_log_pages_newest_first_and_filters_by_target(
    gateway: TestServer, staff_tokens: dict[str, Any]
) -> None:
    target = (await new_account(gateway))["user"]["id"]
    for action in ("lock", "unlock", "ban"):
        status, _ = await act(gateway, staff_tokens, action, target, f"step {action}")
        assert status == 200
    token = staff_tokens["access_token"]
    seen, cursor = [], None
    while True:
        query = f"?target_id={target}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = await call(gateway, "GET", f"{STAFF}/audit-log{query}", token)
        assert status == 200, page
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [entry["action"] for entry in seen] == ["ban", "unlock", "lock"]
    assert {entry["actor_id"] for entry in seen} == {staff_tokens["user"]["id"]}
    assert seen[0]["before"]["banned"] is False and seen[0]["after"]["banned"] is True
    status, everything, _ = await call(gateway, "GET", f"{STAFF}/audit-log", token)
    assert status == 200 and len(everything["items"]) >= 3


async def test_the_operator_command_grants_and_revokes_and_is_audited(
    gateway: TestServer, migrated: Settings, owner_conn: asyncpg.Connection
) -> None:
    tokens = await new_account(gateway)
    email, user_id = tokens["user"]["email"], tokens["user"]["id"]
    status, output = await hubbub_staff(migrated, "grant", email)
    assert status == 0 and "is now staff" in output
    status, output = await hubbub_staff(migrated, "grant", email)
    assert status == 0 and "is already staff" in output
    status, _, _ = await call(gateway, "GET", f"{STAFF}/users", tokens["access_token"])
    assert status == 200

    status, output = await hubbub_staff(migrated, "revoke", email)
    assert status == 0 and "is now not staff" in output
    status, problem, _ = await call(gateway, "GET", f"{STAFF}/users", tokens["access_token"])
    assert (status, problem["code"]) == (403, "staff_only")
    rows = await audit_rows(owner_conn, user_id)
    assert [(r["actor_id"], r["action"]) for r in rows] == [
        (None, "staff_grant"),
        (None, "staff_revoke"),
    ]

    status, output = await hubbub_staff(migrated, "grant", unique_email("nobody"))
    assert status == 1 and "no account has the email" in output
