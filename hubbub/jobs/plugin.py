"""Jobs as a gateway plugin: the job entity kind, its routes and SSE stream,
its Socket.IO events, this gateway's job feeds, socket subscriptions and job
sweep, and the registry of job kinds (hubbub's own, then those of installed
packages)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hubbub.identity.revocation import REVOCATIONS
from hubbub.jobs import demo
from hubbub.jobs.api import api
from hubbub.jobs.entity import JobEntity
from hubbub.jobs.feeds import JobFeeds
from hubbub.jobs.keys import FEEDS
from hubbub.jobs.registry import KINDS
from hubbub.jobs.sockets import SOCKET_EVENTS, SUBSCRIPTIONS, JobSubscriptions
from hubbub.jobs.sweep import JOB_SWEEP, job_sweep
from hubbub.plugin import Plugin
from hubbub.provisioning import provision
from hubbub.services import Services
from hubbub.tenancy.eviction import ACCESS_LOSSES

__all__ = ["BUILTIN_KINDS", "plugin"]

#: Modules of hubbub's own job kinds (imported: their declarations register them).
BUILTIN_KINDS = (demo, provision)


async def _kinds(services: Services) -> AsyncIterator[None]:
    """Kinds of installed packages (entry-point group ``hubbub.jobs``)."""
    KINDS.discover()
    yield


async def _feeds(services: Services) -> AsyncIterator[None]:
    """This gateway's job feeds: the job streams on its bus; a job that stops
    running kicks the sweep (a slot freed: launch what waits for it now)."""
    kick = services.app[JOB_SWEEP].rounds.kick
    feeds = services.app[FEEDS] = JobFeeds(services.bus, services.db, on_ended=kick)
    await feeds.start()
    services.app[ACCESS_LOSSES].on_lost(feeds.cut_off)
    services.app[ACCESS_LOSSES].on_lowered(feeds.role_lowered)
    services.app[REVOCATIONS].on_revoked(feeds.sessions_revoked)
    services.readiness.add("fanout:jobs", feeds.check)
    yield
    await feeds.close()


async def _subscriptions(services: Services) -> AsyncIterator[None]:
    subscriptions = services.app[SUBSCRIPTIONS] = JobSubscriptions(services.realtime)
    services.realtime.on_disconnect(subscriptions.forget)
    services.app[ACCESS_LOSSES].on_lost(subscriptions.cut_off)
    yield
    await subscriptions.close()


plugin = Plugin(
    "jobs",
    entity_kinds=(JobEntity,),
    apis=(api,),
    socket_events=SOCKET_EVENTS,
    start=(_kinds, job_sweep, _feeds, _subscriptions),
)
