"""A conversation's messages, and the window of them its entity keeps in memory.

An active conversation holds its latest :data:`WINDOW` messages and evicts
the oldest as new ones arrive, so activating a conversation and keeping it
active cost the same however long its history grows. Rules that concern a
message outside the window — edit, delete, react to or reply to an old one,
or a send whose ``client_msg_id`` may be an old message's — name what they
need as references (:class:`MessageRef`, :class:`ClientRef`); the entity
framework reads those from Postgres before the command is decided, and
:meth:`MessageWindow.merge` keeps the answer (the older messages found, and
which references named nothing) until the next such read. Memory wins over
an earlier answer: a message sent since is in the window, and a message
that leaves the window takes back the "named nothing" it had overruled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rbloom import Bloom

__all__ = [
    "WINDOW",
    "ClientRef",
    "Message",
    "MessageRef",
    "MessageWindow",
    "OlderClientIds",
    "OlderIds",
    "Ref",
    "message_view",
    "reactions_view",
]

#: Messages an active conversation keeps in memory: the largest page a client
#: may read (``MessagesQuery.limit``), so whatever a client shows from the latest
#: page is edited, deleted, reacted and replied to without a read. At the 16 KB
#: body limit that is at most about 3 MB per active conversation, typically
#: well under 100 KB.
WINDOW = 200


@dataclass(slots=True)
class Message:
    id: str
    seq: int
    author_id: str
    body: str
    client_msg_id: str
    reply_to: str | None
    created_at: datetime
    edited_at: datetime | None = None
    deleted: bool = False
    reactions: dict[str, list[str]] = field(default_factory=dict)  # emoji -> user ids, in order


def message_view(conversation_id: str, message: Message) -> dict[str, Any]:
    """A message as the wire shows it (``docs/events.md``, ``/openapi.json``)."""
    return {
        "id": message.id,
        "conversation_id": conversation_id,
        "seq": message.seq,
        "author_id": message.author_id,
        "body": message.body,
        "client_msg_id": message.client_msg_id,
        "reply_to": message.reply_to,
        "created_at": message.created_at.isoformat(),
        "edited_at": None if message.edited_at is None else message.edited_at.isoformat(),
        "deleted": message.deleted,
        "reactions": reactions_view(message.reactions),
    }


def reactions_view(reactions: dict[str, list[str]]) -> list[dict[str, Any]]:
    """``[{emoji, count, user_ids}]``, in the order each emoji was first used."""
    return [
        {"emoji": emoji, "count": len(users), "user_ids": list(users)}
        for emoji, users in reactions.items()
    ]


@dataclass(frozen=True, slots=True)
class MessageRef:
    """The message with this id."""

    message_id: str


@dataclass(frozen=True, slots=True)
class ClientRef:
    """The message this author sent with this ``client_msg_id``."""

    author_id: str
    client_msg_id: str


@dataclass(frozen=True, slots=True)
class OlderClientIds:
    """The ``(author, client_msg_id)`` of every message with a seq below ``before``."""

    before: int


Ref = MessageRef | ClientRef | OlderClientIds

#: False positives of the filter over older client ids: the share of fresh
#: sends that still read Postgres (and hold their conversation's later
#: commands, and the replies of their whole batch, until it answers) once a
#: conversation outgrew the window.
FALSE_POSITIVES = 0.001


class OlderIds:
    """A filter over ``(author, client_msg_id)`` pairs that grows as they come.

    A Bloom filter past its capacity passes its false-positive rate and
    cannot be copied into a bigger one, so a full one stays and a new one,
    twice its size, takes the next pairs. Each new filter gets half the
    rate of the one before, so all of them together stay under
    :data:`FALSE_POSITIVES`, and no pair is ever read again.
    """

    __slots__ = ("_filters", "_rate", "_room", "_size")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._filters: list[Bloom] = []
        self._size, self._rate = max(2 * len(pairs), 1024), FALSE_POSITIVES / 2
        self._room = 0
        self.update(pairs)

    def update(self, pairs: Iterable[tuple[str, str]]) -> None:
        for pair in pairs:
            self.add(pair)

    def add(self, pair: tuple[str, str]) -> None:
        if self._room == 0:
            self._filters.append(Bloom(self._size, self._rate))
            self._room = self._size
            self._size, self._rate = 2 * self._size, self._rate / 2
        self._filters[-1].add(pair)
        self._room -= 1

    def __contains__(self, pair: tuple[str, str]) -> bool:
        return any(pair in ids for ids in self._filters)


@dataclass(slots=True)
class MessageWindow:
    """The messages of one conversation that its entity holds.

    ``latest``: the newest messages in seq order, at most :data:`WINDOW`;
    every message with seq >= ``start`` is among them (``start`` 0: every
    message of the conversation is). ``older``: earlier messages the last
    read brought in; ``absent``: the references it found nothing for.
    """

    latest: dict[str, Message] = field(default_factory=dict)
    older: dict[str, Message] = field(default_factory=dict)
    absent: set[Ref] = field(default_factory=set)
    start: int = 0
    by_client: dict[tuple[str, str], Message] = field(default_factory=dict)
    # Every (author, client_msg_id) below ``start``, once known: a fresh id is
    # then known to be new without a read (about 2 to 4 bytes per message).
    older_ids: OlderIds | None = None

    @classmethod
    def of(cls, latest: list[Message]) -> MessageWindow:
        """The window over a conversation's ``latest`` messages, oldest first.

        A full window may have older messages behind it; a shorter one has not.
        """
        window = cls(start=latest[0].seq if len(latest) >= WINDOW else 0)
        for message in latest:
            window.add(message)
        return window

    def __len__(self) -> int:
        return len(self.latest) + len(self.older)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self.latest or message_id in self.older

    def __getitem__(self, message_id: str) -> Message:
        found = self.get(message_id)
        if found is None:
            raise KeyError(message_id)
        return found

    def get(self, message_id: str) -> Message | None:
        return self.latest.get(message_id) or self.older.get(message_id)

    def sent(self, author_id: str, client_msg_id: str) -> Message | None:
        """The message ``author_id`` sent as ``client_msg_id``, if memory holds it."""
        return self.by_client.get((author_id, client_msg_id))

    def unknown(self, ref: Ref) -> bool:
        """Whether only Postgres can tell if ``ref`` names a message."""
        if self.start == 0 or ref in self.absent:
            return False
        if isinstance(ref, OlderClientIds):
            return self.older_ids is None
        if isinstance(ref, MessageRef):
            return ref.message_id not in self
        if self.sent(ref.author_id, ref.client_msg_id) is not None:
            return False
        return self.older_ids is None or (ref.author_id, ref.client_msg_id) in self.older_ids

    def about_client(self, author_id: str, client_msg_id: str) -> list[Ref]:
        """What a send needs read to tell whether its ``client_msg_id`` is new."""
        return [OlderClientIds(self.start), ClientRef(author_id, client_msg_id)]

    def add(self, message: Message) -> None:
        """Take the conversation's newest ``message``; evict the oldest beyond the window."""
        self.latest[message.id] = message
        self.by_client[(message.author_id, message.client_msg_id)] = message
        while len(self.latest) > WINDOW:
            self._evict(next(iter(self.latest)))

    def merge(
        self, refs: Iterable[Ref], found: list[Message], older_ids: OlderIds | None = None
    ) -> None:
        """Hold what a read of ``refs`` ``found`` instead of what the last read did,
        and the filter over older client ids if it read one."""
        if older_ids is not None:
            self.older_ids = older_ids
        for message in self.older.values():
            del self.by_client[(message.author_id, message.client_msg_id)]
        self.older, self.absent = {}, set()
        for message in found:
            self.older[message.id] = message
            self.by_client[(message.author_id, message.client_msg_id)] = message
        self.absent = {ref for ref in refs if self.unknown(ref)}

    def _evict(self, message_id: str) -> None:
        message = self.latest.pop(message_id)
        del self.by_client[(message.author_id, message.client_msg_id)]
        if self.start == 0 and self.older_ids is None:
            # The window held the whole conversation: what leaves it is all
            # there is below it, so the filter starts empty, with no read.
            self.older_ids = OlderIds([])
        if self.older_ids is not None:
            self.older_ids.add((message.author_id, message.client_msg_id))
        # It existed after all: an earlier "named nothing" about it is void.
        self.absent.discard(MessageRef(message.id))
        self.absent.discard(ClientRef(message.author_id, message.client_msg_id))
        self.start = message.seq + 1
