"""The Socket.IO wire: JSON codec and the shape of acknowledgements.

Every ack is either ``{"ok": true, "data": ...}`` or
``{"error": {"code", "message", "retriable", "errors"?}}`` — the same
``code`` values as the HTTP problem documents. Event names and payloads are
listed in docs/events.md.
"""

from __future__ import annotations

from typing import Any

import orjson

from hubbub.errors import AppError

__all__ = ["OrjsonJson", "ack_error", "ack_ok"]


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
