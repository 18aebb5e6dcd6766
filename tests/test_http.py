"""The HTTP edge without Ray or storage: validation, problems, request ids,
OpenAPI and docs, CORS and liveness.

Each test drives :func:`hubbub.http.app.create_http_app` on a real port
through a real client, with a small test-only API declared below.
"""

from __future__ import annotations

import enum
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import aiohttp
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, Field

from hubbub import __version__
from hubbub.config import Settings, load_settings
from hubbub.errors import AppError
from hubbub.http.app import create_http_app
from hubbub.http.health import Readiness
from hubbub.http.routing import REQUEST_AUTHENTICATOR, Api
from hubbub.identity.bearer import authenticate_request
from hubbub.plugin import load_plugins

MAX_BODY_BYTES = 2048
ALLOWED_ORIGIN = "https://app.example"
PROBLEM_TYPES = "https://hubbub.dev/problems/"
PARTS_URL = "/api/v1/widgets/{widget_id}/parts"

HANDLED = web.AppKey("handled", list)  # what the handlers saw, in order

api = Api("widgets", "Test only: routes that exercise the HTTP edge.")


class Unit(enum.StrEnum):
    PIECE = "piece"
    BOX = "box"


class OnDuplicate(enum.StrEnum):
    """Only ever a query parameter: no body or response model mentions it."""

    REJECT = "reject"
    REPLACE = "replace"


class WidgetPath(BaseModel):
    widget_id: int = Field(ge=1)


class PartQuery(BaseModel):
    dry_run: bool = False
    on_duplicate: OnDuplicate = OnDuplicate.REJECT


class NewPart(BaseModel):
    name: str = Field(min_length=1, max_length=20)
    quantity: int = Field(ge=1, le=1000)
    unit: Unit = Unit.PIECE
    tags: list[Annotated[str, Field(max_length=8)]] = []


class Part(BaseModel):
    widget_id: int
    name: str
    quantity: int
    unit: Unit
    tags: list[str]
    dry_run: bool


@api.post(PARTS_URL, params=WidgetPath, query=PartQuery, body=NewPart, response=Part, status=201)
async def add_part(
    request: web.Request, *, path: WidgetPath, query: PartQuery, body: NewPart
) -> Part:
    """Add a part to a widget."""
    request.app[HANDLED].append(("add_part", path, query, body))
    return Part(widget_id=path.widget_id, dry_run=query.dry_run, **body.model_dump())


@api.post("/api/v1/widgets/{widget_id}/lock", params=WidgetPath, responses={409: "Locked"})
async def lock_widget(request: web.Request, *, path: WidgetPath) -> None:
    """Lock a widget; it always is locked already."""
    raise AppError(
        "widget_locked",
        f"widget {path.widget_id} is locked by another editor",
        status=409,
        retriable=True,
        extra={"retry_after": 5},
    )


SECRET = "hunter2"


@api.get("/api/v1/crash")
async def crash(request: web.Request) -> None:
    """Fail the way a bug fails."""
    raise RuntimeError(f"password {SECRET} rejected by /srv/hubbub/secret_store.py")


async def readiness_check_that_fails() -> dict[str, Any]:
    raise ConnectionError("postgres is down")


@pytest.fixture
def http_settings() -> Settings:
    """No storage, Ray or plugins: nothing here needs them."""
    return load_settings(max_body_bytes=MAX_BODY_BYTES, cors_origins=(ALLOWED_ORIGIN,))


@pytest.fixture
async def client(http_settings: Settings) -> AsyncIterator[TestClient]:
    readiness = Readiness()
    readiness.add("postgres", readiness_check_that_fails)
    app = create_http_app(http_settings, [api], readiness)
    app[HANDLED] = []
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
def handled(client: TestClient) -> list:
    return client.app[HANDLED]


async def problem_of(response: ClientResponse) -> dict[str, Any]:
    assert response.content_type == "application/problem+json"
    return json.loads(await response.text())


def parts_url(widget_id: object) -> str:
    return PARTS_URL.format(widget_id=widget_id)


# Validation


async def test_valid_inputs_reach_the_handler_as_typed_models(
    client: TestClient, handled: list
) -> None:
    response = await client.post(
        parts_url(7),
        params={"on_duplicate": "replace", "dry_run": "true"},
        json={"name": "bolt", "quantity": 3, "unit": "box"},
    )

    assert response.status == 201
    assert await response.json() == {
        "widget_id": 7,
        "name": "bolt",
        "quantity": 3,
        "unit": "box",
        "tags": [],
        "dry_run": True,
    }
    assert handled == [
        (
            "add_part",
            WidgetPath(widget_id=7),
            PartQuery(dry_run=True, on_duplicate=OnDuplicate.REPLACE),
            NewPart(name="bolt", quantity=3, unit=Unit.BOX),
        )
    ]


async def test_every_bad_field_of_path_query_and_body_is_named_in_one_422(
    client: TestClient, handled: list
) -> None:
    response = await client.post(
        parts_url(0),
        params={"on_duplicate": "explode"},
        json={"name": "", "quantity": 0, "tags": ["ok", "far-too-long"]},
    )

    assert response.status == 422
    problem = await problem_of(response)
    assert problem["code"] == "validation_failed"
    assert problem["type"] == PROBLEM_TYPES + "validation_failed"
    assert [(error["in"], error["field"]) for error in problem["errors"]] == [
        ("path", "widget_id"),
        ("query", "on_duplicate"),
        ("body", "name"),
        ("body", "quantity"),
        ("body", "tags.1"),
    ]
    assert all(error["message"] for error in problem["errors"])
    assert problem["detail"] == (
        "invalid input: path.widget_id, query.on_duplicate, body.name, body.quantity, body.tags.1"
    )
    assert handled == []


async def test_a_missing_body_is_a_422_naming_the_body(client: TestClient, handled: list) -> None:
    response = await client.post(parts_url(7))

    assert response.status == 422
    problem = await problem_of(response)
    assert problem["code"] == "validation_failed"
    assert problem["errors"] == [{"in": "body", "field": "", "message": "a JSON body is required"}]
    assert handled == []


async def test_a_body_that_is_not_json_is_a_400_invalid_json(
    client: TestClient, handled: list
) -> None:
    response = await client.post(
        parts_url(7), data=b'{"name": "bolt",', headers={"Content-Type": "application/json"}
    )

    assert response.status == 400
    problem = await problem_of(response)
    assert problem["code"] == "invalid_json"
    assert problem["detail"].startswith("the body is not valid JSON")
    assert handled == []


async def test_a_body_of_another_media_type_is_a_415(client: TestClient, handled: list) -> None:
    response = await client.post(
        parts_url(7), data="name=bolt&quantity=3", headers={"Content-Type": "text/plain"}
    )

    assert response.status == 415
    problem = await problem_of(response)
    assert problem["code"] == "unsupported_media_type"
    assert problem["detail"] == "expected Content-Type application/json, got 'text/plain'"
    assert handled == []


# Routing failures


async def test_an_unknown_path_is_a_404_problem(client: TestClient) -> None:
    response = await client.get("/api/v1/nothing-here")

    assert response.status == 404
    problem = await problem_of(response)
    assert problem["code"] == "not_found"
    assert problem["type"] == "https://hubbub.dev/problems/not_found"
    assert problem["title"] == "Not Found"
    assert problem["status"] == 404


async def test_a_wrong_method_is_a_405_problem_that_names_the_allowed_ones(
    client: TestClient, handled: list
) -> None:
    response = await client.delete(parts_url(7))

    assert response.status == 405
    assert set(response.headers["Allow"].split(",")) == {"POST", "OPTIONS"}
    problem = await problem_of(response)
    assert problem["code"] == "method_not_allowed"
    assert problem["type"] == "https://hubbub.dev/problems/method_not_allowed"
    assert handled == []


# The body limit


async def test_a_body_over_the_limit_is_a_413_and_never_reaches_the_handler(
    client: TestClient, handled: list
) -> None:
    body = json.dumps({"name": "x" * MAX_BODY_BYTES, "quantity": 1})

    response = await client.post(
        parts_url(7), data=body, headers={"Content-Type": "application/json"}
    )

    assert response.status == 413
    problem = await problem_of(response)
    assert problem["code"] == "payload_too_large"
    assert problem["detail"] == "the request body is too large"
    assert handled == []


async def test_a_chunked_body_over_the_limit_is_a_413_too(
    client: TestClient, handled: list
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(4):
            yield b"x" * (MAX_BODY_BYTES // 2)
        yield b'", "quantity": 1}'

    response = await client.post(
        parts_url(7), data=chunks(), headers={"Content-Type": "application/json"}
    )

    assert response.status == 413
    assert (await problem_of(response))["code"] == "payload_too_large"
    assert handled == []


async def test_a_body_of_exactly_the_limit_is_accepted(client: TestClient, handled: list) -> None:
    template = '{"name": "bolt", "quantity": 1, "tags": []}'
    body = template.replace("[]", "[]" + " " * (MAX_BODY_BYTES - len(template)))
    assert len(body) == MAX_BODY_BYTES

    response = await client.post(
        parts_url(7), data=body, headers={"Content-Type": "application/json"}
    )

    assert response.status == 201
    assert len(handled) == 1


# Failures of handlers


async def test_an_unexpected_exception_is_a_500_that_reveals_nothing_and_is_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="hubbub.http")

    response = await client.get("/api/v1/crash")

    assert response.status == 500
    text = await response.text()
    problem = json.loads(text)
    assert response.content_type == "application/problem+json"
    assert problem["code"] == "internal_error"
    assert problem["detail"] == "an unexpected error occurred"
    for leak in ("Traceback", "RuntimeError", SECRET, "/srv/", ".py", __file__):
        assert leak not in text
    [record] = [r for r in caplog.records if r.name == "hubbub.http"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "unhandled error in GET /api/v1/crash"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert SECRET in str(record.exc_info[1])


async def test_an_app_error_becomes_a_problem_with_its_status_and_code(
    client: TestClient,
) -> None:
    response = await client.post("/api/v1/widgets/7/lock")

    assert response.status == 409
    assert response.headers["Retry-After"] == "5"
    problem = await problem_of(response)
    assert {k: v for k, v in problem.items() if k != "request_id"} == {
        "type": "https://hubbub.dev/problems/widget_locked",
        "title": "Conflict",
        "status": 409,
        "detail": "widget 7 is locked by another editor",
        "code": "widget_locked",
        "retriable": True,
        "retry_after": 5,
    }


# Request ids


async def test_a_given_request_id_is_echoed_back(client: TestClient) -> None:
    response = await client.get("/health", headers={"X-Request-Id": "trace-42.a:b"})

    assert response.status == 200
    assert response.headers["X-Request-Id"] == "trace-42.a:b"


async def test_a_request_without_an_id_gets_a_fresh_one(client: TestClient) -> None:
    first = await client.get("/health")
    second = await client.get("/health")

    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["X-Request-Id"])
    assert re.fullmatch(r"[0-9a-f]{32}", second.headers["X-Request-Id"])
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


@pytest.mark.parametrize("unsafe", ["has spaces", "x" * 129, "quote\"'", "<script>"])
async def test_an_unsafe_request_id_is_replaced_by_a_fresh_one(
    client: TestClient, unsafe: str
) -> None:
    response = await client.get("/health", headers={"X-Request-Id": unsafe})

    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])


async def test_a_problem_carries_the_request_id_of_its_response(client: TestClient) -> None:
    given = await client.get("/api/v1/crash", headers={"X-Request-Id": "req-500"})
    generated = await client.get("/api/v1/nothing-here")

    assert (await problem_of(given))["request_id"] == "req-500"
    assert given.headers["X-Request-Id"] == "req-500"
    assert (await problem_of(generated))["request_id"] == generated.headers["X-Request-Id"]


# OpenAPI and the docs page


def refs_in(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs_in(item)


async def test_openapi_describes_each_route_with_its_schemas_and_problems(
    client: TestClient,
) -> None:
    response = await client.get("/openapi.json")

    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    assert document["info"] == {"title": "hubbub", "version": __version__}
    operation = document["paths"][PARTS_URL]["post"]
    assert operation["operationId"] == "add_part"
    assert operation["summary"] == "Add a part to a widget."
    assert operation["tags"] == ["widgets"]
    assert [(p["name"], p["in"], p["required"]) for p in operation["parameters"]] == [
        ("widget_id", "path", True),
        ("dry_run", "query", False),
        ("on_duplicate", "query", False),
    ]
    assert operation["parameters"][0]["schema"] == {"type": "integer", "minimum": 1}
    assert operation["requestBody"] == {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewPart"}}},
    }
    responses = operation["responses"]
    # A JSON body can also be malformed (400), too large (413) or of another type (415).
    assert sorted(responses) == ["201", "400", "413", "415", "422", "500"]
    assert responses["201"]["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/Part"}}
    }
    for status in ("422", "500"):
        assert responses[status]["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    schemas = document["components"]["schemas"]
    assert schemas["NewPart"]["required"] == ["name", "quantity"]
    assert set(schemas["NewPart"]["properties"]) == {"name", "quantity", "unit", "tags"}
    assert set(schemas["Part"]["properties"]) == set(Part.model_fields)
    assert {"type", "title", "status", "detail", "code"} <= set(schemas["Problem"]["required"])


async def test_openapi_lists_declared_problem_responses_and_empty_successes(
    client: TestClient,
) -> None:
    document = await (await client.get("/openapi.json")).json()

    responses = document["paths"]["/api/v1/widgets/{widget_id}/lock"]["post"]["responses"]
    assert sorted(responses) == ["204", "409", "422", "500"]
    assert responses["409"]["description"] == "Locked"
    assert "content" not in responses["204"]
    assert set(document["paths"]) >= {"/", "/health", "/health/ready", "/api/v1/crash"}


async def test_every_ref_in_the_openapi_document_resolves(client: TestClient) -> None:
    document = await (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]

    refs = set(refs_in(document))

    assert "#/components/schemas/OnDuplicate" in refs  # a query-only enum, by reference
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in schemas, f"dangling {ref}"
    assert schemas["OnDuplicate"]["enum"] == ["reject", "replace"]
    assert schemas["Unit"]["enum"] == ["piece", "box"]


async def test_the_docs_page_loads_every_asset_from_this_server(client: TestClient) -> None:
    page = await client.get("/docs")

    assert page.status == 200
    assert page.content_type == "text/html"
    assets = re.findall(r'(?:src|href)="([^"]+)"', await page.text())
    assert sorted(assets) == [
        "/docs/static/init.js",
        "/docs/static/swagger-ui-bundle.js",
        "/docs/static/swagger-ui.css",
    ]
    for asset in assets:
        response = await client.get(asset)
        assert response.status == 200, asset
        assert len(await response.read()) > 0
    init = await (await client.get("/docs/static/init.js")).text()
    assert "url: '/openapi.json'" in init


# CORS


async def test_a_preflight_from_an_allowed_origin_is_allowed(client: TestClient) -> None:
    response = await client.options(
        parts_url(7),
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type",
        },
    )

    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert response.headers["Access-Control-Allow-Methods"] == "POST"


async def test_a_preflight_from_another_origin_is_refused(client: TestClient) -> None:
    response = await client.options(
        parts_url(7),
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )

    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    problem = await problem_of(response)
    assert (problem["status"], problem["code"]) == (403, "forbidden")


async def test_a_cross_origin_response_exposes_the_request_id(client: TestClient) -> None:
    response = await client.get("/health", headers={"Origin": ALLOWED_ORIGIN})

    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert response.headers["Access-Control-Expose-Headers"] == "X-Request-Id"


async def test_without_cors_origins_no_cross_origin_headers_are_sent() -> None:
    settings = load_settings(cors_origins=())
    app = create_http_app(settings, [api], Readiness())
    app[HANDLED] = []
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/health", headers={"Origin": ALLOWED_ORIGIN})

    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers


# About and liveness


async def test_the_root_names_the_server_and_its_version(client: TestClient) -> None:
    response = await client.get("/")

    assert response.status == 200
    assert await response.json() == {"name": "hubbub", "version": __version__}


async def test_liveness_is_200_even_when_readiness_checks_fail(client: TestClient) -> None:
    liveness = await client.get("/health")
    readiness = await client.get("/health/ready")

    assert liveness.status == 200
    assert await liveness.json() == {"status": "ok"}
    assert readiness.status == 503
    problem = await problem_of(readiness)
    assert problem["code"] == "not_ready"
    assert problem["checks"] == {"postgres": {"ok": False, "error": "postgres is down"}}


async def test_every_route_that_declares_a_scheme_refuses_a_request_without_credentials_first(
    http_settings: Settings,
) -> None:
    """The routing layer, not each handler, enforces a declared scheme: no
    credentials is 401 before the input is parsed (no body here, which would
    be 422) and before the handler runs (which would need storage)."""
    apis = [api for plugin in load_plugins([]) for api in plugin.apis]
    app = create_http_app(http_settings, apis, Readiness())
    app[REQUEST_AUTHENTICATOR] = authenticate_request
    secured = [route for api in apis for route in api.routes if route.security]
    assert len(secured) > 50
    async with TestClient(TestServer(app)) as client:
        for route in secured:
            path = re.sub(r"\{\w+\}", "0190a1b2-0000-7000-8000-000000000001", route.path)
            response = await client.request(route.method, path)
            problem = await problem_of(response)
            assert (response.status, problem["code"]) == (401, "unauthenticated"), route.path


async def test_the_whole_gateways_openapi_document_resolves_and_names_operations_once(
    gateway: TestServer,
) -> None:
    async with aiohttp.ClientSession() as http:
        document = await (await http.get(gateway.make_url("/openapi.json"))).json()
    for ref in set(refs_in(document)):
        kind, _, name = ref.removeprefix("#/components/").partition("/")
        assert name in document["components"][kind], f"dangling {ref}"
    ids = [op["operationId"] for path in document["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
