"""Typing indicators with real clients: relayed to the other members' sockets on
any gateway (never back to the typing user), throttled, ended by the server
when they expire or their socket goes, refused from sockets that did not join."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestServer

from hubbub.config import Settings
from tests.support.chat import Team, new_team
from tests.support.processes import Gateway
from tests.test_chat_sockets import ChatClient
from tests.test_gateway import _cluster_env

Serve = Callable[..., Awaitable[TestServer]]


def _url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def _joined(url: str, team: Team, who: int, conversation_id: str) -> ChatClient:
    client = await ChatClient().connect(url, team.people[who].token, team.tenant_id)
    ack = await client.call("conversation:join", {"conversation_id": conversation_id})
    assert "data" in ack, ack
    return client


async def _typing(client: ChatClient, conversation_id: str, state: str) -> dict:
    return await client.call("typing", {"conversation_id": conversation_id, "state": state})


async def test_typing_reaches_other_members_once_per_interval_and_expires(serve: Serve) -> None:
    server = await serve(typing_ttl_seconds=0.5, typing_relay_seconds=60.0)
    team = await new_team(server, 3)
    owner, ann, _ = team.people
    found = await team.conversation(owner, "group", ann)
    typist = await _joined(_url(server), team, 0, found["id"])
    own_device = await _joined(_url(server), team, 0, found["id"])
    reader = await _joined(_url(server), team, 1, found["id"])
    bystander = await ChatClient().connect(_url(server), team.people[2].token, team.tenant_id)
    try:
        ack = await _typing(typist, found["id"], "start")
        assert ack == {
            "ok": True,
            "data": {"conversation_id": found["id"], "state": "start", "ttl_ms": 500},
        }
        await _typing(typist, found["id"], "start")  # within the interval: not relayed
        start = {"conversation_id": found["id"], "user_id": owner.user_id, "state": "start"}
        assert await reader.next() == ("typing", start | {"ttl_ms": 500})
        stop = {"conversation_id": found["id"], "user_id": owner.user_id, "state": "stop"}
        assert await reader.next() == ("typing", stop)  # the server's, on expiry

        sent = await team.send(ann, found["id"], "after the typing")
        for client in (typist, own_device, reader):  # nothing else came before it
            event, data = await client.next()
            assert (event, data["seq"]) == ("message:new", sent["seq"])
        assert bystander.events.empty()
    finally:
        for client in (typist, own_device, reader, bystander):
            await client.client.disconnect()


async def test_stop_and_a_disconnect_end_the_indicator(serve: Serve) -> None:
    server = await serve(typing_relay_seconds=0.0)
    team = await new_team(server, 2)
    owner, ann = team.people
    found = await team.conversation(owner, "group", ann)
    typist = await _joined(_url(server), team, 0, found["id"])
    reader = await _joined(_url(server), team, 1, found["id"])
    try:
        base = {"conversation_id": found["id"], "user_id": owner.user_id}
        await _typing(typist, found["id"], "start")
        assert await reader.next() == ("typing", base | {"state": "start", "ttl_ms": 6000})
        await _typing(typist, found["id"], "stop")
        await _typing(typist, found["id"], "stop")  # not typing any more: nothing relayed
        assert await reader.next() == ("typing", base | {"state": "stop"})
        await _typing(typist, found["id"], "start")
        assert await reader.next() == ("typing", base | {"state": "start", "ttl_ms": 6000})
        await typist.client.disconnect()
        assert await reader.next() == ("typing", base | {"state": "stop"})
        await asyncio.sleep(0.2)
        assert reader.events.empty()
    finally:
        await typist.client.disconnect()
        await reader.client.disconnect()


async def test_typing_is_refused_unless_the_socket_joined(gateway: TestServer) -> None:
    team = await new_team(gateway, 3)
    owner, ann, bob = team.people
    found = await team.conversation(owner, "group", ann)
    reader = await _joined(_url(gateway), team, 1, found["id"])
    outsider = await ChatClient().connect(_url(gateway), bob.token, team.tenant_id)
    member_not_joined = await ChatClient().connect(_url(gateway), owner.token, team.tenant_id)
    try:
        for client in (outsider, member_not_joined):
            ack = await _typing(client, found["id"], "start")
            assert ack["error"]["code"] == "not_found", ack
        bad = await outsider.call("typing", {"conversation_id": found["id"], "state": "typing"})
        assert bad["error"]["code"] == "validation_failed"
        assert bad["error"]["errors"][0]["field"] == "state"
        joined = await _joined(_url(gateway), team, 0, found["id"])
        await _typing(joined, found["id"], "start")
        event, data = await reader.next()  # the first typing it sees is the member's
        assert (event, data["user_id"], data["state"]) == ("typing", owner.user_id, "start")
        await joined.client.disconnect()
    finally:
        for client in (reader, outsider, member_not_joined):
            await client.client.disconnect()


async def test_typing_crosses_gateway_processes(
    gateway: TestServer, ray_cluster: Settings, tmp_path: Path
) -> None:
    second = Gateway(_cluster_env(ray_cluster), tmp_path / "second.log").start()
    try:
        await second.wait_ready()
        team = await new_team(gateway, 3)
        owner, ann, bob = team.people
        found = await team.conversation(owner, "group", ann)
        reader = await _joined(second.url, team, 1, found["id"])
        bystander = await ChatClient().connect(second.url, bob.token, team.tenant_id)
        typist = await _joined(_url(gateway), team, 0, found["id"])
        base = {"conversation_id": found["id"], "user_id": owner.user_id}
        await _typing(typist, found["id"], "start")
        assert await reader.next() == ("typing", base | {"state": "start", "ttl_ms": 6000})
        await _typing(typist, found["id"], "stop")
        assert await reader.next() == ("typing", base | {"state": "stop"})
        assert bystander.events.empty() and typist.events.empty()
        for client in (reader, bystander, typist):
            await client.client.disconnect()
    finally:
        assert await second.stop() == 0, second.log_tail()
