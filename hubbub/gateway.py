"""The gateway application: HTTP, Socket.IO and the services behind them.

:func:`create_app` assembles one gateway from resolved settings (real
database and Redis URLs) and its plugins. Every resource is one
``cleanup_ctx`` generator, registered in dependency order and torn down in
reverse: Postgres, Redis, the shards and their router, the gateway's one
fan-out bus (which every capability's consumers route topics on), then each
plugin's start hooks, given the :class:`~hubbub.services.Services`.
Each adds its check to the readiness report. The Socket.IO authenticator is
the first one a plugin provides (identity's, built in) unless one is given;
so is the authenticator of requests to routes that declare a security scheme.
Ray must be connected before the app starts (``hubbub.actors.runtime.connect_ray``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aiohttp import web

from hubbub.actors.router import Router
from hubbub.actors.runtime import open_shards, ray_status
from hubbub.config import ConfigError, Settings
from hubbub.http.app import create_http_app
from hubbub.http.health import Readiness
from hubbub.http.metrics import METRICS
from hubbub.http.routing import REQUEST_AUTHENTICATOR
from hubbub.plugin import Plugin
from hubbub.realtime.handshake import Authenticator, anonymous
from hubbub.realtime.server import Realtime
from hubbub.services import (
    DATABASE,
    REALTIME,
    REDIS,
    ROUTER,
    SERVICES,
    SETTINGS,
    Services,
    StartHook,
)
from hubbub.storage.database import Database
from hubbub.storage.redis import connect_redis, ping_redis

__all__ = ["create_app"]

_SHARD_CHECK_TIMEOUT = 2.0


def create_app(
    settings: Settings, plugins: Sequence[Plugin], authenticate: Authenticator | None = None
) -> web.Application:
    """One gateway. ``settings`` must carry the database and Redis URLs."""
    if authenticate is None:
        provided = [p.authenticator for p in plugins if p.authenticator is not None]
        authenticate = provided[0] if provided else anonymous
    assert settings.database_url and settings.redis_url, "resolve embedded services first"
    readiness = Readiness()
    apis = [api for p in plugins for api in p.apis]
    app = create_http_app(settings, apis, readiness)
    app[SETTINGS] = settings
    request_authenticators = [p.request_authenticator for p in plugins if p.request_authenticator]
    if request_authenticators:
        app[REQUEST_AUTHENTICATOR] = request_authenticators[0]
    elif any(route.security for api in apis for route in api.routes):
        raise ConfigError("routes declare a security scheme but no plugin authenticates requests")
    app[REDIS] = connect_redis(settings.redis_url)
    realtime = app[REALTIME] = Realtime(app, settings, app[REDIS], authenticate)
    for plugin in plugins:
        for event, handler in plugin.socket_events.items():
            realtime.on(event, handler)
    kinds = [kind for plugin in plugins for kind in plugin.entity_kinds]
    app.cleanup_ctx.extend(
        [
            lambda app: _database(app, readiness),
            lambda app: _redis(app, readiness),
            lambda app: _shards(app, readiness, kinds),
            lambda app: _realtime(app, readiness),
            *(_started(hook) for plugin in plugins for hook in plugin.start),
        ]
    )
    return app


def _started(hook: StartHook) -> Callable[[web.Application], AsyncIterator[None]]:
    """``hook`` as a ``cleanup_ctx``, given the services started before it."""
    return lambda app: hook(app[SERVICES])


async def _database(app: web.Application, readiness: Readiness) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.database_url is not None
    app[DATABASE] = await Database.connect(
        settings.database_url, role=settings.app_role, size=settings.db_pool_size
    )
    readiness.add("postgres", app[DATABASE].ping)
    yield
    await app[DATABASE].close()


async def _redis(app: web.Application, readiness: Readiness) -> AsyncIterator[None]:
    await app[REDIS].ping()  # fail start-up now rather than on the first request
    readiness.add("redis", lambda: ping_redis(app[REDIS]))
    yield
    await app[REDIS].aclose()


async def _shards(
    app: web.Application, readiness: Readiness, kinds: list[Any]
) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    shards = {}
    for kind in kinds:
        shards[kind.kind] = await asyncio.to_thread(open_shards, kind, settings.shards, settings)
    router = app[ROUTER] = Router(shards, settings)
    app[METRICS].shards = [ref for refs in shards.values() for ref in refs]

    async def check_ray() -> dict[str, Any]:
        refs = [ref for kind in router.kinds for ref in router.shards(kind)]
        async with asyncio.timeout(_SHARD_CHECK_TIMEOUT):
            await asyncio.gather(*(ref.stats() for ref in refs))
        return ray_status() | {"shards": len(refs)}

    readiness.add("ray", check_ray)
    refs = [ref for kind in router.kinds for ref in router.shards(kind)]
    readiness.add("leases", lambda: router.fencing.check(app[DATABASE].pool, refs))
    yield
    await router.close()


async def _realtime(app: web.Application, readiness: Readiness) -> AsyncIterator[None]:
    realtime = app[REALTIME]
    await realtime.start()
    readiness.add("fanout", realtime.fanout.probe)
    app[SERVICES] = Services(
        app, app[SETTINGS], app[DATABASE], app[REDIS], app[ROUTER], realtime, readiness
    )
    yield
    await realtime.close()
