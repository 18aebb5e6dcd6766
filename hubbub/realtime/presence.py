"""Presence per tenant, kept in Redis with per-gateway leases; never in Postgres.

A user is online in a tenant while any socket of theirs that named the
tenant in its handshake is connected to any gateway. Keys (``P`` =
``hubbub:<namespace>:presence``):

- ``P:leases`` — ZSET gateway → when its lease ends (unix seconds);
- ``P:gw:<gateway>`` — SET ``tenant|user|sid`` of that gateway's sockets;
- ``P:conns:<tenant>:<user>`` — SET ``gateway|sid`` of the user's sockets;
- ``P:user:<tenant>:<user>`` — HASH ``status text available last_seen_at
  idle version`` (the chosen status survives reconnects);
- ``P:active`` — ZSET ``tenant|user`` → last activity, for online users;
- ``P:sweep:<idle seconds>`` — the sweeper's lock, one per idle setting: a
  deployment's gateways share one; a gateway run with another idle time (as
  in tests) sweeps by its own rule instead of waiting for theirs.

Every change runs as one Lua script that also publishes the user's new
``presence`` view on bus topic ``presence:<tenant>``, so views leave in the
order they were decided and carry an increasing per-user ``version``. Each
gateway renews its lease, reports which users were active, and — the one
holding the lock — drops the sockets of gateways whose lease ended and
marks idle users away, every ``presence_heartbeat_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hubbub.config import Settings
from hubbub.realtime.handshake import Principal
from hubbub.storage import pubsub

__all__ = ["STATUSES", "Presence", "topic", "view"]

log = logging.getLogger(__name__)

#: What a user may choose; ``offline`` is only ever derived.
STATUSES = ("online", "away", "busy")

_FIELDS = ("status", "text", "available", "last_seen_at", "idle", "version")


def topic(tenant_id: str) -> str:
    """The bus topic of a tenant's ``presence`` events."""
    return f"presence:{tenant_id}"


def view(tenant_id: str, user_id: str, fields: list[Any], connections: int) -> dict[str, Any]:
    """The wire view of a user from their hash fields (``_FIELDS`` order, bytes
    or None) and how many sockets they have; the same rule as ``_VIEW_LUA``."""
    status, text, available, last_seen_at, idle, version = (
        f.decode() if isinstance(f, bytes) else f for f in fields
    )
    status = status or "online"
    if connections == 0:
        status = "offline"
    elif status == "online" and idle == "1":
        status = "away"
    return {
        "tenant_id": tenant_id,
        "user_id": user_id,
        "status": status,
        "text": text or "",
        "available": available == "1" and connections > 0,
        "last_seen_at": last_seen_at,
        "version": int(version or 0),
    }


# KEYS[1] user hash, KEYS[2] conns set; ARGV[1] tenant, ARGV[2] user, ARGV[3] channel.
_VIEW_LUA = """
local function publish()
  local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
  local f = redis.call('HMGET', KEYS[1], 'status', 'text', 'available', 'last_seen_at', 'idle')
  local n = redis.call('SCARD', KEYS[2])
  local status = f[1] or 'online'
  if n == 0 then status = 'offline' elseif status == 'online' and f[5] == '1' then
    status = 'away' end
  local data = {tenant_id = ARGV[1], user_id = ARGV[2], status = status, text = f[2] or '',
    available = (f[3] == '1' and n > 0), last_seen_at = f[4] or cjson.null, version = version}
  local encoded = cjson.encode({event = 'presence', data = data})
  redis.call('PUBLISH', ARGV[3], encoded)
  return encoded
end
"""

# + KEYS[3] gateway set, KEYS[4] active, KEYS[5] leases;
# ARGV[4] gateway|sid, ARGV[5] tenant|user|sid, ARGV[6] now, ARGV[7] gateway, ARGV[8] lease end.
_CONNECT = (
    _VIEW_LUA
    + """
redis.call('ZADD', KEYS[5], ARGV[8], ARGV[7])
redis.call('SADD', KEYS[3], ARGV[5])
local first = redis.call('SADD', KEYS[2], ARGV[4]) == 1 and redis.call('SCARD', KEYS[2]) == 1
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1] .. '|' .. ARGV[2])
local woke = redis.call('HGET', KEYS[1], 'idle') == '1'
redis.call('HSET', KEYS[1], 'idle', '0')
if first or woke then return publish() end
return false
"""
)

# + KEYS[3] gateway set, KEYS[4] active; ARGV[4] gateway|sid, ARGV[5] tenant|user|sid,
# ARGV[6] now (RFC 3339).
_DISCONNECT = (
    _VIEW_LUA
    + """
redis.call('SREM', KEYS[3], ARGV[5])
if redis.call('SREM', KEYS[2], ARGV[4]) == 0 then return false end
if redis.call('SCARD', KEYS[2]) > 0 then return false end
redis.call('HSET', KEYS[1], 'last_seen_at', ARGV[6], 'idle', '0')
redis.call('ZREM', KEYS[4], ARGV[1] .. '|' .. ARGV[2])
return publish()
"""
)

# + KEYS[3] active; ARGV[4] now.
_TOUCH = (
    _VIEW_LUA
    + """
if redis.call('SCARD', KEYS[2]) == 0 then return false end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1] .. '|' .. ARGV[2])
if redis.call('HGET', KEYS[1], 'idle') ~= '1' then return false end
redis.call('HSET', KEYS[1], 'idle', '0')
return publish()
"""
)

# + KEYS[3] active; ARGV[4] the oldest activity that is not idle.
_IDLE = (
    _VIEW_LUA
    + """
local member = ARGV[1] .. '|' .. ARGV[2]
local at = redis.call('ZSCORE', KEYS[3], member)
if not at or tonumber(at) > tonumber(ARGV[4]) then return false end
redis.call('ZREM', KEYS[3], member)
if redis.call('SCARD', KEYS[2]) == 0 or redis.call('HGET', KEYS[1], 'idle') == '1' then
  return false end
redis.call('HSET', KEYS[1], 'idle', '1')
return publish()
"""
)

# + KEYS[3] active; ARGV[4] now, ARGV[5] status or '', ARGV[6] text or '\\0' for
# unchanged, ARGV[7] available '1' / '0' / ''.
_SET = (
    _VIEW_LUA
    + """
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'status', ARGV[5]) end
if ARGV[6] ~= '\\0' then redis.call('HSET', KEYS[1], 'text', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'available', ARGV[7]) end
redis.call('HSET', KEYS[1], 'idle', '0')
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1] .. '|' .. ARGV[2])
return publish()
"""
)


def _now_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Presence:
    """Owns: this gateway's presence lease, its sockets' entries in Redis and
    the activity they showed since the last heartbeat.

    Concurrency: one event loop, one heartbeat task owned here; every Redis
    change is one atomic script. Durability: Redis only; a lost Redis loses
    presence, which rebuilds as sockets reconnect. Failure: a crashed
    gateway's sockets are dropped by the sweeper once its lease ends; a
    gateway that finds its own lease gone registers its sockets again.
    """

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self.gateway = f"{settings.gateway_id}:{uuid.uuid4().hex[:8]}"
        self._prefix = f"hubbub:{settings.ray_namespace}:presence"
        self._heartbeat = settings.presence_heartbeat_seconds
        self._lease = settings.presence_lease_seconds
        self._idle = settings.presence_idle_seconds
        self._sockets: dict[str, tuple[str, str]] = {}  # sid -> (tenant, user)
        self._active: set[tuple[str, str]] = set()
        self._scripts = {
            name: redis.register_script(lua)
            for name, lua in [
                ("connect", _CONNECT),
                ("disconnect", _DISCONNECT),
                ("touch", _TOUCH),
                ("idle", _IDLE),
                ("set", _SET),
            ]
        }
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._renew()
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def close(self) -> None:
        """Stop the heartbeat and take this gateway's sockets out of presence (if
        Redis is unreachable, a sweeper does it once the lease ends)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            for sid in list(self._sockets):
                await self.disconnected(sid)
            await self._redis.zrem(self._key("leases"), self.gateway)
        except (RedisError, OSError) as exc:  # the lease then ends and a sweeper drops them
            log.warning("presence of %s not cleared at close (%s)", self.gateway, exc)

    def tenant_of(self, sid: str) -> tuple[str, str] | None:
        """``(tenant, user)`` of a tracked socket, None if it is not tracked."""
        return self._sockets.get(sid)

    async def connected(self, sid: str, principal: Principal) -> None:
        """Track a socket whose user was confirmed a member of its tenant."""
        assert principal.tenant_id is not None and principal.user_id is not None
        self._sockets[sid] = (principal.tenant_id, principal.user_id)
        await self._connect(sid, principal.tenant_id, principal.user_id)

    async def disconnected(self, sid: str) -> None:
        found = self._sockets.pop(sid, None)
        if found is not None:
            await self._drop(self.gateway, sid, *found)

    async def forget(self, tenant_id: str, user_id: str | None) -> int:
        """Stop counting this gateway's sockets of ``user_id`` (None: everyone) in
        the tenant's presence — their access to it ended; how many there were."""
        sids = [
            sid
            for sid, (tenant, user) in self._sockets.items()
            if tenant == tenant_id and user_id in (None, user)
        ]
        for sid in sids:
            await self.disconnected(sid)
        return len(sids)

    def active(self, sid: str) -> None:
        """Note activity of socket ``sid`` (reported at the next heartbeat)."""
        found = self._sockets.get(sid)
        if found is not None:
            self._active.add(found)

    async def update(
        self,
        tenant_id: str,
        user_id: str,
        status: str | None,
        text: str | None,
        available: bool | None,
    ) -> dict[str, Any]:
        """Change what the user shows; their new view (also published)."""
        args = [
            time.time(),
            status or "",
            "\0" if text is None else text,
            "" if available is None else ("1" if available else "0"),
        ]
        encoded = await self._run("set", tenant_id, user_id, [self._key("active")], args)
        return pubsub.decode(encoded)[1]

    async def views(self, tenant_id: str, user_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The current view of each of ``user_ids``, in their order."""
        users = list(user_ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in users:
                pipe.hmget(self._key("user", tenant_id, user_id), *_FIELDS)
                pipe.scard(self._key("conns", tenant_id, user_id))
            replies = await pipe.execute()
        return [
            view(tenant_id, user_id, replies[2 * i], replies[2 * i + 1])
            for i, user_id in enumerate(users)
        ]

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def _run(
        self, script: str, tenant_id: str, user_id: str, keys: list[str], args: list[Any]
    ) -> Any:
        user_keys = [self._key("user", tenant_id, user_id), self._key("conns", tenant_id, user_id)]
        channel = pubsub.channel_name(topic(tenant_id))
        return await self._scripts[script](
            keys=user_keys + keys, args=[tenant_id, user_id, channel, *args]
        )

    async def _connect(self, sid: str, tenant_id: str, user_id: str) -> None:
        now = time.time()
        keys = [self._key("gw", self.gateway), self._key("active"), self._key("leases")]
        args = [
            f"{self.gateway}|{sid}",
            f"{tenant_id}|{user_id}|{sid}",
            now,
            self.gateway,
            now + self._lease,
        ]
        await self._run("connect", tenant_id, user_id, keys, args)

    async def _drop(self, gateway: str, sid: str, tenant_id: str, user_id: str) -> None:
        keys = [self._key("gw", gateway), self._key("active")]
        args = [f"{gateway}|{sid}", f"{tenant_id}|{user_id}|{sid}", _now_text()]
        await self._run("disconnect", tenant_id, user_id, keys, args)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._renew()
                await self._report_activity()
                if await self._redis.set(
                    self._key("sweep", f"{self._idle:g}"),
                    self.gateway,
                    nx=True,
                    px=int(self._heartbeat * 1000),
                ):
                    await self._sweep_dead_gateways()
                    await self._sweep_idle()
            except (RedisError, OSError) as exc:
                log.warning("presence heartbeat failed (%s); retrying", exc)
            except Exception:
                log.exception("presence heartbeat failed")

    async def _renew(self) -> None:
        added = await self._redis.zadd(
            self._key("leases"), {self.gateway: time.time() + self._lease}
        )
        if added and self._sockets:  # swept while we stalled: register our sockets again
            log.warning("presence lease of %s had lapsed; registering again", self.gateway)
            for sid, (tenant_id, user_id) in list(self._sockets.items()):
                await self._connect(sid, tenant_id, user_id)

    async def _report_activity(self) -> None:
        active, self._active = self._active, set()
        now = time.time()
        for tenant_id, user_id in active:
            await self._run("touch", tenant_id, user_id, [self._key("active")], [now])

    async def _sweep_dead_gateways(self) -> None:
        dead = await self._redis.zrangebyscore(self._key("leases"), "-inf", time.time())
        for raw in dead:
            gateway = raw.decode()
            entries = await self._redis.smembers(self._key("gw", gateway))
            for entry in entries:
                tenant_id, user_id, sid = entry.decode().split("|")
                await self._drop(gateway, sid, tenant_id, user_id)
            await self._redis.delete(self._key("gw", gateway))
            await self._redis.zrem(self._key("leases"), gateway)
            log.info("presence: gateway %s is gone; dropped %d sockets", gateway, len(entries))

    async def _sweep_idle(self) -> None:
        oldest = time.time() - self._idle
        idle = await self._redis.zrangebyscore(self._key("active"), "-inf", oldest)
        for raw in idle:
            tenant_id, user_id = raw.decode().split("|")
            await self._run("idle", tenant_id, user_id, [self._key("active")], [oldest])
