"""The HTTP edge against hostile or careless clients, without Ray or storage:
secret path parameters never reach a log, client faults are not server
errors, every response carries the security headers, and connections that
send nothing (or trickle their headers) are closed.

Each test drives :func:`hubbub.http.app.create_http_app` on a real port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel

from hubbub.config import Settings, load_settings
from hubbub.http.app import create_http_app
from hubbub.http.health import Readiness
from hubbub.http.routing import Api
from hubbub.http.secret_paths import SecretPaths

TOKEN = "s3cr3t-link-token-0123456789"
LINK = "/api/v1/links/{token}/open"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

api = Api("links", "Test only: a link whose path carries a secret.")
FINISHED = web.AppKey("finished", asyncio.Event)


class LinkPath(BaseModel):
    token: str


@api.get(LINK, params=LinkPath, secret_params=("token",))
async def open_link(request: web.Request, *, path: LinkPath) -> None:
    """A link that fails the way a bug fails when its token says so."""
    if path.token.startswith("crash"):
        raise RuntimeError("the link broke")


@api.get("/api/v1/endless")
async def endless(request: web.Request) -> web.StreamResponse:
    """Stream chunks until the client goes away."""
    response = web.StreamResponse()
    await response.prepare(request)
    try:
        while True:
            await response.write(b"x" * 1024)
            await asyncio.sleep(0.01)
    finally:
        request.app[FINISHED].set()


def edge_settings(**changes: object) -> Settings:
    return load_settings(**changes)


def edge_app(settings: Settings) -> web.Application:
    app = create_http_app(settings, [api], Readiness())
    app[FINISHED] = asyncio.Event()
    return app


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(edge_app(edge_settings()))) as client:
        yield client


def _messages(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {r.__dict__} {r.exc_text or ''}" for r in caplog.records)


# --- secret path parameters -------------------------------------------------


def test_a_secret_segment_is_redacted_wherever_a_path_starts_like_its_route() -> None:
    paths = SecretPaths([(LINK, ("token",)), ("/api/v1/other/{id}", ())])
    assert paths.redact(f"/api/v1/links/{TOKEN}/open") == "/api/v1/links/{token}/open"
    assert paths.redact(f"/api/v1/links/{TOKEN}") == "/api/v1/links/{token}"
    assert paths.redact(f"/api/v1/links/{TOKEN}/x/y") == "/api/v1/links/{token}/x/y"
    assert paths.redact("/api/v1/other/7") == "/api/v1/other/7"
    assert paths.redact(f"/api/v2/links/{TOKEN}") == f"/api/v2/links/{TOKEN}"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("tail", ["/open", "/open/", "/opens", "", "/open/more"])
async def test_no_method_or_status_logs_a_secret_path_parameter(
    client: TestClient, caplog: pytest.LogCaptureFixture, method: str, tail: str
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = await client.request(method, f"/api/v1/links/{TOKEN}{tail}")
        await response.read()
    access = [r for r in caplog.records if r.name == "hubbub.access"]
    assert len(access) == 1, _messages(caplog)
    assert access[0].__dict__["path"].startswith("/api/v1/links/{token}")
    assert TOKEN not in _messages(caplog)


async def test_an_error_log_of_a_secret_link_shows_its_route(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = await client.get(f"/api/v1/links/crash-{TOKEN}/open")
    assert response.status == 500
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["unhandled error in GET /api/v1/links/{token}/open"]
    assert TOKEN not in _messages(caplog)


# --- client faults ------------------------------------------------------------


async def test_a_malformed_request_is_logged_at_info_without_a_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    server = client.server
    with caplog.at_level(logging.DEBUG):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nno colon in this header\r\n\r\n")
        answer = await reader.read()
        writer.close()
    assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer
    about_it = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [(r.levelno, r.exc_info) for r in about_it] == [(logging.INFO, None)]
    assert "BadHttpMessage" in about_it[0].getMessage()


async def test_a_client_that_goes_away_mid_answer_is_logged_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Served as `hubbub serve` serves: a handler is not cancelled when its client goes.
    app = edge_app(edge_settings())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with caplog.at_level(logging.INFO):
            async with aiohttp.ClientSession() as http:
                response = await http.get(f"http://127.0.0.1:{port}/api/v1/endless")
                await response.content.readexactly(1024)
                response.close()  # drops the connection mid-stream
            await asyncio.wait_for(app[FINISHED].wait(), 30)
    finally:
        await runner.cleanup()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], _messages(caplog)
    went = [r for r in caplog.records if "client went away" in r.getMessage()]
    assert [(r.levelno, r.exc_info) for r in went] == [(logging.INFO, None)]


# --- security headers ---------------------------------------------------------


async def test_every_answer_says_nosniff_and_names_no_server_version(client: TestClient) -> None:
    answers = [
        await client.get("/health"),
        await client.get("/nowhere"),
        await client.post("/health"),
        await client.get(f"/api/v1/links/crash-{TOKEN}/open"),
        await client.get("/docs"),
        await client.get("/docs/static/swagger-ui.css"),
        await client.get("/openapi.json"),
    ]
    assert [a.status for a in answers] == [200, 404, 405, 500, 200, 200, 200]
    for answer in answers:
        assert answer.headers["X-Content-Type-Options"] == "nosniff", answer.url
        assert answer.headers["Server"] == "hubbub", answer.url


async def test_an_html_page_may_not_be_framed_and_loads_only_from_this_origin(
    client: TestClient,
) -> None:
    page = await client.get("/docs")
    assert page.content_type == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'self'" in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    api_answer = await client.get("/openapi.json")
    assert "X-Frame-Options" not in api_answer.headers


async def test_api_answers_are_not_stored_but_static_files_may_be(client: TestClient) -> None:
    for answer in (await client.get("/health"), await client.get("/nowhere")):
        assert answer.headers["Cache-Control"] == "no-store", answer.url
    static = await client.get("/docs/static/swagger-ui.css")
    assert static.headers.get("Cache-Control") != "no-store"
    assert "Last-Modified" in static.headers


# --- slow clients -------------------------------------------------------------


@pytest.fixture
async def impatient() -> AsyncIterator[TestServer]:
    server = TestServer(edge_app(edge_settings(http_idle_seconds=0.2)))
    await server.start_server()
    yield server
    await server.close()


async def test_a_client_that_trickles_its_headers_is_closed(impatient: TestServer) -> None:
    reader, writer = await asyncio.open_connection(impatient.host, impatient.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    await writer.drain()
    async with asyncio.timeout(30):  # aiohttp's default would hold it for an hour
        assert await reader.read() == b""
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed(impatient: TestServer) -> None:
    reader, writer = await asyncio.open_connection(impatient.host, impatient.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(30):
        answer = await reader.read()  # the answer, then the close
    assert answer.startswith(b"HTTP/1.1 200"), answer
    writer.close()
