"""python-socketio's Redis manager on hubbub's Redis client.

python-socketio's ``AsyncRedisManager`` builds its client with redis-py's
default pool, which has no useful maximum: every emit, room change or
disconnect it publishes for other gateways takes a connection, a burst of
them opens as many, and the pool keeps them all. :class:`SocketioRedisManager`
builds the client with :func:`hubbub.storage.redis.connect_redis` instead: a
small blocking pool, named ``hubbub-socketio`` in ``CLIENT LIST``.
"""

from __future__ import annotations

import socketio

from hubbub.storage.redis import connect_redis

__all__ = ["MAX_CONNECTIONS", "SocketioRedisManager"]

#: One connection listens (the manager's subscription); the rest publish.
MAX_CONNECTIONS = 8


class SocketioRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """``AsyncRedisManager`` whose client takes at most :data:`MAX_CONNECTIONS`."""

    def _redis_connect(self) -> None:
        # python-socketio calls this to (re)connect: a fresh client, as it does.
        self.redis = connect_redis(
            self.redis_url, max_connections=MAX_CONNECTIONS, name="hubbub-socketio"
        )
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True
