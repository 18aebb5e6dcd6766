"""The fan-out bus on Redis pub/sub: channel names and the envelope.

Shards publish committed domain events; every gateway subscribes to the
channels its local sockets watch and relays each event to them. An
envelope is encoded once, by the publisher, with orjson.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

__all__ = ["CHANNEL_PREFIX", "channel_name", "decode", "encode", "publish_many"]

CHANNEL_PREFIX = "hubbub:"


def channel_name(topic: str) -> str:
    """The Redis channel of a bus topic such as ``conversation:<id>``."""
    return CHANNEL_PREFIX + topic


def encode(event: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps({"event": event, "data": data})


def decode(payload: bytes) -> tuple[str, dict[str, Any]]:
    """``(event, data)`` of an envelope; ValueError if it is not one."""
    message = orjson.loads(payload)
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        raise ValueError("expected an envelope {event, data}")
    return message["event"], message.get("data") or {}


async def publish_many(redis: Redis, messages: Sequence[tuple[str, bytes]]) -> None:
    """Publish ``(topic, payload)`` pairs in order, in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for topic, payload in messages:
            pipe.publish(channel_name(topic), payload)
        await pipe.execute()
