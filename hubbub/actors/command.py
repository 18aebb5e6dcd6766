"""Commands sent to entities, and the outcome of each.

A command is addressed to one entity by ``(kind, key)`` and runs inside the
tenant it names. What it asks is its ``body``: a typed value, one frozen
:class:`CommandBody` subclass per command of a kind, so a kind's commands
form a tagged union (the tag is the class name). Deciders dispatch on the
body's type; nobody re-casts arguments out of a dict.

A batch of commands crosses the Ray boundary as one JSON document (msgspec,
which encodes and decodes typed structs directly), and its outcomes come
back as another: Ray ships bytes almost for free, while pickling objects
costs more than the call itself once a batch holds a few dozen commands
(see docs/performance.md). Bodies are decoded one at a time against their
kind's union, so one malformed body fails its own command with
``validation_failed`` and never the batch. No ``web.Request`` or socket id
ever travels with a command.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import msgspec
import orjson

from hubbub.errors import AppError, FieldError

__all__ = [
    "Command",
    "CommandBody",
    "CommandCodec",
    "Outcome",
    "decode_outcomes",
    "encode_commands",
    "encode_outcomes",
]


class CommandBody(msgspec.Struct, frozen=True, tag=True):
    """Base of every typed command: a frozen struct, tagged by its class name.

    ``retry_safe``: the entity itself answers this command the same when it
    arrives twice (a conversation dedupes a send by its ``client_msg_id``),
    so it needs no idempotency key or receipt to be resent.
    """

    retry_safe: ClassVar[bool] = False


Body = TypeVar("Body", bound=CommandBody)


class Command(msgspec.Struct, Generic[Body], frozen=True, array_like=True):
    """One request to one entity.

    ``idempotency_key``: a client-chosen key; the same key sent again to the
    same entity returns the first reply and changes nothing. Only commands
    with a key or a retry-safe body are retried by the router after a shard
    failure.
    """

    kind: str
    key: str
    body: Body
    tenant_id: str | None = None
    idempotency_key: str | None = None

    @property
    def retry_safe(self) -> bool:
        return self.body.retry_safe


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


_encoder = msgspec.json.Encoder()
_Envelope = tuple[str, str, msgspec.Raw, str | None, str | None]
_envelopes = msgspec.json.Decoder(list[_Envelope])


def encode_commands(commands: Sequence[Command]) -> bytes:
    return _encoder.encode(commands)


class CommandCodec:
    """Decodes a batch of one kind's commands against that kind's union of bodies."""

    def __init__(self, bodies: Any) -> None:
        self._batch = msgspec.json.Decoder(list[Command[bodies]])  # type: ignore[valid-type]
        self._bodies = msgspec.json.Decoder(bodies)

    def decode(self, data: bytes) -> list[Command | AppError]:
        """Each command of the batch, or the error its malformed body is answered with.

        The whole batch is decoded at once; only a batch with a malformed
        body is decoded again command by command, to find which.
        """
        try:
            return list(self._batch.decode(data))
        except msgspec.ValidationError:
            return [self._command(*envelope) for envelope in _envelopes.decode(data)]

    def _command(
        self, kind: str, key: str, body: msgspec.Raw, tenant: str | None, idem: str | None
    ) -> Command | AppError:
        try:
            return Command(kind, key, self._bodies.decode(body), tenant, idem)
        except msgspec.ValidationError as exc:
            return _invalid(kind, str(exc))


_AT = re.compile(r" - at `\$\.?([^`]*)`$")


def _invalid(kind: str, message: str) -> AppError:
    """``validation_failed`` naming the field msgspec found wrong (``... - at `$.amount```)."""
    found = _AT.search(message)
    field = found.group(1) if found else "type"
    detail = message if found is None else message[: found.start()]
    return AppError(
        "validation_failed",
        f"invalid {kind} command: {detail}",
        status=422,
        errors=(FieldError("body", field or "type", detail),),
    )


def encode_outcomes(outcomes: Sequence[Outcome]) -> bytes:
    # Replies are wire values already; orjson writes them exactly as clients see them.
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
