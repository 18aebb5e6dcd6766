"""The Socket.IO wire: JSON codec and the shape of acknowledgements.

Every ack is either ``{"ok": true, "data": ...}`` or
``{"error": {"code", "message", "retriable", "errors"?}}`` — the same
``code`` values as the HTTP problem documents. Event names and payloads are
listed in docs/events.md.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from hubbub.errors import AppError
from hubbub.validation import field_errors, loads, unclean, validation_error

__all__ = ["OrjsonJson", "ack_error", "ack_ok", "check_payload", "parse_payload"]

Model = TypeVar("Model", bound=BaseModel)


class OrjsonJson:
    """The ``json`` module python-socketio expects, backed by orjson."""

    @staticmethod
    def dumps(value: Any, *args: Any, **kwargs: Any) -> str:
        return orjson.dumps(value).decode()

    @staticmethod
    def loads(value: str | bytes, *args: Any, **kwargs: Any) -> Any:
        # A lone surrogate escape decodes (see hubbub.validation.loads),
        # so the event is acked with the field named rather than dropped.
        return loads(value)


def ack_ok(data: Any = None) -> dict[str, Any]:
    return {"ok": True, "data": data}


def ack_error(error: AppError) -> dict[str, Any]:
    return {"error": error.to_wire()}


def check_payload(data: Any, location: str = "body") -> None:
    """Refuse an event's payload (or, as ``"auth"``, a handshake's) holding NUL,
    a lone surrogate or nesting deeper than ``MAX_DEPTH``: 422
    ``validation_failed`` naming each field."""
    errors = unclean(data, location)
    if errors:
        raise validation_error(errors)


def parse_payload(model: type[Model], data: Any) -> Model:
    """An event's payload as ``model``; 422 ``validation_failed`` naming each bad field."""
    try:
        return model.model_validate(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise validation_error(field_errors("body", exc)) from None
