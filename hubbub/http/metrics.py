"""``GET /metrics``: the gateway's and its shards' metrics in the Prometheus text format.

A scrape renders this gateway's registry (``hubbub.metrics.GATEWAY``) and
the registry of every shard actor, fetched by one Ray call per shard, all
at once, each with a deadline of :data:`SHARD_TIMEOUT` seconds. A shard's
series gain the labels ``kind`` and ``shard``; ``hubbub_shard_up`` is 1 for
a shard that answered and 0 for one that did not, whose series are then
absent: a dead shard never fails the scrape. Every gateway serves the same
shard series, so with several gateways aggregate them with
``max without (instance)``. Values that live in Postgres (the job queue)
are read at scrape by refreshers the capabilities register, each with the
same deadline.

Access: with ``HUBBUB_METRICS_TOKEN`` set, a request must carry
``Authorization: Bearer <token>`` (401 ``unauthorized`` otherwise); unset,
only loopback clients are answered (403 ``metrics_forbidden`` otherwise).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry
from pydantic import RootModel, SecretStr

from hubbub.actors.runtime import ShardRef
from hubbub.errors import AppError
from hubbub.http.routing import Api
from hubbub.metrics import GATEWAY

__all__ = ["METRICS", "SHARD_TIMEOUT", "MetricsSources", "is_loopback", "metrics_api"]

log = logging.getLogger(__name__)

#: Seconds a scrape waits for one shard's metrics, or for one refresher.
SHARD_TIMEOUT = 2.0

Refresher = Callable[[], Awaitable[None]]


class MetricsSources:
    """Owns: what a scrape reads beyond this gateway's registry.

    Concurrency: one event loop; scrapes may overlap. Failure: a shard or a
    refresher that fails or is late is logged and left out; the scrape goes on.
    """

    def __init__(self, token: SecretStr | None) -> None:
        self.token = token
        #: The shards to scrape; the gateway sets them once its router starts.
        self.shards: Sequence[ShardRef] = ()
        self._refreshers: list[Refresher] = []

    def refresh_with(self, refresher: Refresher) -> None:
        """Await ``refresher`` before each scrape (it sets gauges of ``GATEWAY``)."""
        self._refreshers.append(refresher)

    async def render(self) -> bytes:
        """The text of one scrape."""
        await asyncio.gather(*(self._refresh(r) for r in self._refreshers))
        texts = await asyncio.gather(*(self._scrape(ref) for ref in self.shards))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Merged(GATEWAY.collect(), zip(self.shards, texts, strict=True)))
        return generate_latest(registry)

    async def _refresh(self, refresher: Refresher) -> None:
        try:
            async with asyncio.timeout(SHARD_TIMEOUT):
                await refresher()
        except Exception:  # a stale gauge, not a failed scrape
            log.warning("a metrics refresher failed", exc_info=True)

    async def _scrape(self, ref: ShardRef) -> str | None:
        try:
            async with asyncio.timeout(SHARD_TIMEOUT):
                return (await ref.metrics()).decode()
        except TimeoutError:
            log.warning("metrics: %s shard %d did not answer in time", ref.kind, ref.index)
        except AppError as error:
            log.warning("metrics: %s", error.message)
        return None


class _Merged(Collector):
    """The gateway's families with every shard's samples added, labelled."""

    def __init__(
        self, local: Iterable[Metric], shards: Iterable[tuple[ShardRef, str | None]]
    ) -> None:
        self._local = local
        self._shards = shards

    def collect(self) -> Iterator[Metric]:
        families = {family.name: family for family in self._local}
        up = GaugeMetricFamily(
            "hubbub_shard_up",
            "1 if the shard answered this scrape's metrics call in time, else 0.",
            labels=("kind", "shard"),
        )
        for ref, text in self._shards:
            labels = {"kind": ref.kind, "shard": str(ref.index)}
            up.add_metric([ref.kind, str(ref.index)], 0 if text is None else 1)
            if text is not None:
                _add_samples(families, text, labels)
        yield from families.values()
        yield up


def _add_samples(families: dict[str, Metric], text: str, labels: dict[str, str]) -> None:
    for parsed in text_string_to_metric_families(text):
        family = families.get(parsed.name)
        if family is None:
            family = families[parsed.name] = Metric(
                parsed.name, parsed.documentation, parsed.type, parsed.unit
            )
        for sample in parsed.samples:
            family.add_sample(sample.name, {**sample.labels, **labels}, sample.value)


def is_loopback(remote: str | None) -> bool:
    """Whether a request's peer address is this machine's own."""
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:  # a Unix socket's peer, or no address
        return False


def _admit(request: web.Request, token: SecretStr | None) -> None:
    if token is None:
        if not is_loopback(request.remote):
            raise AppError(
                "metrics_forbidden",
                "metrics are served to loopback clients only; set HUBBUB_METRICS_TOKEN "
                "to scrape from elsewhere",
                status=403,
            )
        return
    expected = f"Bearer {token.get_secret_value()}".encode()
    given = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(given, expected):
        raise AppError(
            "unauthorized", "expected Authorization: Bearer <HUBBUB_METRICS_TOKEN>", status=401
        )


METRICS = web.AppKey("metrics", MetricsSources)

metrics_api = Api("operations", "Metrics for Prometheus.")


class MetricsText(RootModel[str]):
    """The Prometheus text exposition format, version 0.0.4."""


@metrics_api.get(
    "/metrics",
    response=MetricsText,
    content_type="text/plain",
    responses={
        401: "`HUBBUB_METRICS_TOKEN` is set and the bearer token is missing or wrong "
        "(`unauthorized`)",
        403: "`HUBBUB_METRICS_TOKEN` is unset and the client is not on loopback "
        "(`metrics_forbidden`)",
    },
)
async def metrics(request: web.Request) -> web.Response:
    """This gateway's and every shard's metrics (shards labelled `kind`, `shard`)."""
    sources = request.app[METRICS]
    _admit(request, sources.token)
    response = web.Response(body=await sources.render())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
