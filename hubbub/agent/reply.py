"""``agent.reply``: the assistant's reply in an agent conversation, as a job.

The handler reads the conversation up to the user's message (``history``),
streams the provider's reply as the job's ``output`` (the job entity batches
it into ``output`` events) and as ``message:delta`` to the conversation's
sockets, then commits the whole reply through its run's router with
``post_assistant_message``: the conversation gives it its seq and fans it out
as ``message:new`` like any message. The job's result is
``{message_id, conversation_id, seq}``.

Idempotent: the reply's ``client_msg_id`` and message id derive from the job
id, so a retried run is answered with the message the first one committed.
A cancel stops the reply between two pieces — or while the provider is
silent — and nothing is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from hubbub.agent.deltas import Deltas
from hubbub.agent.history import history
from hubbub.agent.provider import Provider, ProviderName, Turn, provider_for
from hubbub.chat.commands import PostAssistantMessage, ask
from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.jobs.context import JobCancelled, JobContext
from hubbub.jobs.registry import Policy, job_kind
from hubbub.storage.redis import connect_redis

__all__ = ["KIND", "ReplyInput", "reply", "reply_client_msg_id"]

KIND = "agent.reply"
#: How often a reply looks at its cancel flag while the provider is silent.
_CANCEL_POLL = 0.05
_MESSAGE_IDS = uuid.UUID("3c0f6f7e-2b1a-5d4c-8e9f-a1b2c3d4e5f6")  # namespace of reply ids

T = TypeVar("T")


class ReplyInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: uuid.UUID = Field(description="The agent conversation to reply in.")
    reply_to: uuid.UUID = Field(
        description="The user's message to answer: the history the model sees ends there."
    )
    provider: ProviderName = Field(
        "local",
        description="Who writes the reply (the chat routes name their gateway's "
        "HUBBUB_AGENT_PROVIDER); where it is and its key come from the worker's settings.",
    )


def reply_client_msg_id(job_id: str) -> str:
    """The ``client_msg_id`` of the reply job ``job_id`` commits (one per job)."""
    return f"{KIND}:{job_id}"


@job_kind(
    KIND,
    ReplyInput,
    resources={"num_cpus": 0.1},  # it mostly waits on the provider
    entities=("conversation",),
    # A lost worker's reply is written again (committed once: see above); a
    # provider's error is an AppError, which fails the job at once.
    # Private: its output is a reply in the asker's own conversation.
    policy=Policy(max_attempts=2, timeout_seconds=600, private=True),
)
async def reply(context: JobContext, input: ReplyInput) -> dict[str, Any]:
    """The assistant's reply to a message of an agent conversation."""
    settings = _settings(context)
    conversation_id, reply_to = str(input.conversation_id), str(input.reply_to)
    context.step("reading")
    turns = await _history(settings, context, conversation_id, reply_to)
    context.step("writing")
    redis = connect_redis(settings.redis_url or "")
    try:
        deltas = Deltas(redis, conversation_id, context.job_id)
        provider = provider_for(input.provider, settings)
        writing = _write(context, provider, turns, deltas, settings.message_max_bytes)
        text = await _until_cancelled(context, writing)
    finally:
        await redis.aclose()
    context.raise_if_cancelled()
    context.step("committing")
    message = await _commit(context, conversation_id, reply_to, text)
    return {"message_id": message["id"], "conversation_id": conversation_id, "seq": message["seq"]}


def _settings(context: JobContext) -> Settings:
    if context.settings is None or context.router is None:
        raise RuntimeError("expected a run's settings and router on the job context")
    return context.settings


async def _history(
    settings: Settings, context: JobContext, conversation_id: str, reply_to: str
) -> list[Turn]:
    async with context.database() as database, database.tenant(context.tenant_id) as conn:
        limit = settings.agent_history_messages
        return await history(conn, context.job_id, conversation_id, reply_to, limit)


async def _write(
    context: JobContext, provider: Provider, turns: list[Turn], deltas: Deltas, max_bytes: int
) -> str:
    """The provider's reply, each piece streamed as it comes; cut at ``max_bytes``."""
    parts: list[str] = []
    room = max_bytes
    async with contextlib.aclosing(provider.stream(turns)) as pieces:
        async for piece in pieces:
            fitted = piece.encode()[:room].decode(errors="ignore")
            room -= len(fitted.encode())
            if fitted:
                parts.append(fitted)
                context.output(fitted)
                await deltas.publish(fitted)
            if fitted != piece:
                context.log(f"the reply was cut at {max_bytes} bytes (HUBBUB_MESSAGE_MAX_BYTES)")
                break
    text = "".join(parts)
    if not text.strip():
        raise AppError("agent_empty_reply", "the model provider gave an empty reply", status=502)
    return text


async def _until_cancelled(context: JobContext, work: Awaitable[T]) -> T:
    """``work``'s result, unless the job is cancelled first: then ``work`` is
    stopped and :class:`JobCancelled` raised."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            if context.cancelled:
                raise JobCancelled(context.job_id)
            await asyncio.wait({task}, timeout=_CANCEL_POLL)
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _commit(
    context: JobContext, conversation_id: str, reply_to: str, text: str
) -> dict[str, Any]:
    """The committed reply: the conversation's answer to ``post_assistant_message``."""
    assert context.router is not None
    key = reply_client_msg_id(context.job_id)
    message_id = str(uuid.uuid5(_MESSAGE_IDS, context.job_id))
    post = PostAssistantMessage(text, key, message_id, reply_to)
    return await ask(context.router, context.tenant_id, conversation_id, post, key)
