"""The OpenAPI 3.1 document, generated from declared routes, and ``/docs``.

Schemas come from the routes' pydantic models (pydantic's JSON Schema is
the 2020-12 dialect OpenAPI 3.1 uses). Every operation also lists the
problem responses it can give: the ones its route declares, and the ones
its shape implies — a JSON body can be malformed (400 ``invalid_json``),
too large (413) or of another type (415); a secured route answers 401; a
route that reads ``X-Tenant-Id`` declares the header (the reusable
``components.parameters.TenantId``) and its 400 ``tenant_required``; every
429 (and login's 423) carries ``Retry-After``. ``/docs`` is Swagger UI served from the
swagger-ui-bundle package, so it works without network access.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from swagger_ui_bundle import swagger_ui_path

from hubbub import __version__
from hubbub.http.routing import TENANT_HEADER, Api, Route

__all__ = ["SECURITY_SCHEMES", "build_openapi", "register_docs"]

#: The schemes a route may name in ``security=``.
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from /api/v1/auth/login, register or refresh.",
    },
    "api_key": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A tenant API key (`hbk_...`) from POST /api/v1/tenants/{id}/api-keys; "
        "acts as the key's service account, inside its own tenant only.",
    },
}

_REF = "#/components/schemas/{model}"
_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details, with a stable machine code.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "retriable": {"type": "boolean"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "in": {"enum": ["body", "query", "path", "header"]},
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_EVENT_STREAM = "text/event-stream"
_DEFAULT_PROBLEMS = {422: "Invalid input; `errors` names each bad field", 500: "Unexpected error"}
_BODY_PROBLEMS = {
    400: "The body is not valid JSON (`invalid_json`)",
    413: "The body is larger than HUBBUB_MAX_BODY_BYTES (`payload_too_large`)",
    415: "The body is not `application/json` (`unsupported_media_type`)",
}
_TENANT_PROBLEMS = {
    400: f"No {TENANT_HEADER} header, and the credential names no tenant (`tenant_required`)",
    404: "No such tenant of which you are a member (`not_found`)",
}
_SECURED_PROBLEMS = {401: "Missing, invalid or expired token, or a revoked session"}
_TENANT_PARAMETER: dict[str, Any] = {
    "name": TENANT_HEADER,
    "in": "header",
    "required": False,
    "description": "The tenant you act in. Needed with a user's bearer token; an API key "
    "acts in its own tenant (naming another answers 404).",
    "schema": {"type": "string", "format": "uuid"},
}
#: Problems that say when to try again (a rate limit; login's lockout).
_RETRY_LATER = (423, 429)
_RETRY_AFTER: dict[str, Any] = {
    "description": "Whole seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}


def build_openapi(apis: Sequence[Api]) -> dict[str, Any]:
    routes = [route for api in apis for route in api.routes]
    models = _models(routes)
    _refuse_twins("model", [(m.__name__, f"{m.__module__}.{m.__qualname__}") for m in models])
    _refuse_twins("operation id", [(r.operation_id, f"{r.method} {r.path}") for r in routes])
    _, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template=_REF
    )
    schemas = definitions.get("$defs", {}) | {"Problem": _PROBLEM_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    components: dict[str, Any] = {
        "schemas": schemas,
        "parameters": {"TenantId": _TENANT_PARAMETER},
        "headers": {"RetryAfter": _RETRY_AFTER},
    }
    used = sorted({name for route in routes for name in route.security})
    if used:
        components["securitySchemes"] = {name: SECURITY_SCHEMES[name] for name in used}
    return {
        "openapi": "3.1.0",
        "info": {"title": "hubbub", "version": __version__},
        "tags": [{"name": api.tag, "description": api.description} for api in apis],
        "paths": paths,
        "components": components,
    }


def _refuse_twins(what: str, named: list[tuple[str, str]]) -> None:
    """OpenAPI names a schema by its model's name and an operation by its id:
    two of one name would make one document point at the other's."""
    seen: dict[str, str] = {}
    for name, place in named:
        if seen.setdefault(name, place) != place:
            raise ValueError(f"two routes' {what}s are named {name!r}: {seen[name]} and {place}")


def _models(routes: list[Route]) -> list[type[BaseModel]]:
    found: dict[type[BaseModel], None] = {}
    for route in routes:
        # Parameter models too: their schemas' $refs (enums, nested models) point here.
        for model in (route.body, route.response, route.params, route.query):
            if model is not None:
                found[model] = None
        for _, model in route.alternatives.values():
            if model is not None:
                found[model] = None
    return list(found)


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": _parameters(route.params, "path") + _parameters(route.query, "query"),
        "responses": _responses(route),
    }
    if route.tenant_header:
        operation["parameters"].append({"$ref": "#/components/parameters/TenantId"})
    if route.security:
        operation["security"] = [{name: []} for name in route.security]
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(route.body)}},
        }
    return operation


def _parameters(model: type[BaseModel] | None, location: str) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=_REF)
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": location,
            "required": location == "path" or name in required,
            "schema": {k: v for k, v in prop.items() if k != "title"},
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _responses(route: Route) -> dict[str, Any]:
    bodiless_ok = route.status == 200 and route.response is None
    responses = {"204" if bodiless_ok else str(route.status): _success(route)}
    for status, (description, model) in route.alternatives.items():
        responses[str(status)] = _answer(description, model)
    for status, description in sorted(_problems(route).items()):
        responses[str(status)] = _problem(status, description)
    return responses


def _success(route: Route) -> dict[str, Any]:
    if route.response is None:
        return {"description": "Success, no content"}
    if route.content_type == _EVENT_STREAM:
        content = {_EVENT_STREAM: {"schema": _sse_event(route.response)}}
        description = f"An event stream; each event's data is a {route.response.__name__}"
        return {"description": description, "content": content}
    content = {route.content_type: {"schema": _ref(route.response)}}
    return {"description": "Success", "content": content}


def _sse_event(model: type[BaseModel]) -> dict[str, Any]:
    """One Server-Sent Event, as OpenAPI 3.1 describes a stream's items: its
    ``data`` is the JSON of ``model``."""
    return {
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": _ref(model),
            },
        },
    }


def _answer(description: str, model: type[BaseModel] | None) -> dict[str, Any]:
    if model is None:
        return {"description": f"{description}; no content"}
    content = {"application/json": {"schema": _ref(model)}}
    return {"description": description, "content": content}


def _problems(route: Route) -> dict[int, str]:
    """``{status: description}`` of every problem the route can answer: its
    shape's (body, security, tenant) joined with the ones it declares."""
    implied = [_DEFAULT_PROBLEMS]
    if route.body is not None:
        implied.append(_BODY_PROBLEMS)
    if route.security:
        implied.append(_SECURED_PROBLEMS)
    if route.tenant_header:
        implied.append(_TENANT_PROBLEMS)
    implied.append(dict(route.responses))
    joined: dict[int, list[str]] = {}
    for problems in implied:
        for status, description in problems.items():
            joined.setdefault(status, []).append(description)
    return {status: "; or ".join(dict.fromkeys(texts)) for status, texts in joined.items()}


def _problem(status: int, description: str) -> dict[str, Any]:
    problem: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": _PROBLEM_REF}},
    }
    if status in _RETRY_LATER:
        problem["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    return problem


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hubbub API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/init.js"></script></body></html>"""
_DOCS_INIT = "window.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#ui'});"


def register_docs(app: web.Application, apis: Sequence[Api]) -> None:
    """``GET /openapi.json`` and the Swagger UI page at ``GET /docs``."""
    document = build_openapi(apis)

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    async def docs(request: web.Request) -> web.Response:
        return web.Response(text=_DOCS_PAGE, content_type="text/html")

    async def init(request: web.Request) -> web.Response:
        return web.Response(text=_DOCS_INIT, content_type="application/javascript")

    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/docs", docs)
    app.router.add_get("/docs/static/init.js", init)
    app.router.add_static("/docs/static", str(swagger_ui_path))
