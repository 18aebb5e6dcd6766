"""Exports as a gateway plugin: the ``export.conversations`` job kind, the
export store with its pruning, and the signed download route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from hubbub.config import Settings
from hubbub.exports import job
from hubbub.exports.api import STORE, api
from hubbub.exports.links import load_key
from hubbub.exports.store import FileStore, open_store
from hubbub.plugin import Plugin
from hubbub.services import Services, every

__all__ = ["JOB_KINDS", "PRUNE_SECONDS", "plugin", "prune_expired"]

#: Modules whose import declares the job kinds of exports.
JOB_KINDS = (job,)

#: How often each gateway deletes exports whose links have expired.
PRUNE_SECONDS = 3600.0
#: Kept past the link lifetime: a link is signed a moment after its file is written.
_MARGIN = timedelta(hours=1)


async def prune_expired(store: FileStore, settings: Settings) -> int:
    """Delete the exports no link can reach any more (and abandoned partial files)."""
    lifetime = timedelta(hours=settings.export_link_hours)
    return await store.prune(datetime.now(UTC) - lifetime - _MARGIN)


async def _store(services: Services) -> AsyncIterator[None]:
    """The export store, and the link key read once off the event loop."""
    settings = services.settings
    services.app[STORE] = open_store(settings)
    await asyncio.to_thread(load_key, settings)
    yield


async def _prune(services: Services) -> int:
    return await prune_expired(services.app[STORE], services.settings)


plugin = Plugin(
    "exports",
    apis=(api,),
    start=(_store, every("export pruning", PRUNE_SECONDS, _prune)),
)
