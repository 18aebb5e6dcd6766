"""``export.conversations`` with a real gateway, job shards, Ray workers and
Postgres: an export submitted through ``POST /jobs`` runs on a worker with
progress by rows and steps, and its signed link downloads exactly the
tenant's conversations and messages, as CSV or JSON Lines, limited to some
conversations or to what happened since a time when asked; deleted
conversations are left out and deleted messages come as tombstones;
another tenant's rows never appear, and only a tenant owner or admin may
export. The link needs no token but a genuine, current signature (403
otherwise) and a file that still exists (404 otherwise); bad input answers
422 naming the field; a cancelled export ends cancelled and leaves no file;
exports are pruned once their links have expired."""

from __future__ import annotations

import csv
import io
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp.test_utils import TestServer

from hubbub.config import Settings
from hubbub.exports.formats import COLUMNS, encode, header
from hubbub.exports.links import link_for
from hubbub.exports.plugin import prune_expired
from hubbub.exports.store_local import LocalStore
from tests.support.chat import CONVERSATIONS, Team, new_team
from tests.support.jobs import JOBS, open_stream, submit, until_final
from tests.support.tenants import call

KIND = "export.conversations"


async def _team_with_chat(gateway: TestServer) -> tuple[Team, list[dict], list[dict]]:
    """A team of two with a group (two messages) and a direct conversation (one)."""
    team = await new_team(gateway, 2)
    owner, member = team.people
    group = await team.conversation(owner, "group", member, title="Launch")
    direct = await team.conversation(member, "direct", owner)
    messages = [
        await team.send(owner, group["id"], 'first, with "quotes"\nand a second line'),
        await team.send(member, group["id"], "second"),
        await team.send(member, direct["id"], "hello, owner"),
    ]
    return team, [group, direct], messages


async def _export(team: Team, input: dict[str, Any]) -> tuple[list[dict], dict]:
    """Every event of a finished export, and its result."""
    owner = team.people[0]
    status, accepted = await submit(team, owner, KIND, input)
    assert status == 202, accepted
    events = await until_final(team.server, team, owner, accepted["id"])
    assert events[-1]["data"]["status"] == "succeeded", events[-1]
    return events, events[-1]["data"]["result"]


async def _download(server: TestServer, url: str) -> tuple[int, Any, bytes]:
    """``(status, headers, body)`` of a link, fetched without any token."""
    async with aiohttp.ClientSession() as http, http.get(server.make_url(url)) as response:
        return response.status, response.headers, await response.read()


def _csv(body: bytes) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(body.decode()))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


def _jsonl(body: bytes) -> list[dict]:
    return [orjson.loads(line) for line in body.decode().splitlines()]


def _ids(records: list[dict], type: str, field: str) -> list[str]:
    return [r[field] for r in records if r["type"] == type]


def _name(result: dict) -> str:
    return result["download_url"].split("?")[0].rsplit("/", 1)[1]


async def test_an_export_runs_with_progress_by_rows_and_downloads_the_tenants_rows_as_csv(
    gateway: TestServer,
) -> None:
    team, conversations, messages = await _team_with_chat(gateway)
    _, other_conversations, other_messages = await _team_with_chat(gateway)
    events, result = await _export(team, {"format": "csv"})

    steps = [e["data"]["name"] for e in events if e["type"] == "step"]
    assert steps == ["counting", "writing", "done"]
    progress = [e["data"] for e in events if e["type"] == "progress"]
    assert progress[-1] == {"progress": 100.0, "done": 5, "total": 5}
    assert [p["progress"] for p in progress] == sorted(p["progress"] for p in progress)
    assert set(result) == {"format", "rows", "bytes", "download_url", "expires_at"}
    assert (result["format"], result["rows"]) == ("csv", 5)
    assert datetime.fromisoformat(result["expires_at"]) > datetime.now(UTC)

    status, headers, body = await _download(gateway, result["download_url"])
    assert status == 200, body
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == f'attachment; filename="conversations-{_name(result)}"'
    assert len(body) == result["bytes"]
    records = _csv(body)
    assert sorted(_ids(records, "conversation", "conversation_id")) == sorted(
        c["id"] for c in conversations
    )
    exported = [
        (r["conversation_id"], r["message_id"], r["seq"], r["author_id"], r["body"])
        for r in records
        if r["type"] == "message"
    ]
    sent = [
        (m["conversation_id"], m["id"], str(m["seq"]), m["author_id"], m["body"]) for m in messages
    ]
    assert sorted(exported) == sorted(sent)
    theirs = {c["id"] for c in other_conversations} | {m["id"] for m in other_messages}
    ours = {r["conversation_id"] for r in records} | {r["message_id"] for r in records}
    assert not theirs & ours
    group = next(r for r in records if r["conversation_id"] == conversations[0]["id"])
    assert (group["kind"], group["title"], group["created_by"]) == (
        "group",
        "Launch",
        team.people[0].user_id,
    )


async def test_a_jsonl_export_can_be_limited_to_some_conversations_and_to_what_is_recent(
    gateway: TestServer,
) -> None:
    team, [group, direct], [first, second, hello] = await _team_with_chat(gateway)

    _, result = await _export(team, {"format": "jsonl", "conversation_ids": [group["id"]]})
    status, headers, body = await _download(gateway, result["download_url"])
    assert (status, headers["Content-Type"]) == (200, "application/jsonl; charset=utf-8")
    records = _jsonl(body)
    assert result["rows"] == len(records) == 3
    assert records[0] == {
        "type": "conversation",
        "conversation_id": group["id"],
        "kind": "group",
        "visibility": group["visibility"],
        "title": "Launch",
        "status": None,
        "created_by": team.people[0].user_id,
        "created_at": records[0]["created_at"],
        "last_activity_at": records[0]["last_activity_at"],
    }
    assert [r["body"] for r in records[1:]] == [first["body"], second["body"]]
    assert [r["seq"] for r in records[1:]] == [first["seq"], second["seq"]]

    _, result = await _export(team, {"format": "jsonl", "since": second["created_at"]})
    records = _jsonl((await _download(gateway, result["download_url"]))[2])
    assert sorted(_ids(records, "message", "message_id")) == sorted([second["id"], hello["id"]])
    assert sorted(_ids(records, "conversation", "conversation_id")) == sorted(
        [group["id"], direct["id"]]
    )


async def test_deleted_conversations_are_left_out_and_deleted_messages_are_tombstones(
    gateway: TestServer,
) -> None:
    team, [group, direct], [_, _, hello] = await _team_with_chat(gateway)
    owner, member = team.people
    gone = await team.conversation(owner, "group", member, title="Gone")
    await team.send(owner, gone["id"], "never exported")
    status, _ = await team.call("DELETE", f"{CONVERSATIONS}/{gone['id']}", owner)
    assert status == 204
    path = f"{CONVERSATIONS}/{direct['id']}/messages/{hello['id']}"
    status, deleted = await team.call("DELETE", path, member)
    assert status == 200, deleted

    _, result = await _export(team, {"format": "jsonl"})
    records = _jsonl((await _download(gateway, result["download_url"]))[2])
    assert sorted(_ids(records, "conversation", "conversation_id")) == sorted(
        [group["id"], direct["id"]]
    )
    assert gone["id"] not in {r["conversation_id"] for r in records}
    tombstone = next(r for r in records if r.get("message_id") == hello["id"])
    assert tombstone["body"] == "" and tombstone["deleted_at"] is not None


async def test_another_tenants_conversations_cannot_be_named_into_an_export(
    gateway: TestServer,
) -> None:
    team, _, _ = await _team_with_chat(gateway)
    _, [theirs, _], _ = await _team_with_chat(gateway)
    _, result = await _export(team, {"format": "jsonl", "conversation_ids": [theirs["id"]]})
    assert (result["rows"], result["bytes"]) == (0, 0)
    assert (await _download(gateway, result["download_url"]))[2] == b""


async def test_a_link_needs_a_genuine_current_signature_and_an_existing_file(
    gateway: TestServer, ray_cluster: Settings
) -> None:
    team, _, _ = await _team_with_chat(gateway)
    _, result = await _export(team, {"format": "csv"})
    name = _name(result)
    url = result["download_url"]
    query = dict(part.split("=", 1) for part in url.split("?")[1].split("&"))
    expired = link_for(ray_cluster, name, datetime.now(UTC) - timedelta(seconds=1))
    later = int(query["expires"]) + 3600
    elsewhere = f"{uuid.uuid4()}.csv"
    cases = [
        (expired.url, 403, "link_expired"),
        (url.replace(f"expires={query['expires']}", f"expires={later}"), 403, "bad_signature"),
        (url.replace(name, elsewhere), 403, "bad_signature"),
        (url.replace(name, name.replace(".csv", ".jsonl")), 403, "bad_signature"),
        (url.split("?")[0], 422, "validation_failed"),
        (link_for(ray_cluster, elsewhere).url, 404, "not_found"),
    ]
    for link, status, code in cases:
        got, headers, body = await _download(gateway, link)
        assert (got, orjson.loads(body)["code"]) == (status, code), (link, body)
        assert headers["Content-Type"] == "application/problem+json"

    (ray_cluster.export_dir / name).unlink()
    status, _, body = await _download(gateway, url)
    assert (status, orjson.loads(body)["code"]) == (404, "not_found")


async def test_the_download_route_is_in_openapi_without_a_token(gateway: TestServer) -> None:
    status, document = await call(gateway, "GET", "/openapi.json")
    assert status == 200, document
    operation = document["paths"]["/api/v1/exports/{name}"]["get"]
    assert "security" not in operation
    assert {"200", "403", "404", "422"} <= set(operation["responses"])


async def test_only_an_owner_or_admin_exports_the_tenants_conversations(
    gateway: TestServer, ray_cluster: Settings
) -> None:
    team, _, _ = await _team_with_chat(gateway)
    member = team.people[1]
    status, accepted = await submit(team, member, KIND, {"format": "csv"})
    assert status == 202, accepted
    events = await until_final(gateway, team, member, accepted["id"])
    assert events[-1]["data"]["status"] == "failed"
    assert events[-1]["data"]["error"]["code"] == "insufficient_role"
    assert _files(ray_cluster.export_dir, accepted["id"]) == []


async def test_bad_input_answers_422_naming_the_field_and_creates_nothing(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    cases = [
        ({"format": "xml"}, "input.format"),
        ({}, "input.format"),
        ({"format": "csv", "conversation_ids": ["nope"]}, "input.conversation_ids.0"),
        ({"format": "csv", "conversation_ids": []}, "input.conversation_ids"),
        ({"format": "csv", "since": "2026-01-01T00:00:00"}, "input.since"),
        ({"format": "csv", "limit": 3}, "input.limit"),
    ]
    for value, field in cases:
        status, problem = await submit(team, owner, KIND, value)
        assert (status, problem["code"]) == (422, "validation_failed"), problem
        assert [e["field"] for e in problem["errors"]] == [field], problem
    jobs = await owner_conn.fetchval(
        "SELECT count(*) FROM jobs WHERE tenant_id = $1", uuid.UUID(team.tenant_id)
    )
    assert jobs == 0


async def test_a_cancelled_export_ends_cancelled_and_leaves_no_file(
    gateway: TestServer, ray_cluster: Settings, owner_conn: asyncpg.Connection
) -> None:
    team, _, _ = await _team_with_chat(gateway)
    owner = team.people[0]
    # Holding the messages table keeps the export waiting in its count, file open.
    async with owner_conn.transaction():
        await owner_conn.execute("LOCK TABLE conversation_messages IN ACCESS EXCLUSIVE MODE")
        _, accepted = await submit(team, owner, KIND, {"format": "csv"})
        job_id = accepted["id"]
        async with open_stream(gateway, team, owner, job_id) as stream:
            seen = []
            while not any(e.event == "step" for e in seen):
                seen.extend(await stream.until(len(seen) + 1))
            assert seen[-1].json()["data"] == {"name": "counting"}
            assert _files(ray_cluster.export_dir, job_id), "expected the file being written"
            status, job = await team.call("POST", f"{JOBS}/{job_id}/cancel", owner)
            assert (status, job["cancel_requested"]) == (200, True)
            events = [e.json() for e in await stream.events()]
    assert events[-1]["data"] == {"status": "cancelled"}
    assert _files(ray_cluster.export_dir, job_id) == []


async def test_exports_are_pruned_once_no_link_can_reach_them(
    tmp_path: Path, ray_cluster: Settings
) -> None:
    store = LocalStore(tmp_path)
    past_links = time.time() - (ray_cluster.export_link_hours + 2) * 3600
    for name in (f"{uuid.uuid4()}.csv", f".{uuid.uuid4()}.jsonl.0a1b2c3d.part", ".link-key"):
        (tmp_path / name).write_bytes(b"old")
        os.utime(tmp_path / name, (past_links, past_links))
    recent = f"{uuid.uuid4()}.jsonl"
    (tmp_path / recent).write_bytes(b"new")

    assert await prune_expired(store, ray_cluster) == 2
    assert sorted(path.name for path in _files(tmp_path)) == [".link-key", recent]


def _files(directory: Path, job_id: str = "") -> list[Path]:
    """The files of an export (finished or being written), or every file."""
    return [path for path in directory.iterdir() if job_id in path.name]


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_made_inert() -> None:
    typed = ['=HYPERLINK("http://evil")', "+1", "-2", "@SUM(A1)", "plain", "a=b"]
    records = [{"type": "message", "body": body} for body in typed]
    cells = [row["body"] for row in _csv(header("csv") + encode("csv", records))]
    assert cells == ["'" + body for body in typed[:4]] + ["plain", "a=b"]
    lines = encode("jsonl", records).decode().splitlines()
    assert [orjson.loads(line)["body"] for line in lines] == typed  # JSON stays exact
