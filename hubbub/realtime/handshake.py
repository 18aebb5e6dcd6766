"""The Socket.IO handshake: who is connecting.

An :class:`Authenticator` turns the connection's ``auth`` payload and
environ into a :class:`Principal`, or raises an AppError that refuses the
connection with that error's code. The identity layer plugs its
authenticator in here; until one is configured, sockets are anonymous.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ANONYMOUS", "Authenticator", "Principal", "anonymous"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The identity behind a socket or a request."""

    user_id: str | None = None
    session_id: str | None = None  # the login session a token belongs to
    tenant_id: str | None = None
    scopes: frozenset[str] = frozenset()

    @property
    def anonymous(self) -> bool:
        return self.user_id is None


ANONYMOUS = Principal()

#: ``(environ, auth) -> Principal``; raise AppError to refuse the connection.
Authenticator = Callable[[Mapping[str, Any], Any], Awaitable[Principal]]


async def anonymous(environ: Mapping[str, Any], auth: Any) -> Principal:
    """The authenticator of a deployment without identity: everyone is anonymous."""
    return ANONYMOUS
