"""A test plugin: the ``tally`` kind behind HTTP and Socket.IO.

It exercises the whole path a real capability takes — request → router →
shard → entity → commit → publish → sockets — and is loaded by gateways
started by tests with ``HUBBUB_PLUGINS=tests.support.probe``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from hubbub.actors.command import Command
from hubbub.errors import AppError, FieldError
from hubbub.http.routing import Api
from hubbub.plugin import Plugin
from hubbub.realtime.server import SocketContext
from hubbub.services import ROUTER
from tests.support.tally import Add, Get, Tally

__all__ = ["plugin"]

api = Api("tallies", "Test only: a tally entity behind the full request path.")

KEY_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"


class TallyPath(BaseModel):
    key: str = Field(pattern=KEY_PATTERN)


class AddToTally(BaseModel):
    amount: int = Field(ge=-1_000_000, le=1_000_000)
    sender: str | None = Field(None, max_length=80)


class TallyState(BaseModel):
    seq: int
    total: int


def _tenant(request: web.Request) -> str | None:
    return request.headers.get("X-Tenant-Id")


@api.post("/api/v1/tallies/{key}", params=TallyPath, body=AddToTally, response=TallyState)
async def add_to_tally(request: web.Request, *, path: TallyPath, body: AddToTally) -> TallyState:
    """Add an amount to a tally."""
    command = Command(
        "tally",
        path.key,
        Add(body.amount, body.sender),
        tenant_id=_tenant(request),
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    return TallyState.model_validate(await request.app[ROUTER].send(command))


@api.get("/api/v1/tallies/{key}", params=TallyPath, response=TallyState)
async def get_tally(request: web.Request, *, path: TallyPath) -> TallyState:
    """Read a tally."""
    command = Command("tally", path.key, Get(), tenant_id=_tenant(request))
    return TallyState.model_validate(await request.app[ROUTER].send(command))


def _key(data: Any) -> str:
    try:
        return TallyPath.model_validate(data).key
    except ValueError:
        raise AppError(
            "validation_failed",
            "expected {key}",
            status=422,
            errors=(FieldError("body", "key", "expected a tally key"),),
        ) from None


async def watch(context: SocketContext, data: Any) -> dict[str, str]:
    """Receive the tally's committed ``tally:added`` events."""
    key = _key(data)
    await context.realtime.watch(context.sid, f"tally:{key}")
    return {"watching": key}


async def shout(context: SocketContext, data: Any) -> None:
    """Emit to every watcher of a tally through Socket.IO's Redis manager."""
    key = _key(data)
    text = str(data.get("text", ""))[:200]
    await context.realtime.sio.emit("tally:shout", {"key": key, "text": text}, room=f"tally:{key}")


plugin = Plugin(
    "tally",
    entity_kinds=(Tally,),
    apis=(api,),
    socket_events={"tally:watch": watch, "tally:shout": shout},
    migrations=Path(__file__).with_name("migrations"),
)
