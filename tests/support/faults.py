"""Fault tests' common part: a chat load and a job load run together, a fault
marked in time, recovery waited for, then the verdict — what was lost,
repeated or reordered, read against Postgres — and the recovery times.

Recovery times are measured for docs/deployment.md ("Faults and recovery"),
never asserted: a loaded machine makes them vary.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import ray
from prometheus_client.parser import text_string_to_metric_families

from hubbub.storage.database import connect_owner
from tests.support.chat import Team
from tests.support.chat_load import ChatLoad
from tests.support.job_load import CHAOS_COUNT, Followed, JobLoad, attempts_output

__all__ = [
    "Measured",
    "Scenario",
    "kill_namespace",
    "metric_total",
    "readiness",
    "until_readiness",
]

#: Longest wait for readiness to change.
READINESS_SECONDS = 120.0


async def readiness(url: str) -> tuple[int, dict]:
    """``(status, body)`` of ``GET /health/ready``; ``(0, {})`` when nothing answers."""
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{url}/health/ready", timeout=aiohttp.ClientTimeout(total=10)) as response,
        ):
            return response.status, await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError):
        return 0, {}


async def until_readiness(url: str, status: int) -> dict:
    """The readiness report once it answers ``status``."""
    async with asyncio.timeout(READINESS_SECONDS):
        while True:
            found, body = await readiness(url)
            if found == status:
                return body
            await asyncio.sleep(0.1)


async def metric_total(url: str, name: str, **labels: str) -> float:
    """The sum of the ``name`` samples of the gateway's ``/metrics`` (scraped
    from loopback, so no token) whose labels include ``labels``."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    wanted = set(labels.items())
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and wanted <= set(sample.labels.items())
    )


def kill_namespace(namespace: str) -> None:
    """Kill every named actor of a Ray namespace, for good. Blocking."""
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == namespace:
            ray.kill(ray.get_actor(actor["name"], namespace=namespace), no_restart=True)


@dataclass(frozen=True)
class Measured:
    """One fault's row of the results table (seconds; NaN: not measured)."""

    fault: str
    send_recovery: float
    chat_event_recovery: float
    job_event_recovery: float
    acked: int
    job_events: int
    lost: int
    duplicated: int


@dataclass
class Scenario:
    """A chat load and a job load over the same deployment, and one fault."""

    chat: ChatLoad
    job: JobLoad
    database_url: str
    fault_at: float = math.nan
    _chat_known: int = 0
    _job_known: int = 0

    @classmethod
    async def start(
        cls,
        team: Team,
        database_url: str,
        sender_urls: list[list[str]],
        listener_urls: list[str],
        job_urls: list[str],
        job_kind: str = CHAOS_COUNT,
        job_input: dict[str, Any] | None = None,
    ) -> Scenario:
        """Both loads running on ``team``'s new conversation and a new job of
        ``job_kind`` (one the gateways know)."""
        owner, *others = team.people
        found = await team.conversation(owner, "group", *others)
        chat = ChatLoad(found["id"], team.tenant_id, team.people, sender_urls, listener_urls, 1)
        job = JobLoad(job_urls, team.tenant_id, owner, job_kind, job_input or {})
        scenario = cls(chat, job, database_url)
        try:
            await chat.start()
            await job.start()
        except BaseException:
            await scenario.close()
            raise
        return scenario

    async def warm(self) -> None:
        """Until both loads run: acks for every sender, events of a running job."""
        await self.chat.acks_after(-math.inf, 3)
        await self.job.until(lambda job: sum(e.type == "output" for e in job.events) >= 3)

    def fault(self) -> None:
        """Mark now as the fault's moment (call it right before injecting it)."""
        self.fault_at = time.monotonic()
        assert self.chat.listener is not None
        acked = [a.seq for a in self.chat.acked()]
        self._chat_known = max([self.chat.listener.last_seq, *acked])
        self._job_known = self.job.last_seq

    async def recovered(self) -> None:
        """Until sends tried after the fault are acked and new events of both
        streams arrived after it."""
        await self.chat.acks_after(self.fault_at, 2)
        assert self.chat.listener is not None
        await self.chat.listener.until(self._chat_known + 1)
        await self.job.until(lambda job: job.seen_after(self.fault_at, self._job_known))

    async def verdict(self, fault: str) -> Measured:
        """Stop both loads and check them against Postgres; the row for the docs.

        Asserts: every acked message stored once and delivered once, in seq
        order with no gap; every stored job event delivered once, in order;
        each attempt's output gap-free from 1.
        """
        await self.chat.drain()
        events = await self.job.cancel_and_finish()
        chat_lost, chat_duplicated = await self._chat_verdict()
        job_lost, job_duplicated = await self._job_verdict(events)
        measured = Measured(
            fault,
            self._send_recovery(),
            self._chat_event_recovery(),
            self._job_event_recovery(),
            len(self.chat.acked()),
            len(events),
            chat_lost + job_lost,
            chat_duplicated + job_duplicated,
        )
        found = {"chat": (chat_lost, chat_duplicated), "job": (job_lost, job_duplicated)}
        assert (measured.lost, measured.duplicated) == (0, 0), (measured, found)
        return measured

    async def _chat_verdict(self) -> tuple[int, int]:
        assert self.chat.listener is not None
        conn = await connect_owner(self.database_url)
        try:
            rows = await conn.fetch(
                "SELECT id::text, seq, client_msg_id FROM conversation_messages"
                " WHERE conversation_id = $1 ORDER BY seq",
                uuid.UUID(self.chat.conversation_id),
            )
        finally:
            await conn.close()
        stored = {(row["id"], row["seq"]) for row in rows}
        received = self.chat.listener.seqs
        acked = self.chat.acked()
        lost = sum((a.id, a.seq) not in stored for a in acked)
        lost += len({a.seq for a in acked} - set(received))
        duplicated = len(received) - len(set(received))
        duplicated += len(rows) - len({row["client_msg_id"] for row in rows})
        assert received == sorted(received), "the listener got messages out of order"
        assert received == [row["seq"] for row in rows], "the listener missed stored messages"
        return lost, duplicated

    async def _job_verdict(self, events: list[Followed]) -> tuple[int, int]:
        conn = await connect_owner(self.database_url)
        try:
            rows = await conn.fetch(
                "SELECT seq FROM job_events WHERE job_id = $1 ORDER BY seq",
                uuid.UUID(self.job.job_id),
            )
        finally:
            await conn.close()
        seqs = [e.seq for e in events]
        stored = [row["seq"] for row in rows]
        lost = len(set(stored) - set(seqs))
        duplicated = len(seqs) - len(set(seqs))
        assert seqs == sorted(seqs), "the job's reader got events out of order"
        assert stored == list(range(1, len(stored) + 1)), "the job's stored events have a gap"
        for numbers in attempts_output(events):  # a killed attempt may stop short, never skip
            lost += len(set(range(1, len(numbers) + 1)) - set(numbers))
            duplicated += len(numbers) - len(set(numbers))
        return lost, duplicated

    def _send_recovery(self) -> float:
        """Until every sender had a send tried after the fault acked."""
        firsts = [
            min(a.acked_at for a in sender.acked if a.sent_at > self.fault_at)
            for sender in self.chat.senders
        ]
        return max(firsts) - self.fault_at

    def _chat_event_recovery(self) -> float:
        assert self.chat.listener is not None
        listener = self.chat.listener
        arrivals = zip(listener.seqs, listener.arrivals, strict=True)
        return min(t for s, t in arrivals if s > self._chat_known) - self.fault_at

    def _job_event_recovery(self) -> float:
        after = [e.arrived_at for e in self.job.events if e.seq > self._job_known]
        return min(after) - self.fault_at

    async def close(self) -> None:
        await self.chat.close()
        await self.job.close()
