"""Routes declared with pydantic models: validation and OpenAPI from one place.

A route names its body, query and path-parameter models and its response
model. The wrapper parses and validates every input before the handler
runs — all bad fields of body, query and path in one 422, including any
text holding NUL or a lone surrogate and JSON nested too deep
(``hubbub.validation``) — and serialises
the handler's returned model with orjson. Handlers receive only the inputs
they declared, as keyword arguments::

    api = Api("things", "Things you can make.")

    class ThingPath(BaseModel):
        thing_id: UUID

    @api.post("/api/v1/things/{thing_id}/copies", path=ThingPath, body=NewCopy,
              response=Copy, status=201, summary="Copy a thing")
    async def copy_thing(request: web.Request, *, path: ThingPath, body: NewCopy) -> Copy:
        ...

``security=("bearer",)`` declares that a route needs a bearer token; it is
documented in OpenAPI (with its 401 answer) and enforced here: the app's
``REQUEST_AUTHENTICATOR`` (``hubbub.identity.bearer.authenticate_request``)
runs before any input is parsed, so a request without valid credentials
gets its 401 whatever else is wrong with it (save a header value holding
a lone surrogate: its 422 naming the header comes first), and no handler
can forget the check. ``("bearer", "api_key")`` also accepts an
``X-API-Key``: the route's schemes are left in ``request[ROUTE_SECURITY]``
for the authenticator to honour.

``tenant_header=True`` (on a route, or on its :class:`Api` for all of them)
declares that the handler reads ``X-Tenant-Id``: OpenAPI lists the header
and the 400 ``tenant_required`` of its absence.

Routes are registered together by :func:`register_routes`, so a literal
path (``/conversations/search``) wins over a parameterised sibling
(``/conversations/{conversation_id}``) for every method, not only for the
methods it declares: another method there answers 405, never the sibling.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from hubbub.errors import AppError, FieldError
from hubbub.validation import field_errors, loads, unclean, validation_error

__all__ = [
    "REQUEST_AUTHENTICATOR",
    "ROUTE_SECURITY",
    "TENANT_HEADER",
    "Api",
    "RequestAuthenticator",
    "Route",
    "register_routes",
    "validation_error",
]

#: ``request[ROUTE_SECURITY]``: the security schemes the matched route declared.
ROUTE_SECURITY = web.RequestKey("route_security", tuple[str, ...])

#: Who a request is; raises the AppError (401, 403) of missing or bad credentials.
RequestAuthenticator = Callable[[web.Request], Awaitable[object]]
#: ``app[REQUEST_AUTHENTICATOR]``: run before every route that declares a scheme.
REQUEST_AUTHENTICATOR = web.AppKey("request_authenticator", RequestAuthenticator)

#: The header naming the tenant a request acts in (``tenant_header=True``).
TENANT_HEADER = "X-Tenant-Id"

Handler = Callable[..., Awaitable[BaseModel | web.StreamResponse | None]]


@dataclass(frozen=True)
class Route:
    """One declared operation: what it takes, what it answers, and its handler."""

    method: str
    path: str
    handler: Handler
    tag: str
    summary: str
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    params: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    responses: Mapping[int, str] = field(default_factory=dict)
    content_type: str = "application/json"  # of the success response
    security: tuple[str, ...] = ()  # names in hubbub.http.openapi.SECURITY_SCHEMES
    #: Path parameters that are secrets (a link's token): logs show their
    #: names, never their values (``hubbub.http.secret_paths``).
    secret_params: tuple[str, ...] = ()
    #: Other success answers the handler may return as a web.Response:
    #: ``{status: (description, model)}``, documented in OpenAPI; a model of
    #: ``None`` is an answer without a body.
    alternatives: Mapping[int, tuple[str, type[BaseModel] | None]] = field(default_factory=dict)
    #: The handler reads the tenant from ``X-Tenant-Id`` (else the credential's).
    tenant_header: bool = False

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


class Api:
    """A group of routes under one OpenAPI tag."""

    def __init__(self, tag: str, description: str = "", *, tenant_header: bool = False) -> None:
        self.tag = tag
        self.description = description
        self.tenant_header = tenant_header
        self.routes: list[Route] = []

    def route(self, method: str, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Declare ``method path``; see the module docstring for the options."""
        options.setdefault("tenant_header", self.tenant_header)

        def declare(handler: Handler) -> Handler:
            summary = options.pop("summary", None) or _first_line(handler)
            self.routes.append(Route(method, path, handler, self.tag, summary, **options))
            return handler

        return declare

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **options)


def register_routes(app: web.Application, apis: Iterable[Api]) -> None:
    """Add every route of ``apis`` to ``app``; then give each literal path the
    methods its parameterised siblings have, answering 405 with its ``Allow``."""
    routes = [route for api in apis for route in api.routes]
    for route in routes:
        app.router.add_route(route.method, route.path, _endpoint(route))
    for path, methods in _shadowed_methods(routes).items():
        for method in methods:
            app.router.add_route(method, path, _not_allowed(_methods_of(routes, path)))


def _shadowed_methods(routes: list[Route]) -> dict[str, set[str]]:
    """``{literal path: methods it lacks that a parameterised path matching it has}``."""
    literal = {route.path for route in routes if "{" not in route.path}
    shadowed: dict[str, set[str]] = {}
    for route in routes:
        if "{" not in route.path:
            continue
        pattern = _template_pattern(route.path)
        for path in literal:
            if pattern.fullmatch(path) and route.method not in _methods_of(routes, path):
                shadowed.setdefault(path, set()).add(route.method)
    return shadowed


def _template_pattern(path: str) -> re.Pattern[str]:
    """The paths aiohttp matches to ``path``: each ``{name}`` is one segment."""
    parts = re.split(r"\{[^}]+\}", path)
    return re.compile("[^/]+".join(map(re.escape, parts)))


def _methods_of(routes: list[Route], path: str) -> set[str]:
    return {route.method for route in routes if route.path == path}


def _not_allowed(allowed: set[str]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def not_allowed(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMethodNotAllowed(request.method, allowed)

    return not_allowed


def _endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        request[ROUTE_SECURITY] = route.security
        _check_headers(request)  # before the authenticator reads any
        if route.security:
            await request.app[REQUEST_AUTHENTICATOR](request)
        inputs = await _inputs(route, request)
        result = await route.handler(request, **inputs)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=route.status if route.status != 200 else 204)
        return web.Response(
            body=orjson.dumps(result.model_dump(mode="json")),
            status=route.status,
            content_type="application/json",
        )

    endpoint.__name__ = route.operation_id
    return endpoint


def _check_headers(request: web.Request) -> None:
    """Refuse a request whose header values hold a lone surrogate: the bytes of
    a header that are not UTF-8 decode to them. (A NUL the HTTP parser
    refuses itself, with a 400.)"""
    headers = request.headers.items()
    errors = [error for name, value in headers for error in unclean({name: value}, "header")]
    if errors:
        raise validation_error(errors)


async def _inputs(route: Route, request: web.Request) -> dict[str, BaseModel]:
    errors: list[FieldError] = []
    inputs: dict[str, BaseModel] = {}
    sources: list[tuple[str, str, type[BaseModel] | None, Any]] = [
        ("path", "path", route.params, dict(request.match_info)),
        ("query", "query", route.query, _query_dict(request)),
    ]
    if route.body is not None:
        sources.append(("body", "body", route.body, await _json_body(request)))
    for name, location, model, raw in sources:
        problems = unclean(raw, location)  # every parameter, even one no model reads
        errors.extend(problems)
        if model is None or problems:
            continue
        try:
            inputs[name] = model.model_validate(raw)
        except ValidationError as exc:
            errors.extend(field_errors(location, exc))
    if errors:
        raise validation_error(errors)
    return inputs


def _query_dict(request: web.Request) -> dict[str, Any]:
    """Repeated keys become lists (``?kind=a&kind=b``); single ones stay strings."""
    query: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        query[key] = values if len(values) > 1 else values[0]
    return query


async def _json_body(request: web.Request) -> Any:
    if not request.body_exists:
        raise validation_error([FieldError("body", "", "a JSON body is required")])
    if request.content_type != "application/json":
        raise AppError(
            "unsupported_media_type",
            f"expected Content-Type application/json, got {request.content_type!r}",
            status=415,
        )
    raw = await request.read()
    try:
        return loads(raw)
    except ValueError as exc:
        raise AppError("invalid_json", f"the body is not valid JSON: {exc}") from None


def _first_line(handler: Handler) -> str:
    doc = (handler.__doc__ or handler.__name__.replace("_", " ")).strip()
    return doc.splitlines()[0]
