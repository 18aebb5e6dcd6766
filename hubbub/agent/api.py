"""HTTP routes of the API Service's agent chat, under ``/api/v1/chat``.

Both routes post the user's message to an agent conversation (a new one when
none is named) and submit an ``agent.reply`` job for it; ``POST /chat`` then
waits for the reply (at most ``HUBBUB_AGENT_WAIT_SECONDS``, then 202 with the
job), ``POST /chat/stream`` answers the job's Server-Sent Events at once.
Every route needs a bearer token and a tenant the caller is a member of; a
conversation you are not in, or of another tenant, answers 404.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from aiohttp import web

from hubbub.agent.reply import KIND
from hubbub.agent.wire import AgentChatRequest, AgentChatResponse, ChatOpening
from hubbub.chat import commands as chat
from hubbub.chat import reads
from hubbub.errors import AppError
from hubbub.http.routing import Api
from hubbub.ids import new_id
from hubbub.jobs.caller import caller
from hubbub.jobs.dispatch import submit_job
from hubbub.jobs.feeds import Follower
from hubbub.jobs.keys import FEEDS
from hubbub.jobs.registry import KINDS
from hubbub.jobs.stream import serve_stream
from hubbub.jobs.wire import JobEventView, StreamQuery
from hubbub.services import DATABASE, ROUTER, SETTINGS

__all__ = ["api"]

api = Api(
    "chat",
    "Chat with the AI assistant: your message, then its reply, streamed.",
    tenant_header=True,
)

BASE = "/api/v1/chat"
JOBS = "/api/v1/jobs"
BEARER = ("bearer",)
ASKING = {
    404: "No such agent conversation of yours in this tenant (`not_found`)",
    409: "The conversation is not an agent conversation (`not_agent_conversation`)",
    422: "A bad field (`validation_failed`), an empty or too long message "
    "(`body_empty`, `body_too_large`), each naming `message`",
}
_NEW_CONVERSATIONS = UUID("5e3b9d2a-7c41-5f08-b6e2-4a9d1c7f3e85")  # namespace of keyed ones


@dataclass(frozen=True, slots=True)
class Asked:
    """A user's message, committed, and the job writing its reply."""

    tenant_id: str
    user_id: str
    opening: ChatOpening


@api.post(
    BASE,
    body=AgentChatRequest,
    response=AgentChatResponse,
    security=BEARER,
    alternatives={202: ("The reply is not written yet: follow `stream_url`", ChatOpening)},
    responses=ASKING
    | {
        502: "The assistant could not reply: the job failed (`agent_reply_failed`, with `job_id`)",
        409: ASKING[409] + "; the reply job was cancelled (`agent_reply_cancelled`)",
    },
)
async def chat_with_agent(request: web.Request, *, body: AgentChatRequest) -> Any:
    """Send a message to the assistant and wait for its reply."""
    asked = await _ask(request, body)
    opening = asked.opening
    # The asker created the job: theirs to follow.
    follower = await request.app[FEEDS].follow(asked.tenant_id, str(opening.job_id), 0, None)
    try:
        wait = request.app[SETTINGS].agent_wait_seconds
        final = await asyncio.wait_for(_final(follower), wait)
    except TimeoutError:
        return _accepted(opening)
    finally:
        await follower.close()
    result = _result(opening, final["data"])
    reply = await _message(request, asked, result["seq"])
    return AgentChatResponse(**dict(opening), reply=reply, response=reply["body"])


@api.post(
    f"{BASE}/stream",
    body=AgentChatRequest,
    response=JobEventView,
    content_type="text/event-stream",
    security=BEARER,
    responses=ASKING,
)
async def stream_chat_with_agent(
    request: web.Request, *, body: AgentChatRequest
) -> web.StreamResponse:
    """Send a message to the assistant; Server-Sent Events of its reply job
    (`Location`), in the conversation `X-Conversation-Id` names: `output`
    chunks as tokens arrive, ending with the job's final `status`."""
    asked = await _ask(request, body)
    opening = asked.opening
    headers = {"Location": opening.status_url, "X-Conversation-Id": str(opening.conversation_id)}
    job_id = str(opening.job_id)
    return await serve_stream(request, asked.tenant_id, job_id, StreamQuery(), None, headers)


async def _ask(request: web.Request, body: AgentChatRequest) -> Asked:
    """Commit the user's message and submit the reply job (the same
    ``client_msg_id`` again: the same message and job)."""
    who = await caller(request)
    tenant, user = who.tenant_id, who.user_id
    chat.check_body(body.message, request.app[SETTINGS].message_max_bytes, field="message")
    client_msg_id = body.client_msg_id or new_id().hex
    conversation_id = await _conversation(request, tenant, user, body, client_msg_id)
    send = chat.Send(user, body.message, client_msg_id, str(new_id()))
    message = await chat.ask(request.app[ROUTER], tenant, conversation_id, send)
    kind = KINDS.get(KIND)
    provider = request.app[SETTINGS].agent_provider
    value = {"conversation_id": conversation_id, "reply_to": message["id"], "provider": provider}
    job = await submit_job(request.app, tenant, user, kind, value, f"{KIND}:{message['id']}")
    opening = ChatOpening(
        conversation_id=UUID(conversation_id),
        job_id=job["id"],
        message=message,
        stream_url=f"{JOBS}/{job['id']}/stream",
        status_url=f"{JOBS}/{job['id']}",
    )
    return Asked(tenant, user, opening)


async def _conversation(
    request: web.Request, tenant: str, user: str, body: AgentChatRequest, client_msg_id: str
) -> str:
    """The agent conversation to post in: the one named (yours, of kind agent), or a
    new one (keyed by ``client_msg_id`` when given, so a retry finds it)."""
    if body.conversation_id is not None:
        conversation_id = str(body.conversation_id)
        async with request.app[DATABASE].tenant(tenant) as conn:
            view = await reads.conversation(conn, conversation_id, user)
        if view["kind"] != "agent":
            raise AppError(
                "not_agent_conversation",
                f"expected an agent conversation, got kind {view['kind']!r}",
                status=409,
            )
        return conversation_id
    keyed = body.client_msg_id is not None
    name = f"{tenant}\x1f{user}\x1f{client_msg_id}"
    conversation_id = str(uuid.uuid5(_NEW_CONVERSATIONS, name) if keyed else new_id())
    create = chat.Create(user, conversation_id, tenant, kind="agent")
    await chat.ask(request.app[ROUTER], tenant, conversation_id, create)
    return conversation_id


async def _final(follower: Follower) -> dict[str, Any]:
    """The job's final event (replayed, or awaited live)."""
    last: dict[str, Any] = {}
    while not follower.finished:
        events = await (follower.next() if follower.caught_up else follower.backlog())
        last = events[-1] if events else last
    return last


def _result(opening: ChatOpening, data: dict[str, Any]) -> dict[str, Any]:
    """The succeeded job's result; the problem of a failed or cancelled one."""
    job = {"job_id": str(opening.job_id), "conversation_id": str(opening.conversation_id)}
    if data["status"] == "succeeded":
        return data["result"]
    if data["status"] == "cancelled":
        raise AppError(
            "agent_reply_cancelled", "the reply was cancelled before it was posted", 409, extra=job
        )
    error = data.get("error") or {}
    raise AppError(
        "agent_reply_failed",
        f"the assistant could not reply: {error.get('code')}: {error.get('message')}",
        502,
        extra=job,
    )


async def _message(request: web.Request, asked: Asked, seq: int) -> dict[str, Any]:
    conversation_id = str(asked.opening.conversation_id)
    async with request.app[DATABASE].tenant(asked.tenant_id) as conn:
        items, _ = await reads.messages(
            conn, conversation_id, asked.user_id, before=None, after=seq - 1, around=None, limit=1
        )
    return items[0]


def _accepted(opening: ChatOpening) -> web.Response:
    body = orjson.dumps(opening.model_dump(mode="json"))
    return web.Response(body=body, status=202, content_type="application/json")
