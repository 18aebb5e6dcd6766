"""Commands sent to entities, and the outcome of each.

A command is addressed to one entity by ``(kind, key)`` and runs inside the
tenant it names. Commands cross the Ray boundary as plain picklable values;
no ``web.Request`` or socket id ever travels with one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hubbub.errors import AppError

__all__ = ["Command", "Outcome"]


@dataclass(frozen=True, slots=True)
class Command:
    """One request to one entity.

    ``idempotency_key``: a client-chosen key; the same key sent again to the
    same entity returns the first reply and changes nothing. Only commands
    with a key are retried by the router after a shard failure.
    """

    kind: str
    key: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    tenant_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one command: a reply, or an expected failure."""

    reply: Any = None
    error: AppError | None = None

    def unwrap(self) -> Any:
        """The reply, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.reply
