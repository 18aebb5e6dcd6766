"""Async signup as a gateway plugin: its routes and the pruning of expired
stream links and old signups. Its job kind is one of the jobs plugin's
``BUILTIN_KINDS``; this plugin is installed after the jobs plugin, whose job
feeds its stream uses."""

from __future__ import annotations

from datetime import timedelta

from hubbub.plugin import Plugin
from hubbub.provisioning.api import api
from hubbub.provisioning.signups import prune_signups
from hubbub.services import Services, every

__all__ = ["PRUNE_SECONDS", "plugin"]

#: How often each gateway deletes expired stream links and old signups.
PRUNE_SECONDS = 3600.0


async def _prune(services: Services) -> int:
    retention = timedelta(days=services.settings.auth_retention_days)
    return await prune_signups(services.db, retention)


plugin = Plugin(
    "provisioning", apis=(api,), start=(every("signup pruning", PRUNE_SECONDS, _prune),)
)
