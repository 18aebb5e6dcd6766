"""Service accounts: how an API key acts inside its tenant.

Each API key is its own service account, whose id is the key's id. The
tenant entity knows it beside the human roster (not in it: it is never
listed as a member, never counts against ``max_members``, and cannot be
given another role or removed through the member routes) and authorises it
exactly like a member, with the role its scopes give: ``read`` → viewer,
``write`` → member, ``admin`` → admin (the highest scope wins). A revoked
or expired key's account authorises nothing. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["SCOPES", "WRITE_SCOPES", "ServiceAccount", "role_for_scopes"]

#: Every scope, weakest first.
SCOPES: tuple[str, ...] = ("read", "write", "admin")

#: Scopes that allow requests other than reads.
WRITE_SCOPES = frozenset({"write", "admin"})

_ROLES = {"read": "viewer", "write": "member", "admin": "admin"}


def role_for_scopes(scopes: Iterable[str]) -> str:
    """The tenant role of a key with ``scopes``; ValueError for none or unknown ones."""
    given = set(scopes)
    if not given or not given <= set(SCOPES):
        raise ValueError(f"expected a non-empty subset of {SCOPES}, got {sorted(given)}")
    strongest = max(given, key=SCOPES.index)
    return _ROLES[strongest]


@dataclass(slots=True)
class ServiceAccount:
    """One API key as its tenant knows it (never the key or its hash); changed
    in place only by its tenant entity (``revoked_at``)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    prefix: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None

    @property
    def role(self) -> str:
        return role_for_scopes(self.scopes)

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def to_view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "prefix": self.prefix,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }
