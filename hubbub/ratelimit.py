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

Two cheaper forms serve hot paths that cannot pay a Redis round trip per hit:
:class:`LocalBucket` is the same algorithm in this process (one socket's
budget), and :class:`ReservedBudget` takes a key's shared hits from Redis a
few at a time and spends them locally (one user's budget across gateways).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass
from typing import ClassVar

from aiohttp import web
from redis.asyncio import Redis

from hubbub.errors import AppError
from hubbub.metrics import RATE_LIMIT_REFUSALS

__all__ = [
    "KEY_PREFIX",
    "RATE_LIMITER",
    "Limit",
    "LocalBucket",
    "RateLimiter",
    "ReservedBudget",
    "refusal",
]

KEY_PREFIX = "hubbub:rl:"

# KEYS[1]: the bucket. ARGV: emission interval and period, in microseconds, and
# the hits wanted. Returns {hits granted (at most wanted), microseconds until the
# next hit would be allowed when none was granted (else 0)}.
_GCRA = """
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local room = math.floor((now + period - tat) / interval)
if room < 1 then return {0, tat + interval - period - now} end
local granted = math.min(wanted, room)
local new_tat = tat + granted * interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
return {granted, 0}
"""

_MICROS = 1_000_000
_NANOS = 1_000_000_000


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
            raise refusal(limit, wait)

    async def wait(self, key: str, limit: Limit) -> float:
        """Spend a hit if allowed and answer 0; else the seconds to wait (nothing spent)."""
        _, wait = await self.take(key, limit, 1)
        return wait

    async def take(self, key: str, limit: Limit, wanted: int) -> tuple[int, float]:
        """Spend up to ``wanted`` hits at once: ``(hits granted, 0)``, or, when
        none is left, ``(0, seconds until one is)``."""
        interval = max(1, limit.per_seconds * _MICROS // limit.count)
        bucket = f"{KEY_PREFIX}{limit.count}/{limit.per_seconds}:{key}"
        args = [interval, limit.per_seconds * _MICROS, wanted]
        granted, micros = await self._script(keys=[bucket], args=args)
        return int(granted), int(micros) / _MICROS


def refusal(limit: Limit, wait: float) -> AppError:
    """The 429 ``rate_limited`` of a spent ``limit``, retriable after ``wait`` seconds
    (rounded up to whole seconds in ``retry_after``, at least 1)."""
    retry_after = max(1, math.ceil(wait))
    return AppError(
        "rate_limited",
        f"too many requests: the limit is {limit}; retry in {retry_after}s",
        status=429,
        retriable=True,
        extra={"retry_after": retry_after},
    )


class LocalBucket:
    """One GCRA bucket in this process: the same burst and refill as a Redis
    bucket of the same :class:`Limit`, at no round trip.

    Owns: its theoretical arrival time, in integer nanoseconds (so a burst of
    exactly ``count`` fits, with no float rounding). Concurrency: one event
    loop; :meth:`take` never awaits. Durability: none (lost with the process).
    """

    __slots__ = ("_interval", "_period", "_tat")

    def __init__(self, limit: Limit) -> None:
        self._period = limit.per_seconds * _NANOS
        self._interval = max(1, self._period // limit.count)
        self._tat = 0

    def take(self, now_ns: int) -> float:
        """Spend a hit at monotonic time ``now_ns`` and answer 0; else the seconds
        until one is allowed (nothing spent)."""
        tat = max(self._tat, now_ns)
        allow_at = tat + self._interval - self._period
        if now_ns < allow_at:
            return (allow_at - now_ns) / _NANOS
        self._tat = tat + self._interval
        return 0.0


class ReservedBudget:
    """A Redis limit spent from a local reserve: hits of a key are taken from
    Redis ``chunk`` at a time and spent here, so one round trip serves up to
    ``chunk`` hits.

    Owns: this gateway's unspent reserved hits per key, each reserve kept one
    period at most. Concurrency: one event loop; callers that find a key's
    reserve empty share one Redis call (a burst of concurrent hits does not
    reserve ``chunk`` each). Durability: a reserve is lost with the process;
    its hits stay spent in Redis, so a caller may be refused up to
    ``chunk - 1`` hits early per gateway, never let past the limit. Failure:
    a Redis error propagates, as for :meth:`RateLimiter.hit`.
    """

    def __init__(self, limiter: RateLimiter, limit: Limit, chunk: int | None = None) -> None:
        self.limit = limit
        self.chunk = chunk or max(1, min(16, limit.count // 32))
        self._limiter = limiter
        self._reserves: dict[str, list[float]] = {}  # key -> [hits left, expires (monotonic)]
        self._reserving: dict[str, asyncio.Future[float]] = {}
        self._prune_at = 1024

    async def hit(self, key: str) -> None:
        """Spend one hit of ``key``; AppError 429 ``rate_limited`` when spent."""
        while not self._spend_reserved(key):
            reserving = self._reserving.get(key)
            if reserving is None:
                reserving = asyncio.ensure_future(self._reserve(key))
                self._reserving[key] = reserving
                reserving.add_done_callback(lambda done: self._settled(key, done))
            wait = await asyncio.shield(reserving)
            if wait > 0:
                raise refusal(self.limit, wait)

    def _spend_reserved(self, key: str) -> bool:
        reserve = self._reserves.get(key)
        if reserve is None:
            return False
        if reserve[1] <= time.monotonic():
            del self._reserves[key]
            return False
        reserve[0] -= 1
        if reserve[0] == 0:
            del self._reserves[key]
        return True

    async def _reserve(self, key: str) -> float:
        """Reserve up to ``chunk`` hits of ``key``; 0, or the seconds to wait."""
        granted, wait = await self._limiter.take(key, self.limit, self.chunk)
        if granted:
            self._reserves[key] = [granted, time.monotonic() + self.limit.per_seconds]
            self._prune()
        return wait

    def _settled(self, key: str, done: asyncio.Future[float]) -> None:
        self._reserving.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: every waiter re-raises it from its own await

    def _prune(self) -> None:
        """Drop expired reserves once the table doubled since the last pass
        (amortised O(1) per reservation)."""
        if len(self._reserves) < self._prune_at:
            return
        now = time.monotonic()
        for key in [k for k, (_, expires) in self._reserves.items() if expires <= now]:
            del self._reserves[key]
        self._prune_at = max(1024, 2 * len(self._reserves))


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
