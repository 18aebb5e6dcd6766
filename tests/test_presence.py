"""Presence with real clients: online while any device is connected, last_seen_at,
chosen status, text and availability, away after idling, the members-only
HTTP view, and a killed gateway's users going offline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestServer

from hubbub.config import Settings
from tests.support.chat import Team, new_team
from tests.support.processes import Gateway
from tests.support.tenants import call, new_account, new_tenant
from tests.test_chat_sockets import ChatClient
from tests.test_gateway import _cluster_env

Serve = Callable[..., Awaitable[TestServer]]


def _url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def _device(url: str, team: Team, who: int) -> ChatClient:
    return await ChatClient().connect(url, team.people[who].token, team.tenant_id)


async def _watcher(url: str, team: Team) -> tuple[ChatClient, dict[str, dict]]:
    """The owner's socket watching the tenant's presence, and the ack's views."""
    client = await _device(url, team, 0)
    ack = await client.call("presence:watch", {})
    assert "data" in ack, ack
    return client, {view["user_id"]: view for view in ack["data"]["items"]}


async def _presence_of(client: ChatClient, user_id: str, status: str) -> dict:
    """The next presence event of ``user_id`` (others' are skipped); its status checked."""
    while True:
        event, data = await asyncio.wait_for(client.events.get(), 30)
        if event == "presence" and data["user_id"] == user_id:
            assert data["status"] == status, data
            return data


async def test_online_while_any_device_is_connected(serve: Serve) -> None:
    server = await serve()
    team = await new_team(server, 2)
    ann = team.people[1].user_id
    watcher, now = await _watcher(_url(server), team)
    assert now[ann]["status"] == "offline" and now[ann]["last_seen_at"] is None
    assert now[team.people[0].user_id]["status"] == "online"
    phone = await _device(_url(server), team, 1)
    online = await _presence_of(watcher, ann, "online")
    laptop = await _device(_url(server), team, 1)
    await phone.client.disconnect()
    await laptop.client.disconnect()
    offline = await _presence_of(watcher, ann, "offline")  # the very next: no flicker between
    assert offline["version"] == online["version"] + 1
    assert offline["last_seen_at"] is not None and offline["available"] is False
    status, listed = await team.call(
        "GET", f"/api/v1/tenants/{team.tenant_id}/presence", team.people[0]
    )
    assert status == 200, listed
    views = {view["user_id"]: view for view in listed["items"]}
    assert views[ann] == offline
    assert views[team.people[0].user_id]["status"] == "online"
    await watcher.client.disconnect()


async def test_presence_set_status_text_and_availability(serve: Serve) -> None:
    server = await serve()
    team = await new_team(server, 2)
    ann = team.people[1].user_id
    watcher, _ = await _watcher(_url(server), team)
    device = await _device(_url(server), team, 1)
    await _presence_of(watcher, ann, "online")
    chosen = {"status": "busy", "text": "In a meeting", "available": True}
    ack = await device.call("presence:set", chosen)
    assert ack["ok"] and {k: ack["data"][k] for k in chosen} == chosen, ack
    assert await _presence_of(watcher, ann, "busy") == ack["data"]
    bad = await device.call("presence:set", {"status": "sleeping", "text": "x" * 201})
    assert bad["error"]["code"] == "validation_failed"
    assert {e["field"] for e in bad["error"]["errors"]} == {"status", "text"}
    tenantless = await ChatClient().connect(_url(server), team.people[1].token, team.tenant_id)
    await tenantless.client.disconnect()
    await device.client.disconnect()
    gone = await _presence_of(watcher, ann, "offline")
    assert gone["text"] == "In a meeting" and gone["available"] is False
    device = await _device(_url(server), team, 1)  # the chosen status comes back
    back = await _presence_of(watcher, ann, "busy")
    assert back["available"] is True and back["text"] == "In a meeting"
    await device.client.disconnect()
    await watcher.client.disconnect()


async def test_a_socket_without_a_tenant_cannot_set_presence(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    client = ChatClient()
    await client.client.connect(
        _url(gateway), transports=["websocket"], auth={"token": team.people[0].token}
    )
    try:
        ack = await client.call("presence:set", {"status": "away"})
        assert ack["error"]["code"] == "tenant_required"
        ack = await client.call("presence:watch", {})
        assert ack["error"]["code"] == "tenant_required"
    finally:
        await client.client.disconnect()


async def test_an_idle_user_turns_away_and_activity_brings_them_back(serve: Serve) -> None:
    server = await serve(presence_heartbeat_seconds=0.1, presence_idle_seconds=2.0)
    team = await new_team(server, 2)
    ann = team.people[1].user_id
    watcher, _ = await _watcher(_url(server), team)
    device = await _device(_url(server), team, 1)
    await _presence_of(watcher, ann, "online")
    await _presence_of(watcher, ann, "away")
    await device.call("conversation:leave", {"conversation_id": team.tenant_id})  # any event
    await _presence_of(watcher, ann, "online")
    await device.call("presence:set", {"status": "busy"})
    await _presence_of(watcher, ann, "busy")
    await device.client.disconnect()
    await _presence_of(watcher, ann, "offline")
    await watcher.client.disconnect()


async def test_presence_is_for_members_only(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    outsider = await new_account(gateway)
    elsewhere = await new_tenant(gateway, outsider)
    path = f"/api/v1/tenants/{team.tenant_id}/presence"
    status, problem = await call(gateway, "GET", path, outsider.token)
    assert (status, problem["code"]) == (404, "not_found")
    status, _ = await call(gateway, "GET", path)
    assert status == 401
    other = f"/api/v1/tenants/{elsewhere['id']}/presence"
    status, problem = await call(gateway, "GET", other, team.people[0].token)
    assert (status, problem["code"]) == (404, "not_found")
    client = await _device(_url(gateway), team, 0)
    try:
        ack = await client.call("presence:watch", {"tenant_id": elsewhere["id"]})
        assert ack["error"]["code"] == "not_found"
    finally:
        await client.client.disconnect()


async def test_a_killed_gateways_users_go_offline(
    serve: Serve, ray_cluster: Settings, tmp_path: Path
) -> None:
    quick = {"presence_heartbeat_seconds": 0.5, "presence_lease_seconds": 2.0}
    env = _cluster_env(ray_cluster) | {
        "HUBBUB_PRESENCE_HEARTBEAT_SECONDS": "0.5",
        "HUBBUB_PRESENCE_LEASE_SECONDS": "2",
    }
    doomed = Gateway(env, tmp_path / "doomed.log").start()
    server = await serve(**quick)
    try:
        await doomed.wait_ready()
        team = await new_team(server, 2)
        ann = team.people[1].user_id
        watcher, _ = await _watcher(_url(server), team)
        device = await ChatClient().connect(doomed.url, team.people[1].token, team.tenant_id)
        await _presence_of(watcher, ann, "online")
        doomed.kill()
        gone = await _presence_of(watcher, ann, "offline")
        assert gone["last_seen_at"] is not None
        status, listed = await team.call(
            "GET", f"/api/v1/tenants/{team.tenant_id}/presence", team.people[0]
        )
        assert status == 200
        assert {v["user_id"]: v["status"] for v in listed["items"]}[ann] == "offline"
        await watcher.client.disconnect()
        del device
    finally:
        doomed.kill()


async def test_a_removed_member_stops_watching_and_counting_in_the_tenants_presence(
    serve: Serve,
) -> None:
    server = await serve()
    team = await new_team(server, 3)
    owner, ann, bob = (person.user_id for person in team.people)
    watcher, _ = await _watcher(_url(server), team)
    device = await _device(_url(server), team, 1)  # ann: counted, and watching
    assert "data" in await device.call("presence:watch", {})
    await _presence_of(watcher, ann, "online")
    status, _ = await team.call(
        "DELETE", f"/api/v1/tenants/{team.tenant_id}/members/{ann}", team.people[0]
    )
    assert status == 204
    gone = await _presence_of(watcher, ann, "offline")  # her socket is still connected
    assert gone["last_seen_at"] is not None
    while True:  # told once, as she leaves the tenant's presence room
        event, data = await device.next()
        if event == "tenant:access_revoked":
            assert data == {"tenant_id": team.tenant_id}
            break
        assert event == "presence", (event, data)  # views from before the removal
    assert device.client.connected
    other = await _device(_url(server), team, 2)
    await _presence_of(watcher, bob, "online")
    # A round trip after bob's view reached the owner: none reached ann's socket.
    ack = await device.call("presence:set", {"status": "busy"})
    assert ack["error"]["code"] == "tenant_required"
    ack = await device.call("presence:watch", {})
    assert ack["error"]["code"] == "not_found"
    assert device.events.empty()
    status, listed = await team.call(
        "GET", f"/api/v1/tenants/{team.tenant_id}/presence", team.people[0]
    )
    assert status == 200
    assert {v["user_id"]: v["status"] for v in listed["items"]} == {
        owner: "online",
        bob: "online",
    }
    for client in (other, device, watcher):
        await client.client.disconnect()
