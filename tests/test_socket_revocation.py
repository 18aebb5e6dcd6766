"""Sockets of revoked sessions are told why (``auth:revoked``) and
disconnected — after logout, logout-all, a deleted session, refresh-token
reuse, a staff ban — on the gateway that revoked and on every other one;
sockets of other sessions stay."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import socketio
from aiohttp.test_utils import TestServer

from hubbub.config import Settings
from tests.support.accounts import PASSWORD
from tests.support.processes import Gateway
from tests.test_auth_sessions import call, login, new_account
from tests.test_gateway import _cluster_env

AUTH = "/api/v1/auth"


class Socket:
    """A Socket.IO client that records ``auth:revoked`` and its disconnect."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.revoked: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.client.on("auth:revoked", self.revoked.put)
        self.client.on("disconnect", self._disconnected)

    async def _disconnected(self, *reason: Any) -> None:
        self.gone.set()

    async def connect(self, url: str, token: str) -> Socket:
        await self.client.connect(
            url, transports=["websocket"], wait_timeout=10, auth={"token": token}
        )
        return self

    async def expect_revoked(self, code: str) -> None:
        notice = await asyncio.wait_for(self.revoked.get(), 10)
        assert notice["code"] == code and notice["message"]
        await asyncio.wait_for(self.gone.wait(), 10)
        assert not self.client.connected

    async def close(self) -> None:
        if self.client.connected:
            await self.client.disconnect()


@pytest.fixture
async def sockets() -> Any:
    opened: list[Socket] = []

    async def open_socket(url: str, token: str) -> Socket:
        socket = await Socket().connect(url, token)
        opened.append(socket)
        return socket

    yield open_socket
    for socket in opened:
        await socket.close()


def url_of(server: TestServer) -> str:
    return str(server.make_url("/"))


async def test_logout_disconnects_that_sessions_sockets_only(
    gateway: TestServer, sockets: Any
) -> None:
    first = await new_account(gateway)
    second = await login(gateway, first["user"]["email"])
    leaving = await sockets(url_of(gateway), first["access_token"])
    staying = await sockets(url_of(gateway), second["access_token"])

    status, _, _ = await call(gateway, "POST", f"{AUTH}/logout", first["access_token"])
    assert status == 204
    await leaving.expect_revoked("session_revoked")

    # The other session's socket is still there: logging it out reaches it.
    status, _, _ = await call(gateway, "POST", f"{AUTH}/logout", second["access_token"])
    assert status == 204
    await staying.expect_revoked("session_revoked")
    assert leaving.revoked.empty(), "one notice per socket"


async def test_a_revoked_sessions_token_is_refused_on_connect(gateway: TestServer) -> None:
    tokens = await new_account(gateway)
    await call(gateway, "POST", f"{AUTH}/logout", tokens["access_token"])
    socket = Socket()
    errors: list[Any] = []
    socket.client.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await socket.connect(url_of(gateway), tokens["access_token"])
    assert errors and errors[0]["data"]["code"] == "session_revoked", errors


async def test_logout_all_and_a_deleted_session_disconnect_their_sockets(
    gateway: TestServer, sockets: Any
) -> None:
    phone = await new_account(gateway)
    laptop = await login(gateway, phone["user"]["email"])
    phone_socket = await sockets(url_of(gateway), phone["access_token"])
    laptop_socket = await sockets(url_of(gateway), laptop["access_token"])

    _, listed, _ = await call(gateway, "GET", f"{AUTH}/sessions", laptop["access_token"])
    (phone_session,) = [s["id"] for s in listed["items"] if not s["current"]]
    path = f"{AUTH}/sessions/{phone_session}"
    status, _, _ = await call(gateway, "DELETE", path, laptop["access_token"])
    assert status == 204
    await phone_socket.expect_revoked("session_revoked")
    assert laptop_socket.client.connected

    tablet = await login(gateway, phone["user"]["email"])
    tablet_socket = await sockets(url_of(gateway), tablet["access_token"])
    status, _, _ = await call(gateway, "POST", f"{AUTH}/logout-all", tablet["access_token"])
    assert status == 204
    await laptop_socket.expect_revoked("session_revoked")
    await tablet_socket.expect_revoked("session_revoked")


async def test_refresh_token_reuse_disconnects_the_sessions_sockets(
    gateway: TestServer, sockets: Any
) -> None:
    tokens = await new_account(gateway)
    socket = await sockets(url_of(gateway), tokens["access_token"])
    stolen = {"refresh_token": tokens["refresh_token"]}
    status, _, _ = await call(gateway, "POST", f"{AUTH}/refresh", json=stolen)
    assert status == 200
    status, problem, _ = await call(gateway, "POST", f"{AUTH}/refresh", json=stolen)
    assert (status, problem["code"]) == (401, "refresh_token_reused")
    await socket.expect_revoked("session_revoked")


async def test_a_staff_ban_disconnects_with_its_own_code(
    gateway: TestServer, sockets: Any, owner_conn: asyncpg.Connection
) -> None:
    staff = await new_account(gateway)
    await owner_conn.execute(
        "UPDATE users SET is_staff = true WHERE id = $1", uuid.UUID(staff["user"]["id"])
    )
    target = await new_account(gateway)
    socket = await sockets(url_of(gateway), target["access_token"])
    path = f"/api/v1/staff/users/{target['user']['id']}/ban"
    status, _, _ = await call(gateway, "POST", path, staff["access_token"], json={"reason": "x"})
    assert status == 200
    await socket.expect_revoked("account_banned")


async def test_a_password_change_disconnects_every_other_session(
    gateway: TestServer, sockets: Any
) -> None:
    current = await new_account(gateway)
    other = await login(gateway, current["user"]["email"])
    kept = await sockets(url_of(gateway), current["access_token"])
    ended = await sockets(url_of(gateway), other["access_token"])

    change = {"current_password": PASSWORD, "new_password": "a-new-long-passphrase"}
    path = f"{AUTH}/password/change"
    status, _, _ = await call(gateway, "POST", path, current["access_token"], json=change)
    assert status == 204
    await ended.expect_revoked("password_changed")
    assert kept.client.connected and kept.revoked.empty()


async def test_logout_on_one_gateway_disconnects_a_socket_on_another(
    ray_cluster: Settings, tmp_path: Path, sockets: Any
) -> None:
    env = _cluster_env(ray_cluster)
    first = Gateway(env, tmp_path / "first.log").start()
    second = Gateway(env, tmp_path / "second.log").start()
    try:
        await asyncio.gather(first.wait_ready(), second.wait_ready())
        server = _Remote(first.url)
        tokens = await new_account(server)
        socket = await sockets(second.url, tokens["access_token"])
        status, _, _ = await call(server, "POST", f"{AUTH}/logout", tokens["access_token"])
        assert status == 204
        await socket.expect_revoked("session_revoked")
    finally:
        for gateway in (first, second):
            assert await gateway.stop() == 0, gateway.log_tail()


class _Remote:
    """Enough of a TestServer (``make_url``) to drive a gateway process."""

    def __init__(self, url: str) -> None:
        self._url = url.rstrip("/")

    def make_url(self, path: str) -> str:
        return self._url + path
