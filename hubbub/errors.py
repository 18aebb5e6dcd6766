"""Expected failures, as values that cross every layer.

An :class:`AppError` carries a stable machine ``code``, a human message, the
HTTP status it maps to and whether retrying may succeed. Each edge maps it
once: HTTP to RFC 9457 problem+json (``hubbub.http.problem``), Socket.IO to
an ack ``{error: {code, message}}``. Bugs are not AppErrors: they crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["AppError", "FieldError"]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad input field: where it is, and what was expected."""

    location: str  # "body", "query", "path" or "header"
    field: str  # dotted path inside that location, e.g. "member_ids.2"
    message: str

    def to_wire(self) -> dict[str, str]:
        return {"in": self.location, "field": self.field, "message": self.message}


@dataclass(slots=True)
class AppError(Exception):
    """An expected failure with a stable ``code`` (``snake_case``)."""

    code: str
    message: str
    status: int = 400
    retriable: bool = False
    errors: tuple[FieldError, ...] = field(default=())
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.code, self.message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Survives pickling across Ray process boundaries with every field.
        return (
            AppError,
            (self.code, self.message, self.status, self.retriable, self.errors, self.extra),
        )

    def to_wire(self) -> dict[str, Any]:
        """The Socket.IO ack form: ``{code, message, retriable, ...}``."""
        wire: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "retriable": self.retriable,
        }
        if self.errors:
            wire["errors"] = [error.to_wire() for error in self.errors]
        return wire | self.extra

    @classmethod
    def not_found(cls, what: str) -> AppError:
        return cls("not_found", f"{what} was not found", status=404)

    @classmethod
    def unavailable(cls, code: str, message: str) -> AppError:
        """A temporary failure: the same request may succeed later."""
        return cls(code, message, status=503, retriable=True)
