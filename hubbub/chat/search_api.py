"""HTTP routes that find conversations: ``GET /api/v1/conversations/search`` and
``GET /api/v1/conversations/public``.

Registered before the conversation routes, so ``search`` and ``public`` are
never taken for a conversation id.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hubbub.chat import search as finder
from hubbub.chat.wire import MessageView
from hubbub.http.routing import Api
from hubbub.identity.bearer import authenticate_request
from hubbub.services import DATABASE, ROUTER
from hubbub.tenancy.access import authorize, tenant_of

__all__ = ["search_api"]

search_api = Api(
    "conversation search", "Full-text search and the public channel directory.", tenant_header=True
)

BASE = "/api/v1/conversations"
BEARER = ("bearer",)


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str = Field(
        min_length=1,
        max_length=200,
        description='Words; `"a phrase"`, `or` and `-word` work as in web search.',
    )
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")
    limit: int = Field(20, ge=1, le=100)

    @field_validator("q")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("expected some words to search for, got only spaces")
        return value


class SearchHit(BaseModel):
    conversation_id: str
    kind: str
    title: str | None
    message: MessageView | None = Field(description="The matching message; null: the title.")
    rank: float


class SearchResults(BaseModel):
    items: list[SearchHit]
    next_cursor: str | None


class DirectoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cursor: str | None = None
    limit: int = Field(50, ge=1, le=100)


class PublicChannel(BaseModel):
    id: str
    title: str | None
    member_count: int
    joined: bool = Field(description="Whether you are a member (else `POST .../join`).")
    last_seq: int
    created_at: str
    last_activity_at: str


class PublicChannelList(BaseModel):
    items: list[PublicChannel]
    next_cursor: str | None


async def _caller(request: web.Request) -> tuple[str, str]:
    claims = await authenticate_request(request)
    tenant_id = tenant_of(request, claims.tenant_id)
    await authorize(request.app[ROUTER], tenant_id, claims.user_id)
    return str(tenant_id), str(claims.user_id)


@search_api.get(f"{BASE}/search", query=SearchQuery, response=SearchResults, security=BEARER)
async def search_conversations(request: web.Request, *, query: SearchQuery) -> SearchResults:
    """Search the titles and messages of your conversations, best match first."""
    tenant_id, user = await _caller(request)
    async with request.app[DATABASE].tenant(tenant_id) as conn:
        items, cursor = await finder.search(conn, user, query.q, query.cursor, query.limit)
    return SearchResults.model_validate({"items": items, "next_cursor": cursor})


@search_api.get(f"{BASE}/public", query=DirectoryQuery, response=PublicChannelList, security=BEARER)
async def list_public_channels(request: web.Request, *, query: DirectoryQuery) -> PublicChannelList:
    """Every public channel of the tenant, joined or not, latest activity first."""
    tenant_id, user = await _caller(request)
    async with request.app[DATABASE].tenant(tenant_id) as conn:
        items, cursor = await finder.public_channels(conn, user, query.cursor, query.limit)
    return PublicChannelList.model_validate({"items": items, "next_cursor": cursor})
