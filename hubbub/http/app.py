"""The aiohttp application factory of the HTTP edge."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp_cors
from aiohttp import web

from hubbub.config import Settings
from hubbub.http.health import READINESS, Readiness, health_api
from hubbub.http.middleware import REQUEST_ID_HEADER, middlewares
from hubbub.http.openapi import register_docs
from hubbub.http.routing import Api

__all__ = ["create_http_app"]


def create_http_app(
    settings: Settings, apis: Sequence[Api], readiness: Readiness
) -> web.Application:
    """The HTTP app: middleware, the health API, ``apis``, OpenAPI and CORS.

    Resources (databases, Socket.IO) are added by the caller.
    """
    app = web.Application(
        middlewares=middlewares(settings.max_body_bytes),
        client_max_size=settings.max_body_bytes,
    )
    app[READINESS] = readiness
    every_api = [health_api, *apis]
    for api in every_api:
        api.register(app)
    register_docs(app, every_api)
    _allow_cors(app, settings.cors_origins)
    return app


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
