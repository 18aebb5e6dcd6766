"""Broadcasts through a real gateway, conversation and job shards and Ray
workers: a broadcast puts one message into each recipient's conversation
and records each recipient sent; a recipient that cannot be sent to fails
with its error while the others are sent; a label picks the support
conversations that carry it; bad input answers 422 naming the field and
creates nothing; cancel mid-way leaves the pending recipients cancelled;
a re-run sends nobody twice; another tenant's broadcast is 404."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from hubbub.broadcasts.sending import SendInput, client_msg_id, send
from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.jobs.context import JobContext
from hubbub.services import ROUTER
from tests.support.chat import CONVERSATIONS, Team, new_team
from tests.support.jobs import JOBS, open_stream, unique_key, until_final
from tests.support.tenants import Account, call

BROADCASTS = "/api/v1/broadcasts"


async def _broadcast(team: Team, who: Account, **body: Any) -> dict:
    """A broadcast created by ``who`` (202 expected)."""
    status, created = await team.call("POST", BROADCASTS, who, {"body": "Sale today!"} | body)
    assert status == 202, created
    return created


async def _sent(team: Team, who: Account, **body: Any) -> dict:
    """A broadcast created and sent to the end; its view after."""
    created = await _broadcast(team, who, **body)
    await until_final(team.server, team, who, created["job_id"])
    status, view = await team.call("GET", f"{BROADCASTS}/{created['id']}", who)
    assert status == 200, view
    return view


async def _recipients(
    team: Team, who: Account, broadcast_id: str, query: str = "", limit: int = 2
) -> list[dict]:
    """Every recipient of the broadcast, page by page."""
    found: list[dict] = []
    path = f"{BROADCASTS}/{broadcast_id}/recipients?limit={limit}{query}"
    cursor = ""
    while True:
        status, page = await team.call("GET", path + cursor, who)
        assert status == 200, page
        found += page["items"]
        if page["next_cursor"] is None:
            return found
        cursor = f"&cursor={page['next_cursor']}"


async def _messages(team: Team, who: Account, conversation_id: str) -> list[dict]:
    status, page = await team.call("GET", f"{CONVERSATIONS}/{conversation_id}/messages", who)
    assert status == 200, page
    return page["items"]


async def _support(team: Team, *labels: str) -> str:
    """A support conversation of the owner and the second member, with ``labels``."""
    owner, member = team.people[0], team.people[1]
    conversation = await team.conversation(owner, "support", member)
    if labels:
        path = f"{CONVERSATIONS}/{conversation['id']}"
        status, changed = await team.call("PATCH", path, owner, {"labels": list(labels)})
        assert status == 200, changed
    return conversation["id"]


def _counts(pending: int = 0, sent: int = 0, failed: int = 0, cancelled: int = 0) -> dict:
    return {"pending": pending, "sent": sent, "failed": failed, "cancelled": cancelled}


async def test_a_broadcast_puts_one_message_into_each_recipients_conversation(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 2)
    owner, member = team.people
    targets = sorted([await _support(team) for _ in range(3)])
    created = await _broadcast(team, owner, recipient_ids=targets + targets[:1])

    assert created["status"] == "queued" and created["body"] == "Sale today!"
    assert (created["total"], created["counts"]) == (3, _counts(pending=3))
    assert created["created_by"] == owner.user_id and created["label"] is None
    events = await until_final(gateway, team, owner, created["job_id"])
    assert events[-1]["data"] == {"status": "succeeded", "result": _counts(sent=3)}
    last_progress = [e for e in events if e["type"] == "progress"][-1]["data"]
    assert (last_progress["done"], last_progress["total"], last_progress["progress"]) == (
        3,
        3,
        100,
    )

    status, view = await team.call("GET", f"{BROADCASTS}/{created['id']}", owner)
    assert status == 200, view
    assert (view["status"], view["counts"]) == ("completed", _counts(sent=3))
    assert (view["job_status"], view["job_error"]) == ("succeeded", None)
    assert view["started_at"] and view["finished_at"]
    recipients = await _recipients(team, owner, created["id"])
    assert [r["conversation_id"] for r in recipients] == targets
    for recipient in recipients:
        assert (recipient["status"], recipient["error"]) == ("sent", None)
        # The member of each conversation sees the owner's message, once.
        [message] = await _messages(team, member, recipient["conversation_id"])
        assert (message["id"], message["seq"]) == (
            recipient["message_id"],
            recipient["message_seq"],
        )
        assert (message["body"], message["author_id"]) == ("Sale today!", owner.user_id)
        assert message["client_msg_id"] == client_msg_id(created["id"])

    status, listed = await team.call("GET", BROADCASTS, member)
    assert status == 200, listed
    assert [b["id"] for b in listed["items"]] == [created["id"]]
    recipients_path = f"{BROADCASTS}/{created['id']}/recipients"
    for path, field in (
        (f"{recipients_path}?cursor=nope", "cursor"),
        (f"{recipients_path}?status=lost", "status"),
        (f"{BROADCASTS}?cursor=nope", "cursor"),
        (f"{BROADCASTS}?limit=101", "limit"),
    ):
        status, problem = await team.call("GET", path, owner)
        assert (status, problem["code"]) == (422, "validation_failed"), path
        assert [e["field"] for e in problem["errors"]] == [field]


async def test_a_recipient_that_cannot_be_sent_to_fails_with_its_error_others_are_sent(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 3)
    owner, member, outsider = team.people
    reachable = await _support(team)
    deleted = await _support(team)
    status, _ = await team.call("DELETE", f"{CONVERSATIONS}/{deleted}", owner)
    assert status == 204
    not_mine = (await team.conversation(member, "support", outsider))["id"]
    missing = str(uuid.uuid4())
    view = await _sent(team, owner, recipient_ids=[reachable, deleted, not_mine, missing])

    assert (view["status"], view["counts"]) == ("completed", _counts(sent=1, failed=3))
    by_id = {r["conversation_id"]: r for r in await _recipients(team, owner, view["id"])}
    assert by_id[reachable]["status"] == "sent"
    for failed in (deleted, not_mine, missing):
        recipient = by_id[failed]
        assert recipient["status"] == "failed" and recipient["message_id"] is None
        assert recipient["error"]["code"] == "not_found", recipient
    failed_only = await _recipients(team, owner, view["id"], "&status=failed")
    assert sorted(r["conversation_id"] for r in failed_only) == sorted([deleted, not_mine, missing])
    assert await _messages(team, member, not_mine) == []


async def test_a_label_sends_to_your_support_conversations_that_carry_it(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 3)
    owner, member, other = team.people
    vip = sorted([await _support(team, "vip"), await _support(team, "vip", "late")])
    await _support(team, "late")
    # Labelled, but the owner is not in it: not theirs to send to.
    theirs = (await team.conversation(member, "support", other))["id"]
    status, _ = await team.call("PATCH", f"{CONVERSATIONS}/{theirs}", member, {"labels": ["vip"]})
    assert status == 200
    view = await _sent(team, owner, label="vip")

    assert (view["label"], view["total"], view["counts"]) == ("vip", 2, _counts(sent=2))
    assert [r["conversation_id"] for r in await _recipients(team, owner, view["id"])] == vip

    status, problem = await team.call("POST", BROADCASTS, owner, {"body": "x", "label": "none"})
    assert status == 422, problem
    assert problem["code"] == "no_recipients"
    assert [e["field"] for e in problem["errors"]] == ["label"]


async def test_the_same_idempotency_key_gives_the_same_broadcast_sent_once(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 2)
    owner, member = team.people
    conversation = await _support(team)
    body = {"body": "Sale today!", "recipient_ids": [conversation]}
    headers = {"Idempotency-Key": unique_key()}
    first = await _post(team, owner, body, headers)
    assert first[0] == 202, first
    await until_final(gateway, team, owner, first[1]["job_id"])
    status, again = await _post(team, owner, body, headers)
    assert status == 202, again
    assert (again["id"], again["job_id"]) == (first[1]["id"], first[1]["job_id"])
    assert (again["status"], again["counts"]) == ("completed", _counts(sent=1))
    assert len(await _messages(team, member, conversation)) == 1

    status, problem = await _post(team, owner, body | {"body": "Other"}, headers)
    assert (status, problem["code"]) == (422, "idempotency_key_reused")
    status, problem = await _post(team, owner, body, {"Idempotency-Key": "x" * 201})
    assert (status, problem["code"]) == (422, "validation_failed")
    assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    count = "SELECT count(*) FROM broadcasts WHERE tenant_id = $1"
    assert await owner_conn.fetchval(count, uuid.UUID(team.tenant_id)) == 1


async def _post(team: Team, who: Account, body: dict, headers: dict) -> tuple[int, Any]:
    """``POST /broadcasts`` with extra headers."""
    headers |= {"X-Tenant-Id": team.tenant_id}
    return await call(team.server, "POST", BROADCASTS, who.token, body, **headers)


async def test_bad_input_answers_422_naming_the_field_and_creates_nothing(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    one = [str(uuid.uuid4())]
    too_many = [str(uuid.uuid4()) for _ in range(1001)]
    both = ["recipient_ids", "label"]
    far = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    cases = [
        ({"body": "x", "recipient_ids": too_many}, "validation_failed", ["recipient_ids"]),
        ({"body": "x", "recipient_ids": []}, "validation_failed", ["recipient_ids"]),
        ({"body": "x", "recipient_ids": ["nope"]}, "validation_failed", ["recipient_ids.0"]),
        ({"body": "x"}, "validation_failed", both),
        ({"body": "x", "recipient_ids": one, "label": "v"}, "validation_failed", both),
        ({"body": " ", "recipient_ids": one}, "body_empty", ["body"]),
        ({"body": "x" * 16_385, "recipient_ids": one}, "body_too_large", ["body"]),
        (
            {"body": "x", "recipient_ids": one, "start_at": "soon"},
            "validation_failed",
            ["start_at"],
        ),
        ({"body": "x", "label": "v", "extra": 1}, "validation_failed", ["extra"]),
        ({"body": "x", "label": "v", "start_at": far}, "validation_failed", ["start_at"]),
    ]
    for body, code, fields in cases:
        status, problem = await team.call("POST", BROADCASTS, owner, body)
        assert (status, problem["code"]) == (422, code), (body.keys(), problem)
        assert [e["field"] for e in problem["errors"]] == fields, problem
    count = "SELECT count(*) FROM broadcasts WHERE tenant_id = $1"
    assert await owner_conn.fetchval(count, uuid.UUID(team.tenant_id)) == 0


@pytest.mark.parametrize("cancelled", ["broadcast", "job"])
async def test_cancel_mid_way_leaves_the_pending_recipients_cancelled(
    gateway: TestServer, owner_conn: asyncpg.Connection, cancelled: str
) -> None:
    # The session's workers send to one recipient per round: time to cancel.
    team = await new_team(gateway, 2)
    owner = team.people[0]
    targets = [await _support(team) for _ in range(2)] + [str(uuid.uuid4()) for _ in range(298)]
    created = await _broadcast(team, owner, recipient_ids=targets)
    one = f"{BROADCASTS}/{created['id']}"
    cancel = {"broadcast": f"{one}/cancel", "job": f"{JOBS}/{created['job_id']}/cancel"}
    async with open_stream(gateway, team, owner, created["job_id"]) as stream:
        while (frame := await stream.next()) is not None and frame.event != "progress":
            pass  # until the first recipients are done
        status, answer = await team.call("POST", cancel[cancelled], owner)
        assert status == 200, answer
        final = [e.json() for e in await stream.events()][-1]

    assert final["data"]["status"] == "cancelled"
    status, view = await team.call("GET", one, owner)
    assert status == 200, view
    counts = view["counts"]
    assert view["status"] == "cancelled" and counts["pending"] == 0
    assert counts["cancelled"] > 0 and counts["sent"] + counts["failed"] > 0
    assert sum(counts.values()) == 300
    # What was recorded is what happened: one message per recipient marked sent.
    sent = await owner_conn.fetchval(
        "SELECT count(*) FROM conversation_messages WHERE client_msg_id = $1",
        client_msg_id(created["id"]),
    )
    assert sent == counts["sent"]
    cancelled_ones = await _recipients(team, owner, created["id"], "&status=cancelled", 100)
    assert len(cancelled_ones) == counts["cancelled"]
    assert all(r["message_id"] is None for r in cancelled_ones)

    status, problem = await team.call("POST", f"{one}/cancel", owner)
    assert (status, problem["code"]) == (409, "broadcast_finished")


async def test_a_scheduled_broadcast_stays_queued_until_its_start_and_cancels_at_once(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 2)
    owner, member = team.people
    conversation = await _support(team)
    in_an_hour = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = await _broadcast(team, owner, recipient_ids=[conversation], start_at=in_an_hour)
    soon_at = datetime.now(UTC) + timedelta(seconds=1)
    soon = await _sent(team, owner, recipient_ids=[conversation], start_at=soon_at.isoformat())

    assert (soon["status"], soon["counts"]) == ("completed", _counts(sent=1))
    assert datetime.fromisoformat(soon["started_at"]) >= soon_at
    # Meanwhile the later one has not started: its job waits for its run_at.
    status, view = await team.call("GET", f"{BROADCASTS}/{later['id']}", owner)
    assert (view["status"], view["counts"]) == ("queued", _counts(pending=1))
    assert datetime.fromisoformat(view["start_at"]) == datetime.fromisoformat(in_an_hour)
    status, job = await team.call("GET", f"{JOBS}/{later['job_id']}", owner)
    assert (job["status"], job["run_at"]) == ("queued", view["start_at"].replace("Z", "+00:00"))

    status, view = await team.call("POST", f"{BROADCASTS}/{later['id']}/cancel", owner)
    assert status == 200, view
    assert (view["status"], view["counts"]) == ("cancelled", _counts(cancelled=1))
    status, job = await team.call("GET", f"{JOBS}/{later['job_id']}", owner)
    assert job["status"] == "cancelled"
    assert [m["body"] for m in await _messages(team, member, conversation)] == ["Sale today!"]


async def test_only_the_creator_or_an_owner_or_admin_cancels_and_a_finished_one_is_409(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 3)
    owner, member, other = team.people
    conversation = (await team.conversation(member, "support", other))["id"]
    view = await _sent(team, member, recipient_ids=[conversation])
    path = f"{BROADCASTS}/{view['id']}/cancel"

    status, problem = await team.call("POST", path, other)
    assert (status, problem["code"]) == (403, "insufficient_role")
    for who in (member, owner):
        status, problem = await team.call("POST", path, who)
        assert (status, problem["code"]) == (409, "broadcast_finished")


async def test_a_rerun_sends_nobody_twice(
    gateway: TestServer, owner_conn: asyncpg.Connection, ray_cluster: Settings
) -> None:
    team = await new_team(gateway, 2)
    owner, member = team.people
    targets = sorted([await _support(team) for _ in range(3)])
    view = await _sent(team, owner, recipient_ids=targets)
    first = await _recipients(team, owner, view["id"])
    # As if the run had died after sending to the first two but before recording it.
    await owner_conn.execute(
        "UPDATE broadcast_recipients SET status = 'pending', message_id = NULL "
        "WHERE broadcast_id = $1 AND conversation_id = ANY($2::uuid[])",
        uuid.UUID(view["id"]),
        [uuid.UUID(t) for t in targets[:2]],
    )
    await owner_conn.execute(
        "UPDATE broadcasts SET status = 'sending' WHERE id = $1", uuid.UUID(view["id"])
    )
    # The run again, here: both pending recipients in one batch.
    settings = ray_cluster.model_copy(update={"broadcast_batch_size": 100})
    context = JobContext(view["job_id"], 2, team.tenant_id, gateway.app[ROUTER], settings)
    assert await send(context, SendInput(broadcast_id=view["id"])) == _counts(sent=3)

    again = await _recipients(team, owner, view["id"])
    assert [r["message_id"] for r in again] == [r["message_id"] for r in first]
    assert again[2]["updated_at"] == first[2]["updated_at"]  # not sent to again
    for conversation in targets:
        assert len(await _messages(team, member, conversation)) == 1

    # Another job cannot send someone's broadcast.
    stranger = JobContext(str(uuid.uuid4()), 1, team.tenant_id, gateway.app[ROUTER], settings)
    with pytest.raises(AppError) as refused:
        await send(stranger, SendInput(broadcast_id=view["id"]))
    assert refused.value.code == "not_the_broadcasts_job"


async def test_another_tenants_broadcast_is_404(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    elsewhere = await new_team(gateway, 1)
    stranger = elsewhere.people[0]
    view = await _sent(team, team.people[0], recipient_ids=[await _support(team)])
    for method, suffix in (("GET", ""), ("GET", "/recipients"), ("POST", "/cancel")):
        status, problem = await elsewhere.call(
            method, f"{BROADCASTS}/{view['id']}{suffix}", stranger
        )
        assert (status, problem["code"]) == (404, "not_found"), (method, suffix)
    status, listed = await elsewhere.call("GET", BROADCASTS, stranger)
    assert status == 200 and listed["items"] == []
    # Naming the tenant without being in it is 404 too; no token is 401.
    status, problem = await team.call("GET", f"{BROADCASTS}/{view['id']}", stranger)
    assert (status, problem["code"]) == (404, "not_found")
    headers = {"X-Tenant-Id": team.tenant_id}
    status, problem = await call(team.server, "GET", BROADCASTS, None, None, **headers)
    assert status == 401, problem
