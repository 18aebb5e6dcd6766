"""Two-factor authentication: the pure TOTP, sealing and recovery-code parts,
then every flow through a real gateway — setup, confirm, login challenges
answered with a TOTP code or a recovery code, replay and reuse refused,
regenerating and revoking recovery codes, disabling."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pyotp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from hubbub.config import Settings
from hubbub.gateway import create_app
from hubbub.identity import two_factor
from hubbub.identity.sealing import SecretBox, SecretUnreadable
from hubbub.identity.totp import (
    match_step,
    new_recovery_codes,
    new_secret,
    recovery_code_hash,
)
from hubbub.plugin import load_plugins
from tests.support.accounts import PASSWORD
from tests.support.processes import TWO_FACTOR_KEY
from tests.test_auth_sessions import call, login, new_account

TWO_FA = "/api/v1/auth/2fa"
KEY = TWO_FACTOR_KEY  # the suite's: every gateway of it reads the same signing keys

# ---------------------------------------------------------------- pure parts


def test_a_code_matches_its_step_and_one_either_side_only() -> None:
    secret = new_secret()
    totp = pyotp.TOTP(secret)
    now = 1_700_000_015.0
    step = int(now) // 30
    for offset in (-1, 0, 1):
        assert match_step(secret, totp.at((step + offset) * 30), now) == step + offset
    for offset in (-3, -2, 2, 3):
        code = totp.at((step + offset) * 30)
        near = {totp.at((step + o) * 30) for o in (-1, 0, 1)}
        if code not in near:  # a 6-digit collision is possible, if unlikely
            assert match_step(secret, code, now) is None


def test_a_sealed_secret_opens_only_with_its_key_and_its_user() -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    box = SecretBox(KEY)
    sealed = box.seal("JBSWY3DPEHPK3PXP", user)
    assert b"JBSWY3DPEHPK3PXP" not in sealed
    assert box.open(sealed, user) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretUnreadable):
        SecretBox("x" * 40).open(sealed, user)
    with pytest.raises(SecretUnreadable):
        box.open(sealed, other)
    with pytest.raises(SecretUnreadable):
        SecretBox(None).open(sealed, user)


def test_plain_secrets_stay_readable_once_a_key_is_set() -> None:
    user = uuid.uuid4()
    plain = SecretBox(None).seal("JBSWY3DPEHPK3PXP", user)
    assert SecretBox(KEY).open(plain, user) == "JBSWY3DPEHPK3PXP"


def test_recovery_codes_are_distinct_and_forgiving_to_type() -> None:
    codes = new_recovery_codes()
    assert len(set(codes)) == 10
    assert all(len(code) == 19 and code.count("-") == 3 for code in codes)
    code = codes[0]
    typed = " " + code.upper().replace("-", " ") + " "
    assert recovery_code_hash(typed) == recovery_code_hash(code)


# ---------------------------------------------------------------- through a gateway


@pytest.fixture(scope="module")
async def sealed_gateway(ray_cluster: Settings) -> AsyncIterator[TestServer]:
    """A gateway that stores TOTP secrets sealed under HUBBUB_TWO_FACTOR_KEY."""
    settings = ray_cluster.model_copy(update={"two_factor_key": SecretStr(KEY)})
    server = TestServer(create_app(settings, load_plugins([])))
    await server.start_server()
    yield server
    await server.close()


def code_at(secret: str, steps_ahead: int = 0) -> str:
    """The code of the current step (or one ahead): both stay valid for a step
    after the clock moves on, so a test never races a step boundary."""
    return pyotp.TOTP(secret).at(int(time.time()) + 30 * steps_ahead)


def wrong_code(secret: str) -> str:
    totp = pyotp.TOTP(secret)
    near = {totp.at(int(time.time()) + 30 * offset) for offset in range(-3, 4)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in near)


async def enable(server: TestServer, tokens: dict[str, Any]) -> tuple[str, list[str]]:
    """Set up and confirm 2FA for the account of ``tokens``: ``(secret, codes)``."""
    access = tokens["access_token"]
    status, setup, _ = await call(
        server, "POST", f"{TWO_FA}/setup", access, json={"password": PASSWORD}
    )
    assert status == 200, setup
    confirm = {"code": code_at(setup["secret"])}
    status, confirmed, _ = await call(server, "POST", f"{TWO_FA}/confirm", access, json=confirm)
    assert status == 200, confirmed
    return setup["secret"], confirmed["recovery_codes"]


async def challenge(server: TestServer, email: str) -> str:
    body = {"email": email, "password": PASSWORD}
    status, answer, _ = await call(server, "POST", "/api/v1/auth/login", json=body)
    assert status == 202, answer
    assert answer["two_factor_required"] is True and answer["expires_in"] == 300
    assert "access_token" not in answer
    return answer["challenge_token"]


async def verify(server: TestServer, token: str, **proof: str) -> tuple[int, Any]:
    body = {"challenge_token": token, **proof}
    status, answer, _ = await call(server, "POST", f"{TWO_FA}/verify", json=body)
    return status, answer


async def test_setup_is_pending_until_confirmed_and_the_secret_is_sealed(
    sealed_gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    tokens = await new_account(sealed_gateway)
    access = tokens["access_token"]
    status, view, _ = await call(sealed_gateway, "GET", TWO_FA, access)
    assert (status, view["status"]) == (200, "disabled")

    wrong = {"password": "not the password"}
    status, problem, _ = await call(sealed_gateway, "POST", f"{TWO_FA}/setup", access, json=wrong)
    assert (status, problem["code"]) == (403, "wrong_password")

    body = {"password": PASSWORD}
    status, setup, _ = await call(sealed_gateway, "POST", f"{TWO_FA}/setup", access, json=body)
    assert status == 200
    assert setup["otpauth_url"].startswith("otpauth://totp/hubbub:")
    assert f"secret={setup['secret']}" in setup["otpauth_url"]
    stored = await owner_conn.fetchval(
        "SELECT secret FROM two_factor WHERE user_id = $1", uuid.UUID(tokens["user"]["id"])
    )
    assert setup["secret"].encode() not in stored, "expected the secret sealed at rest"
    status, view, _ = await call(sealed_gateway, "GET", TWO_FA, access)
    assert view == {"status": "pending", "enabled_at": None, "recovery_codes_remaining": 0}
    # Pending: login still answers tokens.
    assert "access_token" in await login(sealed_gateway, tokens["user"]["email"])

    bad = {"code": wrong_code(setup["secret"])}
    status, problem, _ = await call(sealed_gateway, "POST", f"{TWO_FA}/confirm", access, json=bad)
    assert (status, problem["code"]) == (400, "invalid_two_factor_code")
    good = {"code": code_at(setup["secret"])}
    status, confirmed, _ = await call(
        sealed_gateway, "POST", f"{TWO_FA}/confirm", access, json=good
    )
    assert status == 200 and len(set(confirmed["recovery_codes"])) == 10
    status, view, _ = await call(sealed_gateway, "GET", TWO_FA, access)
    assert view["status"] == "enabled" and view["recovery_codes_remaining"] == 10
    hashes = await owner_conn.fetch(
        "SELECT code_hash FROM recovery_codes WHERE user_id = $1", uuid.UUID(tokens["user"]["id"])
    )
    assert len(hashes) == 10
    assert all(
        code.encode() not in row["code_hash"]
        for row in hashes
        for code in confirmed["recovery_codes"]
    )


async def test_setup_and_confirm_refuse_the_wrong_state(sealed_gateway: TestServer) -> None:
    tokens = await new_account(sealed_gateway)
    access = tokens["access_token"]
    body = {"code": "123456"}
    status, problem, _ = await call(sealed_gateway, "POST", f"{TWO_FA}/confirm", access, json=body)
    assert (status, problem["code"]) == (409, "two_factor_not_pending")
    secret, _ = await enable(sealed_gateway, tokens)
    again = {"password": PASSWORD}
    status, problem, _ = await call(sealed_gateway, "POST", f"{TWO_FA}/setup", access, json=again)
    assert (status, problem["code"]) == (409, "two_factor_already_enabled")
    body = {"code": code_at(secret, 1)}
    status, problem, _ = await call(sealed_gateway, "POST", f"{TWO_FA}/confirm", access, json=body)
    assert (status, problem["code"]) == (409, "two_factor_not_pending")
    status, problem, _ = await call(
        sealed_gateway, "POST", f"{TWO_FA}/confirm", access, json={"code": "12ab"}
    )
    assert (status, problem["code"]) == (422, "validation_failed")


async def test_login_with_a_code_then_the_code_and_challenge_are_spent(
    sealed_gateway: TestServer,
) -> None:
    tokens = await new_account(sealed_gateway)
    secret, _ = await enable(sealed_gateway, tokens)
    email = tokens["user"]["email"]

    token = await challenge(sealed_gateway, email)
    code = code_at(secret, 1)  # newer than the step confirm used
    status, answer = await verify(sealed_gateway, token, code=code)
    assert status == 200, answer
    assert answer["user"] == tokens["user"]
    status, me, _ = await call(sealed_gateway, "GET", "/api/v1/auth/me", answer["access_token"])
    assert status == 200 and me["id"] == tokens["user"]["id"]

    status, problem = await verify(sealed_gateway, token, code=code)
    assert (status, problem["code"]) == (401, "challenge_used")
    replay = await challenge(sealed_gateway, email)
    status, problem = await verify(sealed_gateway, replay, code=code)
    assert (status, problem["code"]) == (401, "two_factor_code_reused")
    status, problem = await verify(sealed_gateway, replay, code=code_at(secret))
    assert (status, problem["code"]) == (401, "two_factor_code_reused")


async def test_login_with_a_recovery_code_works_once(sealed_gateway: TestServer) -> None:
    tokens = await new_account(sealed_gateway)
    _, codes = await enable(sealed_gateway, tokens)
    email = tokens["user"]["email"]

    status, answer = await verify(
        sealed_gateway, await challenge(sealed_gateway, email), recovery_code=codes[0].upper()
    )
    assert status == 200 and answer["user"]["id"] == tokens["user"]["id"]
    status, view, _ = await call(sealed_gateway, "GET", TWO_FA, answer["access_token"])
    assert view["recovery_codes_remaining"] == 9

    status, problem = await verify(
        sealed_gateway, await challenge(sealed_gateway, email), recovery_code=codes[0]
    )
    assert (status, problem["code"]) == (401, "recovery_code_used")


async def test_wrong_answers_have_their_own_codes_and_exhaust_the_challenge(
    sealed_gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    tokens = await new_account(sealed_gateway)
    secret, _ = await enable(sealed_gateway, tokens)
    email = tokens["user"]["email"]

    status, problem = await verify(sealed_gateway, "no-such-challenge", code="123456")
    assert (status, problem["code"]) == (401, "invalid_challenge")
    token = await challenge(sealed_gateway, email)
    status, problem = await verify(sealed_gateway, token, recovery_code="aaaa-bbbb-cccc-dddd")
    assert (status, problem["code"]) == (401, "invalid_recovery_code")
    both = {"code": "123456", "recovery_code": "aaaa-bbbb-cccc-dddd"}
    status, problem = await verify(sealed_gateway, token, **both)
    assert (status, problem["code"]) == (422, "validation_failed")
    for _ in range(4):
        status, problem = await verify(sealed_gateway, token, code=wrong_code(secret))
        assert (status, problem["code"]) == (401, "invalid_two_factor_code")
    status, problem = await verify(sealed_gateway, token, code=code_at(secret, 1))
    assert (status, problem["code"]) == (401, "challenge_exhausted")

    late = await challenge(sealed_gateway, email)
    await owner_conn.execute(
        "UPDATE login_challenges SET expires_at = now() - interval '1 second' "
        "WHERE user_id = $1 AND used_at IS NULL",
        uuid.UUID(tokens["user"]["id"]),
    )
    status, problem = await verify(sealed_gateway, late, code=code_at(secret, 1))
    assert (status, problem["code"]) == (401, "challenge_expired")


async def test_regenerating_codes_kills_the_old_ones_and_revoking_one_counts_down(
    sealed_gateway: TestServer,
) -> None:
    tokens = await new_account(sealed_gateway)
    access = tokens["access_token"]
    _, old = await enable(sealed_gateway, tokens)
    path = f"{TWO_FA}/recovery-codes"
    status, problem, _ = await call(sealed_gateway, "POST", path, access, json={"password": "x"})
    assert (status, problem["code"]) == (403, "wrong_password")
    status, fresh, _ = await call(sealed_gateway, "POST", path, access, json={"password": PASSWORD})
    assert status == 200 and not set(fresh["recovery_codes"]) & set(old)

    revoke = f"{path}/revoke"
    body = {"password": PASSWORD, "code": old[1]}
    status, problem, _ = await call(sealed_gateway, "POST", revoke, access, json=body)
    assert (status, problem["code"]) == (400, "invalid_recovery_code")
    body = {"password": PASSWORD, "code": fresh["recovery_codes"][1]}
    status, left, _ = await call(sealed_gateway, "POST", revoke, access, json=body)
    assert (status, left) == (200, {"remaining": 9})
    status, problem, _ = await call(sealed_gateway, "POST", revoke, access, json=body)
    assert (status, problem["code"]) == (400, "invalid_recovery_code")

    email = tokens["user"]["email"]
    for dead in (old[2], fresh["recovery_codes"][1]):
        token = await challenge(sealed_gateway, email)
        status, problem = await verify(sealed_gateway, token, recovery_code=dead)
        assert (status, problem["code"]) == (401, "invalid_recovery_code")
    token = await challenge(sealed_gateway, email)
    status, _ = await verify(sealed_gateway, token, recovery_code=fresh["recovery_codes"][2])
    assert status == 200


async def test_disable_needs_the_password_and_login_answers_tokens_again(
    sealed_gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    tokens = await new_account(sealed_gateway)
    access = tokens["access_token"]
    await enable(sealed_gateway, tokens)
    path = f"{TWO_FA}/disable"
    status, problem, _ = await call(sealed_gateway, "POST", path, access, json={"password": "x"})
    assert (status, problem["code"]) == (403, "wrong_password")
    status, _, _ = await call(sealed_gateway, "POST", path, access, json={"password": PASSWORD})
    assert status == 204
    user_id = uuid.UUID(tokens["user"]["id"])
    assert (
        await owner_conn.fetchval("SELECT count(*) FROM two_factor WHERE user_id = $1", user_id)
        == 0
    )
    assert (
        await owner_conn.fetchval("SELECT count(*) FROM recovery_codes WHERE user_id = $1", user_id)
        == 0
    )
    assert "access_token" in await login(sealed_gateway, tokens["user"]["email"])
    status, problem, _ = await call(
        sealed_gateway, "POST", path, access, json={"password": PASSWORD}
    )
    assert (status, problem["code"]) == (409, "two_factor_not_enabled")
    body = {"password": PASSWORD}
    status, problem, _ = await call(
        sealed_gateway, "POST", f"{TWO_FA}/recovery-codes", access, json=body
    )
    assert (status, problem["code"]) == (409, "two_factor_not_enabled")


async def test_every_2fa_route_needs_a_bearer_token(sealed_gateway: TestServer) -> None:
    status, problem, _ = await call(sealed_gateway, "GET", TWO_FA)
    assert (status, problem["code"]) == (401, "unauthenticated")
    body = {"password": PASSWORD}
    for route in ("setup", "recovery-codes", "disable"):
        status, problem, _ = await call(sealed_gateway, "POST", f"{TWO_FA}/{route}", json=body)
        assert (status, problem["code"]) == (401, "unauthenticated"), route


async def test_plain_storage_works_without_a_key(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    """A deployment without HUBBUB_TWO_FACTOR_KEY stores secrets plainly and they
    work. (Every gateway of the suite has the key, since they share the token
    signing keys; so this runs the setup's storage path with a keyless box.)"""
    tokens = await new_account(gateway)
    user_id = uuid.UUID(tokens["user"]["id"])
    secret, keyless = new_secret(), SecretBox(None)
    async with owner_conn.transaction():
        await two_factor.begin_setup(owner_conn, user_id, keyless.seal(secret, user_id))
        await two_factor.confirm(owner_conn, keyless, user_id, code_at(secret), time.time())
    stored = await owner_conn.fetchval("SELECT secret FROM two_factor WHERE user_id = $1", user_id)
    assert stored == b"\x00" + secret.encode()
    assert SecretBox(KEY).open(stored, user_id) == secret  # a key set later still reads it
