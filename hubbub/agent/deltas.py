"""``message:delta``: the assistant's reply as it is written, to the sockets
in the conversation's room.

The ``agent.reply`` handler publishes each piece on the conversation's bus
topic as soon as the provider gives it; every gateway relays it to its
sockets in the room, like a typing indicator. Deltas are never stored and
carry no conversation ``seq`` (they are not part of the stream); ``index``
numbers them per job from 0. They precede the reply's ``message:new``: the
handler commits the message only after its last delta was published, and
Redis hands a subscriber its channels' messages in the order it took them.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hubbub.chat.events import channel
from hubbub.storage import pubsub

__all__ = ["DELTA_EVENT", "Deltas"]

log = logging.getLogger(__name__)

DELTA_EVENT = "message:delta"


class Deltas:
    """Owns: the next ``index`` of one reply's deltas.

    Failure: a delta Redis refuses is logged and counted in ``lost``; the
    reply goes on (the committed message and the job's output have it all).
    """

    def __init__(self, redis: Redis, conversation_id: str, job_id: str) -> None:
        self._redis = redis
        self._topic = channel(conversation_id)
        self._base = {"conversation_id": conversation_id, "job_id": job_id}
        self._index = 0
        self.lost = 0

    async def publish(self, chunk: str) -> None:
        data = self._base | {"index": self._index, "chunk": chunk}
        self._index += 1
        try:
            envelope = pubsub.encode(DELTA_EVENT, data)
            await pubsub.publish_many(self._redis, [(self._topic, envelope)])
        except (RedisError, OSError) as error:
            self.lost += 1
            log.warning("job %s: a message:delta was lost: %s", self._base["job_id"], error)
