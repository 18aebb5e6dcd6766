"""``export.conversations``: a tenant's conversations and messages to a file.

Runs on a Ray worker. It checks that the job's creator is a tenant owner or
admin, opens the file in the export store, reads the tenant's rows from
Postgres in the tenant's row-level-security scope
(:mod:`hubbub.exports.rows`), counts them (step ``counting``), streams them
page by page into the file (step ``writing``, progress and counters by
rows), and returns the file's signed download link (step ``done``). Memory
holds one page, never the export. A cancel stops the export wherever it
is — a query waiting on Postgres included — and leaves no file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from hubbub.config import Settings
from hubbub.exports import formats, rows
from hubbub.exports.formats import Format
from hubbub.exports.links import link_for
from hubbub.exports.store import Sink, open_store
from hubbub.jobs.context import JobCancelled, JobContext
from hubbub.jobs.registry import Policy, job_kind
from hubbub.storage.database import Database
from hubbub.tenancy.access import authorize

__all__ = ["ExportInput", "export_conversations"]

T = TypeVar("T")


class ExportInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Format = Field(description="`csv` or `jsonl` (JSON Lines).")
    conversation_ids: list[UUID] | None = Field(
        None, min_length=1, max_length=1000, description="Only these conversations."
    )
    since: AwareDatetime | None = Field(
        None,
        description="Only conversations active and messages created at or after this time.",
    )


@job_kind(
    "export.conversations",
    ExportInput,
    resources={"num_cpus": 0.25},
    entities=("tenant",),
    # A retried run writes the same file again from scratch (it appears only when
    # complete), so a lost worker or a Postgres hiccup costs a retry, not the export.
    # Two at a time per tenant: each holds a snapshot and a worker for its length.
    # Private: its result is a download link to every conversation of the tenant.
    policy=Policy(max_attempts=3, backoff_seconds=5.0, concurrency=2, private=True),
)
async def export_conversations(context: JobContext, input: ExportInput) -> dict[str, Any]:
    """Export the tenant's conversations and messages as CSV or JSON Lines."""
    settings = _settings(context)
    name = f"{context.job_id}.{input.format}"
    work = _export(context, settings, name, input)
    written, size = await _unless_cancelled(context, work, settings.job_report_seconds)
    link = await asyncio.to_thread(link_for, settings, name)
    context.step("done")
    return {
        "format": input.format,
        "rows": written,
        "bytes": size,
        "download_url": link.url,
        "expires_at": formats.rfc3339(link.expires_at),
    }


def _settings(context: JobContext) -> Settings:
    if context.settings is None or not context.settings.database_url:
        raise RuntimeError("expected the run's settings, with a database URL, on its context")
    return context.settings


async def _unless_cancelled(context: JobContext, work: Coroutine[Any, Any, T], every: float) -> T:
    """``work``'s result; JobCancelled, with ``work`` cancelled, once the job is.

    The flag is looked at ``every`` seconds: it changes no faster (it comes
    with the replies to report batches)."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=every)
            if context.cancelled and not task.done():
                raise JobCancelled(context.job_id)
        return task.result()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _export(
    context: JobContext, settings: Settings, name: str, input: ExportInput
) -> tuple[int, int]:
    """``(rows, bytes)`` of the file written."""
    scope = rows.Scope(input.conversation_ids, input.since)
    async with context.database() as db:
        await _require_manager(context, db)
        async with (
            open_store(settings).create(name) as sink,
            rows.snapshot(db, context.tenant_id) as conn,
        ):
            context.step("counting")
            total = await rows.count_rows(conn, scope)
            context.counters(0, total)
            context.step("writing")
            written = await _write(context, conn, scope, input.format, sink, total)
    return written, sink.size


async def _require_manager(context: JobContext, db: Database) -> None:
    """Every conversation of the tenant, private ones too, is for its owners and
    admins: the job fails with ``insufficient_role`` (403) if its creator is
    neither (any more)."""
    async with db.tenant(context.tenant_id) as conn:
        creator = await conn.fetchval("SELECT created_by FROM jobs WHERE id = $1", context.job_id)
    assert context.router is not None, "a worker's run has a router"
    await authorize(context.router, context.tenant_id, creator, minimum="admin")


_SOURCES: tuple[tuple[Callable[..., AsyncIterator[list[asyncpg.Record]]], Any], ...] = (
    (rows.conversation_pages, formats.conversation_record),
    (rows.message_pages, formats.message_record),
)


async def _write(
    context: JobContext,
    conn: asyncpg.Connection,
    scope: rows.Scope,
    format: Format,
    sink: Sink,
    total: int,
) -> int:
    """Every page into ``sink``, reporting rows as they go; the rows written."""
    await sink.write(formats.header(format))
    done = 0
    for pages, record in _SOURCES:
        async for page in pages(conn, scope):
            await sink.write(formats.encode(format, map(record, page)))
            done += len(page)
            context.counters(done, total)
            context.progress(100 * done / total)
    if not total:
        context.progress(100)
    return done
