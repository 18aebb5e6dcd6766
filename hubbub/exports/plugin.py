"""Exports as a gateway plugin: the ``export.conversations`` job kind, the
export store and the signed download route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from hubbub.exports import job
from hubbub.exports.api import STORE, api
from hubbub.exports.links import load_key
from hubbub.exports.store import open_store
from hubbub.gateway import SETTINGS
from hubbub.plugin import Plugin

__all__ = ["JOB_KINDS", "plugin"]

#: Modules whose import declares the job kinds of exports.
JOB_KINDS = (job,)


async def _store(app: web.Application) -> AsyncIterator[None]:
    """The export store, and the link key read once off the event loop."""
    app[STORE] = open_store(app[SETTINGS])
    await asyncio.to_thread(load_key, app[SETTINGS])
    yield


plugin = Plugin("exports", apis=(api,), cleanup_ctx=(_store,))
