"""What /openapi.json says, and the routing it describes.

The document of the built-in plugins is built without a gateway: it comes
from the declared routes alone. Routing is driven on a real port through
:func:`hubbub.http.app.create_http_app` with a small API declared here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel

from hubbub.config import load_settings
from hubbub.http.app import create_http_app
from hubbub.http.health import Readiness, health_api
from hubbub.http.openapi import build_openapi
from hubbub.http.routing import Api
from hubbub.plugin import load_plugins

TENANT_PARAMETER = {"$ref": "#/components/parameters/TenantId"}

things = Api("things", "Test only: a literal path beside a parameterised one.")


class ThingPath(BaseModel):
    thing_id: UUID


class Found(BaseModel):
    names: list[str]


@things.get("/api/v1/things/search", response=Found)
async def search_things(request: web.Request) -> Found:
    """Search things."""
    return Found(names=[])


@things.patch("/api/v1/things/{thing_id}", params=ThingPath)
async def change_thing(request: web.Request, *, path: ThingPath) -> None:
    """Change a thing."""


def product_apis() -> list[Api]:
    return [api for plugin in load_plugins([]) for api in plugin.apis]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_openapi([health_api, *product_apis()])


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    app = create_http_app(load_settings(), [things], Readiness())
    async with TestClient(TestServer(app)) as client:
        yield client


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


async def test_a_literal_path_wins_over_its_parameterised_sibling_for_every_method(
    client: TestClient,
) -> None:
    response = await client.patch("/api/v1/things/search")
    assert response.status == 405
    assert response.headers["Allow"] == "GET"
    assert (await response.json())["code"] == "method_not_allowed"
    found = await client.get("/api/v1/things/search")
    assert found.status == 200
    changed = await client.patch("/api/v1/things/0b9c6a3e-4f0e-5d2c-9a51-6c1f2b7d8e40")
    assert changed.status == 204


@pytest.mark.parametrize("literal", ["search", "public", "unread"])
@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_conversation_listings_are_not_taken_for_a_conversation_id(
    literal: str, method: str
) -> None:
    # The 405 is the router's answer: no handler, storage or Ray is reached.
    app = create_http_app(load_settings(), product_apis(), Readiness())
    async with TestClient(TestServer(app)) as client:
        response = await client.request(method, f"/api/v1/conversations/{literal}")
        assert response.status == 405
        assert response.headers["Allow"] == "GET"


def test_the_tenant_header_is_one_reusable_parameter(document: dict[str, Any]) -> None:
    assert document["components"]["parameters"]["TenantId"] == {
        "name": "X-Tenant-Id",
        "in": "header",
        "required": False,
        "description": "The tenant you act in. Needed with a user's bearer token; an API key "
        "acts in its own tenant (naming another answers 404).",
        "schema": {"type": "string", "format": "uuid"},
    }


@pytest.mark.parametrize(
    "prefix",
    [
        "/api/v1/conversations",
        "/api/v1/jobs",
        "/api/v1/job-schedules",
        "/api/v1/workflows",
        "/api/v1/broadcasts",
        "/api/v1/chat",
    ],
)
def test_every_route_that_reads_the_tenant_header_declares_it_and_its_400(
    document: dict[str, Any], prefix: str
) -> None:
    scoped = [(m, p, op) for m, p, op in operations(document) if p.startswith(prefix)]
    assert scoped
    for method, path, operation in scoped:
        assert TENANT_PARAMETER in operation["parameters"], (method, path)
        assert "`tenant_required`" in operation["responses"]["400"]["description"], (method, path)


def test_routes_in_the_path_tenant_do_not_claim_the_header(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        if path.startswith("/api/v1/tenants/") or path.startswith("/api/v1/auth/"):
            assert TENANT_PARAMETER not in operation["parameters"], (method, path)


def test_a_json_body_documents_its_malformed_oversized_and_mistyped_answers(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= operation["responses"].keys(), (method, path)
            assert "`invalid_json`" in operation["responses"]["400"]["description"]


def test_every_429_and_423_carries_retry_after(document: dict[str, Any]) -> None:
    limited = [
        (method, path, operation["responses"][status])
        for method, path, operation in operations(document)
        for status in ("423", "429")
        if status in operation["responses"]
    ]
    assert limited
    for method, path, answer in limited:
        header = answer["headers"]["Retry-After"]
        assert header == {"$ref": "#/components/headers/RetryAfter"}, (method, path)
    assert document["components"]["headers"]["RetryAfter"]["required"] is True


def test_successes_have_their_own_schemas_and_bodiless_ones_say_so(
    document: dict[str, Any],
) -> None:
    register = document["paths"]["/api/v1/auth/register"]["post"]["responses"]
    schema = register["202"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/SignupRequestView"}
    for method, path, operation in operations(document):
        for status in ("202", "204"):
            answer = operation["responses"].get(status)
            if answer is not None and "content" not in answer:
                assert "no content" in answer["description"], (method, path, status)
        for status, answer in operation["responses"].items():
            if status.startswith("2") and "content" in answer:
                assert "application/problem+json" not in answer["content"], (method, path)


def test_an_event_stream_describes_one_event_whose_data_is_the_model(
    document: dict[str, Any],
) -> None:
    stream = document["paths"]["/api/v1/jobs/{job_id}/stream"]["get"]["responses"]["200"]
    event = stream["content"]["text/event-stream"]["schema"]
    assert event["required"] == ["data"]
    assert event["properties"]["data"]["contentSchema"] == {
        "$ref": "#/components/schemas/JobEventView"
    }
