"""Login throttling: rate limits per address and per account, lockout, and known devices.

Before a password is checked, the request spends one hit of its address's
budget (``HUBBUB_LOGIN_LIMIT_PER_IP``) and one of the account's
(``HUBBUB_LOGIN_LIMIT_PER_ACCOUNT``), and is refused while the account is
locked. ``HUBBUB_LOGIN_LOCKOUT_FAILURES`` consecutive failures lock it for
``HUBBUB_LOGIN_LOCKOUT_MINUTES``; a successful login resets the count.

The lock and the account's budget hold back *unknown devices* only, so a
stranger who fails on purpose cannot lock the owner out (OWASP's "device
cookie" answer to lockout as denial of service). Every successful sign-in
hands the client a device token (``hbd_...``, kept in Redis for
:data:`DEVICE_DAYS`); a login that sends it back for the same account is
from a known device: it has a budget and a failure count of its own, and
``HUBBUB_LOGIN_LOCKOUT_FAILURES`` failures in a row forget the device (it is
unknown from then on). The per-address budget applies to every attempt.

Accounts are keyed by a hash of the lower-cased email, whether or not an
account has it: an unknown address is throttled and locked exactly like a
known one, so neither answer tells whether an account exists.
"""

from __future__ import annotations

import hashlib
import math
import secrets

from aiohttp import web
from redis.asyncio import Redis

from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.ratelimit import Limit, RateLimiter

__all__ = ["DEVICE_DAYS", "LOGIN_GUARD", "LoginGuard", "account_key"]

_PREFIX = "hubbub:login:"
#: How long a device stays known after its last sign-in.
DEVICE_DAYS = 180
_DEVICE_SECONDS = DEVICE_DAYS * 24 * 3600
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

    async def known_device(self, email: str, device_token: str | None) -> str | None:
        """The device id of ``device_token`` if it is a known device of ``email``'s account."""
        if not device_token:
            return None
        device = _device_id(device_token)
        owner = await self._redis.get(f"{_PREFIX}device:{device}")
        return device if owner is not None and owner.decode() == account_key(email) else None

    async def check(self, email: str, ip: str | None, device: str | None = None) -> None:
        """Spend the attempt's budgets; AppError 429 ``rate_limited`` or 423 ``account_locked``.

        ``device``: the attempt comes from this known device (:meth:`known_device`),
        which the account's lock and budget do not hold back.
        """
        account = account_key(email)
        await self._limiter.hit(f"login:ip:{ip or 'unknown'}", self._per_ip, name="login_ip")
        if device is not None:
            device_key = f"login:device:{device}"
            await self._limiter.hit(device_key, self._per_account, name="login_device")
            return
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
        await self._limiter.hit(f"login:account:{account}", self._per_account, name="login_account")

    async def failed(self, email: str, device: str | None = None) -> bool:
        """Count a failed login; True when it locked the account (or forgot the
        known ``device`` it came from)."""
        account = account_key(email)
        if device is None:
            keys = [f"{_PREFIX}failures:{account}", f"{_PREFIX}locked:{account}"]
        else:  # the "lock" of a known device is forgetting it
            keys = [f"{_PREFIX}device-failures:{device}", f"{_PREFIX}device:{device}"]
        args = [self._failures, self._lock_seconds, _FAILURES_KEPT_SECONDS]
        locked = bool(await self._fail(keys=keys, args=args))
        if locked and device is not None:
            await self._redis.delete(f"{_PREFIX}device:{device}")
        return locked

    async def succeeded(self, email: str, device: str | None = None) -> None:
        """A correct password: the failure counts (the account's and ``device``'s) start again."""
        keys = [f"{_PREFIX}failures:{account_key(email)}"]
        if device is not None:
            keys.append(f"{_PREFIX}device-failures:{device}")
        await self._redis.delete(*keys)

    async def remember_device(self, email: str, device_token: str | None) -> str:
        """After a sign-in: the device token to hand out, ``device_token`` again
        (known for longer) if it is this account's, else a new one."""
        device = await self.known_device(email, device_token)
        if device is None or device_token is None:
            device_token = f"hbd_{secrets.token_urlsafe(32)}"
            device = _device_id(device_token)
        await self._redis.set(f"{_PREFIX}device:{device}", account_key(email), ex=_DEVICE_SECONDS)
        return device_token

    async def unlock(self, email: str) -> None:
        """Lift a lock and forget failures (after a password reset)."""
        account = account_key(email)
        await self._redis.delete(f"{_PREFIX}failures:{account}", f"{_PREFIX}locked:{account}")


def _device_id(device_token: str) -> str:
    """What Redis keeps of a device token: a hash (a dump of Redis signs nobody in)."""
    return hashlib.sha256(device_token.encode()).hexdigest()[:32]


LOGIN_GUARD = web.AppKey("login_guard", LoginGuard)
