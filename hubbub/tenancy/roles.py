"""Tenant roles and what each may do: owner > admin > member > viewer."""

from __future__ import annotations

from typing import Literal

__all__ = ["ROLES", "Role", "at_least", "rank"]

Role = Literal["owner", "admin", "member", "viewer"]

#: Highest first.
ROLES: tuple[Role, ...] = ("owner", "admin", "member", "viewer")

_RANK = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}


def rank(role: str) -> int:
    """Higher is more powerful; ValueError for a name that is not a role."""
    try:
        return _RANK[role]
    except KeyError:
        raise ValueError(f"expected one of {ROLES}, got {role!r}") from None


def at_least(role: str, minimum: str) -> bool:
    return rank(role) >= rank(minimum)
