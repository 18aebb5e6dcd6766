"""The Redis client (redis.asyncio), shared by every part of a process."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

__all__ = ["connect_redis", "ping_redis"]


def connect_redis(url: str) -> Redis:
    """A client with a connection pool; connections open on first use."""
    return Redis.from_url(
        url,
        health_check_interval=10,
        socket_connect_timeout=5,
        socket_keepalive=True,
        retry_on_timeout=True,
    )


async def ping_redis(redis: Redis) -> dict[str, Any]:
    """Round trip to Redis; details for the readiness report."""
    await redis.ping()
    info = await redis.info("server")
    version = info.get("valkey_version") or info.get("redis_version")
    return {"server_version": version}
