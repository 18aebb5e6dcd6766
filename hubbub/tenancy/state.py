"""A tenant's pure rules: :func:`decide` and :func:`apply`.

No I/O, no clock (``now`` is passed in), no Ray: :func:`decide` turns a
typed command (:mod:`hubbub.tenancy.commands`) into events
(:mod:`hubbub.tenancy.events`), or raises an :class:`AppError`, changing
nothing; :func:`apply` folds one event into the state
(:mod:`hubbub.tenancy.records`) in place. The rules of each concept live
beside it — the tenant itself in ``lifecycle.py``, the roster in
``roster.py``, invites in ``invites.py``, plan and usage in ``usage.py``,
API keys in ``api_keys.py`` — each giving a table of deciders and one of
appliers, joined here. Who may act is ``authority.py``; the read-only
commands and the replies are in :mod:`hubbub.tenancy.views`. The tenant
entity (:mod:`hubbub.tenancy.entity`) persists and publishes what these
decide.

Every command but ``CreateTenant``, ``SetPlan``, ``PurgeTenant``,
``CheckInvite`` and ``AcceptInvite`` is authorised against the roster this
state owns: a user who is not a member — or a tenant that does not exist or
was deleted — gets 404, so a foreign id reveals nothing; a member below the
needed role gets 403.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from hubbub.actors.command import CommandBody
from hubbub.errors import AppError
from hubbub.tenancy import api_keys, invites, lifecycle, roster, usage
from hubbub.tenancy.events import Event, TenantCreated, TenantPurged
from hubbub.tenancy.records import TenantState

__all__ = ["apply", "decide"]

_DECIDERS: dict[type, Callable[[TenantState | None, Any, datetime], list[Event]]] = {
    **lifecycle.DECIDERS,
    **roster.DECIDERS,
    **invites.DECIDERS,
    **usage.DECIDERS,
    **api_keys.DECIDERS,
}

_APPLIERS: dict[type, Callable[[TenantState, Any], None]] = {
    **lifecycle.APPLIERS,
    **roster.APPLIERS,
    **invites.APPLIERS,
    **usage.APPLIERS,
    **api_keys.APPLIERS,
}


def decide(state: TenantState | None, command: CommandBody, now: datetime) -> list[Event]:
    """The events of ``command``; raises AppError to refuse it."""
    decider = _DECIDERS.get(type(command))
    if decider is None:
        raise AppError("unknown_command", f"tenant has no command {type(command).__name__!r}")
    return decider(state, command, now)


def apply(state: TenantState | None, event: Event) -> TenantState | None:
    """``state`` with ``event`` folded in, in place (a new state for a creation,
    None once purged); published events advance ``seq``."""
    if isinstance(event, TenantPurged):
        return None
    if isinstance(event, TenantCreated):
        state = lifecycle.created(event)
    else:
        assert state is not None, f"{type(event).__name__} needs an existing tenant"
        _APPLIERS[type(event)](state, event)
    if event.published:
        state.seq += 1
    return state
