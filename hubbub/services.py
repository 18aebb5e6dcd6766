"""What a gateway's capabilities are given: its shared, already started services.

The gateway starts them in one explicit order — Postgres, Redis, the shards
and their router, the fan-out bus — and only then runs each capability's
start hooks, handing every hook the same :class:`Services`. So nothing looks
a service up lazily or patches a callback in later. The AppKeys here are how
request handlers reach the same services (``request.app[ROUTER]``); this is a
leaf module, so an edge module never imports the gateway for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from hubbub.actors.router import Router
from hubbub.config import Settings
from hubbub.http.health import Readiness
from hubbub.periodic import Periodic
from hubbub.realtime.fanout import Fanout
from hubbub.realtime.server import Realtime
from hubbub.storage.database import Database

__all__ = [
    "DATABASE",
    "REALTIME",
    "REDIS",
    "ROUTER",
    "SERVICES",
    "SETTINGS",
    "Services",
    "StartHook",
    "every",
]


@dataclass(frozen=True, slots=True)
class Services:
    """The gateway's services, each started before any capability's hook runs."""

    app: web.Application
    settings: Settings
    db: Database
    redis: Redis
    router: Router
    realtime: Realtime
    readiness: Readiness

    @property
    def bus(self) -> Fanout:
        """The gateway's one subscription for committed events."""
        return self.realtime.fanout


#: A capability's start hook: set up with the services, ``yield``, tear down
#: (run as an aiohttp ``cleanup_ctx``, in plugin order, after every service).
StartHook = Callable[[Services], AsyncIterator[None]]

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
REDIS = web.AppKey("redis", Redis)
ROUTER = web.AppKey("router", Router)
REALTIME = web.AppKey("realtime", Realtime)
SERVICES = web.AppKey("services", Services)


def every(name: str, interval: float, round: Callable[[Services], Awaitable[object]]) -> StartHook:
    """A start hook that runs ``round(services)`` every ``interval`` seconds
    (the first an interval after start-up) while the gateway runs."""

    async def context(services: Services) -> AsyncIterator[None]:
        rounds = Periodic(name, interval, lambda: round(services))
        rounds.start()
        yield
        await rounds.close()

    return context
