"""A small entity kind for testing the entity framework: a tally of amounts.

Each ``add`` appends an entry with the tally's next gap-free ``seq`` and
publishes it; ``get`` reads the current seq and total; ``entry`` reads
the amount of one entry, which memory does not hold (the fault-in path:
``missing``, ``load_missing``, ``merge``); ``corrupt`` is a bug (it spoils
the state, then raises) for the tests of failure handling. Real kinds follow
the same shape.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from hubbub.actors.command import Command, CommandBody
from hubbub.actors.entity import Decision, Entity, Publication, Write
from hubbub.errors import AppError

__all__ = ["Add", "Corrupt", "Entry", "Get", "Tally", "TallyCommand", "TallyState"]


class Add(CommandBody, frozen=True):
    amount: int
    sender: str | None = None


class Get(CommandBody, frozen=True):
    pass


class Entry(CommandBody, frozen=True):
    """The amount of entry ``seq``, which memory does not hold."""

    seq: int


class Corrupt(CommandBody, frozen=True):
    """A bug: spoils the state, then raises."""


TallyCommand = Add | Get | Entry | Corrupt


_INSERT = (
    "INSERT INTO tally_entries (tally, seq, tenant_id, amount, sender) VALUES ($1, $2, $3, $4, $5)"
)


@dataclass(frozen=True, slots=True)
class TallyState:
    seq: int = 0
    total: int = 0


class Tally(Entity):
    kind = "tally"
    commands = TallyCommand
    state: TallyState

    def __init__(self, key: str, tenant_id: str | None, state: TallyState | None) -> None:
        super().__init__(key, tenant_id, state or TallyState())
        self.entries: dict[Hashable, int | None] = {}  # seq -> amount, as last read

    @classmethod
    async def load_missing(
        cls, conn: asyncpg.Connection, key: str, refs: frozenset[Hashable]
    ) -> dict[Hashable, int]:
        rows = await conn.fetch(
            "SELECT seq, amount FROM tally_entries WHERE tally = $1 AND seq = ANY($2::bigint[])",
            key,
            list(refs),
        )
        return {row["seq"]: row["amount"] for row in rows}

    def missing(self, command: Command) -> frozenset[Hashable]:
        body = command.body
        if isinstance(body, Entry) and body.seq not in self.entries:
            return frozenset({body.seq})
        return frozenset()

    def merge(self, refs: frozenset[Hashable], loaded: dict[Hashable, int]) -> None:
        self.entries = {seq: loaded.get(seq) for seq in refs}

    @classmethod
    async def load(cls, conn: asyncpg.Connection, keys: list[str]) -> dict[str, Any]:
        rows = await conn.fetch(
            "SELECT tally, max(seq) AS seq, sum(amount) AS total FROM tally_entries"
            " WHERE tally = ANY($1::text[]) GROUP BY tally",
            keys,
        )
        return {row["tally"]: TallyState(row["seq"], int(row["total"])) for row in rows}

    def handle(self, command: Command, now: datetime) -> Decision:
        match command.body:
            case Get():
                return Decision(reply={"seq": self.state.seq, "total": self.state.total})
            case Add() as add:
                return self._add(add)
            case Entry(seq=seq):
                amount = self.entries[seq]
                if amount is None:
                    raise AppError.not_found("entry")
                return Decision(reply={"seq": seq, "amount": amount})
            case Corrupt():  # a bug: state changed, then a crash
                self.state = replace(self.state, total=-1)
                raise RuntimeError("tally bug")
        raise AppError("unknown_command", f"tally has no command {command.body!r}")

    def _add(self, add: Add) -> Decision:
        amount = add.amount
        self.state = replace(self.state, seq=self.state.seq + 1, total=self.state.total + amount)
        self.entries.pop(self.state.seq, None)  # a read that found no such entry is out of date
        seq, sender = self.state.seq, add.sender
        entry = {"tally": self.key, "seq": seq, "amount": amount, "total": self.state.total}
        return Decision(
            reply={"seq": seq, "total": self.state.total},
            writes=[Write(_INSERT, (self.key, seq, self.tenant_id, amount, sender))],
            publications=[Publication(f"tally:{self.key}", "tally:added", entry)],
        )
