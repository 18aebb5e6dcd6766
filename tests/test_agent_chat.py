"""Agent chat: `POST /api/v1/chat` and `/chat/stream` post your message to an
agent conversation and run an `agent.reply` job, whose tokens stream as the
job's `output` events and as `message:delta` to the conversation's sockets
before the reply is committed with its seq (`message:new`). The local
provider answers by default; an OpenAI-compatible API is spoken through the
real `openai` client to a small server started by the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer

from hubbub.agent.provider import Turn
from hubbub.agent.provider_local import LocalProvider, local_reply
from hubbub.chat.state import ASSISTANT_ID
from hubbub.services import SETTINGS
from tests.support.agent import CHAT, ModelServer, open_chat_stream
from tests.support.chat import CONVERSATIONS, Team, new_team
from tests.support.jobs import JOBS, submit, until_final
from tests.support.tenants import Account
from tests.test_chat_sockets import ChatClient

Serve = Callable[..., Awaitable[TestServer]]


def _said(*asked: str) -> str:
    """The local provider's reply after the user said ``asked``, in order."""
    return local_reply([Turn("user", text) for text in asked])


async def _messages(team: Team, who: Account, conversation_id: str) -> list[tuple[str, str]]:
    status, page = await team.call("GET", f"{CONVERSATIONS}/{conversation_id}/messages", who)
    assert status == 200, page
    return [(m["author_id"], m["body"]) for m in page["items"]]


@pytest.fixture(scope="module")
async def model(model_port: int) -> AsyncIterator[ModelServer]:
    """The OpenAI-compatible server the session's settings point workers at."""
    async with ModelServer(model_port) as server:
        yield server


async def _openai_gateway(serve: Serve) -> TestServer:
    """A gateway whose replies are written by the OpenAI-compatible provider."""
    return await serve(agent_provider="openai")


REPLY = "".join(ModelServer.PIECES)


async def test_the_local_provider_streams_a_reply_derived_from_the_conversation() -> None:
    turns = [Turn("user", "Hi  there"), Turn("assistant", "Hello"), Turn("user", "Bye")]
    pieces = [piece async for piece in LocalProvider(0).stream(turns)]
    assert len(pieces) > 1 and "".join(pieces) == local_reply(turns)
    assert local_reply(turns) == "You said: Bye (your message 2 here)."
    assert local_reply([Turn("user", "Hi  there")]) == "You said: Hi there (your message 1 here)."


async def test_chat_answers_with_the_reply_committed_in_a_new_agent_conversation(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    (user,) = team.people
    status, answer = await team.call("POST", CHAT, user, {"message": "What is hubbub?"})
    assert status == 200, answer
    assert answer["response"] == _said("What is hubbub?")
    reply, message = answer["reply"], answer["message"]
    assert (message["author_id"], message["seq"]) == (user.user_id, 2)  # 1: created
    assert (reply["author_id"], reply["seq"], reply["reply_to"]) == (ASSISTANT_ID, 3, message["id"])
    assert reply["client_msg_id"] == f"agent.reply:{answer['job_id']}"
    conversation_id = answer["conversation_id"]
    status, conversation = await team.call("GET", f"{CONVERSATIONS}/{conversation_id}", user)
    assert (conversation["kind"], conversation["last_seq"]) == ("agent", 3)

    status, again = await team.call(
        "POST", CHAT, user, {"message": "And Ray?", "conversation_id": conversation_id}
    )
    assert status == 200, again
    assert again["response"] == _said("What is hubbub?", "And Ray?")  # it saw the history
    assert await _messages(team, user, conversation_id) == [
        (user.user_id, "What is hubbub?"),
        (ASSISTANT_ID, _said("What is hubbub?")),
        (user.user_id, "And Ray?"),
        (ASSISTANT_ID, again["response"]),
    ]
    events = await until_final(gateway, team, user, again["job_id"])
    assert (
        "".join(e["data"]["chunk"] for e in events if e["type"] == "output") == (again["response"])
    )
    assert events[-1]["data"]["result"] == {
        "message_id": again["reply"]["id"],
        "conversation_id": conversation_id,
        "seq": 5,
    }


async def test_the_same_client_msg_id_gives_the_same_message_conversation_and_reply(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    (user,) = team.people
    ask = {"message": "Once only", "client_msg_id": "ask-1"}
    status, first = await team.call("POST", CHAT, user, ask)
    assert status == 200, first
    status, second = await team.call("POST", CHAT, user, ask)
    assert status == 200, second
    assert second == first
    assert len(await _messages(team, user, first["conversation_id"])) == 2


async def test_chat_stream_answers_the_reply_jobs_events_to_the_final_status(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    (user,) = team.people
    async with open_chat_stream(gateway, team, user, {"message": "Stream it"}) as stream:
        job_url = stream.response.headers["Location"]
        conversation_id = stream.response.headers["X-Conversation-Id"]
        events = await stream.events()
    assert job_url == f"{JOBS}/{events[0].json()['job_id']}"
    assert [int(e.id or 0) for e in events] == list(range(1, len(events) + 1))
    outputs = [e.json()["data"]["chunk"] for e in events if e.event == "output"]
    assert "".join(outputs) == _said("Stream it")
    final = events[-1].json()["data"]
    assert final["status"] == "succeeded"
    assert final["result"]["seq"] == 3
    assert await _messages(team, user, conversation_id) == [
        (user.user_id, "Stream it"),
        (ASSISTANT_ID, _said("Stream it")),
    ]


async def test_a_member_in_the_room_gets_message_deltas_then_the_reply(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    (user,) = team.people
    conversation = await team.conversation(user, "agent")
    listener = await ChatClient().connect(
        str(gateway.make_url("")).rstrip("/"), user.token, team.tenant_id
    )
    try:
        joined = await listener.call(
            "conversation:join", {"conversation_id": conversation["id"], "since_seq": 1}
        )
        assert joined["data"]["last_seq"] == 1
        status, answer = await team.call(
            "POST", CHAT, user, {"message": "Hello there", "conversation_id": conversation["id"]}
        )
        assert status == 200, answer
        event, data = await listener.next()
        assert (event, data["message"]["body"]) == ("message:new", "Hello there")
        deltas = []
        while (received := await listener.next())[0] == "message:delta":
            deltas.append(received[1])
        event, data = received
        assert (event, data["seq"], data["message"]["id"]) == (
            "message:new",
            3,
            answer["reply"]["id"],
        )
    finally:
        await listener.client.disconnect()
    assert [d["index"] for d in deltas] == list(range(len(deltas)))
    assert {(d["conversation_id"], d["job_id"]) for d in deltas} == {
        (conversation["id"], answer["job_id"])
    }
    assert "".join(d["chunk"] for d in deltas) == answer["response"]
    assert all("seq" not in d for d in deltas)  # not part of the conversation's stream


async def test_an_openai_compatible_provider_streams_the_reply(
    serve: Serve, model: ModelServer
) -> None:
    server = await _openai_gateway(serve)
    team = await new_team(server, 1)
    (user,) = team.people
    status, first = await team.call("POST", CHAT, user, {"message": "Hi"})
    assert status == 200, first
    assert first["response"] == REPLY
    body = {"message": "Tell me more", "conversation_id": first["conversation_id"]}
    async with open_chat_stream(server, team, user, body) as stream:
        frames = await stream.events()
    outputs = [f.json()["data"]["chunk"] for f in frames if f.event == "output"]
    assert "".join(outputs) == REPLY
    assert frames[-1].json()["data"]["status"] == "succeeded"
    request, headers = model.requests[-1]
    assert (request["model"], request["stream"]) == ("test-model", True)
    assert request["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": REPLY},
        {"role": "user", "content": "Tell me more"},
    ]
    assert headers["Authorization"] == "Bearer sk-test"


async def test_a_provider_error_fails_the_job_with_a_clear_error(
    serve: Serve, model: ModelServer
) -> None:
    server = await _openai_gateway(serve)
    team = await new_team(server, 1)
    (user,) = team.people
    status, problem = await team.call("POST", CHAT, user, {"message": "Hi [fail]"})
    assert (status, problem["code"]) == (502, "agent_reply_failed"), problem
    assert "agent_provider_failed" in problem["detail"]
    status, job = await team.call("GET", f"{JOBS}/{problem['job_id']}", user)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "agent_provider_failed"
    assert "500" in job["error"]["message"] and "the model is overloaded" in job["error"]["message"]
    conversation_id = problem["conversation_id"]
    assert await _messages(team, user, conversation_id) == [(user.user_id, "Hi [fail]")]


async def test_an_empty_reply_fails_the_job(serve: Serve, model: ModelServer) -> None:
    server = await _openai_gateway(serve)
    team = await new_team(server, 1)
    (user,) = team.people
    status, problem = await team.call("POST", CHAT, user, {"message": "Hello? [empty]"})
    assert (status, problem["code"]) == (502, "agent_reply_failed"), problem
    assert "agent_empty_reply" in problem["detail"]


async def test_cancelling_mid_reply_commits_nothing(serve: Serve, model: ModelServer) -> None:
    server = await _openai_gateway(serve)
    team = await new_team(server, 1)
    (user,) = team.people
    async with open_chat_stream(server, team, user, {"message": "Go on [hold]"}) as stream:
        job_url = stream.response.headers["Location"]
        conversation_id = stream.response.headers["X-Conversation-Id"]
        while (frame := await stream.next()) is not None and frame.event != "output":
            pass
        assert frame is not None and frame.json()["data"]["chunk"] == ModelServer.PIECES[0]
        status, job = await team.call("POST", f"{job_url}/cancel", user)
        assert status == 200, job
        rest = await stream.events()
    assert rest[-1].json()["data"]["status"] == "cancelled"
    assert await _messages(team, user, conversation_id) == [(user.user_id, "Go on [hold]")]


async def test_chat_answers_409_when_the_reply_is_cancelled_while_it_waits(
    serve: Serve, model: ModelServer
) -> None:
    server = await _openai_gateway(serve)
    team = await new_team(server, 1)
    (user,) = team.people
    model.asked.clear()
    asking = asyncio.create_task(team.call("POST", CHAT, user, {"message": "Slowly [hold]"}))
    await model.asked.wait()
    status, jobs = await team.call("GET", f"{JOBS}?kind=agent.reply", user)
    (job,) = jobs["items"]
    status, cancelled = await team.call("POST", f"{JOBS}/{job['id']}/cancel", user)
    assert status == 200, cancelled
    status, problem = await asking
    assert (status, problem["code"]) == (409, "agent_reply_cancelled"), problem
    assert problem["job_id"] == job["id"]


async def test_chat_answers_202_with_the_job_when_the_wait_is_over(serve: Serve) -> None:
    server = await serve(agent_wait_seconds=0)
    team = await new_team(server, 1)
    (user,) = team.people
    status, accepted = await team.call("POST", CHAT, user, {"message": "Take your time"})
    assert status == 202, accepted
    assert accepted["status_url"] == f"{JOBS}/{accepted['job_id']}"
    events = await until_final(server, team, user, accepted["job_id"])
    assert events[-1]["data"]["status"] == "succeeded"


async def test_bad_input_is_422_naming_the_field(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    (user,) = team.people
    for body, field, code in [
        ({}, "message", "validation_failed"),
        ({"message": "   "}, "message", "body_empty"),
        ({"message": "x" * 20_000}, "message", "body_too_large"),
        ({"message": "Hi", "conversation_id": "nope"}, "conversation_id", "validation_failed"),
        ({"message": "Hi", "agent_type": "triage"}, "agent_type", "validation_failed"),
    ]:
        status, problem = await team.call("POST", CHAT, user, body)
        assert (status, problem["code"]) == (422, code), problem
        assert [e["field"] for e in problem["errors"]] == [field], problem
    status, listed = await team.call("GET", f"{CONVERSATIONS}?kind=agent", user)
    assert listed["items"] == []  # nothing was created


async def test_another_users_or_tenants_conversation_is_404(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    owner, other = team.people
    status, answer = await team.call("POST", CHAT, owner, {"message": "Mine"})
    assert status == 200, answer
    theirs = {"message": "Let me in", "conversation_id": answer["conversation_id"]}
    status, problem = await team.call("POST", CHAT, other, theirs)
    assert (status, problem["code"]) == (404, "not_found")
    stranger_team = await new_team(gateway, 1)
    status, problem = await stranger_team.call("POST", CHAT, stranger_team.people[0], theirs)
    assert (status, problem["code"]) == (404, "not_found")
    group = await team.conversation(owner, "group", other)
    body = {"message": "Hi", "conversation_id": group["id"]}
    status, problem = await team.call("POST", CHAT, owner, body)
    assert (status, problem["code"]) == (409, "not_agent_conversation")
    assert len(await _messages(team, owner, answer["conversation_id"])) == 2


async def test_a_reply_job_for_someone_elses_or_a_group_conversation_fails(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 2)
    owner, other = team.people
    status, answer = await team.call("POST", CHAT, owner, {"message": "Private"})
    assert status == 200, answer
    input = {"conversation_id": answer["conversation_id"], "reply_to": answer["message"]["id"]}
    status, job = await submit(team, other, "agent.reply", input)
    assert status == 202, job
    events = await until_final(gateway, team, other, job["id"])
    assert events[-1]["data"]["status"] == "failed"
    assert events[-1]["data"]["error"]["code"] == "not_found"
    assert len(await _messages(team, owner, answer["conversation_id"])) == 2

    group = await team.conversation(owner, "group", other)
    asked = await team.send(owner, group["id"], "Assistant, are you here?")
    input = {"conversation_id": group["id"], "reply_to": asked["id"]}
    status, job = await submit(team, owner, "agent.reply", input)
    assert status == 202, job
    events = await until_final(gateway, team, owner, job["id"])
    assert events[-1]["data"]["error"]["code"] == "not_agent_conversation"


async def test_a_reply_longer_than_a_message_may_be_is_cut_and_says_so(
    serve: Serve, model: ModelServer
) -> None:
    server = await _openai_gateway(serve)
    team = await new_team(server, 1)
    (user,) = team.people
    status, answer = await team.call("POST", CHAT, user, {"message": "Tell it all [long]"})
    assert status == 200, answer
    limit = server.app[SETTINGS].message_max_bytes
    assert answer["response"] == ModelServer.LONG.encode()[:limit].decode(errors="ignore")
    events = await until_final(server, team, user, answer["job_id"])
    logs = [e["data"]["text"] for e in events if e["type"] == "log"]
    assert logs == [f"the reply was cut at {limit} bytes (HUBBUB_MESSAGE_MAX_BYTES)"]
