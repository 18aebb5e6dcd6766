"""Text from outside never holds NUL or unpaired surrogates, and JSON input
nests at most ``MAX_DEPTH`` levels: whatever the field — a body's string or
key, deep inside a free-form object or not, a query or a path parameter, a
Socket.IO event's payload — it is refused once, at the edge, with 422
``validation_failed`` naming the field, and nothing is written.

First the pure pass over a decoded value, then each kind of input through a
real gateway, real shards and real Postgres.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest
import socketio
from aiohttp.test_utils import TestServer

from hubbub.validation import MAX_DEPTH, loads, unclean
from tests.support.accounts import PASSWORD, unique_email
from tests.support.chat import CONVERSATIONS, Team, new_team
from tests.support.tenants import TENANTS, call, new_account
from tests.support.workflows import run
from tests.test_api_keys import keys_path, pro_tenant
from tests.test_chat_sockets import ChatClient, _url

NUL = "expected text without NUL (U+0000)"
SURROGATE = "expected text without unpaired surrogates (U+D800-U+DFFF)"
TOO_DEEP = f"expected JSON nested at most {MAX_DEPTH} levels deep"
#: What an outsider may send that Postgres, UTF-8 or orjson cannot take.
UNCLEAN = pytest.mark.parametrize("text", ["hi\x00there", "\ud800"], ids=["nul", "surrogate"])


def nested(levels: int) -> dict[str, Any]:
    """``{"a": {"a": ... {}}}``: ``levels`` objects, the outermost included."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def deep_json(levels: int) -> bytes:
    """:func:`nested` as JSON text, for depths the stdlib encoder refuses."""
    return b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)


async def put_json(server: TestServer, path: str, token: str, raw: bytes) -> tuple[int, Any]:
    """``(status, JSON body)`` of a PUT of the JSON text ``raw``."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.put(server.make_url(path), data=raw, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


def refused(status: int, problem: Any) -> list[tuple[str, str]]:
    """The ``(in, field)`` of each error of a 422 ``validation_failed``."""
    assert (status, problem["code"]) == (422, "validation_failed"), problem
    return [(error["in"], error["field"]) for error in problem["errors"]]


# -- pure ----------------------------------------------------------------


def test_clean_text_passes_even_with_a_paired_surrogate_emoji() -> None:
    value = loads(b'{"name": "Ann \\ud83d\\ude00", "tags": ["a", {"b": 1.5}], "n": null}')

    assert value["name"] == "Ann \U0001f600"
    assert unclean(value, "body") == []


def test_each_unclean_text_is_named_by_its_dotted_path() -> None:
    value = {"a": "x\x00", "list": [1, "\udfff"], "deep": {"key": "\x00\ud800"}}

    assert [(e.field, e.message) for e in unclean(value, "body")] == [
        ("a", NUL),
        ("list.1", SURROGATE),
        ("deep.key", NUL),
        ("deep.key", SURROGATE),
    ]


def test_an_unclean_key_is_refused_and_shown_escaped() -> None:
    errors = unclean({"the\x00me": "dark"}, "body")

    assert [(e.field, e.message) for e in errors] == [("the\\u0000me", NUL)]


def test_json_nests_at_most_max_depth_levels() -> None:
    assert unclean(nested(MAX_DEPTH), "body") == []
    errors = unclean(nested(MAX_DEPTH + 1), "body")
    assert [(e.field, e.message) for e in errors] == [(".".join(["a"] * MAX_DEPTH), TOO_DEEP)]
    assert len(unclean([nested(1000)], "body")) == 1  # one error, not one per level


def test_a_lone_surrogate_escape_decodes_for_its_field_to_be_named() -> None:
    assert loads(b'{"body": "\\ud800"}') == {"body": "\ud800"}
    with pytest.raises(ValueError, match="expected a JSON value"):
        loads(b'{"body": NaN}')  # anything else orjson refuses stays refused
    with pytest.raises(ValueError, match="depth limit"):
        loads(b"[" * 2000 + b"]" * 2000)


# -- identity: no credentials needed to be refused --------------------------


@UNCLEAN
async def test_a_register_name_with_unclean_text_makes_no_account(
    gateway: TestServer, owner_conn: asyncpg.Connection, text: str
) -> None:
    email = unique_email()
    body = {"email": email, "password": PASSWORD, "name": text}

    status, problem = await call(gateway, "POST", "/api/v1/auth/register", json=body)

    assert refused(status, problem) == [("body", "name")]
    assert await owner_conn.fetchval("SELECT count(*) FROM users WHERE email = $1", email) == 0


async def test_a_login_email_with_nul_is_422_not_500(gateway: TestServer) -> None:
    body = {"email": "ann\x00@example.com", "password": PASSWORD}

    status, problem = await call(gateway, "POST", "/api/v1/auth/login", json=body)

    assert refused(status, problem) == [("body", "email")]
    assert problem["errors"][0]["message"] == NUL


async def test_a_path_parameter_with_nul_is_refused(gateway: TestServer) -> None:
    status, problem = await call(gateway, "GET", "/api/v1/auth/signup/async/ab%00cd/stream")

    assert refused(status, problem) == [("path", "stream_token")]


async def test_a_socket_handshake_with_nul_in_its_auth_is_refused(gateway: TestServer) -> None:
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    client.on("connect_error", errors.append)

    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(_url(gateway), transports=["websocket"], auth={"token": "ab\x00c"})

    assert errors and errors[0]["data"]["code"] == "validation_failed", errors
    assert [(e["in"], e["field"]) for e in errors[0]["data"]["errors"]] == [("auth", "token")]


async def raw_post(server: TestServer, path: str, body: dict, header: bytes) -> tuple[int, Any]:
    """``(status, JSON body)`` of a POST carrying the raw header line ``header``,
    which aiohttp's client would not send as it is."""
    data = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = f"POST {path} HTTP/1.1\r\nHost: hubbub\r\nContent-Type: application/json\r\n"
    length = f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    writer.write(head.encode() + header + b"\r\n" + length.encode() + data)
    response = await reader.read()
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


async def test_a_header_that_is_not_utf8_is_refused_naming_it(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    account = await new_account(gateway)
    login = {"email": account.email, "password": PASSWORD}
    sessions = "SELECT count(*) FROM sessions WHERE user_id = $1"
    before = await owner_conn.fetchval(sessions, uuid.UUID(account.user_id))

    # \xed\xa0\x80 would be U+D800 in UTF-8: it decodes to lone surrogates.
    status, problem = await raw_post(
        gateway, "/api/v1/auth/login", login, b"User-Agent: phone \xed\xa0\x80"
    )

    assert refused(status, problem) == [("header", "User-Agent")]
    assert await owner_conn.fetchval(sessions, uuid.UUID(account.user_id)) == before


# -- chat -------------------------------------------------------------------


async def _messages(conn: asyncpg.Connection, conversation_id: str) -> int:
    query = "SELECT count(*) FROM conversation_messages WHERE conversation_id = $1"
    return await conn.fetchval(query, uuid.UUID(conversation_id))


@UNCLEAN
async def test_a_message_body_with_unclean_text_is_not_sent_over_http(
    gateway: TestServer, owner_conn: asyncpg.Connection, text: str
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    found = await team.conversation(owner, "group")
    before = await _messages(owner_conn, found["id"])
    message = {"body": text, "client_msg_id": uuid.uuid4().hex}

    status, problem = await team.call(
        "POST", f"{CONVERSATIONS}/{found['id']}/messages", owner, message
    )

    assert refused(status, problem) == [("body", "body")]
    assert await _messages(owner_conn, found["id"]) == before


async def raw_call(server: TestServer, auth: dict, event: str, payload: bytes) -> Any:
    """The ack of one Socket.IO event whose payload is the JSON text ``payload``,
    sent over a bare websocket: python-socketio's client would encode it with
    the gateway's own codec, which cannot write a lone surrogate."""
    url = server.make_url("/socket.io/").with_query(EIO="4", transport="websocket")
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        assert (await ws.receive_str()).startswith("0")  # Engine.IO open
        await ws.send_str("40" + json.dumps(auth))
        assert (await ws.receive_str()).startswith("40")  # Socket.IO connected
        await ws.send_str(f'421["{event}",{payload.decode()}]')
        while not (answer := await ws.receive_str()).startswith("431"):
            assert answer in ("2", "3"), answer  # only pings may come between
        return json.loads(answer[3:])[0]


@UNCLEAN
async def test_a_message_body_with_unclean_text_is_not_sent_over_a_socket(
    gateway: TestServer, owner_conn: asyncpg.Connection, text: str
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    found = await team.conversation(owner, "group")
    before = await _messages(owner_conn, found["id"])
    auth = {"token": owner.token, "tenant_id": team.tenant_id}
    payload = {"conversation_id": found["id"], "body": text, "client_msg_id": "s-1"}

    ack = await raw_call(gateway, auth, "message:send", json.dumps(payload).encode())

    assert ack["error"]["code"] == "validation_failed"
    assert [(e["in"], e["field"]) for e in ack["error"]["errors"]] == [("body", "body")]
    assert await _messages(owner_conn, found["id"]) == before


async def test_a_socket_payload_nested_too_deep_is_refused_and_the_socket_stays_usable(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    found = await team.conversation(owner, "group")
    before = await _messages(owner_conn, found["id"])
    sender = await ChatClient().connect(_url(gateway), owner.token, team.tenant_id)
    try:
        payload = {"conversation_id": found["id"], "body": "hi", "client_msg_id": "s-1"}
        deep = await sender.call("message:send", payload | {"meta": nested(100)})
        sent = await sender.call("message:send", payload)
    finally:
        await sender.client.disconnect()

    assert deep["error"]["code"] == "validation_failed"
    assert deep["error"]["errors"][0]["field"] == ".".join(["meta", *["a"] * (MAX_DEPTH - 1)])
    assert deep["error"]["errors"][0]["message"] == TOO_DEEP
    assert sent["data"]["seq"] > 0
    assert await _messages(owner_conn, found["id"]) == before + 1


async def test_a_conversation_title_with_nul_creates_no_conversation(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 1)
    body = {"kind": "group", "member_ids": [], "title": "Launch\x00"}

    status, problem = await team.call("POST", CONVERSATIONS, team.people[0], body)

    assert refused(status, problem) == [("body", "title")]
    query = "SELECT count(*) FROM conversations WHERE tenant_id = $1"
    assert await owner_conn.fetchval(query, uuid.UUID(team.tenant_id)) == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [(f"{CONVERSATIONS}/search?q=zebra%00", "q"), (f"{CONVERSATIONS}?label=vip%00", "label")],
    ids=["search-q", "label"],
)
async def test_a_query_parameter_with_nul_is_refused(
    gateway: TestServer, query: str, field: str
) -> None:
    team = await new_team(gateway, 1)

    status, problem = await team.call("GET", query, team.people[0])

    assert refused(status, problem) == [("query", field)]


async def test_a_broadcast_body_with_nul_creates_no_broadcast(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 2)

    status, problem = await team.call(
        "POST", "/api/v1/broadcasts", team.people[0], {"body": "\x00"}
    )

    assert refused(status, problem) == [("body", "body")]
    query = "SELECT count(*) FROM broadcasts WHERE tenant_id = $1"
    assert await owner_conn.fetchval(query, uuid.UUID(team.tenant_id)) == 0


# -- tenancy and workflows ---------------------------------------------------


async def test_a_tenant_name_with_nul_leaves_the_tenant_unchanged(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner, one = team.people[0], f"{TENANTS}/{team.tenant_id}"
    _, before = await call(gateway, "GET", one, owner.token)

    status, problem = await call(gateway, "PATCH", one, owner.token, {"name": "Acme\x00"})

    assert refused(status, problem) == [("body", "name")]
    assert (await call(gateway, "GET", one, owner.token))[1]["name"] == before["name"]


@pytest.mark.parametrize(
    ("sent", "field"),
    [
        ({"theme": {"colors": ["#123456", "#12\x00"]}}, "theme.colors.1"),
        ({"theme": {"font\x00": "serif"}}, "theme.font\\u0000"),
        ({"theme": {"font": "\udc00"}}, "theme.font"),
    ],
    ids=["nul-value", "nul-key", "surrogate"],
)
async def test_tenant_settings_with_unclean_text_are_not_stored(
    gateway: TestServer, sent: dict, field: str
) -> None:
    team = await new_team(gateway, 1)
    owner, path = team.people[0], f"{TENANTS}/{team.tenant_id}/settings"
    kept = {"theme": {"color": "#123456"}}
    assert await call(gateway, "PUT", path, owner.token, kept) == (200, kept)

    status, problem = await put_json(gateway, path, owner.token, json.dumps(sent).encode())

    assert refused(status, problem) == [("body", field)]
    assert await call(gateway, "GET", path, owner.token) == (200, kept)


async def test_settings_1000_deep_are_not_stored(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner, path = team.people[0], f"{TENANTS}/{team.tenant_id}/settings"

    status, problem = await put_json(gateway, path, owner.token, deep_json(1000))

    assert refused(status, problem) == [("body", ".".join(["a"] * MAX_DEPTH))]
    assert await call(gateway, "GET", path, owner.token) == (200, {})


async def test_settings_as_deep_as_allowed_are_stored_and_answered(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner, path = team.people[0], f"{TENANTS}/{team.tenant_id}/settings"
    deepest = nested(MAX_DEPTH)

    assert await call(gateway, "PUT", path, owner.token, deepest) == (200, deepest)
    assert await call(gateway, "GET", path, owner.token) == (200, deepest)


async def test_an_api_key_name_with_nul_issues_no_key(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    owner, tenant = await pro_tenant(gateway)
    body = {"name": "ci\x00", "scopes": ["read"], "expires_in_days": 30}

    status, problem = await call(gateway, "POST", keys_path(tenant["id"]), owner.token, body)

    assert refused(status, problem) == [("body", "name")]
    query = "SELECT count(*) FROM api_keys WHERE tenant_id = $1"
    assert await owner_conn.fetchval(query, uuid.UUID(tenant["id"])) == 0


async def test_a_workflow_input_with_nul_starts_no_run(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team: Team = await new_team(gateway, 1)

    status, problem = await run(team, team.people[0], "summarize", {"text": "Ray\x00 shards"})

    assert refused(status, problem) == [("body", "input.text")]
    query = "SELECT count(*) FROM jobs WHERE tenant_id = $1"
    assert await owner_conn.fetchval(query, uuid.UUID(team.tenant_id)) == 0
