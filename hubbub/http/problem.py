"""RFC 9457 problem documents: the one place an AppError becomes HTTP.

A problem is ``{type, title, status, detail, code, request_id, errors?}``
served as ``application/problem+json``. ``type`` is
``https://hubbub.dev/problems/<code>``: stable, one per code, documented by
the code itself. ``extra`` fields of the error are added as extension
members; a ``retry_after`` among them also becomes the ``Retry-After`` header.
Every 401 carries ``WWW-Authenticate: Bearer`` (RFC 9110 requires a challenge).
"""

from __future__ import annotations

from http import HTTPStatus

import orjson
from aiohttp import web

from hubbub.errors import AppError

__all__ = ["PROBLEM_TYPE_BASE", "problem_response"]

PROBLEM_TYPE_BASE = "https://hubbub.dev/problems/"
CONTENT_TYPE = "application/problem+json"


def problem_response(
    error: AppError, request_id: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + error.code,
        "title": _title(error.status),
        "status": error.status,
        "detail": error.message,
        "code": error.code,
    }
    if error.retriable:
        body["retriable"] = True
    if request_id:
        body["request_id"] = request_id
    if error.errors:
        body["errors"] = [field.to_wire() for field in error.errors]
    body.update(error.extra)
    all_headers = dict(headers or {})
    if "retry_after" in error.extra:
        all_headers["Retry-After"] = str(error.extra["retry_after"])
    if error.status == 401:
        all_headers.setdefault("WWW-Authenticate", _bearer_challenge(error.code))
    return web.Response(
        body=orjson.dumps(body),
        status=error.status,
        content_type=CONTENT_TYPE,
        headers=all_headers,
    )


def _bearer_challenge(code: str) -> str:
    """RFC 6750's challenge; ``error`` says a presented token was refused."""
    if code == "invalid_credentials" or code == "unauthenticated":
        return 'Bearer realm="hubbub"'
    return f'Bearer realm="hubbub", error="invalid_token", error_description="{code}"'


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
