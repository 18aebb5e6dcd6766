"""Accounts, sessions and access tokens through a real gateway: register,
login, refresh rotation and reuse detection, logout, sessions, JWKS and
Socket.IO authentication."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import jwt
import pytest
import socketio
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from hubbub.config import ConfigError
from hubbub.identity.keys import (
    KEYRING,
    ensure_signing_key,
    load_signing_keys,
    rotate_signing_key,
    signing_key_box,
)
from hubbub.identity.retention import prune_auth
from hubbub.identity.sealing import SecretBox, is_sealed
from hubbub.identity.tokens import issue_access_token
from hubbub.storage.database import Database
from tests.support.accounts import PASSWORD, sign_up, unique_email
from tests.support.processes import TWO_FACTOR_KEY

AUTH = "/api/v1/auth"


async def call(
    server: TestServer,
    method: str,
    path: str,
    token: str | None = None,
    json: Any = None,
    **headers: str,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, server.make_url(path), json=json, headers=headers) as response,
    ):
        body = None if response.status == 204 else await response.json(content_type=None)
        return response.status, body, response


async def new_account(server: TestServer, **headers: str) -> dict[str, Any]:
    return await sign_up(str(server.make_url("")).rstrip("/"), **headers)


async def login(server: TestServer, email: str, **headers: str) -> dict[str, Any]:
    body = {"email": email, "password": PASSWORD}
    status, tokens, _ = await call(server, "POST", f"{AUTH}/login", json=body, **headers)
    assert status == 200, tokens
    return tokens


def assert_refused(status: int, problem: dict, response: aiohttp.ClientResponse, code: str):
    assert (status, problem["code"]) == (401, code), problem
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_register_answers_tokens_and_me_is_that_user(gateway: TestServer) -> None:
    email = unique_email()
    tokens = await sign_up(str(gateway.make_url("")).rstrip("/"), email=email)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 15 * 60
    assert set(tokens["user"]) == {"id", "email", "name", "email_verified", "created_at"}
    assert tokens["user"]["email"] == email and tokens["user"]["email_verified"] is False

    status, me, _ = await call(gateway, "GET", f"{AUTH}/me", tokens["access_token"])
    assert status == 200
    assert me == tokens["user"]


async def test_a_taken_email_in_any_case_is_409_and_writes_nothing(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    email = unique_email("dup")
    await sign_up(str(gateway.make_url("")).rstrip("/"), email=email)
    sessions_before = await owner_conn.fetchval("SELECT count(*) FROM sessions")
    body = {"email": email.upper(), "password": PASSWORD, "name": "Other"}
    status, problem, _ = await call(gateway, "POST", f"{AUTH}/register", json=body)
    assert (status, problem["code"]) == (409, "email_taken")
    count = await owner_conn.fetchval(
        "SELECT count(*) FROM users WHERE lower(email) = lower($1)", email
    )
    assert count == 1
    assert await owner_conn.fetchval("SELECT count(*) FROM sessions") == sessions_before


async def test_registration_names_each_bad_field(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    body = {"email": "not-an-email", "password": "short", "name": ""}
    status, problem, _ = await call(gateway, "POST", f"{AUTH}/register", json=body)
    assert (status, problem["code"]) == (422, "validation_failed")
    assert {e["field"] for e in problem["errors"]} == {"email", "password", "name"}
    long_password = {"email": unique_email(), "password": "x" * 257, "name": "A"}
    status, problem, _ = await call(gateway, "POST", f"{AUTH}/register", json=long_password)
    assert status == 422 and [e["field"] for e in problem["errors"]] == ["password"]
    written = await owner_conn.fetchval(
        "SELECT count(*) FROM users WHERE email = $1", long_password["email"]
    )
    assert written == 0


async def test_wrong_password_and_unknown_email_get_the_same_401(gateway: TestServer) -> None:
    tokens = await new_account(gateway)
    wrong = {"email": tokens["user"]["email"], "password": "not the password"}
    unknown = {"email": unique_email("nobody"), "password": PASSWORD}
    answers = []
    for body in (wrong, unknown):
        status, problem, response = await call(gateway, "POST", f"{AUTH}/login", json=body)
        assert_refused(status, problem, response, "invalid_credentials")
        answers.append(problem["detail"])
    assert answers[0] == answers[1]


async def test_login_with_any_case_opens_a_second_session(gateway: TestServer) -> None:
    tokens = await new_account(gateway)
    second = await login(gateway, tokens["user"]["email"].upper())
    assert second["user"] == tokens["user"]
    status, sessions, _ = await call(gateway, "GET", f"{AUTH}/sessions", second["access_token"])
    assert status == 200 and len(sessions["items"]) == 2


async def test_refresh_rotates_and_the_old_token_dies(gateway: TestServer) -> None:
    tokens = await new_account(gateway)
    body = {"refresh_token": tokens["refresh_token"]}
    status, fresh, _ = await call(gateway, "POST", f"{AUTH}/refresh", json=body)
    assert status == 200
    assert fresh["refresh_token"] != tokens["refresh_token"]
    assert fresh["user"] == tokens["user"]
    status, me, _ = await call(gateway, "GET", f"{AUTH}/me", fresh["access_token"])
    assert status == 200 and me["id"] == tokens["user"]["id"]

    again = {"refresh_token": fresh["refresh_token"]}
    status, newest, _ = await call(gateway, "POST", f"{AUTH}/refresh", json=again)
    assert status == 200 and newest["refresh_token"] != fresh["refresh_token"]


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(
    gateway: TestServer,
) -> None:
    tokens = await new_account(gateway)
    stolen = {"refresh_token": tokens["refresh_token"]}
    status, fresh, _ = await call(gateway, "POST", f"{AUTH}/refresh", json=stolen)
    assert status == 200

    status, problem, response = await call(gateway, "POST", f"{AUTH}/refresh", json=stolen)
    assert_refused(status, problem, response, "refresh_token_reused")

    newest = {"refresh_token": fresh["refresh_token"]}
    status, problem, response = await call(gateway, "POST", f"{AUTH}/refresh", json=newest)
    assert_refused(status, problem, response, "session_revoked")
    status, problem, response = await call(gateway, "GET", f"{AUTH}/me", fresh["access_token"])
    assert_refused(status, problem, response, "session_revoked")


async def test_unknown_and_expired_refresh_tokens_have_their_own_codes(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    unknown = {"refresh_token": "no-such-token"}
    status, problem, response = await call(gateway, "POST", f"{AUTH}/refresh", json=unknown)
    assert_refused(status, problem, response, "invalid_refresh_token")

    tokens = await new_account(gateway)
    await owner_conn.execute(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1",
        uuid.UUID(tokens["user"]["id"]),
    )
    body = {"refresh_token": tokens["refresh_token"]}
    status, problem, response = await call(gateway, "POST", f"{AUTH}/refresh", json=body)
    assert_refused(status, problem, response, "refresh_token_expired")


async def test_logout_refuses_the_access_and_refresh_tokens(gateway: TestServer) -> None:
    tokens = await new_account(gateway)
    status, _, _ = await call(gateway, "POST", f"{AUTH}/logout", tokens["access_token"])
    assert status == 204
    status, problem, response = await call(gateway, "GET", f"{AUTH}/me", tokens["access_token"])
    assert_refused(status, problem, response, "session_revoked")
    body = {"refresh_token": tokens["refresh_token"]}
    status, problem, response = await call(gateway, "POST", f"{AUTH}/refresh", json=body)
    assert_refused(status, problem, response, "session_revoked")


async def test_logout_all_ends_every_session(gateway: TestServer) -> None:
    first = await new_account(gateway)
    second = await login(gateway, first["user"]["email"])
    status, _, _ = await call(gateway, "POST", f"{AUTH}/logout-all", second["access_token"])
    assert status == 204
    for tokens in (first, second):
        status, problem, response = await call(gateway, "GET", f"{AUTH}/me", tokens["access_token"])
        assert_refused(status, problem, response, "session_revoked")


async def test_sessions_list_marks_the_current_one_and_shows_the_device(
    gateway: TestServer,
) -> None:
    first = await new_account(gateway, **{"User-Agent": "PhoneApp/1.0"})
    second = await login(gateway, first["user"]["email"], **{"User-Agent": "Laptop/2.0"})
    status, sessions, _ = await call(gateway, "GET", f"{AUTH}/sessions", second["access_token"])
    assert status == 200 and sessions["next_cursor"] is None
    by_device = {item["device"]: item for item in sessions["items"]}
    assert set(by_device) == {"PhoneApp/1.0", "Laptop/2.0"}
    assert by_device["Laptop/2.0"]["current"] and not by_device["PhoneApp/1.0"]["current"]
    assert by_device["Laptop/2.0"]["ip"] == "127.0.0.1"

    phone = by_device["PhoneApp/1.0"]["id"]
    status, _, _ = await call(gateway, "DELETE", f"{AUTH}/sessions/{phone}", second["access_token"])
    assert status == 204
    status, problem, response = await call(gateway, "GET", f"{AUTH}/me", first["access_token"])
    assert_refused(status, problem, response, "session_revoked")
    status, sessions, _ = await call(gateway, "GET", f"{AUTH}/sessions", second["access_token"])
    assert [item["device"] for item in sessions["items"]] == ["Laptop/2.0"]


async def test_deleting_another_users_session_is_404_and_changes_nothing(
    gateway: TestServer,
) -> None:
    mine, theirs = await new_account(gateway), await new_account(gateway)
    status, listed, _ = await call(gateway, "GET", f"{AUTH}/sessions", theirs["access_token"])
    their_session = listed["items"][0]["id"]
    path = f"{AUTH}/sessions/{their_session}"
    status, problem, _ = await call(gateway, "DELETE", path, mine["access_token"])
    assert (status, problem["code"]) == (404, "not_found")
    status, _, _ = await call(gateway, "GET", f"{AUTH}/me", theirs["access_token"])
    assert status == 200


async def test_missing_malformed_and_expired_access_tokens_are_refused(
    gateway: TestServer, db: Database
) -> None:
    status, problem, response = await call(gateway, "GET", f"{AUTH}/me")
    assert_refused(status, problem, response, "unauthenticated")
    status, problem, response = await call(gateway, "GET", f"{AUTH}/me", "not.a.jwt")
    assert_refused(status, problem, response, "invalid_token")

    tokens = await new_account(gateway)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    key = (await load_signing_keys(db, timedelta(minutes=15), suite_box()))[0]
    expired = issue_access_token(
        key,
        uuid.UUID(claims["sub"]),
        uuid.UUID(claims["sid"]),
        now=datetime.now(UTC) - timedelta(hours=1),
        lifetime=timedelta(minutes=15),
    )
    status, problem, response = await call(gateway, "GET", f"{AUTH}/me", expired)
    assert_refused(status, problem, response, "token_expired")

    header, payload, _ = tokens["access_token"].split(".")
    forged = f"{header}.{payload}.{'A' * 86}"
    status, problem, response = await call(gateway, "GET", f"{AUTH}/me", forged)
    assert_refused(status, problem, response, "invalid_token")


async def test_jwks_publishes_the_key_that_verifies_a_token(gateway: TestServer) -> None:
    tokens = await new_account(gateway)
    status, jwks, _ = await call(gateway, "GET", "/.well-known/jwks.json")
    assert status == 200
    kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
    published = {key["kid"]: key for key in jwks["keys"]}
    assert published[kid]["kty"] == "OKP" and published[kid]["crv"] == "Ed25519"
    assert "d" not in published[kid], "the private part must never be published"
    public = jwt.PyJWK(published[kid])
    claims = jwt.decode(tokens["access_token"], public, algorithms=["EdDSA"], issuer="hubbub")
    assert claims["sub"] == tokens["user"]["id"]


async def test_openapi_declares_bearer_security_on_authenticated_routes(
    gateway: TestServer,
) -> None:
    status, document, _ = await call(gateway, "GET", "/openapi.json")
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    secured = {
        (method, path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") == [{"bearer": []}]
    }
    # Other capabilities add secured routes of their own; these must be among them.
    expected = {
        ("post", f"{AUTH}/logout"),
        ("post", f"{AUTH}/logout-all"),
        ("get", f"{AUTH}/sessions"),
        ("delete", f"{AUTH}/sessions/{{session_id}}"),
        ("get", f"{AUTH}/me"),
        ("post", f"{AUTH}/email/send"),
        ("post", f"{AUTH}/password/change"),
    }
    assert secured >= expected
    for method, path in expected:  # declared and enforced (before the body is read) agree
        concrete = path.replace("{session_id}", str(uuid.uuid4()))
        status, problem, response = await call(gateway, method.upper(), concrete)
        assert_refused(status, problem, response, "unauthenticated")
        assert "401" in document["paths"][path][method]["responses"]


async def test_what_ended_longer_ago_than_the_retention_is_deleted_and_nothing_else(
    gateway: TestServer, db: Database, owner_conn: asyncpg.Connection
) -> None:
    """Every gateway prunes hourly (``hubbub.identity.retention``); here one run,
    a row at a time, over rows backdated past the 90-day retention."""
    ended, recent, live = [await new_account(gateway) for _ in range(3)]
    for account in (ended, recent):
        status, _, _ = await call(gateway, "POST", f"{AUTH}/logout", account["access_token"])
        assert status == 204
    body = {"refresh_token": live["refresh_token"]}
    status, rotated, _ = await call(gateway, "POST", f"{AUTH}/refresh", json=body)
    assert status == 200, rotated
    user = {name: uuid.UUID(a["user"]["id"]) for name, a in [("ended", ended), ("live", live)]}
    await owner_conn.execute(
        "UPDATE sessions SET revoked_at = now() - interval '91 days' WHERE user_id = $1",
        user["ended"],
    )
    await owner_conn.execute(
        """UPDATE refresh_tokens SET used_at = now() - interval '91 days' WHERE used_at IS NOT NULL
           AND session_id IN (SELECT id FROM sessions WHERE user_id = $1)""",
        user["live"],
    )

    assert await prune_auth(db, timedelta(days=90), batch=1) >= 2

    async def left(account: dict[str, Any]) -> tuple[int, int]:
        user_id = uuid.UUID(account["user"]["id"])
        sessions = await owner_conn.fetchval(
            "SELECT count(*) FROM sessions WHERE user_id = $1", user_id
        )
        tokens = await owner_conn.fetchval(
            """SELECT count(*) FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
               WHERE s.user_id = $1""",
            user_id,
        )
        return sessions, tokens

    assert await left(ended) == (0, 0)
    assert await left(recent) == (1, 1)  # logged out, but only just
    assert await left(live) == (1, 1)  # the rotated-away token went; the current one stays
    body = {"refresh_token": rotated["refresh_token"]}
    status, _, _ = await call(gateway, "POST", f"{AUTH}/refresh", json=body)
    assert status == 200


async def test_the_app_role_cannot_delete_accounts_or_sessions(db: Database) -> None:
    for table in ("users", "sessions", "refresh_tokens", "signing_keys"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.pool.execute(f"DELETE FROM {table} WHERE false")


async def test_a_socket_connects_with_a_valid_token_only(gateway: TestServer) -> None:
    url = str(gateway.make_url("/"))
    tokens = await new_account(gateway)
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        url, transports=["websocket"], wait_timeout=10, auth={"token": tokens["access_token"]}
    )
    assert client.connected
    await client.disconnect()

    for auth, code in [(None, "unauthenticated"), ({"token": "bad"}, "invalid_token")]:
        refused = socketio.AsyncClient(reconnection=False)
        errors: list[Any] = []
        refused.on("connect_error", errors.append)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await refused.connect(url, transports=["websocket"], wait_timeout=10, auth=auth)
        assert errors, "expected a connect_error"
        assert errors[0]["data"]["code"] == code, errors


def suite_box() -> SecretBox:
    return signing_key_box(TWO_FACTOR_KEY)


async def test_signing_keys_are_sealed_at_rest(
    gateway: TestServer, db: Database, owner_conn: asyncpg.Connection
) -> None:
    """No private key is readable in Postgres; one stored plainly before the key
    was set is sealed at the next start-up; without the key none loads."""
    await new_account(gateway)  # the active key signs and verifies
    plain_kid = f"plain-{uuid.uuid4().hex[:8]}"
    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        .decode()
    )
    await owner_conn.execute(
        "INSERT INTO signing_keys (kid, private_key, retired_at) VALUES ($1, $2, now())",
        plain_kid,
        signing_key_box(None).seal(pem, plain_kid),
    )
    await ensure_signing_key(db, suite_box())  # what every gateway does at start-up
    stored = await owner_conn.fetch("SELECT kid, private_key FROM signing_keys")
    assert stored and all(is_sealed(row["private_key"]) for row in stored)
    assert not any(b"PRIVATE KEY" in row["private_key"] for row in stored)
    loaded = await load_signing_keys(db, timedelta(minutes=15), suite_box())
    assert plain_kid in {key.kid for key in loaded}
    with pytest.raises(ConfigError, match="HUBBUB_TWO_FACTOR_KEY"):
        await load_signing_keys(db, timedelta(minutes=15), signing_key_box(None))
    await owner_conn.execute(
        "UPDATE signing_keys SET retired_at = now() - interval '1 day' WHERE kid = $1", plain_kid
    )


async def test_a_rotated_key_verifies_until_its_tokens_expire(
    gateway: TestServer, db: Database, owner_conn: asyncpg.Connection
) -> None:
    """Last in this module: it retires the key the other tests signed with."""
    before = await new_account(gateway)
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]
    new_kid = await rotate_signing_key(owner_conn, suite_box())
    await gateway.app[KEYRING].reload()  # as every gateway does within RELOAD_SECONDS

    status, _, _ = await call(gateway, "GET", f"{AUTH}/me", before["access_token"])
    assert status == 200, "a retired key keeps verifying its tokens"
    after = await login(gateway, before["user"]["email"])
    assert jwt.get_unverified_header(after["access_token"])["kid"] == new_kid
    _, jwks, _ = await call(gateway, "GET", "/.well-known/jwks.json")
    assert {old_kid, new_kid} <= {key["kid"] for key in jwks["keys"]}

    await owner_conn.execute(
        "UPDATE signing_keys SET retired_at = now() - interval '16 minutes' WHERE kid = $1",
        old_kid,
    )
    await gateway.app[KEYRING].reload()
    status, problem, response = await call(gateway, "GET", f"{AUTH}/me", before["access_token"])
    assert_refused(status, problem, response, "invalid_token")
    _, jwks, _ = await call(gateway, "GET", "/.well-known/jwks.json")
    assert old_kid not in {key["kid"] for key in jwks["keys"]}
