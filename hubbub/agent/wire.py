"""Request and response shapes of ``/api/v1/chat`` (the API Service's agent chat)."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from hubbub.chat.wire import MessageView

__all__ = ["AgentChatRequest", "AgentChatResponse", "ChatOpening"]


class AgentChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="Your message: 1 byte up to HUBBUB_MESSAGE_MAX_BYTES.")
    conversation_id: UUID | None = Field(
        None, description="An agent conversation of yours; none: a new one is created."
    )
    client_msg_id: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Your id of this message: sending it again gives the same message, "
        "the same conversation (when none is named) and the same reply job.",
    )


class ChatOpening(BaseModel):
    """Where a reply is written: the fields every chat answer starts with (202
    while the reply is not written yet)."""

    conversation_id: UUID
    job_id: UUID = Field(description="The `agent.reply` job writing the reply.")
    message: MessageView = Field(description="Your message, committed with its seq.")
    stream_url: str = Field(description="SSE stream of the reply job (resumable).")
    status_url: str = Field(description="The reply job itself.")


class AgentChatResponse(ChatOpening):
    reply: MessageView = Field(description="The assistant's reply, committed with its seq.")
    response: str = Field(description="The reply's text.")
