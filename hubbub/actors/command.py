"""Commands sent to entities, and the outcome of each.

A command is addressed to one entity by ``(kind, key)`` and runs inside the
tenant it names. A batch of commands crosses the Ray boundary as one orjson
document, and its outcomes come back as another: Ray ships bytes almost for
free, while pickling dataclasses costs more than the call itself once a
batch holds a few dozen commands (see docs/performance.md). So arguments
and replies are JSON values, as they are for every client anyway; no
``web.Request`` or socket id ever travels with a command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from hubbub.errors import AppError, FieldError

__all__ = [
    "Command",
    "Outcome",
    "decode_commands",
    "decode_outcomes",
    "encode_commands",
    "encode_outcomes",
]


@dataclass(frozen=True, slots=True)
class Command:
    """One request to one entity.

    ``idempotency_key``: a client-chosen key; the same key sent again to the
    same entity returns the first reply and changes nothing. ``retry_safe``:
    the entity itself answers this command the same when it arrives twice
    (a conversation dedupes a send by its ``client_msg_id``), so it needs no
    key or receipt. Only commands with a key or marked retry-safe are
    retried by the router after a shard failure.
    """

    kind: str
    key: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    tenant_id: str | None = None
    idempotency_key: str | None = None
    retry_safe: bool = False


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


def encode_commands(commands: Sequence[Command]) -> bytes:
    return orjson.dumps(
        [
            (c.kind, c.key, c.name, c.args, c.tenant_id, c.idempotency_key, c.retry_safe)
            for c in commands
        ]
    )


def decode_commands(data: bytes) -> list[Command]:
    return [Command(*fields) for fields in orjson.loads(data)]


def encode_outcomes(outcomes: Sequence[Outcome]) -> bytes:
    return orjson.dumps(
        [[o.reply] if o.error is None else [None, _error_fields(o.error)] for o in outcomes]
    )


def decode_outcomes(data: bytes) -> list[Outcome]:
    return [
        Outcome(reply=item[0]) if len(item) == 1 else Outcome(error=_error_from(item[1]))
        for item in orjson.loads(data)
    ]


def _error_fields(error: AppError) -> list[Any]:
    errors = [(e.location, e.field, e.message) for e in error.errors]
    return [error.code, error.message, error.status, error.retriable, errors, error.extra]


def _error_from(fields: list[Any]) -> AppError:
    code, message, status, retriable, errors, extra = fields
    return AppError(code, message, status, retriable, tuple(FieldError(*e) for e in errors), extra)
