"""Processes SIGKILLed under a steady load of chat sends and job progress: a
conversation shard, a job shard and the Ray worker running the job's
handler. After each: no acked message or stored job event lost, none
delivered twice, all in order, readiness 200, and the same clients (no
gateway restart) sending and receiving again.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import pytest
import ray
from aiohttp.test_utils import TestServer

from hubbub.actors.router import shard_index
from hubbub.config import Settings
from hubbub.services import ROUTER
from tests.support.chat import new_team
from tests.support.faults import Measured, Scenario, metric_total, until_readiness
from tests.support.job_load import attempts_output

pytestmark = pytest.mark.chaos

#: The gateway's count of router calls a shard failed as a whole (dead or restarting).
ROUTER_FAILURES = "hubbub_router_call_failures_total"


def _url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def _scenario(gateway: TestServer, settings: Settings) -> Scenario:
    team = await new_team(gateway, 3)
    url = _url(gateway)
    assert settings.database_url is not None
    return await Scenario.start(team, settings.database_url, [[url], [url]], [url], [url])


async def _shard_pid(gateway: TestServer, kind: str, key: str) -> tuple[int, int]:
    """``(pid, epoch)`` of the shard process hosting ``key`` of ``kind``, once
    it answers (a restarting actor is waited for)."""
    shards = gateway.app[ROUTER].shards(kind)
    async with asyncio.timeout(60):
        while True:
            try:
                stats = await shards[shard_index(key, len(shards))].stats()
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                await asyncio.sleep(0.1)
                continue
            return stats["pid"], stats["epoch"]


async def _kill_shard(
    gateway: TestServer, migrated: Settings, kind: str, record: Callable[[Measured], None]
) -> None:
    scenario = await _scenario(gateway, migrated)
    try:
        await scenario.warm()
        key = scenario.chat.conversation_id if kind == "conversation" else scenario.job.job_id
        pid, epoch = await _shard_pid(gateway, kind, key)
        failures = await metric_total(_url(gateway), ROUTER_FAILURES, kind=kind)
        scenario.fault()
        os.kill(pid, signal.SIGKILL)
        await scenario.recovered()
        after = await _shard_pid(gateway, kind, key)
        assert after[0] != pid and after[1] > epoch  # a new process, a new lease
        await until_readiness(_url(gateway), 200)
        if kind == "conversation":  # the gateway's router sends; a job's worker reports
            assert await metric_total(_url(gateway), ROUTER_FAILURES, kind=kind) > failures
        record(await scenario.verdict(f"SIGKILL the {kind} shard"))
    finally:
        await scenario.close()


async def test_a_killed_conversation_shard_loses_and_repeats_nothing(
    gateway: TestServer, migrated: Settings, record: Callable[[Measured], None]
) -> None:
    await _kill_shard(gateway, migrated, "conversation", record)


async def test_a_killed_job_shard_loses_and_repeats_nothing(
    gateway: TestServer, migrated: Settings, record: Callable[[Measured], None]
) -> None:
    await _kill_shard(gateway, migrated, "job", record)


async def test_a_killed_job_worker_is_retried_and_its_stream_goes_on(
    gateway: TestServer, migrated: Settings, record: Callable[[Measured], None]
) -> None:
    scenario = await _scenario(gateway, migrated)
    try:
        await scenario.warm()
        [pid_log] = [e for e in scenario.job.events if e.type == "log"]
        scenario.fault()
        os.kill(int(pid_log.data["text"].removeprefix("pid ")), signal.SIGKILL)
        await scenario.recovered()
        await scenario.job.until(lambda job: len(attempts_output(job.events)) == 2)
        await until_readiness(_url(gateway), 200)
        measured = await scenario.verdict("SIGKILL the job's worker")
        statuses = [e.data for e in scenario.job.events if e.type == "status"]
        retrying = next(s for s in statuses if s["status"] == "retrying")
        assert retrying["error"]["code"] == "worker_lost"
        assert statuses[-1]["status"] == "cancelled"
        record(measured)
    finally:
        await scenario.close()
