"""One gateway of two SIGKILLed under load: two real ``hubbub serve``
processes share the suite's Postgres, Redis and Ray; the clients on the
killed one — a sender, the conversation's listener and the job's SSE
reader — reconnect to the other and resume from the seq they hold
(``since_seq``, ``Last-Event-ID``), losing and repeating nothing, while the
survivor stays ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from hubbub.config import Settings
from tests.support.chat import new_team
from tests.support.faults import Measured, Scenario, until_readiness
from tests.support.processes import Gateway
from tests.test_gateway import _cluster_env

pytestmark = pytest.mark.chaos

#: A built-in kind (``hubbub serve`` does not know the test kinds), stopped by a cancel.
COUNT = ("demo.count", {"to": 100_000, "pause_ms": 20})


async def test_clients_of_a_killed_gateway_resume_on_the_other(
    ray_cluster: Settings, tmp_path: Path, record: Callable[[Measured], None]
) -> None:
    env = _cluster_env(ray_cluster)
    victim = Gateway(env, tmp_path / "victim.log").start()
    survivor = Gateway(env, tmp_path / "survivor.log").start()
    scenario: Scenario | None = None
    try:
        await asyncio.gather(victim.wait_ready(), survivor.wait_ready())
        team = await new_team(victim.server, 3)
        both, other_first = [victim.url, survivor.url], [survivor.url, victim.url]
        assert ray_cluster.database_url is not None
        scenario = await Scenario.start(
            team, ray_cluster.database_url, [both, other_first], both, both, *COUNT
        )
        await scenario.warm()
        scenario.fault()
        victim.kill()
        await scenario.recovered()
        await until_readiness(survivor.url, 200)
        measured = await scenario.verdict("SIGKILL one gateway of two")
        assert scenario.chat.listener is not None
        assert scenario.chat.listener.socket.reconnects >= 1  # it moved to the survivor
        assert scenario.chat.senders[0].socket.reconnects >= 1
        assert scenario.job.reconnects >= 1
        record(measured)
    finally:
        if scenario is not None:
            await scenario.close()
        victim.kill()
        await survivor.stop()
