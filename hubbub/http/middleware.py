"""Middleware: request ids, the body limit, errors as problems, access logs.

Order (outermost first): request id → access log → errors → body limit, so
every response — a 500 included — carries ``X-Request-Id`` and is logged
with it, and every failure leaves as problem+json.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from hubbub.errors import AppError
from hubbub.http.problem import problem_response
from hubbub.log import request_id_var

__all__ = ["LOGGED_PATH", "REQUEST_ID_HEADER", "middlewares"]

log = logging.getLogger("hubbub.http")
access_log = logging.getLogger("hubbub.access")

REQUEST_ID_HEADER = "X-Request-Id"
#: ``request[LOGGED_PATH]``: the path as the access log shows it, when it must
#: not show the real one (a route whose path carries a secret sets it).
LOGGED_PATH = web.RequestKey("logged_path", str)
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CODES = {
    404: "not_found",
    403: "forbidden",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def middlewares(max_body_bytes: int) -> list[web.middleware]:
    @web.middleware
    async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(max_body_bytes, request.content_length)
        return await handler(request)

    return [_request_id, _access_log, _errors, body_limit]


@web.middleware
async def _request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = given if _SANE_REQUEST_ID.match(given) else uuid.uuid4().hex
    token = request_id_var.set(request_id)
    try:
        response = await handler(request)
    finally:
        request_id_var.reset(token)
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


@web.middleware
async def _access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    path = _logged_path(request)
    access_log.info(
        "%s %s %d",
        request.method,
        path,
        response.status,
        extra={
            "method": request.method,
            "path": path,
            "status": response.status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
    return response


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request_id_var.get()
    try:
        return await handler(request)
    except AppError as error:
        return problem_response(error, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are not errors
        return _from_http_exception(exc, request_id)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, _logged_path(request))
        error = AppError("internal_error", "an unexpected error occurred", status=500)
        return problem_response(error, request_id)


def _from_http_exception(exc: web.HTTPException, request_id: str | None) -> web.Response:
    code = _CODES.get(exc.status, f"http_{exc.status}")
    headers = {}
    if exc.status == 405 and "Allow" in exc.headers:
        headers["Allow"] = exc.headers["Allow"]
    detail = exc.reason if exc.status != 413 else "the request body is too large"
    if exc.status == 404:
        detail = "no such resource"
    return problem_response(AppError(code, detail, status=exc.status), request_id, headers)


def _logged_path(request: web.Request) -> str:
    return request.get(LOGGED_PATH, request.path)
