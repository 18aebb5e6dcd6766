"""Conversations as a gateway plugin: the conversation entity kind, its routes,
its Socket.IO events, this gateway's conversation rooms, send limits and typing
relay, and the sweep that wakes snoozed support conversations."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hubbub.chat.api import api
from hubbub.chat.entity import ConversationEntity
from hubbub.chat.rooms import ConversationRooms
from hubbub.chat.search_api import search_api
from hubbub.chat.send_limits import SEND_LIMITS, SendLimits
from hubbub.chat.snooze import snooze_sweep
from hubbub.chat.sockets import ROOMS, SOCKET_EVENTS
from hubbub.chat.typing import TYPING_EVENTS, typing_relay
from hubbub.plugin import Plugin
from hubbub.ratelimit import RATE_LIMITER
from hubbub.services import Services
from hubbub.tenancy.eviction import ACCESS_LOSSES

__all__ = ["plugin"]


async def _rooms(services: Services) -> AsyncIterator[None]:
    """This gateway's conversation rooms: the conversation streams on its bus."""
    rooms = services.app[ROOMS] = ConversationRooms(services.realtime, services.db)
    services.readiness.add("fanout:conversations", rooms.streams.check)
    services.realtime.on_disconnect(rooms.forget)
    services.app[ACCESS_LOSSES].on_lost(rooms.cut_off)
    yield
    await rooms.close()


async def _send_limits(services: Services) -> AsyncIterator[None]:
    """The sockets' and users' send limits, on the identity plugin's rate limiter."""
    limits = SendLimits(services.app[RATE_LIMITER], services.settings)
    services.app[SEND_LIMITS] = limits
    services.realtime.on_disconnect(limits.forget)
    yield


plugin = Plugin(
    "chat",
    entity_kinds=(ConversationEntity,),
    apis=(search_api, api),  # search first: /conversations/search is no conversation id
    socket_events={**SOCKET_EVENTS, **TYPING_EVENTS},
    start=(_rooms, _send_limits, typing_relay, snooze_sweep),
)
