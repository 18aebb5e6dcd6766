"""Wire shapes of conversations and messages (HTTP bodies; sockets use the same names).

Inputs forbid unknown fields; outputs are what the read side and the
entity build. Names follow issue 4's "Wire names".
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

__all__ = [
    "STATUSES",
    "ConversationList",
    "ConversationListQuery",
    "ConversationMemberPath",
    "ConversationPath",
    "ConversationUpdate",
    "ConversationView",
    "EventList",
    "EventsQuery",
    "MembershipUpdate",
    "MembershipView",
    "MessageEdit",
    "MessageList",
    "MessagePath",
    "MessageView",
    "MessagesQuery",
    "NewConversation",
    "NewMembers",
    "NewMessage",
    "ReactionInput",
    "ReadMark",
    "ReadView",
    "Subject",
    "UnreadList",
]

ClientMsgId = Field(min_length=1, max_length=128, description="Your id of this send.")
Kind = Literal["direct", "group", "channel", "support", "agent"]
Status = Literal["open", "pending", "resolved", "snoozed"]
STATUSES: tuple[str, ...] = ("open", "pending", "resolved", "snoozed")
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
#: The longest emoji a reaction takes, in characters (a ZWJ family is up to 11).
EMOJI_MAX_CHARS = 32


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Subject(_Input):
    """What a conversation is about, e.g. ``{type: "listing", id: "L-42"}``."""

    type: str = Field(min_length=1, max_length=64)
    id: str = Field(min_length=1, max_length=200)


class NewConversation(_Input):
    kind: Kind
    member_ids: list[UUID] = Field(
        default_factory=list,
        max_length=1000,
        description="Others to add; you are added too. None for `agent` (you and the assistant).",
    )
    title: str | None = Field(None, min_length=1, max_length=200)
    subject: Subject | None = Field(
        None, description="Set: get-or-create by (kind, subject, participants)."
    )
    visibility: Literal["public", "private"] = Field(
        "private", description="Channels: public ones can be joined by any tenant member."
    )


class ConversationUpdate(_Input):
    """Only the fields given change; ``assignee_id: null`` unassigns.

    Status, snooze, assignee and labels exist on support conversations only.
    ``snooze_until`` alone snoozes; leaving ``snoozed`` clears it.
    """

    title: str | None = Field(None, min_length=1, max_length=200)
    status: Status | None = None
    snooze_until: AwareDatetime | None = Field(None, description="RFC 3339, in the future.")
    assignee_id: UUID | None = Field(None, description="A member of the tenant; null: nobody.")
    labels: list[Label] | None = Field(None, max_length=20, description="Replaces the labels.")

    @field_validator("status", "labels")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("expected a value, got null")
        return value

    @field_validator("labels")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class MembershipUpdate(_Input):
    muted: bool | None = None
    starred: bool | None = None


class ReactionInput(_Input):
    emoji: str = Field(description=f"An emoji (or a short code): 1-{EMOJI_MAX_CHARS} characters.")

    @field_validator("emoji")
    @classmethod
    def _short(cls, value: str) -> str:
        if not 0 < len(value) <= EMOJI_MAX_CHARS:
            raise ValueError(f"expected 1 to {EMOJI_MAX_CHARS} characters, got {len(value)}")
        if any(c.isspace() or unicodedata.category(c) == "Cc" for c in value):
            raise ValueError("expected an emoji without spaces or control characters")
        return value


class NewMembers(_Input):
    user_ids: list[UUID] = Field(min_length=1, max_length=1000)


class NewMessage(_Input):
    body: str = Field(description="1 byte up to HUBBUB_MESSAGE_MAX_BYTES (16 KB) of UTF-8.")
    client_msg_id: str = ClientMsgId
    reply_to: UUID | None = None


class MessageEdit(_Input):
    body: str


class ReadMark(_Input):
    up_to_seq: int = Field(ge=0)


class ConversationPath(BaseModel):
    conversation_id: UUID


class ConversationMemberPath(BaseModel):
    conversation_id: UUID
    user_id: UUID


class MessagePath(BaseModel):
    conversation_id: UUID
    message_id: UUID


class ConversationListQuery(_Input):
    kind: Kind | None = None
    status: Status | None = None
    label: Label | None = None
    assignee: UUID | None = Field(None, description="Assigned to this user.")
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")
    limit: int = Field(50, ge=1, le=100)


class MessagesQuery(_Input):
    before: int | None = Field(None, ge=0, description="Messages before this seq.")
    after: int | None = Field(None, ge=0, description="Messages after this seq.")
    around: int | None = Field(None, ge=0, description="Messages centred on this seq.")
    limit: int = Field(50, ge=1, le=200)


class EventsQuery(_Input):
    after_seq: int = Field(0, ge=0)
    limit: int = Field(100, ge=1, le=1000)


class ReactionView(BaseModel):
    emoji: str
    count: int
    user_ids: list[UUID]


class MessageView(BaseModel):
    id: UUID
    conversation_id: UUID
    seq: int
    author_id: UUID
    body: str
    client_msg_id: str
    reply_to: UUID | None
    created_at: datetime
    edited_at: datetime | None
    deleted: bool
    reactions: list[ReactionView] = Field(
        default_factory=list, description="By emoji, in the order each was first used."
    )


class ConversationView(BaseModel):
    id: UUID
    tenant_id: UUID
    kind: str
    visibility: str
    title: str | None
    subject: dict[str, str] | None
    status: str | None = Field(description="Support conversations only; null otherwise.")
    snooze_until: datetime | None = Field(None, description="When a snoozed one wakes.")
    assignee_id: UUID | None = None
    labels: list[str] = Field(default_factory=list)
    role: str = Field(description="Your role in it.")
    muted: bool = Field(False, description="Yours: no notifications.")
    starred: bool = Field(False, description="Yours.")
    last_seq: int
    last_read_seq: int
    unread_count: int
    last_message: MessageView | None
    created_at: datetime
    updated_at: datetime


class ConversationList(BaseModel):
    items: list[ConversationView]
    next_cursor: str | None


class MessageList(BaseModel):
    items: list[MessageView]
    next_cursor: str | None = Field(
        description="Seq to pass as `before` (or `after`, when paging with it) for the next page."
    )


class EventView(BaseModel):
    seq: int
    event: str
    data: dict[str, Any]
    created_at: datetime


class EventList(BaseModel):
    items: list[EventView]
    last_seq: int
    next_cursor: str | None = Field(description="`after_seq` of the next page.")


class ReadView(BaseModel):
    conversation_id: UUID
    user_id: UUID
    last_read_seq: int


class MembershipView(BaseModel):
    conversation_id: UUID
    user_id: UUID
    muted: bool
    starred: bool


class UnreadView(BaseModel):
    conversation_id: UUID
    last_seq: int
    last_read_seq: int
    unread_count: int


class UnreadList(BaseModel):
    items: list[UnreadView]
    total: int
