"""Rate limits kept in Redis, shared by every gateway of a deployment.

A :class:`Limit` is "``count`` per ``per_seconds``"; :meth:`RateLimiter.hit`
spends one unit of a key's budget or raises AppError 429 ``rate_limited``
with ``retry_after`` (whole seconds, also sent as ``Retry-After``).

The algorithm is GCRA (the generic cell rate algorithm, a leaky bucket kept
as one timestamp per key): a key may burst ``count`` hits at once, then
earns one hit back every ``per_seconds / count``. Unlike a fixed window it
never allows ``2 * count`` across a window boundary, and unlike a sliding
log it stores one value per key whatever the count. The check and the update
run in one Lua script on Redis's own clock, so gateways with skewed clocks
and concurrent hits still agree; a key expires once its bucket is full again.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

from aiohttp import web
from redis.asyncio import Redis

from hubbub.errors import AppError
from hubbub.metrics import RATE_LIMIT_REFUSALS

__all__ = ["KEY_PREFIX", "RATE_LIMITER", "Limit", "RateLimiter"]

KEY_PREFIX = "hubbub:rl:"

# KEYS[1]: the bucket. ARGV: emission interval and period, in microseconds.
# Returns 0 when allowed, else the microseconds until the next hit would be.
_GCRA = """
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if now < allow_at then return allow_at - now end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
return 0
"""

_MICROS = 1_000_000


@dataclass(frozen=True)
class Limit:
    """``count`` hits per ``per_seconds``, e.g. ``Limit.parse("10/minute")``."""

    count: int
    per_seconds: int

    UNITS: ClassVar[dict[str, int]] = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
    _FORM: ClassVar[re.Pattern[str]] = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")

    def __post_init__(self) -> None:
        if self.count < 1 or self.per_seconds < 1:
            raise ValueError(f"expected a positive count and period, got {self}")

    @classmethod
    def parse(cls, text: str) -> Limit:
        """``"<count>/<second|minute|hour|day>"``; ValueError otherwise."""
        match = cls._FORM.match(text)
        if match is None:
            raise ValueError(f"expected a limit like '10/minute', got {text!r}")
        return cls(int(match[1]), cls.UNITS[match[2]])

    def __str__(self) -> str:
        return f"{self.count} per {self.per_seconds}s"


class RateLimiter:
    """Owns: nothing in memory; the buckets live in Redis under ``hubbub:rl:``.

    Concurrency: any number of gateways and tasks; each hit is one atomic
    script. Durability: buckets are short-lived state, lost with Redis (which
    only forgives callers). Failure: a Redis error propagates (the request
    fails with 500) rather than letting traffic through unchecked.
    """

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_GCRA)

    async def hit(self, key: str, limit: Limit, *, name: str | None = None) -> None:
        """Spend one hit of ``key``'s budget under ``limit``; AppError 429 when spent.

        ``key`` names the bucket (``"login:ip:203.0.113.9"``); the same key
        with a different limit is a different bucket. A refusal is counted in
        ``hubbub_rate_limit_refusals`` under ``name``, by default the key's
        first ``:``-separated part (``login``): a fixed word, never an id.
        """
        wait = await self.wait(key, limit)
        if wait > 0:
            RATE_LIMIT_REFUSALS.labels(name or key.partition(":")[0]).inc()
            retry_after = max(1, math.ceil(wait))
            raise AppError(
                "rate_limited",
                f"too many requests: the limit is {limit}; retry in {retry_after}s",
                status=429,
                retriable=True,
                extra={"retry_after": retry_after},
            )

    async def wait(self, key: str, limit: Limit) -> float:
        """Spend a hit if allowed and answer 0; else the seconds to wait (nothing spent)."""
        interval = limit.per_seconds * _MICROS // limit.count
        bucket = f"{KEY_PREFIX}{limit.count}/{limit.per_seconds}:{key}"
        micros = await self._script(keys=[bucket], args=[interval, limit.per_seconds * _MICROS])
        return int(micros) / _MICROS


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
