"""A tenant's plan and its usage counters.

The plan names an entry of the deployment's catalog (``hubbub.tenancy.plans``,
checked at the edge); usage counts the uses of metered features. Pure
rules, see :mod:`hubbub.tenancy.state`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from hubbub.tenancy.authority import acting_member, live
from hubbub.tenancy.commands import RecordUsage, SetPlan
from hubbub.tenancy.events import Event, PlanChanged, UsageRecorded
from hubbub.tenancy.records import TenantState

__all__ = ["APPLIERS", "DECIDERS"]


def _set_plan(state: TenantState | None, command: SetPlan, now: datetime) -> list[Event]:
    tenant = live(state)
    if command.plan == tenant.plan:
        return []
    return [PlanChanged(command.plan, tenant.plan, now, command.by, command.reason)]


def _record_usage(state: TenantState | None, command: RecordUsage, now: datetime) -> list[Event]:
    acting_member(state, command.actor)
    assert state is not None
    metric = command.metric
    return [UsageRecorded(metric, state.usage.get(metric, 0) + command.amount, now)]


DECIDERS: dict[type, Callable[[TenantState | None, Any, datetime], list[Event]]] = {
    SetPlan: _set_plan,
    RecordUsage: _record_usage,
}


def _plan_changed(state: TenantState, event: PlanChanged) -> None:
    state.plan, state.updated_at = event.plan, event.at


def _usage_recorded(state: TenantState, event: UsageRecorded) -> None:
    state.usage[event.metric] = event.value


APPLIERS: dict[type, Callable[[TenantState, Any], None]] = {
    PlanChanged: _plan_changed,
    UsageRecorded: _usage_recorded,
}
