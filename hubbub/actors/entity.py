"""The entity base class: the contract every entity kind fulfils.

An entity is a plain Python object hosted by a shard (the virtual-actor
model of Orleans): activated on its first command from its rows in
Postgres, the only writer of its state while active, and dropped when idle.
A kind implements two things:

* ``load`` — the batched activation: the states of many keys in one query;
* ``handle`` — decide one command against the in-memory state: raise an
  :class:`~hubbub.errors.AppError` to refuse it (nothing changes), or
  return a :class:`Decision` and update the in-memory state to match.

A kind whose memory holds only part of its rows (a conversation keeps its
latest messages) also implements the fault-in trio: ``missing`` names the
rows a command needs that memory lacks; the shard then holds that command
and every later one of the entity, waits until the entity's earlier writes
are committed, reads the rows with ``load_missing`` and hands them to
``merge`` before it calls ``handle``. So ``handle`` still never awaits.

``handle`` does no I/O and reads no clock (``now`` is passed in): the shard
persists the decision's writes (group commit), then replies and publishes.
If the commit fails the shard drops the entity, so memory never keeps a
change that Postgres does not have.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import asyncpg

from hubbub.actors.command import Command

__all__ = ["Decision", "Entity", "Publication", "Write"]


@dataclass(frozen=True, slots=True)
class Write:
    """One SQL statement to run in the commit, with its arguments."""

    statement: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Publication:
    """An event for the fan-out bus, published only after its commit."""

    channel: str
    event: str
    data: dict[str, Any]


@dataclass(slots=True)
class Decision:
    """What a command does: its reply, its writes and its publications."""

    reply: Any = None
    writes: list[Write] = field(default_factory=list)
    publications: list[Publication] = field(default_factory=list)


class Entity(ABC):
    """Base of every entity kind.

    Owns: its state, exclusively. Concurrency: the shard calls ``handle``
    for one entity strictly in command order, never concurrently.
    Durability: state is rebuilt by ``load``; replies are sent after commit.
    """

    kind: ClassVar[str]
    #: The kind's commands: the union of its :class:`CommandBody` types.
    commands: ClassVar[Any]

    def __init__(self, key: str, tenant_id: str | None, state: Any) -> None:
        self.key = key
        self.tenant_id = tenant_id
        self.state = state

    @classmethod
    @abstractmethod
    async def load(cls, conn: asyncpg.Connection, keys: list[str]) -> dict[str, Any]:
        """States of those ``keys`` that exist, read inside the tenant's scope.

        Keys absent from the result activate with ``state=None``.
        """

    @abstractmethod
    def handle(self, command: Command, now: datetime) -> Decision:
        """Decide ``command``; raise AppError to refuse it unchanged."""

    def missing(self, command: Command) -> frozenset[Hashable]:
        """References to rows that deciding ``command`` needs and memory lacks.

        Empty (the default) means ``handle`` may decide it now.
        """
        return frozenset()

    @classmethod
    async def load_missing(
        cls, conn: asyncpg.Connection, key: str, refs: frozenset[Hashable]
    ) -> Any:
        """The committed rows that ``refs`` name, read inside the tenant's scope."""
        raise NotImplementedError(f"{cls.kind} entities keep all their rows in memory")

    def merge(self, refs: frozenset[Hashable], loaded: Any) -> None:
        """Take in what :meth:`load_missing` read for ``refs``; after it,
        :meth:`missing` names none of ``refs``."""
        raise NotImplementedError(f"{self.kind} entities keep all their rows in memory")
