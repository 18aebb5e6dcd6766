"""The download route of exports: ``GET /api/v1/exports/{name}``.

No bearer token: the signed link is the capability (:mod:`hubbub.exports.links`).
A bad or expired signature answers 403 before anything about the file is
known, so a link cannot probe which files exist; a genuine link to a file
that is gone answers 404.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field, RootModel

from hubbub.errors import AppError
from hubbub.exports.formats import MEDIA_TYPES
from hubbub.exports.links import EXPORTS, verify
from hubbub.exports.store import FileStore
from hubbub.http.routing import Api
from hubbub.services import SETTINGS

__all__ = ["STORE", "api"]

api = Api("exports", "Files written by export jobs, downloaded through signed links.")

STORE = web.AppKey("export_store", FileStore)


class ExportPath(BaseModel):
    name: str = Field(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.(csv|jsonl)$",
        description="`<job id>.<format>`, as in the job's `download_url`.",
    )


class LinkQuery(BaseModel):
    expires: int = Field(ge=0, description="Unix time the link stops working.")
    signature: str = Field(max_length=100, description="The link's signature.")


class ExportFile(RootModel[str]):
    """The file: CSV (`text/csv`) or JSON Lines (`application/jsonl`)."""


@api.get(
    f"{EXPORTS}/{{name}}",
    params=ExportPath,
    query=LinkQuery,
    response=ExportFile,
    content_type="text/csv",
    responses={
        403: "A tampered link (`bad_signature`) or one past its time (`link_expired`)",
        404: "The file is gone (`not_found`)",
    },
)
async def download_export(
    request: web.Request, *, path: ExportPath, query: LinkQuery
) -> web.StreamResponse:
    """Download an export through the signed link its job returned (CSV or JSON Lines)."""
    verify(request.app[SETTINGS], path.name, query.expires, query.signature)
    store = request.app[STORE]
    size = await store.size(path.name)
    if size is None:
        raise AppError.not_found("the export")
    response = web.StreamResponse(headers=_headers(path.name))
    response.content_length = size
    await response.prepare(request)
    async for chunk in store.read(path.name):
        await response.write(chunk)
    await response.write_eof()
    return response


def _headers(name: str) -> dict[str, str]:
    format = name.rpartition(".")[2]
    return {
        "Content-Type": MEDIA_TYPES[format],
        "Content-Disposition": f'attachment; filename="conversations-{name}"',
        "Cache-Control": "private, no-store",
    }
