"""Async signup as a gateway plugin: its routes and the pruning of expired
stream links and old signups. Its job kind is one of the jobs plugin's
``BUILTIN_KINDS``; this plugin is installed after the jobs plugin, whose job
feeds its stream uses."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from hubbub.gateway import DATABASE, SETTINGS
from hubbub.periodic import every
from hubbub.plugin import Plugin
from hubbub.provisioning.api import api
from hubbub.provisioning.signups import prune_signups

__all__ = ["PRUNE_SECONDS", "plugin"]

#: How often each gateway deletes expired stream links and old signups.
PRUNE_SECONDS = 3600.0


async def _prune(app: web.Application) -> int:
    retention = timedelta(days=app[SETTINGS].auth_retention_days)
    return await prune_signups(app[DATABASE], retention)


plugin = Plugin(
    "provisioning", apis=(api,), cleanup_ctx=(every("signup pruning", PRUNE_SECONDS, _prune),)
)
