"""Access ends everywhere at once: a change made through one gateway stops
every live delivery to the user on another — their joined conversations,
their job subscriptions and their job SSE streams — and their HTTP is refused.

Gateway A is the module's gateway, B a second gateway in this process (its
own bus subscription, the same Ray cluster and database). Each test makes
the change through A and watches the user's socket and SSE stream on B,
beside a witness (the tenant's owner) on B who still gets the events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestServer

from hubbub.chat.sockets import ROOMS
from hubbub.jobs.sockets import REVOKED as SOCKET_REVOKED
from hubbub.jobs.stream import REVOKED
from tests.support.chat import CONVERSATIONS, Team, new_team
from tests.support.jobs import JOBS, SseStream, open_stream, submit, until_status
from tests.support.tenants import TENANTS, Account
from tests.test_chat_sockets import ChatClient, _url
from tests.test_staff import act, staff_tokens

__all__ = ["staff_tokens"]  # the fixture, used here

Serve = Callable[..., Awaitable[TestServer]]


@dataclass
class Scene:
    """Ann and the owner following one conversation and one held job on gateway B."""

    team: Team
    b: TestServer
    conversation_id: str
    job_id: str
    ann: ChatClient
    witness: ChatClient
    ann_stream: SseStream

    @property
    def owner(self) -> Account:
        return self.team.people[0]

    async def ann_told(self) -> None:
        """Wait until B told Ann's socket her access to the tenant ended."""
        while (await self.ann.next())[0] != "tenant:access_revoked":
            pass

    async def ann_got(self, *events: str) -> list[tuple[str, dict]]:
        """The ``events`` Ann's socket got so far (a round trip flushes them)."""
        await self.ann.call("conversation:leave", {"conversation_id": self.conversation_id})
        found = []
        while not self.ann.events.empty():
            name, data = self.ann.events.get_nowait()
            if name in events:
                found.append((name, data))
        return found

    async def witness_until(self, event: str, test: Callable[[dict], bool]) -> None:
        while True:
            name, data = await self.witness.next()
            if name == event and test(data):
                return


@pytest.fixture
async def scene(gateway: TestServer, serve: Serve) -> AsyncIterator[Scene]:
    """Ann, a member, and the owner following a conversation and the owner's held job."""
    team = await new_team(gateway)
    async with _staged(team, await serve(), "test.hold", {}) as staged:
        yield staged


@asynccontextmanager
async def _staged(team: Team, b: TestServer, kind: str, input: dict) -> AsyncIterator[Scene]:
    owner, ann, _ = team.people
    conversation = await team.conversation(owner, "group", ann)
    status, job = await submit(team, owner, kind, input)
    assert status == 202, job
    await until_status(team, owner, job["id"], "running")
    async with AsyncExitStack() as stack:
        clients = []
        for who in (ann, owner):
            client = await ChatClient().connect(_url(b), who.token, team.tenant_id)
            stack.push_async_callback(client.client.disconnect)
            assert "data" in await client.call("tenant:watch", {"tenant_id": team.tenant_id})
            join = {"conversation_id": conversation["id"]}
            assert "data" in await client.call("conversation:join", join)
            ack = await client.call("job:subscribe", {"job_id": job["id"]})
            assert "data" in ack, ack
            clients.append(client)
        stream = await stack.enter_async_context(open_stream(b, team, ann, job["id"]))
        yield Scene(team, b, conversation["id"], job["id"], *clients, stream)


async def _no_live_delivery_after(scene: Scene) -> None:
    """After the change: a message and the job's end reach the witness on B,
    not Ann; Ann's SSE stream ended with ``access_revoked``."""
    team, owner = scene.team, scene.owner
    sent = await team.send(owner, scene.conversation_id, "after the change")
    await scene.witness_until("message:new", lambda d: d["seq"] == sent["seq"])
    status, _ = await team.call("POST", f"{JOBS}/{scene.job_id}/cancel", owner)
    assert status == 200
    await scene.witness_until("job:event", lambda d: d["data"].get("status") == "cancelled")
    assert await scene.ann_got("message:new", "job:event") == []
    await _stream_revoked(scene)


async def _stream_revoked(scene: Scene) -> None:
    """Ann's SSE stream ends with ``access_revoked`` and no job event after the change."""
    events = await scene.ann_stream.events()
    assert events, "the stream ended without a word"
    assert events[-1].event == REVOKED, [e.event for e in events]
    assert events[-1].json() == {"job_id": scene.job_id, "tenant_id": scene.team.tenant_id}
    assert all(e.json().get("data", {}).get("status") != "cancelled" for e in events[:-1])


def _sid(client: ChatClient) -> str:
    sid = client.client.get_sid()
    assert sid is not None
    return sid


async def _http_refused(scene: Scene, refusals: tuple[int, ...] = (403, 404)) -> None:
    ann = scene.team.people[1]
    messages = f"{CONVERSATIONS}/{scene.conversation_id}/messages"
    for path in (messages, f"{JOBS}/{scene.job_id}"):
        status, problem = await scene.team.call("GET", path, ann)
        assert status in refusals, (path, problem)


async def test_a_member_removed_through_one_gateway_gets_nothing_more_on_another(
    scene: Scene,
) -> None:
    ann = scene.team.people[1]
    path = f"{TENANTS}/{scene.team.tenant_id}/members/{ann.user_id}"
    assert (await scene.team.call("DELETE", path, scene.owner))[0] == 204
    await scene.ann_told()
    assert not scene.b.app[ROOMS].is_joined(_sid(scene.ann), scene.conversation_id)
    await _no_live_delivery_after(scene)
    await _http_refused(scene)


async def test_a_member_removed_from_a_conversation_gets_nothing_more_of_it(
    scene: Scene,
) -> None:
    """Holds without the tenant's signal: ``member:left`` evicts on every gateway."""
    team, ann = scene.team, scene.team.people[1]
    path = f"{CONVERSATIONS}/{scene.conversation_id}/members/{ann.user_id}"
    assert (await team.call("DELETE", path, scene.owner))[0] == 204
    await scene.witness_until("member:left", lambda d: d["user_id"] == ann.user_id)
    sent = await team.send(scene.owner, scene.conversation_id, "after the removal")
    await scene.witness_until("message:new", lambda d: d["seq"] == sent["seq"])
    assert await scene.ann_got("message:new") == []
    status, _ = await team.call("GET", f"{CONVERSATIONS}/{scene.conversation_id}/messages", ann)
    assert status == 404


async def test_a_banned_user_loses_every_socket_and_stream_on_every_gateway(
    scene: Scene, gateway: TestServer, staff_tokens: dict
) -> None:
    ann = scene.team.people[1]
    assert (await act(gateway, staff_tokens, "ban", ann.user_id))[0] == 200
    while (await scene.ann.next())[0] != "auth:revoked":
        pass
    await _stream_revoked(scene)
    status, _ = await scene.team.call("POST", f"{JOBS}/{scene.job_id}/cancel", scene.owner)
    assert status == 200
    await scene.witness_until("job:event", lambda d: d["data"].get("status") == "cancelled")
    await _http_refused(scene, (401, 403))


async def test_a_deleted_tenant_ends_every_live_delivery_on_every_gateway(scene: Scene) -> None:
    team = scene.team
    status, _ = await team.call("DELETE", f"{TENANTS}/{team.tenant_id}", scene.owner)
    assert status in (200, 202, 204)
    await scene.ann_told()
    while (await scene.witness.next())[0] != "tenant:access_revoked":
        pass
    rooms = scene.b.app[ROOMS]
    for client in (scene.ann, scene.witness):
        assert not rooms.is_joined(_sid(client), scene.conversation_id)
    await _stream_revoked(scene)
    await _http_refused(scene)


async def _set_role(team: Team, who: Account, role: str) -> None:
    path = f"{TENANTS}/{team.tenant_id}/members/{who.user_id}"
    status, body = await team.call("PATCH", path, team.people[0], {"role": role})
    assert status == 200, body


async def test_an_admin_demoted_to_member_stops_following_another_members_private_job(
    gateway: TestServer, serve: Serve
) -> None:
    """A tenant role is no conversation role: Ann keeps her conversation; the
    private job only admins may see ends on her socket and her SSE stream."""
    team = await new_team(gateway)
    ann = team.people[1]
    await _set_role(team, ann, "admin")
    async with _staged(team, await serve(), "test.private", {"ms": 60_000}) as scene:
        await _set_role(team, ann, "member")
        while (await scene.ann.next())[0] != SOCKET_REVOKED:
            pass
        await _stream_revoked(scene)
        status, _ = await team.call("GET", f"{JOBS}/{scene.job_id}", ann)
        assert status == 404
        sent = await team.send(scene.owner, scene.conversation_id, "still yours")
        await scene.witness_until("message:new", lambda d: d["seq"] == sent["seq"])
        while (event := await scene.ann.next())[0] != "message:new":
            pass
        assert event[1]["seq"] == sent["seq"]
        status, _ = await team.call("POST", f"{JOBS}/{scene.job_id}/cancel", scene.owner)
        assert status == 200
        await scene.witness_until("job:event", lambda d: d["type"] == "status")
        assert await scene.ann_got("job:event") == []
