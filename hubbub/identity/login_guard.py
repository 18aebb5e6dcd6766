"""Login throttling: rate limits per address and per account, and lockout.

Before a password is checked, the request spends one hit of its address's
budget (``HUBBUB_LOGIN_LIMIT_PER_IP``) and one of the account's
(``HUBBUB_LOGIN_LIMIT_PER_ACCOUNT``), and is refused while the account is
locked. ``HUBBUB_LOGIN_LOCKOUT_FAILURES`` consecutive failures lock it for
``HUBBUB_LOGIN_LOCKOUT_MINUTES``; a successful login resets the count.

Accounts are keyed by a hash of the lower-cased email, whether or not an
account has it: an unknown address is throttled and locked exactly like a
known one, so neither answer tells whether an account exists.
"""

from __future__ import annotations

import hashlib
import math

from aiohttp import web
from redis.asyncio import Redis

from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.ratelimit import Limit, RateLimiter

__all__ = ["LOGIN_GUARD", "LoginGuard", "account_key"]

_PREFIX = "hubbub:login:"
#: A failure count nobody adds to for this long starts again from zero.
_FAILURES_KEPT_SECONDS = 24 * 3600

# KEYS: failures, lock. ARGV: failures that lock, lock seconds, failures kept.
# Returns 1 when this failure locked the account.
_FAIL = """
local failures = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if failures >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


def account_key(email: str) -> str:
    """The throttling key of an email, any case (a hash: no address in Redis)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


class LoginGuard:
    """Owns: nothing in memory; failure counts and locks live in Redis.

    Concurrency: every gateway shares them; each update is atomic.
    Failure: a Redis error fails the login (500) rather than skip the checks.
    """

    def __init__(self, redis: Redis, limiter: RateLimiter, settings: Settings) -> None:
        self._redis = redis
        self._limiter = limiter
        self._per_ip = Limit.parse(settings.login_limit_per_ip)
        self._per_account = Limit.parse(settings.login_limit_per_account)
        self._failures = settings.login_lockout_failures
        self._lock_seconds = max(1, round(settings.login_lockout_minutes * 60))
        self._fail = redis.register_script(_FAIL)

    async def check(self, email: str, ip: str | None) -> None:
        """Spend the attempt's budgets; AppError 429 ``rate_limited`` or 423 ``account_locked``."""
        account = account_key(email)
        await self._limiter.hit(f"login:ip:{ip or 'unknown'}", self._per_ip)
        locked_ms = await self._redis.pttl(f"{_PREFIX}locked:{account}")
        if locked_ms > 0:
            retry_after = max(1, math.ceil(locked_ms / 1000))
            raise AppError(
                "account_locked",
                f"too many failed logins: this account is locked; retry in {retry_after}s",
                status=423,
                retriable=True,
                extra={"retry_after": retry_after},
            )
        await self._limiter.hit(f"login:account:{account}", self._per_account)

    async def failed(self, email: str) -> bool:
        """Count a failed login; True when it locked the account."""
        account = account_key(email)
        keys = [f"{_PREFIX}failures:{account}", f"{_PREFIX}locked:{account}"]
        args = [self._failures, self._lock_seconds, _FAILURES_KEPT_SECONDS]
        return bool(await self._fail(keys=keys, args=args))

    async def succeeded(self, email: str) -> None:
        """A correct password: the failure count starts again."""
        await self._redis.delete(f"{_PREFIX}failures:{account_key(email)}")

    async def unlock(self, email: str) -> None:
        """Lift a lock and forget failures (after a password reset)."""
        account = account_key(email)
        await self._redis.delete(f"{_PREFIX}failures:{account}", f"{_PREFIX}locked:{account}")


LOGIN_GUARD = web.AppKey("login_guard", LoginGuard)
