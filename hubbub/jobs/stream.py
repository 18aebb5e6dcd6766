"""The SSE relay of a job's stream: every event after the client's seq, in
order, then live ones, ending with the job's final ``status`` event.

The job routes serve it (``GET /api/v1/jobs/{id}/stream``), and so do the
capabilities whose resources are jobs (workflow runs, agent chat streams, a
signup's provisioning stream). Events come from this gateway's job feeds
(``hubbub.jobs.feeds``); each is one SSE message with ``id`` its seq and
``event`` its type, so a client resumes with ``Last-Event-ID``.

A stream whose follower loses access to the tenant (its user removed, the
tenant deleted) ends at once with one last event, ``access_revoked``
(``data: {"job_id", "tenant_id"}``, no ``id``), and no job event after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from hubbub.errors import AppError, FieldError
from hubbub.jobs.feeds import Follower
from hubbub.jobs.keys import FEEDS
from hubbub.jobs.reads import Viewer
from hubbub.jobs.wire import StreamQuery
from hubbub.metrics import SSE_DELIVERIES, SSE_STREAMS_OPEN
from hubbub.services import SETTINGS

__all__ = ["REVOKED", "EventRewrite", "serve_stream"]

#: The last SSE event of a stream whose follower lost access to the tenant.
REVOKED = "access_revoked"

#: What one stream's client gets instead of a job event (the event itself
#: unchanged for all others): async signup hands its tokens out this way.
EventRewrite = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve_stream(
    request: web.Request,
    tenant_id: str,
    job_id: str,
    query: StreamQuery,
    viewer: Viewer | None,
    headers: dict[str, str] | None = None,
    rewrite: EventRewrite | None = None,
) -> web.StreamResponse:
    """The job's SSE stream for ``viewer`` (None: one already allowed to
    follow it; ``headers``: more response headers; ``rewrite``: what this
    client gets instead of each event)."""
    after = _resume_point(request, query)
    follower = await request.app[FEEDS].follow(tenant_id, job_id, after, viewer)
    try:
        heartbeat = request.app[SETTINGS].sse_heartbeat_seconds
        # allow_all_methods: a workflow's run-stream answers its POST with the stream.
        async with sse_response(
            request, headers=headers, ping_interval=heartbeat, allow_all_methods=True
        ) as stream:
            SSE_STREAMS_OPEN.inc()
            try:
                with contextlib.suppress(ConnectionResetError):  # the client left
                    await _relay(follower, stream, rewrite)
            finally:
                SSE_STREAMS_OPEN.dec()
        return stream
    finally:
        await follower.close()


def _resume_point(request: web.Request, query: StreamQuery) -> int:
    """The seq the client has seen: ``Last-Event-ID``, else ``after_seq``, else 0."""
    header = request.headers.get("Last-Event-ID")
    if header is None:
        return query.after_seq or 0
    if not header.isdigit():
        raise AppError(
            "validation_failed",
            f"expected Last-Event-ID to be an event seq, got {header[:40]!r}",
            status=422,
            errors=(FieldError("header", "Last-Event-ID", "expected a seq"),),
        )
    return int(header)


async def _relay(
    follower: Follower, stream: EventSourceResponse, rewrite: EventRewrite | None
) -> None:
    """Send the backlog, then live events, until the job's final event, the
    client leaves (its heartbeat fails: the follower is interrupted) or the
    follower's access is revoked (then one ``access_revoked`` event ends it)."""
    gone = asyncio.get_running_loop().create_task(stream.wait())
    gone.add_done_callback(lambda task: task.cancelled() or follower.interrupt())
    try:
        while not follower.caught_up and not follower.revoked:
            for event in await follower.backlog():
                if follower.revoked:
                    break
                await _send(stream, event, rewrite)
        while not follower.finished and not follower.revoked:
            events = await follower.next()
            if not events:  # interrupted: the client left, or access was revoked
                break
            for event in events:
                await _send(stream, event, rewrite)
        if follower.revoked:
            notice = {"job_id": follower.job_id, "tenant_id": follower.tenant_id}
            await stream.send(orjson.dumps(notice).decode(), event=REVOKED)
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone


async def _send(
    stream: EventSourceResponse, event: dict[str, Any], rewrite: EventRewrite | None
) -> None:
    if rewrite is not None:
        event = await rewrite(event)
    data = orjson.dumps(event).decode()
    await stream.send(data, id=str(event["seq"]), event=event["type"])
    SSE_DELIVERIES.inc()
