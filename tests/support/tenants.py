"""Tenants for tests: accounts, tenants, invites and members through the real API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from tests.support.accounts import sign_up, unique_email

__all__ = ["Account", "add_member", "call", "invite", "new_account", "new_tenant"]

TENANTS = "/api/v1/tenants"


@dataclass(frozen=True)
class Account:
    token: str
    user_id: str
    email: str


async def call(
    server: TestServer,
    method: str,
    path: str,
    token: str | None = None,
    json: Any = None,
    **headers: str,
) -> tuple[int, Any]:
    """``(status, JSON body or None)`` of one request."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, server.make_url(path), json=json, headers=headers) as response,
    ):
        body = None if response.status == 204 else await response.json(content_type=None)
        return response.status, body


async def new_account(server: TestServer, email: str | None = None) -> Account:
    tokens = await sign_up(str(server.make_url("")).rstrip("/"), email=email or unique_email())
    user = tokens["user"]
    return Account(tokens["access_token"], user["id"], user["email"])


async def new_tenant(server: TestServer, owner: Account, name: str | None = None) -> dict:
    body = {"name": name or f"Tenant {uuid.uuid4().hex[:8]}"}
    status, tenant = await call(server, "POST", TENANTS, owner.token, body)
    assert status == 201, tenant
    return tenant


async def invite(
    server: TestServer, tenant_id: str, by: Account, email: str, role: str = "member"
) -> dict:
    body = {"email": email, "role": role}
    status, issued = await call(server, "POST", f"{TENANTS}/{tenant_id}/invites", by.token, body)
    assert status == 201, issued
    return issued


async def add_member(
    server: TestServer, tenant_id: str, by: Account, role: str = "member"
) -> Account:
    """A fresh account that joined ``tenant_id`` with ``role`` through an invite."""
    account = await new_account(server)
    issued = await invite(server, tenant_id, by, account.email, role)
    status, tokens = await call(
        server, "POST", "/api/v1/invites/accept", account.token, {"token": issued["token"]}
    )
    assert status == 200, tokens
    return account
