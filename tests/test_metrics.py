"""/metrics on a real gateway: after messages and a job the router, group
commit, activation, job run and HTTP counters have moved; shard series carry
``kind`` and ``shard`` labels and ``hubbub_shard_up``; routes are labelled by
template, never by path; the text parses; a token, when set, is required; a
dead shard shows as down without failing the scrape; rate-limit refusals are
counted by the limit's name, never its key."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest
import ray
from aiohttp.test_utils import TestServer
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from hubbub.actors.runtime import ShardRef, open_shards
from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.http.metrics import MetricsSources, is_loopback
from hubbub.metrics import GATEWAY
from hubbub.ratelimit import Limit, RateLimiter
from hubbub.storage.redis import connect_redis
from tests.support.chat import CONVERSATIONS, new_team
from tests.support.jobs import submit, until_final
from tests.support.tally import Tally
from tests.test_chat_sockets import ChatClient

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _series(text: str) -> Series:
    """Every sample of a scrape, by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _total(series: Series, name: str, **labels: str) -> float:
    """The sum of the ``name`` samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in series.items() if n == name and wanted <= have)


async def _scrape(server: TestServer, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.make_url("/metrics"), headers=headers) as response,
    ):
        return response.status, await response.text()


async def test_a_scrape_after_messages_and_a_job_shows_every_layer_moved(
    gateway: TestServer,
) -> None:
    status, text = await _scrape(gateway)
    assert status == 200, text
    before = _series(text)
    team = await new_team(gateway, 2)
    owner, member = team.people
    conversation = await team.conversation(owner, "group", member)
    url = str(gateway.make_url("")).rstrip("/")
    listener = await ChatClient().connect(url, member.token, team.tenant_id)
    ack = await listener.call("conversation:join", {"conversation_id": conversation["id"]})
    assert "data" in ack, ack
    for body in ("one", "two"):
        await team.send(owner, conversation["id"], body)
    while (await listener.next())[1].get("seq") != 3:  # both messages reached the socket
        pass
    _, connected = await _scrape(gateway)
    assert _total(_series(connected), "hubbub_sockets_connected") >= 1
    await listener.client.disconnect()
    status, accepted = await submit(team, owner, "demo.count", {"to": 2})
    assert status == 202, accepted
    await until_final(gateway, team, owner, accepted["id"])

    status, text = await _scrape(gateway)
    assert status == 200, text
    after = _series(text)

    def moved(name: str, **labels: str) -> float:
        return _total(after, name, **labels) - _total(before, name, **labels)

    route = f"{CONVERSATIONS}/{{conversation_id}}/messages"
    sends = {"method": "POST", "route": route, "status": "201"}
    assert moved("hubbub_http_requests_total", **sends) == 2
    assert conversation["id"] not in text  # a template, never a path
    for kind in ("conversation", "job"):
        assert moved("hubbub_router_batch_size_count", kind=kind) > 0
        assert moved("hubbub_router_call_duration_seconds_count", kind=kind) > 0
        assert moved("hubbub_group_commit_size_count", kind=kind) > 0
        assert moved("hubbub_entity_activations_total", kind=kind) > 0
        assert moved("hubbub_commands_total", kind=kind) > 0
        for shard in ("0", "1"):
            assert after[("hubbub_shard_up", frozenset({("kind", kind), ("shard", shard)}))] == 1
    assert moved("hubbub_events_delivered_total", transport="socketio") >= 2
    assert moved("hubbub_events_delivered_total", transport="sse") > 0  # until_final's stream
    assert moved("hubbub_delivery_lag_seconds_count") >= 2
    run = {"job_kind": "demo.count", "status": "succeeded", "kind": "job"}
    assert moved("hubbub_job_run_duration_seconds_count", **run) == 1
    assert ("hubbub_job_queue_depth", frozenset()) in after


async def test_a_token_when_set_is_required(serve) -> None:
    server = await serve(metrics_token=SecretStr("scrape-secret"))
    status, text = await _scrape(server)
    assert status == 401 and '"code":"unauthorized"' in text.replace(" ", "")
    status, _ = await _scrape(server, "not-the-secret")
    assert status == 401
    status, text = await _scrape(server, "scrape-secret")
    assert status == 200
    assert ("hubbub_shard_up", frozenset({("kind", "job"), ("shard", "0")})) in _series(text)


async def test_rate_limit_refusals_are_counted_by_the_limits_name(migrated: Settings) -> None:
    redis = connect_redis(migrated.redis_url or "")
    limiter, once = RateLimiter(redis), Limit(1, 3600)
    key = uuid.uuid4().hex
    before = _series(generate_latest(GATEWAY).decode())
    for name in ("login_ip", None):
        await limiter.hit(f"probe:{key}:{name}", once, name=name)
        with pytest.raises(AppError) as refused:
            await limiter.hit(f"probe:{key}:{name}", once, name=name)
        assert refused.value.status == 429
    await redis.aclose()
    after = _series(generate_latest(GATEWAY).decode())
    for limit in ("login_ip", "probe"):  # named, or the key's first part: never the key
        sample = ("hubbub_rate_limit_refusals_total", frozenset({("limit", limit)}))
        assert after[sample] - before.get(sample, 0) == 1
    assert key not in generate_latest(GATEWAY).decode()


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("10.0.0.7", False), ("", False), (None, False)],
)
def test_without_a_token_only_loopback_clients_are_answered(
    remote: str | None, loopback: bool
) -> None:
    assert is_loopback(remote) is loopback


async def _until_dead(ref: ShardRef) -> None:
    """Return once calls to ``ref`` fail: ``ray.kill`` only asks for the death."""
    async with asyncio.timeout(60):
        while True:
            try:
                await ref.stats()
            except ray.exceptions.RayActorError:
                return
            await asyncio.sleep(0.05)  # the kill is on its way


async def test_a_dead_shard_is_down_and_the_scrape_goes_on(ray_cluster: Settings) -> None:
    settings = ray_cluster.model_copy(update={"ray_namespace": f"ghost-{uuid.uuid4().hex[:8]}"})
    [ref] = await asyncio.to_thread(open_shards, Tally, 1, settings)
    sources = MetricsSources(None)
    sources.shards = [ref]
    up = ("hubbub_shard_up", frozenset({("kind", "tally"), ("shard", "0")}))
    assert _series((await sources.render()).decode())[up] == 1
    ray.kill(ref._handle, no_restart=True)
    await _until_dead(ref)
    series = _series((await sources.render()).decode())
    assert series[up] == 0
    assert _total(series, "hubbub_commands_total", kind="tally") == 0  # its series are gone
    assert ("hubbub_sockets_connected", frozenset()) in series  # the gateway's are there
