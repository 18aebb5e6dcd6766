"""Plans and feature gates: the plan catalog from configuration, 402
``feature_not_in_plan``, the member limit (402 ``plan_limit_reached``) and
the per-tenant ``ai`` rate bucket, enforced in Redis for every gateway."""

from __future__ import annotations

import orjson
import pytest
from aiohttp.test_utils import TestServer

from hubbub.actors.command import Command
from hubbub.config import ConfigError
from hubbub.services import ROUTER
from hubbub.tenancy.commands import SetPlan
from hubbub.tenancy.plans import DEFAULT_PLANS, parse_plans
from tests.support.accounts import unique_email
from tests.support.tenants import TENANTS, call, invite, new_account, new_tenant


async def set_plan(gateway: TestServer, tenant_id: str, plan: str) -> None:
    """What billing or staff do: the tenant entity's own command, not an endpoint."""
    command = Command("tenant", tenant_id, SetPlan(plan), tenant_id)
    await gateway.app[ROUTER].send(command)


def test_the_default_catalog_has_free_pro_and_business() -> None:
    catalog = parse_plans(None)
    assert list(catalog.plans) == ["free", "pro", "business"] and catalog.default == "free"
    assert catalog.get("pro").buckets == {"ai": "10/minute"}
    assert catalog.limits("max_members") == {"free": 5, "pro": 50, "business": None}
    assert parse_plans(orjson.dumps(DEFAULT_PLANS).decode()) == catalog


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        "{}",
        '{"Free!": {}}',
        '{"free": {"features": "ai"}}',
        '{"free": {"buckets": {"ai": "ten per minute"}}}',
        '{"free": {"limits": {"max_members": -1}}}',
        '{"free": {"colour": "red"}}',
    ],
)
def test_an_invalid_plan_catalog_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="HUBBUB_PLANS"):
        parse_plans(raw)


async def test_a_feature_outside_the_plan_is_402_and_inside_it_is_counted(
    gateway: TestServer,
) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    base = f"{TENANTS}/{tenant['id']}"
    status, plan = await call(gateway, "GET", f"{base}/plan", owner.token)
    assert status == 200
    assert plan == {
        "plan": "free",
        "features": [],
        "limits": {"max_members": 5},
        "buckets": {},
        "usage": {},
    }
    status, problem = await call(gateway, "POST", f"{base}/features/ai/uses", owner.token)
    assert (status, problem["code"]) == (402, "feature_not_in_plan")
    assert problem["plans_with_feature"] == ["pro", "business"]

    await set_plan(gateway, tenant["id"], "business")
    status, used = await call(gateway, "POST", f"{base}/features/ai/uses", owner.token)
    assert (status, used) == (200, {"feature": "ai", "plan": "business", "used": 1})
    _, plan = await call(gateway, "GET", f"{base}/plan", owner.token)
    assert (plan["plan"], plan["usage"]) == ("business", {"ai": 1})


async def test_the_ai_bucket_allows_ten_a_minute_per_tenant(gateway: TestServer) -> None:
    owner = await new_account(gateway)
    busy, other = await new_tenant(gateway, owner), await new_tenant(gateway, owner)
    for tenant in (busy, other):
        await set_plan(gateway, tenant["id"], "pro")
    uses = f"{TENANTS}/{busy['id']}/features/ai/uses"
    for n in range(1, 11):
        status, used = await call(gateway, "POST", uses, owner.token)
        assert (status, used["used"]) == (200, n)
    status, problem = await call(gateway, "POST", uses, owner.token)
    assert (status, problem["code"]) == (429, "rate_limited")
    assert problem["retry_after"] >= 1
    # Another tenant has its own bucket; the refused use was not counted.
    assert (await call(gateway, "POST", f"{TENANTS}/{other['id']}/features/ai/uses", owner.token))[
        0
    ] == 200
    _, plan = await call(gateway, "GET", f"{TENANTS}/{busy['id']}/plan", owner.token)
    assert plan["usage"] == {"ai": 10}


async def test_the_member_limit_counts_pending_invites(gateway: TestServer) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    for _ in range(4):  # the owner plus four pending invites fill the free plan's five
        await invite(gateway, tenant["id"], owner, unique_email())
    body = {"email": unique_email(), "role": "member"}
    path = f"{TENANTS}/{tenant['id']}/invites"
    status, problem = await call(gateway, "POST", path, owner.token, body)
    assert (status, problem["code"]) == (402, "plan_limit_reached")
    assert (problem["limit"], problem["max"]) == ("max_members", 5)

    await set_plan(gateway, tenant["id"], "pro")
    assert (await call(gateway, "POST", path, owner.token, body))[0] == 201


async def test_a_gate_answers_404_before_402_to_a_stranger(gateway: TestServer) -> None:
    owner, stranger = await new_account(gateway), await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    path = f"{TENANTS}/{tenant['id']}/features/ai/uses"
    status, problem = await call(gateway, "POST", path, stranger.token)
    assert (status, problem["code"]) == (404, "not_found")
