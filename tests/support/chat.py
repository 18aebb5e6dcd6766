"""Conversations for tests: a tenant with members, calls in its scope, and
conversation entities hosted in the test process."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestServer

from hubbub.actors.command import Command, Outcome
from hubbub.actors.shard import ShardHost
from hubbub.chat.commands import ConversationCommand, Create, Send
from hubbub.chat.entity import ConversationEntity
from hubbub.chat.state import ConversationState
from hubbub.storage.database import Database
from tests.support.tenants import Account, add_member, call, new_account, new_tenant

__all__ = ["CONVERSATIONS", "LocalConversations", "Team", "new_team"]

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


@dataclass(frozen=True)
class LocalConversations:
    """Conversation entities of ``team`` in a shard host inside the test process.

    For tests that look past the gateway: at what an entity keeps in memory,
    or at its own duplicate checks (commands carry no idempotency key, as
    once a send's receipt has expired).
    """

    host: ShardHost
    db: Database
    team: Team

    def command(self, conversation_id: str, body: ConversationCommand) -> Command:
        return Command("conversation", conversation_id, body, self.team.tenant_id)

    def send(
        self,
        conversation_id: str,
        who: Account,
        client_msg_id: str,
        /,
        body: str | None = None,
        reply_to: str | None = None,
    ) -> Command:
        text = f"body of {client_msg_id}" if body is None else body
        send = Send(who.user_id, text, client_msg_id, str(uuid.uuid4()), reply_to)
        return self.command(conversation_id, send)

    async def run(self, *commands: Command) -> list[Outcome]:
        """The outcomes of ``commands``, sent in one batch."""
        return await self.host.handle(list(commands))

    async def ask(self, command: Command) -> Any:
        """The reply to ``command``; its error raised."""
        [outcome] = await self.host.handle([command])
        return outcome.unwrap()

    async def create(self, who: Account, *others: Account) -> str:
        conversation_id = str(uuid.uuid4())
        members = [o.user_id for o in others]
        create = Create(who.user_id, conversation_id, self.team.tenant_id, "group", members)
        await self.ask(self.command(conversation_id, create))
        return conversation_id

    def passivate(self, conversation_id: str) -> None:
        """Drop the conversation's entity from memory, as when it idles."""
        assert self.host.passivate(self.team.tenant_id, conversation_id)

    async def activated(self, conversation_id: str) -> ConversationState:
        """The state a fresh activation of the conversation starts from."""
        async with self.db.tenant(self.team.tenant_id) as conn:
            return (await ConversationEntity.load(conn, [conversation_id]))[conversation_id]
