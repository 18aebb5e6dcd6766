"""Conversations for tests: a tenant with members, and calls in its scope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestServer

from tests.support.tenants import Account, add_member, call, new_account, new_tenant

__all__ = ["CONVERSATIONS", "Team", "new_team"]

CONVERSATIONS = "/api/v1/conversations"


@dataclass(frozen=True)
class Team:
    """A tenant and some of its members; ``people[0]`` owns the tenant."""

    server: TestServer
    tenant_id: str
    people: list[Account]

    async def call(
        self, method: str, path: str, who: Account, json: Any = None, tenant: str | None = None
    ) -> tuple[int, Any]:
        headers = {"X-Tenant-Id": tenant or self.tenant_id}
        return await call(self.server, method, path, who.token, json, **headers)

    async def conversation(self, who: Account, kind: str, *others: Account, **extra: Any) -> dict:
        body = {"kind": kind, "member_ids": [o.user_id for o in others], **extra}
        status, found = await self.call("POST", CONVERSATIONS, who, body)
        assert status in (200, 201), found
        return found

    async def send(self, who: Account, conversation_id: str, body: str, **extra: Any) -> dict:
        message = {"body": body, "client_msg_id": extra.pop("client_msg_id", uuid.uuid4().hex)}
        path = f"{CONVERSATIONS}/{conversation_id}/messages"
        status, sent = await self.call("POST", path, who, message | extra)
        assert status == 201, sent
        return sent


async def new_team(server: TestServer, size: int = 3) -> Team:
    owner = await new_account(server)
    tenant = await new_tenant(server, owner)
    people = [owner] + [await add_member(server, tenant["id"], owner) for _ in range(size - 1)]
    return Team(server, tenant["id"], people)
