"""One definition per table: its columns, and the statements built from them.

An entity's writes name a table's columns once, here, instead of writing
``INSERT ... VALUES ($1, ..., $20)`` and a tuple matched to it by hand: the
statement and its argument tuple come from the same column list, so they
cannot drift apart. Statements are built once, when a kind's module is
imported; :meth:`Table.row` is a tuple in column order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Table"]


@dataclass(frozen=True, slots=True)
class Table:
    """A table's name and the columns an entity writes, in one order.

    ``key``: the columns that pick one row (the ``WHERE`` of updates).
    """

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...] = ("id",)

    def __post_init__(self) -> None:
        missing = [k for k in self.key if k not in self.columns]
        if missing:
            raise ValueError(f"{self.name}: key columns {missing} are not among its columns")

    def insert(self, *, returning: str | None = None) -> str:
        """``INSERT INTO name (columns...) VALUES ($1, ...)``, arguments in column order."""
        values = ", ".join(f"${n}" for n in range(1, len(self.columns) + 1))
        statement = f"INSERT INTO {self.name} ({', '.join(self.columns)}) VALUES ({values})"
        return statement if returning is None else f"{statement} RETURNING {returning}"

    def update(self, columns: Sequence[str]) -> str:
        """``UPDATE name SET c = $n ... WHERE key = $1 ...``: arguments are the key
        columns, then ``columns``, in that order (see :meth:`update_row`)."""
        unknown = [c for c in columns if c not in self.columns]
        if unknown:
            raise ValueError(f"{self.name} has no columns {unknown}")
        at = len(self.key)
        sets = ", ".join(f"{c} = ${at + n}" for n, c in enumerate(columns, 1))
        where = " AND ".join(f"{k} = ${n}" for n, k in enumerate(self.key, 1))
        return f"UPDATE {self.name} SET {sets} WHERE {where}"

    def row(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The arguments of :meth:`insert` from ``values``, one per column."""
        return tuple(values[c] for c in self.columns)

    def update_row(self, values: Mapping[str, Any], columns: Sequence[str]) -> tuple[Any, ...]:
        """The arguments of :meth:`update` for ``columns`` from ``values``."""
        return tuple(values[c] for c in (*self.key, *columns))
