"""Workflows, built on jobs, through a real gateway, job shards and Ray
workers: the list and descriptors of registered workflows; a run is a job
that moves through its declared stages and steps; run-stream answers the
run's job events to the final status; runs are listed and read with each
step's status; a running run is cancelled; unknown workflows answer 404,
bad input 422 naming the field, another tenant's run 404; API keys work as
on the tenant's own routes. Below them, the pure rules: declarations are
checked, and a run's step events become step statuses."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from pydantic import BaseModel

from hubbub.jobs.commands import ProgressReport, StepReport
from hubbub.jobs.context import JobContext
from hubbub.workflows.declaration import Stage, Step, Workflow, WorkflowRun, workflow
from hubbub.workflows.progress import Entered, stages
from tests.support.chat import Team, new_team
from tests.support.jobs import JOBS, open_stream, submit, until_final
from tests.support.tenants import call
from tests.support.workflows import WORKFLOWS, run, run_stream
from tests.test_api_keys import new_key, pro_tenant

RUNS = f"{WORKFLOWS}/runs"
TEXT = (
    "Ray shards host entities.  Each entity owns its state. "
    "Shards batch entity commands and commit them to Postgres! "
    "The gateway fans events out."
)
SUMMARIZE_STEPS = [
    "prepare.normalize",
    "prepare.split",
    "analyze.count",
    "analyze.keywords",
    "compose.select",
    "compose.assemble",
]


async def _runs_of(conn: asyncpg.Connection, tenant_id: str) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM jobs WHERE tenant_id = $1", uuid.UUID(tenant_id)
    )


def _steps(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["name"] for e in events if e["type"] == "step"]


# -- descriptors ------------------------------------------------------------


async def test_workflows_are_listed_with_their_stage_and_step_descriptors(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    status, listed = await team.call("GET", WORKFLOWS, owner)
    assert status == 200, listed
    by_key = {item["key"]: item for item in listed["items"]}
    summary = by_key["summarize"]
    assert {name: summary[name] for name in summary if name != "stages"} == {
        "key": "summarize",
        "title": "Summarise a text",
        "description": "An extractive summary of a text with its keywords and counts.",
        "kind": "workflow.summarize",
        "stage_count": 3,
        "step_count": 6,
    }
    assert [stage["key"] for stage in summary["stages"]] == ["prepare", "analyze", "compose"]
    status, found = await team.call("GET", f"{WORKFLOWS}/summarize", owner)
    assert status == 200, found
    assert found == summary | {"input_schema": found["input_schema"]}
    assert found["stages"][0] == {
        "key": "prepare",
        "title": "Prepare",
        "description": "Make the text regular and cut it into sentences.",
        "steps": [
            {"key": "normalize", "title": "Normalise", "description": "Collapse whitespace."},
            {"key": "split", "title": "Split", "description": "Cut the text into sentences."},
        ],
    }
    assert found["input_schema"]["required"] == ["text"]
    assert set(found["input_schema"]["properties"]) == {"text", "sentences", "keywords", "pause_ms"}


async def test_an_unknown_workflow_answers_404_and_runs_nothing(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    for method, path in [
        ("GET", f"{WORKFLOWS}/no-such-flow"),
        ("POST", f"{WORKFLOWS}/no-such-flow/run"),
        ("POST", f"{WORKFLOWS}/no-such-flow/run-stream"),
    ]:
        status, problem = await team.call(method, path, owner, {"input": {}})
        assert (status, problem["code"]) == (404, "not_found"), (path, problem)
    status, problem = await team.call("GET", f"{WORKFLOWS}/Not A Key", owner)
    assert (status, problem["errors"][0]["field"]) == (422, "workflow_key")
    assert await _runs_of(owner_conn, team.tenant_id) == 0


# -- runs -------------------------------------------------------------------


async def test_a_run_is_a_job_that_moves_through_its_stages_and_succeeds(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    status, started = await run(team, owner, "summarize", {"text": TEXT, "sentences": 2})
    assert status == 202, started
    run_id = started["id"]
    assert started == {
        "id": run_id,
        "workflow_key": "summarize",
        "status": "queued",
        "stream_url": f"{JOBS}/{run_id}/stream",
        "status_url": f"{RUNS}/{run_id}",
    }
    events = await until_final(gateway, team, owner, run_id)
    assert _steps(events) == SUMMARIZE_STEPS
    result = {
        "summary": "Ray shards host entities. Shards batch entity commands and commit them "
        "to Postgres!",
        "keywords": ["entity", "shards", "batch", "commands", "commit"],
        "sentences": 4,
        "words": 23,
    }
    assert events[-1]["data"] == {"status": "succeeded", "result": result}

    status, job = await team.call("GET", f"{JOBS}/{run_id}", owner)
    assert (status, job["kind"], job["result"]) == (200, "workflow.summarize", result)
    status, found = await team.call("GET", f"{RUNS}/{run_id}", owner)
    assert status == 200, found
    assert (found["status"], found["result"], found["error"]) == ("succeeded", result, None)
    assert (found["current_stage"], found["current_step"]) == ("compose", "assemble")
    assert found["progress"] == 100
    assert found["last_seq"] == events[-1]["seq"]
    assert [(s["key"], s["status"]) for s in found["stages"]] == [
        ("prepare", "succeeded"),
        ("analyze", "succeeded"),
        ("compose", "succeeded"),
    ]
    steps = [step for stage in found["stages"] for step in stage["steps"]]
    assert {step["status"] for step in steps} == {"succeeded"}
    assert all(step["started_at"] and step["finished_at"] for step in steps)
    # Each step ends when the next begins; the last when the run does.
    ends = [step["finished_at"] for step in steps[:-1]]
    assert ends == [step["started_at"] for step in steps[1:]]
    assert steps[-1]["finished_at"] == found["finished_at"]


async def test_a_retried_run_shows_the_steps_of_its_latest_attempt(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, started = await run(team, owner, "test-flaky")
    events = await until_final(gateway, team, owner, started["id"])
    assert _steps(events) == ["one.a", "one.b", "one.a"]
    assert events[-1]["data"] == {"status": "succeeded", "result": "second time lucky"}
    status, found = await team.call("GET", f"{RUNS}/{started['id']}", owner)
    assert (status, found["status"]) == (200, "succeeded"), found
    steps = found["stages"][0]["steps"]
    assert [(s["key"], s["status"]) for s in steps] == [("a", "succeeded"), ("b", "skipped")]


async def test_run_stream_shows_the_steps_in_order_and_ends_with_the_final_status(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    async with run_stream(team, owner, "summarize", {"text": TEXT}) as (response, stream):
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        frames = await stream.events()
        location = response.headers["Location"]
    events = [frame.json() for frame in frames]
    run_id = events[0]["job_id"]
    assert location == f"{RUNS}/{run_id}"
    assert [int(frame.id or 0) for frame in frames] == list(range(1, len(frames) + 1))
    assert [frame.event for frame in frames] == [e["type"] for e in events]
    assert events[0]["data"] == {"status": "queued"}
    assert _steps(events) == SUMMARIZE_STEPS
    assert (events[-1]["type"], events[-1]["data"]["status"]) == ("status", "succeeded")
    status, found = await team.call("GET", location, owner)
    assert (status, found["status"]) == (200, "succeeded")


async def test_run_stream_refuses_bad_input_before_streaming(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    async with run_stream(team, team.people[0], "summarize", {"text": ""}) as (response, _):
        problem = await response.json(content_type=None)
    assert (response.status, problem["code"]) == (422, "validation_failed")
    assert [e["field"] for e in problem["errors"]] == ["input.text"]


async def test_bad_input_answers_422_naming_the_field_and_runs_nothing(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    cases = [
        ({}, "input.text"),
        ({"text": TEXT, "sentences": 0}, "input.sentences"),
        ({"text": TEXT, "tone": "dry"}, "input.tone"),
    ]
    for value, field in cases:
        status, problem = await run(team, owner, "summarize", value)
        assert (status, problem["code"]) == (422, "validation_failed"), problem
        assert [e["field"] for e in problem["errors"]] == [field], problem
    path = f"{WORKFLOWS}/summarize/run"
    status, problem = await team.call("POST", path, owner, {"input": {}, "extra": 1})
    assert (status, problem["errors"][0]["field"]) == (422, "extra")
    assert await _runs_of(owner_conn, team.tenant_id) == 0


async def test_the_same_idempotency_key_gives_the_same_run(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    path, body = f"{WORKFLOWS}/summarize/run", {"input": {"text": TEXT}}
    headers = {"X-Tenant-Id": team.tenant_id, "Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    first = await call(gateway, "POST", path, owner.token, body, **headers)
    again = await call(gateway, "POST", path, owner.token, body, **headers)
    assert first[0] == again[0] == 202 and first[1]["id"] == again[1]["id"]
    headers["Idempotency-Key"] = ""
    status, problem = await call(gateway, "POST", path, owner.token, body, **headers)
    assert (status, problem["errors"][0]["field"]) == (422, "Idempotency-Key")


async def test_runs_are_listed_newest_first_by_workflow_and_status(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, first = await run(team, owner, "summarize", {"text": TEXT})
    await until_final(gateway, team, owner, first["id"])
    _, held = await run(team, owner, "test-hold")
    _, plain = await submit(team, owner, "demo.count", {"to": 1})  # a job, not a run

    async def listed(query: str = "") -> tuple[list[str], str | None]:
        status, page = await team.call("GET", f"{RUNS}{query}", owner)
        assert status == 200, page
        return [item["id"] for item in page["items"]], page["next_cursor"]

    assert await listed() == ([held["id"], first["id"]], None)
    ids, cursor = await listed("?limit=1")
    assert ids == [held["id"]] and cursor
    assert await listed(f"?limit=1&cursor={cursor}") == ([first["id"]], None)
    assert await listed("?workflow_key=summarize") == ([first["id"]], None)
    assert await listed("?status=succeeded") == ([first["id"]], None)
    assert await listed("?workflow_key=no-such-flow") == ([], None)
    status, page = await team.call("GET", RUNS, owner)
    item = page["items"][1]
    assert item["workflow_key"] == "summarize" and item["status"] == "succeeded"
    assert (item["current_stage"], item["current_step"]) == ("compose", "assemble")
    status, problem = await team.call("GET", f"{RUNS}?status=sleeping", owner)
    assert (status, problem["errors"][0]["field"]) == (422, "status")
    status, problem = await team.call("GET", f"{RUNS}/{plain['id']}", owner)
    assert (status, problem["code"]) == (404, "not_found")
    await team.call("POST", f"{RUNS}/{held['id']}/cancel", owner)


async def test_cancelling_a_running_run_stops_it_in_its_step(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    owner, member = team.people
    _, started = await run(team, owner, "test-hold")
    run_id = started["id"]
    async with open_stream(gateway, team, owner, run_id) as stream:
        seen: list[dict[str, Any]] = []
        while "wait.hold" not in _steps(seen):
            seen.extend(frame.json() for frame in await stream.until(len(seen) + 1))
        status, found = await team.call("GET", f"{RUNS}/{run_id}", owner)
        assert (status, found["status"], found["current_step"]) == (200, "running", "hold")
        assert [(s["key"], s["status"]) for s in found["stages"]] == [
            ("wait", "running"),
            ("after", "pending"),
        ]
        status, problem = await team.call("POST", f"{RUNS}/{run_id}/cancel", member)
        assert (status, problem["code"]) == (403, "insufficient_role")
        status, found = await team.call("POST", f"{RUNS}/{run_id}/cancel", owner)
        assert (status, found["status"], found["cancel_requested"]) == (200, "running", True)
        rest = [frame.json() for frame in await stream.events()]
    assert rest[-1]["data"] == {"status": "cancelled"}
    status, found = await team.call("GET", f"{RUNS}/{run_id}", owner)
    assert (status, found["status"]) == (200, "cancelled")
    wait, after = found["stages"]
    assert [(s["key"], s["status"]) for s in wait["steps"]] == [
        ("begin", "succeeded"),
        ("hold", "cancelled"),
    ]
    assert (wait["status"], after["status"]) == ("cancelled", "skipped")
    status, problem = await team.call("POST", f"{RUNS}/{run_id}/cancel", owner)
    assert (status, problem["code"]) == (409, "job_finished")


async def test_another_tenants_run_is_not_found_on_every_route(gateway: TestServer) -> None:
    ours, theirs = await new_team(gateway, 1), await new_team(gateway, 1)
    _, started = await run(theirs, theirs.people[0], "test-hold")
    one = f"{RUNS}/{started['id']}"
    stranger = ours.people[0]
    for method, path in [("GET", one), ("POST", f"{one}/cancel")]:
        status, problem = await ours.call(method, path, stranger)
        assert (status, problem["code"]) == (404, "not_found"), (path, problem)
    status, page = await ours.call("GET", RUNS, stranger)
    assert (status, page["items"]) == (200, [])
    status, _ = await ours.call("GET", one, stranger, tenant=theirs.tenant_id)
    assert status == 404
    status, found = await theirs.call("POST", f"{one}/cancel", theirs.people[0])
    assert status == 200, found


async def test_api_keys_run_and_read_as_on_the_tenants_own_routes(gateway: TestServer) -> None:
    owner, tenant = await pro_tenant(gateway)
    team = Team(gateway, tenant["id"], [owner])
    writer = await new_key(gateway, tenant["id"], owner, ["write"])
    reader = await new_key(gateway, tenant["id"], owner, ["read"])

    async def keyed(method: str, path: str, key: str, json: Any = None) -> tuple[int, Any]:
        return await call(gateway, method, path, json=json, **{"X-API-Key": key["key"]})

    body = {"input": {"text": TEXT}}
    status, started = await keyed("POST", f"{WORKFLOWS}/summarize/run", writer, body)
    assert status == 202, started
    await until_final(gateway, team, owner, started["id"])
    status, found = await keyed("GET", f"{RUNS}/{started['id']}", reader)
    assert (status, found["status"], found["created_by"]) == (200, "succeeded", writer["id"])
    status, listed = await keyed("GET", WORKFLOWS, reader)
    assert status == 200 and listed["items"]
    status, problem = await keyed("POST", f"{WORKFLOWS}/summarize/run", reader, body)
    assert (status, problem["code"]) == (403, "insufficient_scope")


async def test_workflow_routes_are_in_the_openapi_document(gateway: TestServer) -> None:
    status, document = await call(gateway, "GET", "/openapi.json")
    assert status == 200
    paths = document["paths"]
    assert set(paths[WORKFLOWS]) == {"get"}
    assert set(paths[f"{WORKFLOWS}/{{workflow_key}}/run-stream"]) == {"post"}
    assert set(paths[f"{RUNS}/{{run_id}}/cancel"]) == {"post"}
    assert paths[RUNS]["get"]["security"] == [{"bearer": []}, {"api_key": []}]


# -- pure -------------------------------------------------------------------


class _Nothing(BaseModel):
    pass


ONE_STAGE = (Stage("only", "Only", steps=(Step("a", "A"),)),)


@pytest.mark.parametrize(
    ("key", "stages_"),
    [
        ("Bad Key", ONE_STAGE),
        ("runs", ONE_STAGE),
        ("empty", ()),
        ("no-steps", (Stage("only", "Only"),)),
        ("twice", (*ONE_STAGE, *ONE_STAGE)),
        ("dotted", (Stage("a.b", "A"),)),
    ],
)
def test_malformed_declarations_are_refused(key: str, stages_: tuple[Stage, ...]) -> None:
    with pytest.raises(ValueError):
        workflow(key, _Nothing, title="T", stages=stages_)(_noop)


def test_a_workflow_handler_must_be_async() -> None:
    def plain(run: WorkflowRun, input: _Nothing) -> None: ...

    with pytest.raises(TypeError):
        workflow("plain", _Nothing, title="T", stages=ONE_STAGE)(plain)  # type: ignore[arg-type]


def test_entering_an_undeclared_step_is_refused() -> None:
    flow = Workflow("w", "W", "", ONE_STAGE)
    run_ = WorkflowRun(JobContext("job", 1), flow)
    with pytest.raises(ValueError):
        run_.enter("only", "b")
    run_.enter("only", "a")
    assert run_.context.take() == [StepReport("only.a"), ProgressReport(0.0)]


TWO = Workflow(
    "w",
    "W",
    "",
    (
        Stage("s", "S", steps=(Step("a", "A"), Step("b", "B"))),
        Stage("t", "T", steps=(Step("c", "C"),)),
    ),
)


def _job(status: str) -> dict[str, Any]:
    return {"status": status, "finished_at": "9" if status in ("failed", "succeeded") else None}


def _statuses(job_status: str, *names: str) -> list[tuple[str, list[str]]]:
    entered = [Entered(name, str(n)) for n, name in enumerate(names)]
    views = stages(TWO, _job(job_status), entered)
    return [(v["status"], [s["status"] for s in v["steps"]]) for v in views]


@pytest.mark.parametrize(
    ("job_status", "names", "expected"),
    [
        ("queued", (), [("pending", ["pending", "pending"]), ("pending", ["pending"])]),
        ("running", ("s.a",), [("running", ["running", "pending"]), ("pending", ["pending"])]),
        (
            "running",
            ("s.a", "t.c"),
            [("succeeded", ["succeeded", "skipped"]), ("running", ["running"])],
        ),
        (
            "succeeded",
            ("s.a", "s.b", "t.c"),
            [("succeeded", ["succeeded"] * 2), ("succeeded", ["succeeded"])],
        ),
        ("failed", ("s.a",), [("failed", ["failed", "skipped"]), ("skipped", ["skipped"])]),
        (
            "running",
            ("x.y", "s.b"),
            [("running", ["skipped", "running"]), ("pending", ["pending"])],
        ),
    ],
)
def test_step_events_become_step_statuses(
    job_status: str, names: tuple[str, ...], expected: list[tuple[str, list[str]]]
) -> None:
    assert _statuses(job_status, *names) == expected


def test_a_step_ends_when_the_next_begins() -> None:
    entered = [Entered("s.a", "1"), Entered("s.b", "2"), Entered("t.c", "3")]
    steps = [s for v in stages(TWO, _job("succeeded"), entered) for s in v["steps"]]
    assert [(s["started_at"], s["finished_at"]) for s in steps] == [
        ("1", "2"),
        ("2", "3"),
        ("3", "9"),
    ]


async def _noop(run: WorkflowRun, input: _Nothing) -> None:
    return None
