"""The delivery loop every gateway runs: claim due mails, send, record.

Each gateway looks for due mails every ``HUBBUB_MAIL_POLL_SECONDS`` and at
once when woken: code that commits a mail calls :meth:`Delivery.wake`
after its transaction, so a mail queued here leaves without waiting for the
next poll. Gateways share the work through ``SKIP LOCKED`` claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from hubbub.mail.outbox import QueuedMail, claim_due, mark_failed, mark_sent
from hubbub.mail.sender import SMTP_TIMEOUT_SECONDS, Sender, sender_for
from hubbub.services import Services
from hubbub.storage.database import Database

__all__ = ["BATCH", "MAIL", "Delivery", "mail_delivery"]

log = logging.getLogger("hubbub.mail")

BATCH = 20
#: A claimed mail is retried by any gateway if not recorded within this.
LEASE = timedelta(seconds=SMTP_TIMEOUT_SECONDS * 4)


class Delivery:
    """Owns: this gateway's delivery task.

    Concurrency: one task sends one batch at a time (the mails of a batch
    concurrently); other gateways claim other rows. Durability: the outbox
    is the truth; a crash mid-send leaves the row to be retried after its
    lease. Failure: a failed send is recorded and retried with backoff; an
    error of the loop itself is logged and the loop goes on.
    """

    def __init__(self, db: Database, sender: Sender, *, poll: float, max_attempts: int) -> None:
        self._db = db
        self._sender = sender
        self._poll = poll
        self._max_attempts = max_attempts
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failures = 0
        self.given_up = 0

    def wake(self) -> None:
        """Look for due mails now (call after committing one)."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mail-delivery")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def deliver_due(self) -> int:
        """Send one batch of due mails; how many were claimed."""
        batch = await claim_due(self._db, BATCH, LEASE)
        await asyncio.gather(*(self._deliver(queued) for queued in batch))
        return len(batch)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                claimed = await self.deliver_due()
            except Exception:
                log.exception("mail delivery failed; trying again in %.1fs", self._poll)
                claimed = 0
            if claimed < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _deliver(self, queued: QueuedMail) -> None:
        try:
            await self._sender.send(queued.id, queued.mail)
        except Exception as exc:  # any failure of the send is recorded and retried
            await self._failed(queued, f"{type(exc).__name__}: {exc}")
            return
        await mark_sent(self._db, queued.id)
        self.sent += 1

    async def _failed(self, queued: QueuedMail, error: str) -> None:
        self.failures += 1
        given_up = await mark_failed(self._db, queued, error, self._max_attempts)
        self.given_up += given_up
        log.warning(
            "mail %s to %s: attempt %d failed%s: %s",
            queued.id,
            queued.mail.recipient,
            queued.attempts,
            ", giving up" if given_up else "",
            error,
        )


MAIL = web.AppKey("mail", Delivery)


async def mail_delivery(services: Services) -> AsyncIterator[None]:
    """A start hook: the delivery loop."""
    settings = services.settings
    delivery = services.app[MAIL] = Delivery(
        services.db,
        sender_for(settings.smtp_url, settings.mail_from),
        poll=settings.mail_poll_seconds,
        max_attempts=settings.mail_max_attempts,
    )
    delivery.start()
    yield
    await delivery.close()
