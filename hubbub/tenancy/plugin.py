"""Tenancy as a gateway plugin: the tenant entity kind, its routes, the plan
catalog, the sockets' tenant rooms, presence and the purge sweep."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hubbub.plugin import Plugin
from hubbub.services import Services
from hubbub.tenancy.access import PLANS
from hubbub.tenancy.api import api
from hubbub.tenancy.api_keys_api import api as api_keys_api
from hubbub.tenancy.entity import TenantEntity
from hubbub.tenancy.eviction import tenant_access, unwatch_tenant, watch_tenant
from hubbub.tenancy.members_api import api as members_api
from hubbub.tenancy.plans import parse_plans
from hubbub.tenancy.presence_api import PRESENCE_EVENTS, presence
from hubbub.tenancy.presence_api import api as presence_api
from hubbub.tenancy.purge import tenant_purge
from hubbub.tenancy.staff_api import api as staff_api

__all__ = ["plugin"]


async def _plans(services: Services) -> AsyncIterator[None]:
    """The plan catalog of ``HUBBUB_PLANS``; an invalid one stops start-up."""
    services.app[PLANS] = parse_plans(services.settings.plans)
    yield


plugin = Plugin(
    "tenancy",
    entity_kinds=(TenantEntity,),
    apis=(api, members_api, api_keys_api, staff_api, presence_api),
    socket_events={
        "tenant:watch": watch_tenant,
        "tenant:unwatch": unwatch_tenant,
        **PRESENCE_EVENTS,
    },
    start=(_plans, tenant_access, tenant_purge, presence),
)
