"""The official JavaScript socket.io-client (pinned in tests/js) against a real
gateway: a join replays what was missed in its ack, a send is acknowledged with
``{id, seq, created_at}``, messages from a Python client arrive exactly once in
seq order, and a refused connection's ``connect_error`` carries ``err.data.code``.

The client is ``tests/js/client.mjs``, driven through stdin and read as JSON
lines from stdout. ``npm ci --prefix tests/js`` installs it. Where Node.js or
the package is missing the tests are skipped and say why, so the README's test
command passes on a machine without Node.js; under CI (``CI`` set) a missing
package fails instead, because ``.ci/run`` installs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.support.chat import new_team
from tests.test_chat_sockets import ChatClient

JS_DIR = Path(__file__).resolve().parent / "js"
NODE = shutil.which("node")

INSTALLED = (JS_DIR / "node_modules" / "socket.io-client").is_dir()
INSTALL = "socket.io-client is not installed: run `npm ci --prefix tests/js`"

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="Node.js is not installed (needs `node`)"),
    pytest.mark.skipif(not INSTALLED and not os.environ.get("CI"), reason=INSTALL),
]


class JsClient:
    """``tests/js/client.mjs`` in a Node process: acks and other lines apart."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, url: str, auth: dict[str, Any]) -> JsClient:
        assert NODE is not None
        if not INSTALLED:
            pytest.fail(INSTALL)
        process = await asyncio.create_subprocess_exec(
            NODE,
            str(JS_DIR / "client.mjs"),
            url,
            json.dumps(auth),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = json.loads(raw)
            await (self.acks if line["type"] == "ack" else self.lines).put(line)

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.lines.get(), 10)

    async def call(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        """Emit ``event`` and return its ack (the envelope of docs/events.md)."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"emit": event, "data": data}).encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.acks.get(), 15)
        assert line["event"] == event and "ack" in line, line
        return line["ack"]

    async def messages(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` ``message:new`` payloads (other lines must not come between)."""
        got = []
        for _ in range(count):
            line = await self.next()
            assert (line["type"], line.get("event")) == ("event", "message:new"), line
            got.append(line["data"])
        return got

    async def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        code = await asyncio.wait_for(self.process.wait(), 10)
        await self._reader
        return code


@pytest.fixture
async def js() -> AsyncIterator[list[JsClient]]:
    """Started clients, closed (and their exit code checked) after the test."""
    clients: list[JsClient] = []
    yield clients
    for client in clients:
        if client.process.returncode is None:
            assert await client.close() == 0


def _url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def test_the_js_client_joins_sends_and_receives_exactly_once_in_order(
    gateway: TestServer, js: list[JsClient]
) -> None:
    team = await new_team(gateway, 2)
    owner, ann = team.people
    found = await team.conversation(owner, "group", ann)
    missed = [await team.send(owner, found["id"], f"missed {i}") for i in range(2)]  # seqs 2, 3
    client = await JsClient.start(_url(gateway), {"token": ann.token, "tenant_id": team.tenant_id})
    js.append(client)
    assert await client.next() == {"type": "connect"}

    joined = await client.call(
        "conversation:join", {"conversation_id": found["id"], "since_seq": 1}
    )
    assert joined["ok"] is True and joined["data"]["last_seq"] == 3, joined
    replay = joined["data"]["events"]
    assert [(e["seq"], e["event"]) for e in replay] == [(2, "message:new"), (3, "message:new")]
    assert [(e["data"]["message"]["id"], e["data"]["message"]["body"]) for e in replay] == [
        (m["id"], m["body"]) for m in missed
    ]

    payload = {"conversation_id": found["id"], "body": "from node", "client_msg_id": "js-1"}
    sent = await client.call("message:send", payload)
    assert sent["ok"] is True and set(sent["data"]) == {"id", "seq", "created_at"}, sent
    assert sent["data"]["seq"] == 4
    assert await client.call("message:send", payload) == sent  # a retry: the same ack
    (own,) = await client.messages(1)
    assert own["seq"] == own["message"]["seq"] == 4
    assert (own["message"]["id"], own["message"]["author_id"]) == (sent["data"]["id"], ann.user_id)

    python = await ChatClient().connect(_url(gateway), owner.token, team.tenant_id)
    try:
        for i in range(3):
            body = {"conversation_id": found["id"], "body": f"py {i}", "client_msg_id": f"py-{i}"}
            assert (await python.call("message:send", body))["data"]["seq"] == 5 + i
        got = await client.messages(3)
        assert [(m["seq"], m["message"]["body"]) for m in got] == [
            (5, "py 0"),
            (6, "py 1"),
            (7, "py 2"),
        ]
        # Exactly once: the next one to arrive is the next message, no repeat between.
        last = {"conversation_id": found["id"], "body": "last", "client_msg_id": "py-last"}
        await python.call("message:send", last)
        assert [m["seq"] for m in await client.messages(1)] == [8]
    finally:
        await python.client.disconnect()
    assert await client.close() == 0
    assert await client.next() == {"type": "disconnect", "reason": "io client disconnect"}
    assert client.lines.empty()


@pytest.mark.parametrize(
    ("auth", "code"),
    [({}, "unauthenticated"), ({"token": "not-a-token"}, "invalid_token")],
)
async def test_a_refused_js_connection_gets_connect_error_with_a_code(
    gateway: TestServer, js: list[JsClient], auth: dict[str, Any], code: str
) -> None:
    client = await JsClient.start(_url(gateway), auth)
    js.append(client)
    refused = await client.next()
    assert refused["type"] == "connect_error", refused
    assert refused["data"]["code"] == code and refused["data"]["message"], refused
    assert refused["message"]  # the JS Error's human-readable message
