"""Messages through a real gateway and conversation shards: idempotent sends,
a gap-free seq under concurrent senders, paging by seq, edits and tombstones,
read marks that never move backwards with exact unread counts, bad input
that answers a clear error and writes nothing, and old messages (outside the
window an active conversation keeps in memory) handled like recent ones."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from hubbub.chat import messages
from hubbub.chat.commands import Delete, Edit, React
from hubbub.chat.entity import ConversationEntity
from hubbub.chat.messages import (
    FALSE_POSITIVES,
    ClientRef,
    Message,
    MessageRef,
    MessageWindow,
    OlderClientIds,
    OlderIds,
)
from hubbub.services import SETTINGS
from tests.support.chat import CONVERSATIONS, LocalConversations, new_team


async def _count(conn: asyncpg.Connection, conversation_id: str) -> tuple[int, int]:
    messages = await conn.fetchval(
        "SELECT count(*) FROM conversation_messages WHERE conversation_id = $1",
        uuid.UUID(conversation_id),
    )
    events = await conn.fetchval(
        "SELECT count(*) FROM conversation_events WHERE conversation_id = $1",
        uuid.UUID(conversation_id),
    )
    return messages, events


async def test_the_same_client_msg_id_gives_the_same_message(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 2)
    owner, ann = team.people
    found = await team.conversation(owner, "direct", ann)
    first = await team.send(owner, found["id"], "hello", client_msg_id="m-1")
    assert (first["seq"], first["author_id"], first["body"]) == (2, owner.user_id, "hello")
    again = await asyncio.gather(
        *(team.send(owner, found["id"], "hello", client_msg_id="m-1") for _ in range(3))
    )
    assert all(a == first for a in again)
    # Another author may use the same client id: it is per author.
    other = await team.send(ann, found["id"], "hi", client_msg_id="m-1")
    assert other["seq"] == 3
    assert await _count(owner_conn, found["id"]) == (2, 3)


async def test_concurrent_senders_get_a_gap_free_seq(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway)
    found = await team.conversation(team.people[0], "group", *team.people[1:])
    sends = [team.send(p, found["id"], f"{i}") for i in range(15) for p in team.people]
    sent = await asyncio.gather(*sends)
    assert sorted(m["seq"] for m in sent) == list(range(2, 2 + len(sends)))
    rows = await owner_conn.fetch(
        "SELECT seq FROM conversation_events WHERE conversation_id = $1 ORDER BY seq",
        uuid.UUID(found["id"]),
    )
    assert [r["seq"] for r in rows] == list(range(1, 2 + len(sends)))


async def test_messages_page_before_after_and_around(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    owner, ann = team.people
    found = await team.conversation(owner, "direct", ann)
    for i in range(10):
        await team.send(owner, found["id"], f"m{i}")  # seqs 2..11
    path = f"{CONVERSATIONS}/{found['id']}/messages"

    async def seqs(query: str) -> tuple[list[int], str | None]:
        status, page = await team.call("GET", f"{path}?{query}", ann)
        assert status == 200, page
        return [m["seq"] for m in page["items"]], page["next_cursor"]

    assert await seqs("limit=4") == ([8, 9, 10, 11], "8")
    assert await seqs("limit=4&before=8") == ([4, 5, 6, 7], "4")
    assert await seqs("limit=4&before=4") == ([2, 3], None)
    assert await seqs("limit=4&after=1") == ([2, 3, 4, 5], "5")
    assert await seqs("limit=4&after=9") == ([10, 11], None)
    assert await seqs("limit=4&around=6") == ([4, 5, 6, 7], None)
    assert await seqs("limit=50") == (list(range(2, 12)), None)


async def test_bad_seq_ranges_answer_clear_errors(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    owner, ann = team.people
    found = await team.conversation(owner, "direct", ann)
    await team.send(owner, found["id"], "one")  # seq 2
    one = f"{CONVERSATIONS}/{found['id']}"
    cases = [
        (f"{one}/messages?after=3", "seq_out_of_range"),
        (f"{one}/messages?around=9", "seq_out_of_range"),
        (f"{one}/messages?before=1&after=1", "seq_out_of_range"),
        (f"{one}/messages?before=-1", "validation_failed"),
        (f"{one}/events?after_seq=5", "seq_out_of_range"),
    ]
    for path, code in cases:
        status, problem = await team.call("GET", path, ann)
        assert (status, problem["code"]) == (422, code), (path, problem)
    status, problem = await team.call("POST", f"{one}/read", ann, {"up_to_seq": 3})
    assert (status, problem["code"]) == (422, "seq_out_of_range")
    status, problem = await team.call("POST", f"{one}/read", ann, {"up_to_seq": -1})
    assert (status, problem["code"]) == (422, "validation_failed")


async def test_oversize_and_empty_bodies_are_refused_and_nothing_is_written(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 2)
    owner, ann = team.people
    found = await team.conversation(owner, "direct", ann)
    path = f"{CONVERSATIONS}/{found['id']}/messages"
    limit = gateway.app[SETTINGS].message_max_bytes
    cases = [("x" * (limit + 1), "body_too_large"), ("", "body_empty"), ("  \n", "body_empty")]
    for body, code in cases:
        status, problem = await team.call("POST", path, owner, {"body": body, "client_msg_id": "c"})
        assert (status, problem["code"]) == (422, code)
        assert problem["errors"][0]["field"] == "body"
    status, problem = await team.call(
        "POST", path, owner, {"body": "hi", "client_msg_id": "c", "reply_to": str(uuid.uuid4())}
    )
    assert (status, problem["code"]) == (422, "reply_to_not_found")
    assert await _count(owner_conn, found["id"]) == (0, 1)
    exactly = await team.send(owner, found["id"], "é" * (limit // 2))
    assert exactly["seq"] == 2


async def test_edit_is_the_authors_and_delete_leaves_a_tombstone(gateway: TestServer) -> None:
    team = await new_team(gateway)
    owner, ann, bob = team.people
    found = await team.conversation(owner, "group", ann, bob)
    message = await team.send(ann, found["id"], "draft")
    one = f"{CONVERSATIONS}/{found['id']}/messages/{message['id']}"
    status, problem = await team.call("PATCH", one, bob, {"body": "hacked"})
    assert (status, problem["code"]) == (403, "not_author")
    status, edited = await team.call("PATCH", one, ann, {"body": "final"})
    assert (status, edited["body"], edited["seq"]) == (200, "final", message["seq"])
    assert edited["edited_at"] is not None
    status, problem = await team.call("DELETE", one, bob)
    assert (status, problem["code"]) == (403, "not_author")
    status, gone = await team.call("DELETE", one, ann)
    assert (status, gone["deleted"], gone["body"]) == (200, True, "")
    assert (await team.call("DELETE", one, ann))[1] == gone  # deleting again changes nothing
    status, problem = await team.call("PATCH", one, ann, {"body": "back"})
    assert (status, problem["code"]) == (409, "message_deleted")
    status, page = await team.call("GET", f"{CONVERSATIONS}/{found['id']}/messages", bob)
    assert [(m["id"], m["deleted"], m["body"]) for m in page["items"]] == [
        (message["id"], True, "")
    ]
    status, events = await team.call(
        "GET", f"{CONVERSATIONS}/{found['id']}/events?after_seq=1", bob
    )
    assert [(e["seq"], e["event"]) for e in events["items"]] == [
        (2, "message:new"),
        (3, "message:updated"),
        (4, "message:deleted"),
    ]
    assert events["last_seq"] == 4 and events["next_cursor"] is None


async def test_read_marks_never_move_back_and_unread_counts_are_exact(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway)
    owner, ann, bob = team.people
    found = await team.conversation(owner, "group", ann, bob)
    other = await team.conversation(owner, "direct", ann)
    sent = [await team.send(owner, found["id"], f"m{i}") for i in range(5)]  # seqs 2..6
    await team.send(ann, found["id"], "mine")  # seq 7: ann's own, never unread for her
    await team.send(owner, other["id"], "psst")
    doomed = await team.send(owner, found["id"], "oops")  # seq 8
    await team.call("DELETE", f"{CONVERSATIONS}/{found['id']}/messages/{doomed['id']}", owner)

    async def unread() -> dict[str, int]:
        status, counts = await team.call("GET", f"{CONVERSATIONS}/unread", ann)
        assert status == 200, counts
        return {c["conversation_id"]: c["unread_count"] for c in counts["items"]}

    # Sending marks your own read up to your message.
    assert await unread() == {found["id"]: 0, other["id"]: 1}  # seq 8 is deleted
    read = f"{CONVERSATIONS}/{found['id']}/read"
    status, mark = await team.call("POST", read, bob, {"up_to_seq": sent[2]["seq"]})
    assert (status, mark["last_read_seq"]) == (200, 4)
    status, mark = await team.call("POST", read, bob, {"up_to_seq": 2})
    assert mark["last_read_seq"] == 4  # never backwards
    status, counts = await team.call("GET", f"{CONVERSATIONS}/unread", bob)
    assert counts["items"][0]["unread_count"] == 3 and counts["total"] == 3  # 5, 6, 7
    status, view = await team.call("GET", f"{CONVERSATIONS}/{found['id']}", bob)
    assert (view["last_read_seq"], view["unread_count"]) == (4, 3)


# -- messages outside an active conversation's window (here: its latest 3) --


def _message(seq: int, client_msg_id: str) -> Message:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return Message(str(uuid.uuid4()), seq, "author", "body", client_msg_id, None, at)


def test_the_window_keeps_the_latest_and_forgets_what_leaves_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(messages, "WINDOW", 3)
    window = MessageWindow.of([_message(seq, f"c{seq}") for seq in (4, 5, 6)])
    assert window.start == 4  # a full window: older messages may exist
    assert window.unknown(ClientRef("author", "c1")) and not window.unknown(
        ClientRef("author", "c5")
    )
    old = _message(1, "c1")
    window.merge([MessageRef(old.id), ClientRef("author", "new")], [old])
    assert window[old.id] is old and window.sent("author", "c1") is old
    assert not window.unknown(ClientRef("author", "new"))  # read: it named nothing
    window.add(_message(7, "new"))
    for seq in (8, 9, 10):  # "new" leaves the window: the read that found nothing is void
        window.add(_message(seq, f"c{seq}"))
    assert [m.seq for m in window.latest.values()] == [8, 9, 10] and window.start == 8
    assert window.unknown(ClientRef("author", "new"))
    window.merge([], [])  # the next read replaces what the last one brought in
    assert len(window) == 3 and window.sent("author", "c1") is None


async def test_old_messages_are_edited_deleted_and_replied_to_like_recent_ones(
    small_window: LocalConversations, owner_conn: asyncpg.Connection
) -> None:
    chat = small_window
    owner, ann, _ = chat.team.people
    cid = await chat.create(owner, ann)
    sent = [o.unwrap() for o in await chat.run(*(chat.send(cid, owner, f"c{n}") for n in range(5)))]
    first, second = sent[0], sent[1]  # both out of the window now

    edited = await chat.ask(chat.command(cid, Edit(owner.user_id, first["id"], "new")))
    assert (edited["id"], edited["seq"], edited["body"]) == (first["id"], first["seq"], "new")
    assert edited["edited_at"] is not None
    [not_hers] = await chat.run(chat.command(cid, Edit(ann.user_id, first["id"], "x")))
    assert not_hers.error is not None and not_hers.error.code == "not_author"
    reply = await chat.ask(chat.send(cid, ann, "r1", reply_to=second["id"]))
    assert reply["reply_to"] == second["id"] and reply["seq"] == sent[-1]["seq"] + 2
    [dangling] = await chat.run(chat.send(cid, ann, "r2", reply_to=str(uuid.uuid4())))
    assert dangling.error is not None and dangling.error.code == "reply_to_not_found"
    deleted = await chat.ask(chat.command(cid, Delete(owner.user_id, second["id"])))
    assert deleted["deleted"] and deleted["body"] == ""
    again = await chat.ask(chat.command(cid, Delete(owner.user_id, second["id"])))
    assert again == deleted  # already a tombstone: no new event
    [nothing] = await chat.run(chat.command(cid, Delete(owner.user_id, str(uuid.uuid4()))))
    assert nothing.error is not None and nothing.error.code == "not_found"

    rows = await owner_conn.fetch(
        "SELECT seq, body, deleted_at IS NOT NULL AS gone FROM conversation_messages"
        " WHERE id = ANY($1::uuid[]) ORDER BY seq",
        [uuid.UUID(first["id"]), uuid.UUID(second["id"])],
    )
    assert [tuple(r) for r in rows] == [(first["seq"], "new", False), (second["seq"], "", True)]
    assert await _count(owner_conn, cid) == (6, 9)  # 6 messages; create, 6 sends, edit, delete


async def test_a_retried_send_of_an_old_message_returns_it_and_sends_nothing(
    small_window: LocalConversations, owner_conn: asyncpg.Connection
) -> None:
    chat = small_window
    owner, ann, _ = chat.team.people
    cid = await chat.create(owner, ann)
    sends = [chat.send(cid, owner, f"c{n}") for n in range(5)]
    # The retry comes in the same batch: "c0" left memory before it was committed.
    *sent, retried = [o.unwrap() for o in await chat.run(*sends, chat.send(cid, owner, "c0"))]
    assert retried == sent[0]
    assert await chat.ask(chat.send(cid, owner, "c1", body="again")) == sent[1]
    fresh = await chat.ask(chat.send(cid, ann, "c1"))  # another author's client id
    assert fresh["seq"] == sent[-1]["seq"] + 1
    assert await _count(owner_conn, cid) == (6, 7)


async def test_a_conversation_activates_with_only_its_latest_messages(
    small_window: LocalConversations,
) -> None:
    chat = small_window
    owner, ann, _ = chat.team.people
    cid = await chat.create(owner, ann)
    sent = [o.unwrap() for o in await chat.run(*(chat.send(cid, owner, f"c{n}") for n in range(6)))]
    await chat.ask(chat.command(cid, React(ann.user_id, sent[-1]["id"], "👍", True)))

    state = await chat.activated(cid)
    assert [m.seq for m in state.messages.latest.values()] == [m["seq"] for m in sent[-3:]]
    assert len(state.messages) == 3 and state.messages.start == sent[-3]["seq"]
    assert state.messages[sent[-1]["id"]].reactions == {"👍": [ann.user_id]}
    # A send grows the window by one and evicts the oldest.
    await chat.ask(chat.send(cid, ann, "later"))
    assert len((await chat.activated(cid)).messages) == 3


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[frozenset]:
    """The references of every read of rows outside a conversation's window, from now on."""
    reads: list[frozenset] = []
    load = ConversationEntity.load_missing

    async def counted(conn: asyncpg.Connection, key: str, refs: frozenset) -> Any:
        reads.append(refs)
        return await load(conn, key, refs)

    monkeypatch.setattr(ConversationEntity, "load_missing", counted)
    return reads


async def test_a_conversation_that_outgrows_its_window_while_active_reads_nothing(
    small_window: LocalConversations, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = small_window
    owner, ann, _ = chat.team.people
    cid = await chat.create(owner, ann)
    reads = _count_reads(monkeypatch)
    for n in range(10):  # the window (3) held every message, so it knows what left it
        await chat.ask(chat.send(cid, owner, f"c{n}"))
    assert reads == []
    again = await chat.ask(chat.send(cid, owner, "c0"))  # a retry still finds its message
    assert again["body"] == "body of c0" and len(reads) == 1


async def test_fresh_sends_to_a_long_conversation_read_postgres_once_not_each_time(
    small_window: LocalConversations, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = small_window
    owner, ann, _ = chat.team.people
    cid = await chat.create(owner, ann)
    await chat.run(*(chat.send(cid, owner, f"c{n}") for n in range(6)))  # past the window
    chat.passivate(cid)  # activated anew, it holds only the latest 3
    reads = _count_reads(monkeypatch)
    for n in range(10):
        await chat.ask(chat.send(cid, ann, f"fresh {n}"))
    # The first send reads the older client ids into the filter, once; fresh
    # ids pass it without a read.
    assert len(reads) == 1 and any(isinstance(ref, OlderClientIds) for ref in reads[0])
    again = await chat.ask(chat.send(cid, owner, "c0"))  # a retry still finds its message
    assert again["seq"] == 2 and len(reads) == 2
    assert not any(isinstance(ref, OlderClientIds) for ref in reads[1])


def test_the_filter_over_older_client_ids_grows_without_reading_them_again() -> None:
    ids = OlderIds([("author", f"old {n}") for n in range(100)])
    for n in range(20_000):  # twenty times its first capacity
        ids.add(("author", f"new {n}"))
    assert all(("author", f"new {n}") in ids for n in range(20_000))
    assert ("author", "old 7") in ids
    false_positives = sum(("other", f"fresh {n}") in ids for n in range(100_000))
    assert false_positives <= 100_000 * FALSE_POSITIVES * 1.5
