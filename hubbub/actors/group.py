"""A group: the commands one shard call decided, waiting for their commit.

The shard host decides every command of a call at once and stages the
outcomes in one :class:`Group`, with the writes of each entity it touched;
the group's writes go to Postgres as one :class:`PendingCommit` (group
commit), and only when it is over are the staged outcomes answered and their
publications sent. ``Failed`` names the entities whose writes did not commit
and why: only their commands fail.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hubbub.actors.command import Outcome
from hubbub.actors.entity import Publication, Write
from hubbub.actors.group_commit import CommitRequest
from hubbub.errors import AppError

__all__ = ["EntityId", "Failed", "Group", "PendingCommit", "Staged"]

EntityId = tuple[str | None, str]  # (tenant_id, key): tenants never share an entity
Failed = dict[EntityId, AppError]  # a group's entities whose commands fail, and why


@dataclass(frozen=True, slots=True)
class Staged:
    """A decided command waiting for its commit."""

    entity: EntityId
    reply: Any = None
    error: AppError | None = None
    publications: tuple[Publication, ...] = ()
    replay_of: asyncio.Future[Failed] | None = None  # an earlier, maybe uncommitted, reply


@dataclass(slots=True)
class Group:
    """Commands decided together: one commit request, one settlement."""

    committed: asyncio.Future[Failed]
    generation: int
    now: datetime
    staged: list[tuple[Staged, asyncio.Future[Outcome]]] = field(default_factory=list)
    writes: dict[EntityId, list[Write]] = field(default_factory=dict)  # by entity
    activate: list[EntityId] = field(default_factory=list)  # first seen: load them
    reload: list[EntityId] = field(default_factory=list)  # suspect: load after this commit


@dataclass(frozen=True, slots=True)
class PendingCommit:
    """A group's writes on their way to Postgres."""

    requests: list[CommitRequest]
    staged: list[tuple[Staged, asyncio.Future[Outcome]]]  # the group's, read only on failure
    generation: int
