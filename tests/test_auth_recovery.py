"""Mail, email verification and password recovery through a real gateway
that sends through a real SMTP server: tokens are read out of delivered
mail. Also the outbox's retries and the zero-setup log sender."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from hubbub.config import Settings
from hubbub.gateway import create_app
from hubbub.identity.mail_tokens import hash_token
from hubbub.mail.delivery import MAIL, Delivery
from hubbub.mail.outbox import Mail, enqueue, retry_delay
from hubbub.mail.sender import LogSender
from hubbub.plugin import load_plugins
from hubbub.storage.database import Database
from tests.support.accounts import PASSWORD, sign_up, unique_email
from tests.support.mailbox import Mailbox, token_in

AUTH = "/api/v1/auth"
PUBLIC_URL = "https://app.example"
NEW_PASSWORD = "a much better password"


@pytest.fixture(scope="module")
async def mailbox() -> AsyncIterator[Mailbox]:
    box = Mailbox()
    await box.start()
    yield box
    await box.close()


@pytest.fixture(scope="module")
async def server(ray_cluster: Settings, mailbox: Mailbox) -> AsyncIterator[TestServer]:
    """A gateway sending through ``mailbox``. It polls the outbox only hourly,
    so every prompt delivery here proves that committing a mail wakes it."""
    settings = ray_cluster.model_copy(
        update={
            "smtp_url": mailbox.url,
            "mail_from": "Hubbub <no-reply@hubbub.test>",
            "public_url": PUBLIC_URL,
            "mail_poll_seconds": 3600.0,
            "mail_max_attempts": 2,
            "email_send_limit": "1000/minute",
        }
    )
    gateway = TestServer(create_app(settings, load_plugins(["tests.support.probe"])))
    await gateway.start_server()
    yield gateway
    await gateway.close()


async def call(
    server: TestServer, method: str, path: str, token: str | None = None, json: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, server.make_url(path), json=json, headers=headers) as response,
    ):
        text = await response.text()
        return response.status, (await response.json(content_type=None) if text else None)


async def register(server: TestServer, email: str | None = None) -> dict[str, Any]:
    return await sign_up(str(server.make_url("")).rstrip("/"), email=email or unique_email())


async def login(server: TestServer, email: str, password: str = PASSWORD) -> tuple[int, Any]:
    return await call(server, "POST", f"{AUTH}/login", json={"email": email, "password": password})


async def until(probe: Callable[[], Awaitable[Any]], done: Callable[[Any], bool]) -> Any:
    """Poll ``probe`` until ``done(result)``: for states with no event to await."""
    for _ in range(200):
        result = await probe()
        if done(result):
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"still not done: {result!r}")


async def outbox_rows(conn: asyncpg.Connection, recipient: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM outbox WHERE lower(recipient) = lower($1) ORDER BY id", recipient
    )


# --- registration and email verification --------------------------------------


async def test_register_mails_a_link_that_verifies_the_email(
    server: TestServer, mailbox: Mailbox, owner_conn: asyncpg.Connection
) -> None:
    tokens = await register(server)
    email = tokens["user"]["email"]
    message = await mailbox.next_for(email)
    assert message["From"] == "Hubbub <no-reply@hubbub.test>"
    assert message["Subject"] == "Confirm your email address"
    assert f"{PUBLIC_URL}/verify-email?token=" in message.get_content()
    token = token_in(message)

    # Stored only as a hash; the sent mail's body (it held the token) is erased.
    stored = await owner_conn.fetchrow(
        "SELECT purpose, used_at FROM mail_tokens WHERE token_hash = $1",
        hashlib.sha256(token.encode()).digest(),
    )
    assert stored["purpose"] == "verify_email" and stored["used_at"] is None
    assert (
        await owner_conn.fetchval(
            "SELECT count(*) FROM mail_tokens WHERE token_hash = $1", token.encode()
        )
        == 0
    )
    rows = await until(lambda: outbox_rows(owner_conn, email), lambda r: r[0]["sent_at"])
    assert rows[0]["body"] == "" and rows[0]["attempts"] == 1

    assert await call(server, "POST", f"{AUTH}/email/verify", json={"token": token}) == (204, None)
    status, me = await call(server, "GET", f"{AUTH}/me", tokens["access_token"])
    assert (status, me["email_verified"]) == (200, True)


async def test_verification_tokens_unknown_used_and_expired_have_distinct_codes(
    server: TestServer, mailbox: Mailbox, owner_conn: asyncpg.Connection
) -> None:
    first = await register(server)
    token = token_in(await mailbox.next_for(first["user"]["email"]))
    second = await register(server)
    expired = token_in(await mailbox.next_for(second["user"]["email"]))
    await owner_conn.execute(
        "UPDATE mail_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = $1",
        hash_token(expired),
    )

    verify = f"{AUTH}/email/verify"
    status, problem = await call(server, "POST", verify, json={"token": "not-a-token"})
    assert (status, problem["code"]) == (400, "mail_token_invalid")
    status, problem = await call(server, "POST", verify, json={"token": expired})
    assert (status, problem["code"]) == (410, "mail_token_expired")
    assert await _verified(owner_conn, second) is False  # the refusal wrote nothing

    assert (await call(server, "POST", verify, json={"token": token}))[0] == 204
    status, problem = await call(server, "POST", verify, json={"token": token})
    assert (status, problem["code"]) == (410, "mail_token_used")

    status, problem = await call(server, "POST", verify, json={})
    assert (status, problem["code"]) == (422, "validation_failed")


async def test_email_send_mails_a_new_link_until_the_email_is_verified(
    server: TestServer, mailbox: Mailbox, owner_conn: asyncpg.Connection
) -> None:
    tokens = await register(server)
    email, access = tokens["user"]["email"], tokens["access_token"]
    await mailbox.next_for(email)

    assert await call(server, "POST", f"{AUTH}/email/send", access) == (202, None)
    token = token_in(await mailbox.next_for(email, seen=1))
    assert (await call(server, "POST", f"{AUTH}/email/verify", json={"token": token}))[0] == 204

    mails_before = len(await outbox_rows(owner_conn, email))
    status, problem = await call(server, "POST", f"{AUTH}/email/send", access)
    assert (status, problem["code"]) == (409, "email_already_verified")
    assert len(await outbox_rows(owner_conn, email)) == mails_before

    status, problem = await call(server, "POST", f"{AUTH}/email/send")
    assert (status, problem["code"]) == (401, "unauthenticated")


async def test_a_reset_token_does_not_verify_an_email(
    server: TestServer, mailbox: Mailbox, owner_conn: asyncpg.Connection
) -> None:
    tokens = await register(server)
    email = tokens["user"]["email"]
    await mailbox.next_for(email)
    await call(server, "POST", f"{AUTH}/password/forgot", json={"email": email})
    reset = token_in(await mailbox.next_for(email, seen=1))
    status, problem = await call(server, "POST", f"{AUTH}/email/verify", json={"token": reset})
    assert (status, problem["code"]) == (400, "mail_token_invalid")
    assert await _verified(owner_conn, tokens) is False


# --- password reset -----------------------------------------------------------


async def test_forgot_and_confirm_set_the_password_and_end_every_session(
    server: TestServer, mailbox: Mailbox, owner_conn: asyncpg.Connection
) -> None:
    tokens = await register(server)
    email = tokens["user"]["email"]
    await mailbox.next_for(email)
    status, other = await login(server, email)
    assert status == 200

    body = {"email": email.upper()}  # any case finds the account
    assert await call(server, "POST", f"{AUTH}/password/forgot", json=body) == (202, None)
    message = await mailbox.next_for(email, seen=1)
    assert message["Subject"] == "Reset your password"
    assert f"{PUBLIC_URL}/reset-password?token=" in message.get_content()
    token = token_in(message)

    confirm = {"token": token, "password": NEW_PASSWORD}
    assert await call(server, "POST", f"{AUTH}/password/confirm", json=confirm) == (204, None)

    for access in (tokens["access_token"], other["access_token"]):
        status, problem = await call(server, "GET", f"{AUTH}/me", access)
        assert (status, problem["code"]) == (401, "session_revoked")
    assert (await login(server, email))[0] == 401
    status, fresh = await login(server, email, NEW_PASSWORD)
    assert status == 200
    assert fresh["user"]["email_verified"] is True  # the reset mail reached its owner

    status, problem = await call(server, "POST", f"{AUTH}/password/confirm", json=confirm)
    assert (status, problem["code"]) == (410, "mail_token_used")


async def test_forgot_answers_202_for_an_unknown_email_and_sends_nothing(
    server: TestServer, owner_conn: asyncpg.Connection
) -> None:
    email = unique_email("nobody")
    status, body = await call(server, "POST", f"{AUTH}/password/forgot", json={"email": email})
    assert (status, body) == (202, None)
    assert await outbox_rows(owner_conn, email) == []
    tokens = await owner_conn.fetchval(
        "SELECT count(*) FROM mail_tokens WHERE lower(email) = lower($1)", email
    )
    assert tokens == 0

    status, problem = await call(
        server, "POST", f"{AUTH}/password/forgot", json={"email": "not an email"}
    )
    assert (status, problem["code"]) == (422, "validation_failed")


async def test_rejected_confirmations_change_nothing(
    server: TestServer, mailbox: Mailbox, owner_conn: asyncpg.Connection
) -> None:
    tokens = await register(server)
    email = tokens["user"]["email"]
    await mailbox.next_for(email)
    await call(server, "POST", f"{AUTH}/password/forgot", json={"email": email})
    token = token_in(await mailbox.next_for(email, seen=1))
    confirm = f"{AUTH}/password/confirm"

    status, problem = await call(
        server, "POST", confirm, json={"token": token, "password": "short"}
    )
    assert (status, problem["code"]) == (422, "validation_failed")
    assert problem["errors"][0]["field"] == "password"
    status, problem = await call(
        server, "POST", confirm, json={"token": "unknown", "password": NEW_PASSWORD}
    )
    assert (status, problem["code"]) == (400, "mail_token_invalid")

    await owner_conn.execute(
        "UPDATE mail_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = $1",
        hash_token(token),
    )
    status, problem = await call(
        server, "POST", confirm, json={"token": token, "password": NEW_PASSWORD}
    )
    assert (status, problem["code"]) == (410, "mail_token_expired")

    # The password, the sessions and the token are as they were.
    assert (await call(server, "GET", f"{AUTH}/me", tokens["access_token"]))[0] == 200
    assert (await login(server, email))[0] == 200
    used = await owner_conn.fetchval(
        "SELECT used_at FROM mail_tokens WHERE token_hash = $1", hash_token(token)
    )
    assert used is None


async def test_using_one_reset_link_kills_the_others(server: TestServer, mailbox: Mailbox) -> None:
    email = (await register(server))["user"]["email"]
    await mailbox.next_for(email)
    for _ in range(2):
        await call(server, "POST", f"{AUTH}/password/forgot", json={"email": email})
    older = token_in(await mailbox.next_for(email, seen=1))
    newer = token_in(await mailbox.next_for(email, seen=2))
    confirm = f"{AUTH}/password/confirm"
    assert (await call(server, "POST", confirm, json={"token": newer, "password": NEW_PASSWORD}))[
        0
    ] == 204
    status, problem = await call(
        server, "POST", confirm, json={"token": older, "password": "x" * 9}
    )
    assert (status, problem["code"]) == (410, "mail_token_used")
    assert (await login(server, email, NEW_PASSWORD))[0] == 200


# --- password change ----------------------------------------------------------


async def test_change_needs_the_current_password_and_ends_the_other_sessions(
    server: TestServer, owner_conn: asyncpg.Connection
) -> None:
    tokens = await register(server)
    email, access = tokens["user"]["email"], tokens["access_token"]
    _, other = await login(server, email)
    change = f"{AUTH}/password/change"

    wrong = {"current_password": "not the password", "new_password": NEW_PASSWORD}
    status, problem = await call(server, "POST", change, access, json=wrong)
    assert (status, problem["code"]) == (403, "wrong_password")
    assert (await call(server, "GET", f"{AUTH}/me", other["access_token"]))[0] == 200
    assert (await login(server, email))[0] == 200  # unchanged

    status, problem = await call(
        server, "POST", change, access, json={"current_password": PASSWORD, "new_password": "x"}
    )
    assert (status, problem["code"]) == (422, "validation_failed")

    right = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert await call(server, "POST", change, access, json=right) == (204, None)
    assert (await call(server, "GET", f"{AUTH}/me", access))[0] == 200  # this one stays
    status, problem = await call(server, "GET", f"{AUTH}/me", other["access_token"])
    assert (status, problem["code"]) == (401, "session_revoked")
    assert (await login(server, email))[0] == 401
    assert (await login(server, email, NEW_PASSWORD))[0] == 200

    status, problem = await call(server, "POST", change, json=right)
    assert (status, problem["code"]) == (401, "unauthenticated")


# --- the outbox ---------------------------------------------------------------


async def test_a_refused_mail_is_retried_later_and_then_delivered(
    server: TestServer, mailbox: Mailbox, owner_conn: asyncpg.Connection
) -> None:
    email = unique_email("busy")
    mailbox.refuse.add(email)
    await register(server, email)
    rows = await until(lambda: outbox_rows(owner_conn, email), lambda r: r[0]["last_error"])
    row = rows[0]
    assert row["sent_at"] is None and row["failed_at"] is None and row["attempts"] == 1
    assert "451" in row["last_error"]
    # Backed off: due again about retry_delay(1) after the failure.
    assert row["next_attempt_at"] - row["created_at"] >= retry_delay(1) * 0.9

    mailbox.refuse.discard(email)
    await _make_due(owner_conn, row["id"], server)
    message = await mailbox.next_for(email)
    assert message["Message-ID"] == f"<{row['id']}@hubbub>"
    rows = await until(lambda: outbox_rows(owner_conn, email), lambda r: r[0]["sent_at"])
    assert rows[0]["attempts"] == 2 and rows[0]["last_error"] is None


async def test_a_mail_is_given_up_after_its_last_attempt(
    server: TestServer, mailbox: Mailbox, owner_conn: asyncpg.Connection
) -> None:
    email = unique_email("gone")
    mailbox.refuse.add(email)
    await register(server, email)
    rows = await until(lambda: outbox_rows(owner_conn, email), lambda r: r[0]["attempts"] == 1)
    await until(lambda: outbox_rows(owner_conn, email), lambda r: r[0]["last_error"])
    await _make_due(owner_conn, rows[0]["id"], server)
    rows = await until(lambda: outbox_rows(owner_conn, email), lambda r: r[0]["failed_at"])
    assert rows[0]["attempts"] == 2 and rows[0]["sent_at"] is None
    assert mailbox.to(email) == []


async def test_without_smtp_a_mail_is_logged_and_counts_as_sent(
    db: Database, owner_conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    email = unique_email("logged")
    async with db.pool.acquire() as conn, conn.transaction():
        await enqueue(conn, Mail("test", email, "Hello", "the link: https://x.example/?token=t"))
    delivery = Delivery(db, LogSender("hubbub <no-reply@localhost>"), poll=3600, max_attempts=1)
    with caplog.at_level(logging.INFO, logger="hubbub.mail"):
        await until(delivery.deliver_due, lambda claimed: claimed >= 1)
    assert any(
        email in r.getMessage() and "https://x.example/?token=t" in r.getMessage()
        for r in caplog.records
    )
    rows = await outbox_rows(owner_conn, email)
    assert rows[0]["sent_at"] is not None and delivery.sent >= 1


async def _make_due(conn: asyncpg.Connection, mail_id: Any, server: TestServer) -> None:
    await conn.execute("UPDATE outbox SET next_attempt_at = now() WHERE id = $1", mail_id)
    server.app[MAIL].wake()


async def _verified(conn: asyncpg.Connection, tokens: dict[str, Any]) -> bool:
    return await conn.fetchval(
        "SELECT email_verified FROM users WHERE id = $1::uuid", tokens["user"]["id"]
    )
