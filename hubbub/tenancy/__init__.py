"""Tenants: members, roles, invites, plans and feature gates.

Ownership — everyone else sends commands to the owner:

| state                                           | owner                                   |
|-------------------------------------------------|-----------------------------------------|
| a tenant's profile, settings, plan, event seq   | its ``TenantEntity`` (``actors/tenant``)|
| its member roster and roles                     | its ``TenantEntity``                    |
| its invites and their token hashes              | its ``TenantEntity``                    |
| its usage counters                              | its ``TenantEntity``                    |
| its rate buckets                                | Redis, through ``hubbub.ratelimit``     |
| slug reservations (``tenant_slugs``)            | the gateway creating/renaming the tenant|
| the plan catalog                                | configuration (``HUBBUB_PLANS``)        |
| which local sockets are in a tenant's room      | the gateway holding them                |

The rules are pure functions in ``state.py``; HTTP routes in ``api.py`` and
``members_api.py``; authorisation in ``access.py``; the cross-tenant reads
in ``directory.py``; sockets in ``eviction.py``.
"""
