"""Middleware: request ids, the body limit, errors as problems, access logs.

Order (outermost first): request id → access log → errors → body limit, so
every response — a 500 included — carries ``X-Request-Id`` and is logged
with it, and every failure leaves as problem+json. Every line these log
shows the path through :class:`SecretPaths`, so no secret path parameter
reaches a log whatever the method or the status. A client that goes away
mid-answer is a fact of life, logged at INFO without a traceback.
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
from hubbub.http.secret_paths import SecretPaths
from hubbub.log import request_id_var

__all__ = ["REQUEST_ID_HEADER", "middlewares"]

log = logging.getLogger("hubbub.http")
access_log = logging.getLogger("hubbub.access")

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CODES = {
    404: "not_found",
    403: "forbidden",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def middlewares(max_body_bytes: int, secret_paths: SecretPaths) -> list[web.middleware]:
    """The app's middleware, outermost first; logs show paths through ``secret_paths``."""

    @web.middleware
    async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(max_body_bytes, request.content_length)
        return await handler(request)

    return [_request_id, _access_log(secret_paths), _errors(secret_paths), body_limit]


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


def _access_log(secret_paths: SecretPaths) -> web.middleware:
    @web.middleware
    async def access_log_line(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        path = secret_paths.redact(request.path)
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

    return access_log_line


def _errors(secret_paths: SecretPaths) -> web.middleware:
    @web.middleware
    async def errors_as_problems(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request_id_var.get()
        try:
            return await handler(request)
        except AppError as error:
            return problem_response(error, request_id)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise  # redirects and the like are not errors
            return _from_http_exception(exc, request_id)
        except Exception as exc:
            path = secret_paths.redact(request.path)
            if isinstance(exc, ConnectionError) and _client_gone(request):
                log.info("client went away during %s %s: %r", request.method, path, exc)
                raise  # nobody to answer; aiohttp closes the connection quietly
            log.exception("unhandled error in %s %s", request.method, path)
            error = AppError("internal_error", "an unexpected error occurred", status=500)
            return problem_response(error, request_id)

    return errors_as_problems


def _from_http_exception(exc: web.HTTPException, request_id: str | None) -> web.Response:
    code = _CODES.get(exc.status, f"http_{exc.status}")
    headers = {}
    if exc.status == 405 and "Allow" in exc.headers:
        headers["Allow"] = exc.headers["Allow"]
    detail = exc.reason if exc.status != 413 else "the request body is too large"
    if exc.status == 404:
        detail = "no such resource"
    return problem_response(AppError(code, detail, status=exc.status), request_id, headers)


def _client_gone(request: web.Request) -> bool:
    """Whether the request's own connection is closed (not, say, a database's)."""
    transport = request.transport
    return transport is None or transport.is_closing()
