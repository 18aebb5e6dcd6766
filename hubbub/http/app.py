"""The aiohttp application factory of the HTTP edge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp_cors
from aiohttp import web

from hubbub.config import Settings
from hubbub.http.health import READINESS, Readiness, health_api
from hubbub.http.metrics import METRICS, MetricsSources, metrics_api
from hubbub.http.middleware import REQUEST_ID_HEADER, middlewares
from hubbub.http.openapi import register_docs
from hubbub.http.request_metrics import observe_requests
from hubbub.http.routing import Api, register_routes
from hubbub.http.secret_paths import SecretPaths
from hubbub.http.security_headers import add_security_headers
from hubbub.log import quiet_client_faults

__all__ = ["create_http_app"]


def create_http_app(
    settings: Settings, apis: Sequence[Api], readiness: Readiness
) -> web.Application:
    """The HTTP app: middleware, request metrics, security headers, the
    health and metrics APIs, ``apis``, OpenAPI and CORS; its connections
    close when idle (``http_idle_seconds``).

    Resources (databases, Socket.IO) are added by the caller.
    """
    every_api = [health_api, metrics_api, *apis]
    secret_paths = SecretPaths(
        (route.path, route.secret_params) for api in every_api for route in api.routes
    )
    app = web.Application(
        middlewares=middlewares(settings.max_body_bytes, secret_paths),
        client_max_size=settings.max_body_bytes,
        handler_args=_connection_options(settings),
    )
    observe_requests(app)
    app.on_response_prepare.append(add_security_headers)
    quiet_client_faults()
    app[READINESS] = readiness
    app[METRICS] = MetricsSources(settings.metrics_token)
    register_routes(app, every_api)
    register_docs(app, every_api)
    _allow_cors(app, settings.cors_origins)
    return app


def _connection_options(settings: Settings) -> dict[str, Any]:
    """Options of each connection's handler (aiohttp's ``RequestHandler``),
    whatever runner serves the app.

    aiohttp's keep-alive timer runs from the moment a connection opens and is
    restarted only when a response is sent, so it bounds both an idle
    keep-alive connection and a client that trickles its request's headers
    (slowloris): either is closed ``http_idle_seconds`` after its last answer.
    aiohttp's own access log is off: it would show secret path parameters,
    and the middleware's access log shows every request already.
    """
    return {"keepalive_timeout": settings.http_idle_seconds, "access_log": None}


def _allow_cors(app: web.Application, origins: tuple[str, ...]) -> None:
    if not origins:
        return  # same origin only
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=True,
        expose_headers=(REQUEST_ID_HEADER,),
        allow_headers="*",
        allow_methods="*",
    )
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in origins})
    for route in list(app.router.routes()):
        if not isinstance(route.resource, web.StaticResource):
            cors.add(route)
