"""Tenants: members, roles, invites, plans and feature gates.

Ownership — everyone else sends commands to the owner:

| state                                           | owner                                   |
|-------------------------------------------------|-----------------------------------------|
| a tenant's profile, settings, plan, event seq   | its ``TenantEntity`` (``entity.py``)    |
| its member roster and roles                     | its ``TenantEntity``                    |
| its invites and their token hashes              | its ``TenantEntity``                    |
| its usage counters                              | its ``TenantEntity``                    |
| its lifecycle: deletion, restore, purge         | its ``TenantEntity``                    |
| creation idempotency keys (``tenant_creations``)| the gateway creating the tenant         |
| its API keys / service accounts (not the key)   | its ``TenantEntity``                    |
| an API key's ``last_used_at``                   | the gateway the key is used on          |
| its rate buckets                                | Redis, through ``hubbub.ratelimit``     |
| slug reservations (``tenant_slugs``)            | the gateway creating/renaming the tenant|
| the plan catalog                                | configuration (``HUBBUB_PLANS``)        |
| which local sockets are in a tenant's room      | the gateway holding them                |

The public face, for the edges and for other capabilities: the typed
command bodies in ``commands.py``, sent with ``access.py``
(``send_tenant``, ``ask_tenant``, ``authorize``, ``roster``,
``require_member``, ``require_feature``); the replies are the dicts of
``views.py``. Nothing else here is for use outside tenancy.

The entity is ``entity.py`` (loading, SQL writes from ``Table``
definitions, publications). Its pure rules: ``state.py`` (``decide`` and
``apply``, joining the tables of ``lifecycle.py``, ``roster.py``,
``invites.py``, ``usage.py`` and ``api_keys.py``), over the records of
``records.py``, with who may act in ``authority.py``; events in
``events.py`` (each with its wire view), answers in ``views.py``. HTTP
routes in ``api.py``, ``members_api.py``, ``api_keys_api.py``; service
accounts in ``service_accounts.py``; the cross-tenant reads in
``directory.py``; staff routes in ``staff_api.py``; idempotent creation in
``creations.py``; the purge sweep in ``purge.py``; sockets in
``eviction.py``.
"""
