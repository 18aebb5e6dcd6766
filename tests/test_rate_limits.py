"""Rate limits and lockout: the GCRA limiter on real Redis, then every limit
of the auth endpoints through a real gateway (429 + Retry-After), and the
temporary lockout after repeated failed logins."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.gateway import create_app
from hubbub.identity.login_guard import account_key
from hubbub.plugin import load_plugins
from hubbub.ratelimit import KEY_PREFIX, Limit, RateLimiter
from hubbub.storage.redis import connect_redis
from tests.support.accounts import PASSWORD, sign_up, unique_email
from tests.support.mailbox import Mailbox, token_in


def unique_key(what: str = "test") -> str:
    return f"{what}:{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
async def redis(service_urls: tuple[str, str]) -> AsyncIterator[Redis]:
    client = connect_redis(service_urls[1])
    yield client
    await client.aclose()


# --- Limit ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10/minute", Limit(10, 60)),
        ("5/second", Limit(5, 1)),
        ("100/hour", Limit(100, 3600)),
        (" 3 / day ", Limit(3, 86400)),
    ],
)
def test_a_limit_parses_count_per_unit(text: str, expected: Limit) -> None:
    assert Limit.parse(text) == expected


@pytest.mark.parametrize("text", ["", "10", "ten/minute", "10/fortnight", "0/minute", "-1/hour"])
def test_a_malformed_limit_says_what_was_expected(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        Limit.parse(text)


# --- RateLimiter on real Redis ------------------------------------------------


async def test_a_bucket_allows_its_burst_then_refuses_with_retry_after(redis: Redis) -> None:
    limiter, key, limit = RateLimiter(redis), unique_key(), Limit(3, 60)
    for _ in range(3):
        await limiter.hit(key, limit)
    with pytest.raises(AppError) as refused:
        await limiter.hit(key, limit)
    error = refused.value
    assert (error.status, error.code, error.retriable) == (429, "rate_limited", True)
    # One hit comes back every 60 / 3 = 20 seconds.
    assert 1 <= error.extra["retry_after"] <= 20


async def test_a_refused_hit_spends_nothing(redis: Redis) -> None:
    limiter, key, limit = RateLimiter(redis), unique_key(), Limit(1, 3600)
    await limiter.hit(key, limit)
    waits = [await limiter.wait(key, limit) for _ in range(5)]
    # Were refusals spent, each wait would be an hour longer than the last.
    assert all(3590 < wait <= 3600 for wait in waits)


async def test_keys_and_limits_are_separate_buckets(redis: Redis) -> None:
    limiter, key = RateLimiter(redis), unique_key()
    await limiter.hit(key, Limit(1, 60))
    await limiter.hit(unique_key(), Limit(1, 60))
    await limiter.hit(key, Limit(2, 60))  # same key, other limit


async def test_concurrent_hits_never_exceed_the_count(redis: Redis) -> None:
    limiter, key, limit = RateLimiter(redis), unique_key(), Limit(10, 60)
    waits = await asyncio.gather(*(limiter.wait(key, limit) for _ in range(50)))
    assert sum(1 for wait in waits if wait == 0) == 10


async def test_a_bucket_refills_and_its_key_expires(redis: Redis) -> None:
    limiter, key, limit = RateLimiter(redis), unique_key(), Limit(2, 1)
    await limiter.hit(key, limit)
    await limiter.hit(key, limit)
    wait = await limiter.wait(key, limit)
    assert 0 < wait <= 0.5
    bucket = f"{KEY_PREFIX}2/1:{key}"
    ttl_ms = await redis.pttl(bucket)
    assert 0 < ttl_ms <= 1000  # the key is gone once the bucket is full again
    await _until(lambda: limiter.wait(key, limit), lambda waited: waited == 0)


async def _until(probe, done, attempts: int = 100) -> None:
    """Poll ``probe`` until ``done(result)``: a bucket refills on Redis's clock."""
    for _ in range(attempts):
        if done(await probe()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never became true")


# --- the auth endpoints' limits, through a real gateway -----------------------

AUTH = "/api/v1/auth"
LOCKOUT_FAILURES = 3


@pytest.fixture(scope="module")
async def mailbox() -> AsyncIterator[Mailbox]:
    box = Mailbox()
    await box.start()
    yield box
    await box.close()


@pytest.fixture(scope="module")
async def server(ray_cluster: Settings, mailbox: Mailbox) -> AsyncIterator[TestServer]:
    """A gateway with small limits (the suite's shared one has large ones)."""
    settings = ray_cluster.model_copy(
        update={
            "smtp_url": mailbox.url,
            "login_limit_per_ip": "8/minute",
            "login_limit_per_account": "10/minute",
            "login_lockout_failures": LOCKOUT_FAILURES,
            "login_lockout_minutes": 15.0,
            "email_send_limit": "1/minute",
            "password_forgot_limit_per_email": "2/hour",
            "password_forgot_limit_per_ip": "4/hour",
        }
    )
    gateway = TestServer(create_app(settings, load_plugins(["tests.support.probe"])))
    await gateway.start_server()
    yield gateway
    await gateway.close()


def client_ip() -> str:
    """A loopback address of this test's own: per-address buckets stay apart."""
    a, b, c = random.randrange(256), random.randrange(256), random.randrange(1, 255)
    return f"127.{a}.{b}.{c}"


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


async def call(
    server: TestServer,
    path: str,
    json: Any = None,
    *,
    ip: str = "127.0.0.1",
    token: str | None = None,
) -> Answer:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connector = aiohttp.TCPConnector(local_addr=(ip, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.post(server.make_url(path), json=json, headers=headers) as response,
    ):
        text = await response.text()
        body = await response.json(content_type=None) if text else None
        return Answer(response.status, body, response.headers)


async def login(
    server: TestServer,
    email: str,
    password: str = PASSWORD,
    ip: str = "",
    device_token: str | None = None,
) -> Answer:
    body = {"email": email, "password": password}
    if device_token is not None:
        body["device_token"] = device_token
    return await call(server, f"{AUTH}/login", body, ip=ip or client_ip())


def assert_limited(answer: Answer, code: str = "rate_limited", status: int = 429) -> int:
    """The answer is a refusal with a Retry-After; its seconds."""
    assert (answer.status, answer.code) == (status, code), answer.body
    retry_after = int(answer.headers["Retry-After"])
    assert retry_after == answer.body["retry_after"] >= 1
    return retry_after


async def test_login_is_limited_per_address(server: TestServer) -> None:
    ip = client_ip()
    for _ in range(8):  # a different unknown email each time: only the address repeats
        assert (await login(server, unique_email(), ip=ip)).status == 401
    retry_after = assert_limited(await login(server, unique_email(), ip=ip))
    assert retry_after <= 60 // 8 + 1
    assert (await login(server, unique_email(), ip=client_ip())).status == 401


async def test_login_is_limited_per_account_and_a_refusal_writes_nothing(
    server: TestServer, owner_conn: asyncpg.Connection
) -> None:
    tokens = await sign_up(str(server.make_url("")).rstrip("/"))
    email = tokens["user"]["email"]
    for _ in range(10):  # from a different address each time
        assert (await login(server, email)).status == 200
    sessions = await _sessions(owner_conn, tokens)
    assert_limited(await login(server, email.upper()))  # any case is the same account
    assert await _sessions(owner_conn, tokens) == sessions


async def test_failed_logins_lock_the_account_until_the_lock_ends(
    server: TestServer, redis: Redis
) -> None:
    email = (await sign_up(str(server.make_url("")).rstrip("/")))["user"]["email"]
    for _ in range(LOCKOUT_FAILURES):
        assert (await login(server, email, "wrong password")).code == "invalid_credentials"
    retry_after = assert_limited(await login(server, email), "account_locked", 423)
    assert 15 * 60 - 5 <= retry_after <= 15 * 60
    # The lock ends on its own: here, by expiring its key early.
    await redis.delete(f"hubbub:login:locked:{account_key(email)}")
    assert (await login(server, email)).status == 200


async def test_a_stranger_cannot_lock_the_owner_out_of_a_known_device(
    server: TestServer,
) -> None:
    """The lock holds back unknown devices only: the owner's device, which kept the
    device token of an earlier sign-in, still signs in; failures from a known
    device forget it instead of locking the account."""
    email = (await sign_up(str(server.make_url("")).rstrip("/")))["user"]["email"]
    first = await login(server, email)
    device_token = first.body["device_token"]
    assert device_token.startswith("hbd_")
    other = (await sign_up(str(server.make_url("")).rstrip("/")))["user"]["email"]
    others_device = (await login(server, other)).body["device_token"]

    for _ in range(LOCKOUT_FAILURES):  # a stranger, from anywhere
        assert (await login(server, email, "wrong password")).code == "invalid_credentials"
    assert_limited(await login(server, email), "account_locked", 423)
    assert_limited(await login(server, email, device_token=others_device), "account_locked", 423)
    again = await login(server, email, device_token=device_token)
    assert again.status == 200 and again.body["device_token"] == device_token

    for _ in range(LOCKOUT_FAILURES):  # guessing from the known device itself
        wrong = await login(server, email, "wrong password", device_token=device_token)
        assert wrong.code == "invalid_credentials"
    assert_limited(await login(server, email, device_token=device_token), "account_locked", 423)


async def test_a_successful_login_resets_the_failure_count(server: TestServer) -> None:
    email = (await sign_up(str(server.make_url("")).rstrip("/")))["user"]["email"]
    for _ in range(2):
        for _ in range(LOCKOUT_FAILURES - 1):
            assert (await login(server, email, "wrong password")).status == 401
        assert (await login(server, email)).status == 200


async def test_an_unknown_email_locks_like_an_account(server: TestServer) -> None:
    email = unique_email("nobody")
    for _ in range(LOCKOUT_FAILURES):
        assert (await login(server, email, "wrong password")).code == "invalid_credentials"
    assert_limited(await login(server, email), "account_locked", 423)


async def test_a_password_reset_lifts_the_lock(server: TestServer, mailbox: Mailbox) -> None:
    email = (await sign_up(str(server.make_url("")).rstrip("/")))["user"]["email"]
    await mailbox.next_for(email)
    for _ in range(LOCKOUT_FAILURES):
        await login(server, email, "wrong password")
    assert (await login(server, email)).code == "account_locked"
    assert (await call(server, f"{AUTH}/password/forgot", {"email": email})).status == 202
    token = token_in(await mailbox.next_for(email, seen=1))
    confirm = {"token": token, "password": "a brand new password"}
    assert (await call(server, f"{AUTH}/password/confirm", confirm)).status == 204
    assert (await login(server, email, "a brand new password")).status == 200


async def test_verification_mails_are_limited_to_one_a_minute(
    server: TestServer, owner_conn: asyncpg.Connection
) -> None:
    tokens = await sign_up(str(server.make_url("")).rstrip("/"))  # registering sent one
    answer = await call(server, f"{AUTH}/email/send", token=tokens["access_token"])
    assert 50 <= assert_limited(answer) <= 60
    mails = await owner_conn.fetchval(
        "SELECT count(*) FROM outbox WHERE recipient = $1", tokens["user"]["email"]
    )
    assert mails == 1


async def test_forgot_password_is_limited_per_email_known_or_not(
    server: TestServer, owner_conn: asyncpg.Connection
) -> None:
    known = (await sign_up(str(server.make_url("")).rstrip("/")))["user"]["email"]
    for email in (known, unique_email("nobody")):
        for _ in range(2):
            assert (
                await call(server, f"{AUTH}/password/forgot", {"email": email}, ip=client_ip())
            ).status == 202
        answer = await call(server, f"{AUTH}/password/forgot", {"email": email}, ip=client_ip())
        assert assert_limited(answer) > 60  # 2 an hour: one back every 30 minutes
    resets = await owner_conn.fetchval(
        "SELECT count(*) FROM outbox WHERE recipient = $1 AND kind = 'reset_password'", known
    )
    assert resets == 2


async def test_forgot_password_is_limited_per_address(server: TestServer) -> None:
    ip = client_ip()
    for _ in range(4):
        answer = await call(server, f"{AUTH}/password/forgot", {"email": unique_email()}, ip=ip)
        assert answer.status == 202
    answer = await call(server, f"{AUTH}/password/forgot", {"email": unique_email()}, ip=ip)
    assert_limited(answer)


async def test_password_change_attempts_are_limited(server: TestServer) -> None:
    tokens = await sign_up(str(server.make_url("")).rstrip("/"))
    wrong = {"current_password": "wrong password", "new_password": "a brand new password"}
    path, access = f"{AUTH}/password/change", tokens["access_token"]
    for _ in range(10):
        assert (await call(server, path, wrong, token=access)).code == "wrong_password"
    assert_limited(await call(server, path, wrong, token=access))


async def _sessions(conn: asyncpg.Connection, tokens: dict[str, Any]) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM sessions WHERE user_id = $1::uuid", tokens["user"]["id"]
    )


# --- registration, on gateways of their own -------------------------------------

ASYNC_SIGNUP = f"{AUTH}/signup/async"


def _registration(path: str) -> dict[str, Any]:
    body = {"email": unique_email("limited"), "password": PASSWORD, "name": "Limited"}
    return body | {"tenant_name": "Limited Co"} if path == ASYNC_SIGNUP else body


async def test_registrations_are_limited_per_address_across_both_routes(
    serve: Callable[..., Awaitable[TestServer]],
) -> None:
    server = await serve(register_limit_per_ip="3/hour", register_limit_global="1000/hour")
    ip = client_ip()
    for path in (f"{AUTH}/register", ASYNC_SIGNUP, f"{AUTH}/register"):
        answer = await call(server, path, _registration(path), ip=ip)
        assert answer.status in (201, 202), answer.body
    for path in (f"{AUTH}/register", ASYNC_SIGNUP):
        assert assert_limited(await call(server, path, _registration(path), ip=ip)) > 60
    other = await call(server, f"{AUTH}/register", _registration(""), ip=client_ip())
    assert other.status == 201, other.body


async def test_registrations_are_limited_on_the_whole_deployment(
    serve: Callable[..., Awaitable[TestServer]], redis: Redis
) -> None:
    # A limit of this test's own: its bucket is no other test's (and starts full).
    await redis.delete(f"{KEY_PREFIX}2/86400:register:global")
    server = await serve(register_limit_per_ip="1000/hour", register_limit_global="2/day")
    for _ in range(2):
        answer = await call(server, f"{AUTH}/register", _registration(""), ip=client_ip())
        assert answer.status == 201, answer.body
    refused = await call(server, f"{AUTH}/register", _registration(""), ip=client_ip())
    assert assert_limited(refused) > 3600
