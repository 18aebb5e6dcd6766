"""The wake sweep every gateway runs: snoozed support conversations whose
``snooze_until`` has passed go back to open.

The conversation entity owns the rule: any command it decides after the
time has come ends with the wake event (``hubbub.chat.rules``). This sweep
covers the conversations nobody touches. Every
``HUBBUB_SNOOZE_SWEEP_SECONDS`` a gateway tries to take a
transaction-scoped advisory lock; the one that gets it (the others skip
this round, so one sweep runs at a time across gateways) lists the due
conversations — with ``hubbub.snooze_sweep`` set, the ``due_for_wake``
policy of migration 0009 shows it exactly those, across tenants — and
sends each a ``wake`` command in its tenant's scope. ``snooze_until`` lives
in Postgres, so a wake due while every gateway was down happens on the
first round after start-up (or at the conversation's next command).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from hubbub.actors.router import Router
from hubbub.chat.commands import Wake, ask
from hubbub.errors import AppError
from hubbub.periodic import Periodic
from hubbub.services import Services
from hubbub.storage.database import Database

__all__ = ["SNOOZE", "SnoozeSweep", "snooze_sweep"]

log = logging.getLogger(__name__)

#: ``pg_try_advisory_xact_lock`` key of the sweep (any constant unique to it).
_LOCK = 0x6875_6262_736E_7A65  # "hubbsnze"
_BATCH = 500
_DUE = """SELECT id, tenant_id FROM conversations
WHERE status = 'snoozed' AND snooze_until <= now() AND deleted_at IS NULL
ORDER BY snooze_until LIMIT $1"""


class SnoozeSweep:
    """Owns: this gateway's wake task.

    Concurrency: one task; across gateways one sweep at a time (advisory
    lock). Durability: each wake is committed by its conversation entity; a
    conversation not woken this round is due again next round. Failure: a
    failed wake or round is logged and counted, and the loop goes on.
    """

    def __init__(self, db: Database, router: Router, *, interval: float) -> None:
        self._db = db
        self._router = router
        self.rounds = Periodic("snooze sweep", interval, self.sweep)
        self.woken = 0
        self.failures = 0

    async def sweep(self) -> int | None:
        """One round: how many wakes were sent, None if another gateway sweeps."""
        async with self._db.tenant(None) as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
                return None
            await conn.execute("SELECT set_config('hubbub.snooze_sweep', 'on', true)")
            due = [(str(r["tenant_id"]), str(r["id"])) for r in await conn.fetch(_DUE, _BATCH)]
            outcomes = await asyncio.gather(*(self._wake(t, c) for t, c in due))
        return sum(outcomes)

    async def _wake(self, tenant_id: str, conversation_id: str) -> int:
        try:
            await ask(self._router, tenant_id, conversation_id, Wake())
        except AppError as error:
            self.failures += 1
            log.warning("waking conversation %s failed (%s)", conversation_id, error)
            return 0
        self.woken += 1
        return 1


SNOOZE = web.AppKey("snooze_sweep", SnoozeSweep)


async def snooze_sweep(services: Services) -> AsyncIterator[None]:
    """A start hook: the wake sweep (its first round one interval after start-up)."""
    sweep = services.app[SNOOZE] = SnoozeSweep(
        services.db, services.router, interval=services.settings.snooze_sweep_seconds
    )
    sweep.rounds.start()
    yield
    await sweep.rounds.close()
