"""Security headers on every response the app prepares.

Set in ``on_response_prepare``, the last moment before headers are sent, so
they reach every response of the app's router: handler answers, problems,
404/405s, static files, Server-Sent Events and the Socket.IO endpoint's
polling and websocket answers alike. (A request aiohttp cannot parse gets
its 400 from the server before any app sees it.)

- ``X-Content-Type-Options: nosniff`` everywhere.
- HTML pages get a ``Content-Security-Policy`` that allows only this origin
  and no framing, plus ``X-Frame-Options: DENY`` for older browsers; this is
  decided by the response's content type, so any page added later has it.
- Answers are not stored by caches (``Cache-Control: no-store``): the API's
  answers carry tokens, secrets and personal data, and a route that wants
  caching says so with a ``Cache-Control`` of its own. Files served from disk
  keep aiohttp's validators (``Last-Modified``, ``ETag``).
- ``Server`` names the product only, never its version or its libraries'.
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["CONTENT_SECURITY_POLICY", "SERVER", "add_security_headers"]

SERVER = "hubbub"

#: Swagger UI (the docs page) sets inline ``style`` attributes and draws
#: icons from ``data:`` URLs; everything else comes from this origin.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

# A no-cache (revalidate each time) is what SSE libraries send; no-store is stricter.
_WEAKER_THAN_NO_STORE = {"", "no-cache"}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The ``on_response_prepare`` hook that sets the headers above."""
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Server"] = SERVER
    if response.content_type == "text/html":
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        headers["X-Frame-Options"] = "DENY"
    if isinstance(response, web.FileResponse):
        return
    if headers.get("Cache-Control", "").strip().lower() in _WEAKER_THAN_NO_STORE:
        headers["Cache-Control"] = "no-store"
