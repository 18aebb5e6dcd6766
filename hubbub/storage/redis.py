"""The Redis client (redis.asyncio), shared by every part of a process.

A client's pool opens connections as concurrent commands need them and never
closes an idle one, so its size is what a burst leaves behind for good: 300
sockets connecting at once (each runs a presence script) left the gateway
holding its pool's maximum. The maximum is therefore small, and the pool
blocking: a burst queues for a connection instead of opening more. Each
connection carries its client's name (``CLIENT LIST`` shows who holds what).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

__all__ = ["MAX_CONNECTIONS", "connect_redis", "ping_redis"]

#: Connections a process's client opens at most. A command past them waits
#: for a free one (up to ``_POOL_WAIT_SECONDS``) instead of failing at once:
#: redis-py's default pool raised ``MaxConnectionsError`` on the 101st
#: concurrent command, which a burst of SSE streams opening (each probes the
#: bus) turned into HTTP 500s (bench/jobs_bench.py, docs/performance.md).
#: Only the bus subscription holds a connection for long; every other command
#: is a round trip of well under a millisecond, so 20 carry any burst.
MAX_CONNECTIONS = 20
_POOL_WAIT_SECONDS = 10.0


def connect_redis(
    url: str, *, max_connections: int = MAX_CONNECTIONS, name: str = "hubbub"
) -> Redis:
    """A client owning a pool of at most ``max_connections``, each named
    ``name``; connections open on first use."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        client_name=name,
        timeout=_POOL_WAIT_SECONDS,
        health_check_interval=10,
        socket_connect_timeout=5,
        socket_keepalive=True,
        retry_on_timeout=True,
    )
    return Redis.from_pool(pool)


async def ping_redis(redis: Redis) -> dict[str, Any]:
    """Round trip to Redis; details for the readiness report."""
    await redis.ping()
    info = await redis.info("server")
    version = info.get("valkey_version") or info.get("redis_version")
    return {"server_version": version}
