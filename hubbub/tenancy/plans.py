"""Plans: feature flags, limits and rate buckets, defined in configuration.

``HUBBUB_PLANS`` holds a JSON object ``{plan: {features, limits, buckets}}``;
unset, :data:`DEFAULT_PLANS` applies. ``features`` is a list of names a
gated call checks (402 ``feature_not_in_plan`` when absent); ``limits`` maps
a limit name to a number (``null`` = unlimited); ``buckets`` maps a rate
bucket to a rate like ``"10/minute"``, enforced per tenant in Redis. The
first plan listed is the plan new tenants start on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hubbub.config import ConfigError
from hubbub.errors import AppError

__all__ = ["DEFAULT_PLANS", "Plan", "PlanCatalog", "parse_plans"]

DEFAULT_PLANS: dict[str, Any] = {
    "free": {"features": [], "limits": {"max_members": 5}, "buckets": {}},
    "pro": {
        "features": ["ai", "api_access"],
        "limits": {"max_members": 50},
        "buckets": {"ai": "10/minute"},
    },
    "business": {
        "features": ["ai", "api_access"],
        "limits": {"max_members": None},
        "buckets": {"ai": "100/minute"},
    },
}

_NAME = r"^[a-z][a-z0-9_]{0,39}$"
_RATE = r"^[1-9][0-9]{0,8}/(second|minute|hour|day)$"


class _PlanModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    features: list[str] = Field(default_factory=list)
    limits: dict[str, int | None] = Field(default_factory=dict)
    buckets: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    features: frozenset[str]
    limits: Mapping[str, int | None]
    buckets: Mapping[str, str]

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "features": sorted(self.features),
            "limits": dict(self.limits),
            "buckets": dict(self.buckets),
        }


@dataclass(frozen=True, slots=True)
class PlanCatalog:
    """Every plan of the deployment, by name; the first is the default."""

    plans: Mapping[str, Plan]

    @property
    def default(self) -> str:
        return next(iter(self.plans))

    def get(self, name: str) -> Plan:
        """The plan ``name``; a tenant on a plan no longer configured gets none of it."""
        return self.plans.get(name) or Plan(name, frozenset(), {}, {})

    def limits(self, limit: str) -> dict[str, int | None]:
        """``{plan: value}`` of one limit, for an entity to decide against."""
        return {name: plan.limits.get(limit) for name, plan in self.plans.items()}

    def require_feature(self, plan_name: str, feature: str) -> Plan:
        """The plan, if it has ``feature``; AppError 402 otherwise."""
        plan = self.get(plan_name)
        if feature not in plan.features:
            with_it = [name for name, p in self.plans.items() if feature in p.features]
            raise AppError(
                "feature_not_in_plan",
                f"the {plan_name!r} plan does not include {feature!r}; plans that do: {with_it}",
                status=402,
                extra={"feature": feature, "plan": plan_name, "plans_with_feature": with_it},
            )
        return plan


def parse_plans(raw: str | None) -> PlanCatalog:
    """The catalog of ``HUBBUB_PLANS`` (None: the default); ConfigError if invalid."""
    data: Any = DEFAULT_PLANS if raw is None or not raw.strip() else _json(raw)
    if not isinstance(data, dict) or not data:
        raise _invalid("expected a non-empty JSON object {plan: {features, limits, buckets}}")
    plans: dict[str, Plan] = {}
    for name, spec in data.items():
        plans[name] = _plan(name, spec)
    return PlanCatalog(plans)


def _plan(name: str, spec: Any) -> Plan:
    if not re.match(_NAME, name):
        raise _invalid(f"plan name {name!r}: expected lowercase letters, digits, _")
    try:
        model = _PlanModel.model_validate(spec)
    except ValidationError as exc:
        raise _invalid(f"plan {name!r}: {exc.errors(include_url=False)[0]['msg']}") from None
    for bucket, rate in model.buckets.items():
        if not re.match(_RATE, rate):
            raise _invalid(f"plan {name!r} bucket {bucket!r}: expected N/unit, got {rate!r}")
    for limit, value in model.limits.items():
        if value is not None and value < 0:
            raise _invalid(f"plan {name!r} limit {limit!r}: expected >= 0 or null")
    return Plan(name, frozenset(model.features), dict(model.limits), dict(model.buckets))


def _json(raw: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _invalid(f"not valid JSON: {exc}") from None


def _invalid(message: str) -> ConfigError:
    return ConfigError(f"invalid configuration:\n  HUBBUB_PLANS: {message}")
