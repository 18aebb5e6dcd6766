"""Jobs on a multi-node Ray cluster: handlers run on more than one node, and a
running job outlives the gateway that launched it.

The cluster is real and of these tests' own (``tests/support/ray_nodes.py``):
a head node labelled ``hubbub-role=gateway`` with no CPUs, through which the
gateway attaches, and worker nodes with one ``hubbub-test-slot`` each. The
gateway is a real ``hubbub serve`` joining it with ``HUBBUB_RAY_ADDRESS``.
Select these tests with ``pytest -m cluster`` (or leave them out with
``-m "not cluster"``): starting the nodes takes a while.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from hubbub.config import Settings
from hubbub.storage.database import connect_owner
from tests.conftest import REPO_ROOT
from tests.support.chat import Team, new_team
from tests.support.cluster_jobs import SLOT
from tests.support.jobs import open_stream, submit, until_final
from tests.support.processes import Gateway
from tests.support.ray_nodes import ClusterNode, RayCluster

pytestmark = pytest.mark.cluster

WORKER_NODES = 2
#: ``ray start`` options of a worker node: one slot, and a CPU for shard and job processes.
WORKER = ("--num-cpus=1", f"--resources={json.dumps({SLOT: 1})}", "--labels=hubbub-role=worker")


@pytest.fixture(scope="module")
def ray_nodes() -> Iterator[RayCluster]:
    """The cluster; its Ray workers import ``tests.support`` from the repository."""
    cluster = RayCluster({"PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT)
    try:
        cluster.start_head("--num-cpus=0", "--labels=hubbub-role=gateway")
        for _ in range(WORKER_NODES):
            cluster.add_node(*WORKER)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def roles(ray_nodes: RayCluster) -> dict[str, str]:
    """Node id → ``hubbub-role`` label, of every node of the cluster as Ray lists them."""
    nodes: list[ClusterNode] = ray_nodes.nodes()
    assert len(nodes) == WORKER_NODES + 1 and all(node.alive for node in nodes)
    return {node.id: node.labels["hubbub-role"] for node in nodes}


class Deployment:
    """Owns: the ``hubbub serve`` process of the cluster, one after another."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self._env = env
        self._logs = logs
        self._started = 0
        self.gateway: Gateway | None = None
        self.ready: dict[str, Any] = {}  # the readiness report of the running gateway

    async def start(self) -> Gateway:
        self._started += 1
        self.gateway = Gateway(self._env, self._logs / f"gateway-{self._started}.log").start()
        self.ready = await self.gateway.wait_ready()
        return self.gateway

    async def restart(self, signum: int) -> Gateway:
        """Stop the gateway with ``signum`` (SIGKILL: no clean-up at all), then start another."""
        assert self.gateway is not None
        if signum == signal.SIGKILL:
            self.gateway.kill()
        else:
            assert await self.gateway.stop(signum) == 0, self.gateway.log_tail()
        return await self.start()

    async def close(self) -> None:
        if self.gateway is not None:
            try:
                await self.gateway.stop(signal.SIGTERM)
            finally:
                self.gateway.kill()  # if it did not stop by itself


@pytest.fixture(scope="module")
async def deployment(
    migrated: Settings, ray_nodes: RayCluster, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    """A gateway on the cluster, with the test session's Postgres server and
    Redis but a database of its own: a deployment's shards and job sweep own
    their database (this one's shards would fence the session's out)."""
    assert migrated.database_url and migrated.redis_url
    logs = tmp_path_factory.mktemp("cluster-gateways")
    env = {
        **ray_nodes.driver_env,
        "HUBBUB_DATABASE_URL": await _new_database(migrated.database_url),
        "HUBBUB_REDIS_URL": migrated.redis_url,
        "HUBBUB_RAY_ADDRESS": ray_nodes.address,
        "HUBBUB_RAY_NAMESPACE": f"hubbub-cluster-{uuid.uuid4().hex[:8]}",
        "HUBBUB_SHARDS": "1",
        "HUBBUB_PLUGINS": "tests.support.cluster_jobs",
        "HUBBUB_DATA_DIR": str(logs / "data"),
        "HUBBUB_LOG_FORMAT": "console",
        "HUBBUB_SSE_HEARTBEAT_SECONDS": "5",
        "PYTHONPATH": str(REPO_ROOT),
    }
    running = Deployment(env, logs)
    try:
        await running.start()
        yield running
    finally:
        await running.close()


async def _new_database(url: str) -> str:
    """The URL of a new, empty database beside ``url``'s (``hubbub serve`` migrates it)."""
    name = f"hubbub_cluster_{uuid.uuid4().hex[:8]}"
    conn = await connect_owner(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    given = URL(url)
    return str(given.with_path(f"/{name}").with_query(given.query))


async def _where(team: Team, release: Path) -> str:
    """Submit a ``test.where`` job held until ``release`` exists; its id."""
    status, job = await submit(team, team.people[0], "test.where", {"release": str(release)})
    assert status == 202, job
    return job["id"]


async def _follow(team: Team, job_id: str, holding: asyncio.Queue[str]) -> list[dict[str, Any]]:
    """Every event of the job to its final status; its id into ``holding`` once it holds."""
    async with open_stream(team.server, team, team.people[0], job_id) as stream:
        frames = await stream.until_event("step")
        holding.put_nowait(job_id)
        return [frame.json() for frame in frames + await stream.events()]


def _result(events: list[dict[str, Any]]) -> dict[str, Any]:
    final = events[-1]
    assert final["type"] == "status" and final["data"]["status"] == "succeeded", final
    return final["data"]["result"]


async def test_jobs_held_at_once_run_on_different_worker_nodes(
    deployment: Deployment, roles: dict[str, str], tmp_path: Path
) -> None:
    assert deployment.gateway is not None
    team = await new_team(deployment.gateway.server, 1)
    release = tmp_path / "release"
    jobs = [await _where(team, release) for _ in range(2 * WORKER_NODES)]
    holding: asyncio.Queue[str] = asyncio.Queue()
    followers = asyncio.gather(*(_follow(team, job_id, holding) for job_id in jobs))

    # One slot per worker node: as many jobs as nodes can hold at once, the rest wait.
    held = {await asyncio.wait_for(holding.get(), 120) for _ in range(WORKER_NODES)}
    release.touch()
    streams = dict(zip(jobs, await asyncio.wait_for(followers, 120), strict=True))

    nodes = {job_id: _result(events)["node_id"] for job_id, events in streams.items()}
    assert len({nodes[job_id] for job_id in held}) == WORKER_NODES  # a node each
    assert [roles.get(node) for node in nodes.values()] == ["worker"] * len(jobs)
    assert roles[deployment.ready["checks"]["ray"]["node_id"]] == "gateway"  # none ran there


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_a_running_job_finishes_after_its_gateway_restarts(
    deployment: Deployment, roles: dict[str, str], tmp_path: Path, signum: int
) -> None:
    assert deployment.gateway is not None
    team = await new_team(deployment.gateway.server, 1)
    release = tmp_path / "release"
    job_id = await _where(team, release)
    async with open_stream(team.server, team, team.people[0], job_id) as stream:
        seen = [frame.json() for frame in await stream.until_event("step")]

    # The job's task belongs to the deployment's detached launcher actor, not to
    # the gateway: it keeps running while no gateway is up at all.
    gateway = await deployment.restart(signum)
    release.touch()
    events = await until_final(gateway.server, team, team.people[0], job_id)

    assert events[: len(seen)] == seen  # the new gateway replays what the old one sent
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert roles.get(_result(events)["node_id"]) == "worker"
    # Ran once: the new gateway's sweep found the task alive in the launcher and
    # neither failed the job as lost nor launched it again.
    runs = [e for e in events if e["type"] == "status" and e["data"]["status"] == "running"]
    assert [run["data"]["attempt"] for run in runs] == [1]
