"""The purge sweep every gateway runs: deleted tenants whose grace period
ended lose every row they have.

Every ``HUBBUB_TENANT_PURGE_INTERVAL_SECONDS`` a gateway tries to take a
transaction-scoped advisory lock; the one that gets it (the others skip this
round, so one sweep runs at a time across gateways) lists the tenants due —
with ``hubbub.purge_sweep`` set, the ``due_for_purge`` policy of migration
0007 shows it exactly the deleted tenants past ``purge_after`` — and sends
each a ``purge`` command. The tenant entity owns the lifecycle: it decides
the purge against its own state and clock (so a restore and a purge can
never both win) and commits it in the tenant's own row-level-security scope
through ``hubbub_purge_tenant``, which deletes the tenant's rows from every
tenant-scoped table. The same sweep prunes expired tenant-creation keys.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from hubbub.actors.router import Router
from hubbub.errors import AppError
from hubbub.periodic import Periodic
from hubbub.services import Services
from hubbub.storage.database import Database
from hubbub.tenancy.access import send_tenant
from hubbub.tenancy.commands import PurgeTenant

__all__ = ["PURGE", "PurgeSweep", "tenant_purge"]

log = logging.getLogger(__name__)

#: ``pg_try_advisory_xact_lock`` key of the sweep (any constant unique to it).
_LOCK = 0x6875_6262_7075_7267  # "hubbpurg"
_BATCH = 100
_DUE = """SELECT id FROM tenants WHERE deleted_at IS NOT NULL AND purge_after <= now()
ORDER BY purge_after LIMIT $1"""
_PRUNE_CREATIONS = "DELETE FROM tenant_creations WHERE created_at < now() - $1::interval"


class PurgeSweep:
    """Owns: this gateway's sweep task.

    Concurrency: one task; across gateways one sweep at a time (advisory
    lock). Durability: each purge is committed by its tenant entity; a
    tenant not purged this round (an error, a shard restart) is due again
    next round. Failure: a failed purge or round is logged and counted, and
    the loop goes on.
    """

    def __init__(
        self,
        db: Database,
        router: Router,
        *,
        interval: float,
        creation_window: timedelta,
    ) -> None:
        self._db = db
        self._router = router
        self._creation_window = creation_window
        self.rounds = Periodic("tenant purge sweep", interval, self.sweep)
        self.purged = 0
        self.failures = 0

    async def sweep(self) -> int | None:
        """One round: how many tenants were purged, None if another gateway sweeps."""
        async with self._db.tenant(None) as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
                return None
            await conn.execute("SELECT set_config('hubbub.purge_sweep', 'on', true)")
            due = [str(row["id"]) for row in await conn.fetch(_DUE, _BATCH)]
            purged = 0
            for tenant_id in due:  # one at a time: each may delete many rows
                purged += await self._purge(tenant_id)
            await conn.execute(_PRUNE_CREATIONS, self._creation_window)
        return purged

    async def _purge(self, tenant_id: str) -> int:
        try:
            await send_tenant(self._router, tenant_id, PurgeTenant())
        except AppError as error:
            self.failures += 1
            log.warning("purging tenant %s failed (%s); next round retries", tenant_id, error)
            return 0
        self.purged += 1
        log.info("purged tenant %s: its grace period ended", tenant_id)
        return 1


PURGE = web.AppKey("tenant_purge", PurgeSweep)


async def tenant_purge(services: Services) -> AsyncIterator[None]:
    """A start hook: the purge sweep (its first round one interval after start-up)."""
    settings = services.settings
    sweep = services.app[PURGE] = PurgeSweep(
        services.db,
        services.router,
        interval=settings.tenant_purge_interval_seconds,
        creation_window=timedelta(hours=settings.idempotency_window_hours),
    )
    sweep.rounds.start()
    yield
    await sweep.rounds.close()
