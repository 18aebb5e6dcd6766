"""Security headers on a whole gateway: every answer that carries a token or a
secret is ``Cache-Control: no-store``, and every answer — the Socket.IO
endpoint's too — says ``nosniff`` and names no server version."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy

from tests.support.accounts import PASSWORD, unique_email
from tests.support.signups import new_signup_body, start_signup
from tests.support.tenants import new_account, new_tenant
from tests.test_plans import set_plan

AUTH = "/api/v1/auth"


async def _post(
    server: TestServer, path: str, json: Any, token: str | None = None
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.make_url(path), json=json, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None), response.headers


def _assert_secure(what: str, status: int, headers: CIMultiDictProxy[str]) -> None:
    assert headers.get("Cache-Control") == "no-store", (what, status, dict(headers))
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("Server") == "hubbub", what


async def test_every_answer_with_a_token_or_secret_is_not_stored(gateway: TestServer) -> None:
    email = unique_email("headers")
    account = {"email": email, "password": PASSWORD, "name": "Headers"}
    status, tokens, headers = await _post(gateway, f"{AUTH}/register", account)
    assert status == 201, tokens
    _assert_secure("register", status, headers)

    login = {"email": email, "password": PASSWORD}
    status, tokens, headers = await _post(gateway, f"{AUTH}/login", login)
    assert status == 200, tokens
    _assert_secure("login", status, headers)

    refresh = {"refresh_token": tokens["refresh_token"]}
    status, tokens, headers = await _post(gateway, f"{AUTH}/refresh", refresh)
    assert status == 200, tokens
    _assert_secure("refresh", status, headers)

    status, setup, headers = await _post(
        gateway, f"{AUTH}/2fa/setup", {"password": PASSWORD}, tokens["access_token"]
    )
    assert status == 200 and "secret" in setup, setup
    _assert_secure("2fa setup", status, headers)

    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    await set_plan(gateway, tenant["id"], "pro")
    new_key = {"name": "ci", "scopes": ["read"], "expires_in_days": 1}
    path = f"/api/v1/tenants/{tenant['id']}/api-keys"
    status, issued, headers = await _post(gateway, path, new_key, owner.token)
    assert status == 201 and "key" in issued, issued
    _assert_secure("api key", status, headers)


async def test_the_signup_and_its_stream_are_not_stored(gateway: TestServer) -> None:
    status, accepted = await start_signup(gateway, new_signup_body())
    assert status == 202, accepted
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.make_url(f"{AUTH}/signup/async"), json=new_signup_body()) as r:
            assert r.status == 202
            _assert_secure("signup", r.status, r.headers)
        async with http.get(gateway.make_url(accepted["stream_url"])) as stream:
            assert stream.status == 200
            _assert_secure("signup stream", stream.status, stream.headers)


async def test_the_socket_io_endpoint_says_nosniff(gateway: TestServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(gateway.make_url("/socket.io/?EIO=4&transport=polling")) as response,
    ):
        assert response.status == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Server"] == "hubbub"
