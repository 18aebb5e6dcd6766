"""Workflows for tests: one that holds until cancelled, and calls of the
workflow routes through a team, including ``run-stream`` read as SSE.

Importing this module declares the test workflow in this process (the test
gateways run here); Ray workers import it by name to run it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from hubbub.jobs.registry import Policy
from hubbub.workflows.declaration import Stage, Step, WorkflowRun, workflow
from tests.support.chat import Team
from tests.support.jobs import LIGHT, NoInput, SseStream
from tests.support.tenants import Account

__all__ = ["WORKFLOWS", "flaky", "hold", "run", "run_stream"]

WORKFLOWS = "/api/v1/workflows"

HOLD_STAGES = (
    Stage("wait", "Wait", "Wait to be cancelled.", (Step("begin", "Begin"), Step("hold", "Hold"))),
    Stage("after", "After", "Never reached.", (Step("end", "End"),)),
)


@workflow("test-hold", NoInput, title="Hold", stages=HOLD_STAGES, resources=LIGHT)
async def hold(run: WorkflowRun, input: NoInput) -> None:
    """Enter wait.begin, then wait.hold until cancelled."""
    run.enter("wait", "begin")
    run.enter("wait", "hold")
    while True:  # a slice of work, then a look at the flag
        run.context.raise_if_cancelled()
        await asyncio.sleep(0.01)


FLAKY_STAGES = (Stage("one", "One", "", (Step("a", "A"), Step("b", "B"))),)


@workflow(
    "test-flaky",
    NoInput,
    title="Flaky",
    stages=FLAKY_STAGES,
    resources=LIGHT,
    policy=Policy(max_attempts=2, backoff_seconds=0),
)
async def flaky(run: WorkflowRun, input: NoInput) -> str:
    """Enter one.a and one.b and break on the first attempt; enter one.a and
    succeed on the second (so one.b is skipped in the run that counts)."""
    run.enter("one", "a")
    if run.context.attempt == 1:
        run.enter("one", "b")
        raise RuntimeError("the first attempt breaks")
    return "second time lucky"


async def run(
    team: Team, who: Account, key: str, input: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """``(status, body)`` of ``POST /workflows/{key}/run``."""
    return await team.call("POST", f"{WORKFLOWS}/{key}/run", who, {"input": input or {}})


@asynccontextmanager
async def run_stream(
    team: Team, who: Account, key: str, input: dict[str, Any]
) -> AsyncIterator[tuple[aiohttp.ClientResponse, SseStream]]:
    """``POST /workflows/{key}/run-stream``: its response and, read as SSE, its frames."""
    headers = {"X-Tenant-Id": team.tenant_id, "Authorization": f"Bearer {who.token}"}
    url = team.server.make_url(f"{WORKFLOWS}/{key}/run-stream")
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.post(url, json={"input": input}, headers=headers) as response,
    ):
        yield response, SseStream(response)
