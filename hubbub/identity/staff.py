"""Platform staff: who is staff, account standing changes and the audit log
(``users.is_staff``, ``users.banned_at``, ``users.staff_locked_at`` and the
``staff_audit_log`` table).

Staff status is granted only by an operator (``hubbub staff grant EMAIL``),
never over HTTP. Every change made by staff or by an operator writes one
audit row (:func:`record_audit`, for accounts, signup requests and — through
the tenant entity's commit — tenants' plans) — actor, action, target, the
target's state before and after, the reason — in the same transaction as
the change, so a change without its row
(or a row without its change) cannot exist. A ban or lock also revokes all
of the account's sessions in that transaction; the caller then announces
the revocation so sockets are disconnected (``revocation.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

import asyncpg

from hubbub.errors import AppError
from hubbub.ids import new_id
from hubbub.storage.database import Database

__all__ = [
    "AUDIT_INSERT",
    "AuditEntry",
    "StaffAction",
    "StaffUser",
    "audit_row",
    "change_standing",
    "is_staff",
    "list_audit_log",
    "list_users",
    "record_audit",
    "set_staff",
]

_USER_COLUMNS = "id, email, name, email_verified, created_at, is_staff, banned_at, staff_locked_at"


class StaffAction(StrEnum):
    BAN = "ban"
    UNBAN = "unban"
    LOCK = "lock"
    UNLOCK = "unlock"

    @property
    def column(self) -> str:
        return "banned_at" if self in (StaffAction.BAN, StaffAction.UNBAN) else "staff_locked_at"

    @property
    def revocation_code(self) -> str:
        """Why the sessions ended, as sessions and sockets are told."""
        return "account_banned" if self is StaffAction.BAN else "account_locked_by_staff"

    @property
    def sets(self) -> bool:
        """True when the action bars the account (and so ends its sessions)."""
        return self in (StaffAction.BAN, StaffAction.LOCK)


@dataclass(frozen=True, slots=True)
class StaffUser:
    id: UUID
    email: str
    name: str
    email_verified: bool
    created_at: datetime
    is_staff: bool
    banned_at: datetime | None
    staff_locked_at: datetime | None

    @property
    def standing(self) -> dict[str, bool]:
        """What the audit log records before and after a change."""
        return {
            "is_staff": self.is_staff,
            "banned": self.banned_at is not None,
            "locked": self.staff_locked_at is not None,
        }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: UUID
    actor_id: UUID | None
    action: str
    target_kind: str
    target_id: UUID
    before: dict[str, Any]
    after: dict[str, Any]
    reason: str | None
    at: datetime


async def is_staff(db: Database, user_id: UUID) -> bool:
    found = await db.pool.fetchval(
        "SELECT 1 FROM users WHERE id = $1 AND is_staff AND banned_at IS NULL", user_id
    )
    return found is not None


async def list_users(
    db: Database, *, email_contains: str | None, before: UUID | None, limit: int
) -> list[StaffUser]:
    """Accounts newest first, older than ``before``, whose email contains
    ``email_contains`` (any case); at most ``limit``."""
    rows = await db.pool.fetch(
        f"""SELECT {_USER_COLUMNS} FROM users
            WHERE ($1::text IS NULL OR position(lower($1) IN lower(email)) > 0)
              AND ($2::uuid IS NULL OR id < $2)
            ORDER BY id DESC LIMIT $3""",
        email_contains,
        before,
        limit,
    )
    return [StaffUser(**row) for row in rows]


async def change_standing(
    db: Database, *, actor_id: UUID, target_id: UUID, action: StaffAction, reason: str
) -> tuple[StaffUser, bool]:
    """Apply ``action`` to ``target_id``: ``(the account after, whether it changed)``.

    An action that changes nothing (banning a banned account) writes nothing.
    AppError 404 for an unknown account, 409 ``cannot_act_on_self``.
    """
    if actor_id == target_id:
        raise AppError("cannot_act_on_self", "staff cannot ban or lock themselves", status=409)
    async with db.pool.acquire() as conn, conn.transaction():
        before = await _lock_user(conn, target_id)
        if before is None:
            raise AppError.not_found("user")
        if (getattr(before, action.column) is not None) == action.sets:
            return before, False
        after = await _set_standing(conn, target_id, action)
        if action.sets:
            await _revoke_sessions(conn, target_id, action.revocation_code)
        await record_audit(
            conn,
            actor_id=actor_id,
            action=action,
            target_kind="user",
            target_id=target_id,
            before=before.standing,
            after=after.standing,
            reason=reason,
        )
    return after, True


async def set_staff(
    conn: asyncpg.Connection, email: str, *, grant: bool, reason: str
) -> tuple[StaffUser, bool] | None:
    """An operator grants or revokes staff status by email: ``(account, changed)``,
    or None if no account has that email. Run it in a transaction."""
    before_row = await conn.fetchrow(
        f"SELECT {_USER_COLUMNS} FROM users WHERE lower(email) = lower($1) FOR UPDATE", email
    )
    if before_row is None:
        return None
    before = StaffUser(**before_row)
    if before.is_staff == grant:
        return before, False
    after_row = await conn.fetchrow(
        f"UPDATE users SET is_staff = $2 WHERE id = $1 RETURNING {_USER_COLUMNS}",
        before.id,
        grant,
    )
    after = StaffUser(**after_row)
    action = "staff_grant" if grant else "staff_revoke"
    await record_audit(
        conn,
        actor_id=None,
        action=action,
        target_kind="user",
        target_id=before.id,
        before=before.standing,
        after=after.standing,
        reason=reason,
    )
    return after, True


async def list_audit_log(
    db: Database, *, target_id: UUID | None, before: UUID | None, limit: int
) -> list[AuditEntry]:
    """Audit rows newest first, older than ``before``, about ``target_id`` if given."""
    rows = await db.pool.fetch(
        """SELECT id, actor_id, action, target_kind, target_id, before, after, reason, at
           FROM staff_audit_log
           WHERE ($1::uuid IS NULL OR target_id = $1) AND ($2::uuid IS NULL OR id < $2)
           ORDER BY id DESC LIMIT $3""",
        target_id,
        before,
        limit,
    )
    return [AuditEntry(**row) for row in rows]


async def _lock_user(conn: asyncpg.Connection, user_id: UUID) -> StaffUser | None:
    row = await conn.fetchrow(
        f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE", user_id
    )
    return None if row is None else StaffUser(**row)


async def _set_standing(conn: asyncpg.Connection, user_id: UUID, action: StaffAction) -> StaffUser:
    value = "now()" if action.sets else "NULL"
    row = await conn.fetchrow(
        f"UPDATE users SET {action.column} = {value} WHERE id = $1 RETURNING {_USER_COLUMNS}",
        user_id,
    )
    return StaffUser(**row)


async def _revoke_sessions(conn: asyncpg.Connection, user_id: UUID, reason: str) -> None:
    await conn.execute(
        """UPDATE sessions SET revoked_at = now(), revoked_reason = $2
           WHERE user_id = $1 AND revoked_at IS NULL""",
        user_id,
        reason,
    )


AUDIT_INSERT = """INSERT INTO staff_audit_log
  (id, actor_id, action, target_kind, target_id, before, after, reason)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"""


def audit_row(
    *,
    actor_id: UUID | str | None,
    action: str,
    target_kind: Literal["user", "tenant", "signup_request"],
    target_id: UUID | str,
    before: dict[str, Any],
    after: dict[str, Any],
    reason: str | None,
) -> tuple[Any, ...]:
    """The arguments of :data:`AUDIT_INSERT` for one audit row.

    For a change committed elsewhere (the tenant entity's group commit
    carries it as a ``Write`` beside the change); elsewhere call
    :func:`record_audit`.
    """
    return (new_id(), actor_id, str(action), target_kind, target_id, before, after, reason)


async def record_audit(
    conn: asyncpg.Connection,
    *,
    actor_id: UUID | str | None,
    action: str,
    target_kind: Literal["user", "tenant", "signup_request"],
    target_id: UUID | str,
    before: dict[str, Any],
    after: dict[str, Any],
    reason: str | None = None,
) -> None:
    """Write the audit row of one staff or operator action, in ``conn``'s
    transaction: the one that makes the change, so neither exists alone.

    ``actor_id`` None: an operator at the command line. ``before`` and
    ``after`` describe the target's relevant state around the change.
    """
    row = audit_row(
        actor_id=actor_id,
        action=action,
        target_kind=target_kind,
        target_id=target_id,
        before=before,
        after=after,
        reason=reason,
    )
    await conn.execute(AUDIT_INSERT, *row)
