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

from hubbub.errors import AppError, FieldError
from hubbub.http.routing import validation_error

__all__ = ["OrjsonJson", "ack_error", "ack_ok", "parse_payload"]

Model = TypeVar("Model", bound=BaseModel)


class OrjsonJson:
    """The ``json`` module python-socketio expects, backed by orjson."""

    @staticmethod
    def dumps(value: Any, *args: Any, **kwargs: Any) -> str:
        return orjson.dumps(value).decode()

    @staticmethod
    def loads(value: str | bytes, *args: Any, **kwargs: Any) -> Any:
        return orjson.loads(value)


def ack_ok(data: Any = None) -> dict[str, Any]:
    return {"ok": True, "data": data}


def ack_error(error: AppError) -> dict[str, Any]:
    return {"error": error.to_wire()}


def parse_payload(model: type[Model], data: Any) -> Model:
    """An event's payload as ``model``; 422 ``validation_failed`` naming each bad field."""
    try:
        return model.model_validate(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        errors = [FieldError("body", ".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
        raise validation_error(errors) from None
