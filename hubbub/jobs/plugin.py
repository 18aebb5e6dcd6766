"""Jobs as a gateway plugin: the job entity kind, its routes and SSE stream,
its Socket.IO events, this gateway's job feeds, socket subscriptions and job
sweep, and the registry of job kinds (hubbub's own, then those of installed
packages)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from hubbub.gateway import DATABASE, REALTIME
from hubbub.http.health import READINESS
from hubbub.jobs import demo
from hubbub.jobs.api import api
from hubbub.jobs.entity import JobEntity
from hubbub.jobs.feeds import JobFeeds
from hubbub.jobs.keys import FEEDS
from hubbub.jobs.registry import KINDS
from hubbub.jobs.sockets import SOCKET_EVENTS, SUBSCRIPTIONS, JobSubscriptions
from hubbub.jobs.sweep import job_sweep
from hubbub.plugin import Plugin
from hubbub.provisioning import provision

__all__ = ["BUILTIN_KINDS", "plugin"]

#: Modules of hubbub's own job kinds (imported: their declarations register them).
BUILTIN_KINDS = (demo, provision)


async def _kinds(app: web.Application) -> AsyncIterator[None]:
    """Kinds of installed packages (entry-point group ``hubbub.jobs``)."""
    KINDS.discover()
    yield


async def _feeds(app: web.Application) -> AsyncIterator[None]:
    """This gateway's job feeds: the job streams on its bus."""
    feeds = app[FEEDS] = JobFeeds(app[REALTIME].fanout, app[DATABASE])
    await feeds.start()
    app[READINESS].add("fanout:jobs", feeds.check)
    yield
    await feeds.close()


async def _subscriptions(app: web.Application) -> AsyncIterator[None]:
    subscriptions = app[SUBSCRIPTIONS] = JobSubscriptions(app[REALTIME])
    app[REALTIME].on_disconnect(subscriptions.forget)
    yield
    await subscriptions.close()


plugin = Plugin(
    "jobs",
    entity_kinds=(JobEntity,),
    apis=(api,),
    socket_events=SOCKET_EVENTS,
    cleanup_ctx=(_kinds, _feeds, _subscriptions, job_sweep),
)
