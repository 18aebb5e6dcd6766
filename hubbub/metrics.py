"""Every Prometheus metric of hubbub, by the process that observes it.

Names are ``hubbub_*`` with their unit (``_seconds``, ``_total`` on
counters, sizes in items). Values are loop-owned (``hubbub.instruments``):
no lock on any path. Two registries:

* :data:`GATEWAY` — a gateway process's metrics, with prometheus_client's
  process, platform and GC collectors; ``/metrics`` serves it
  (``hubbub.http.metrics``).
* :data:`SHARD` — a shard actor process's metrics, with its process
  collector. Each shard actor serves its own as text
  (``ShardActor.metrics``); the gateway's ``/metrics`` fetches every
  shard's, one Ray call each with a deadline, and adds the labels
  ``kind`` and ``shard`` (``hubbub_shard_up`` says which answered).

Observers bind their labelled children once (per shard, per kind) and keep
them; a label never holds an unbounded value.
"""

from __future__ import annotations

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.registry import CollectorRegistry

from hubbub.instruments import LATENCY_BUCKETS, SIZE_BUCKETS, Counter, Gauge, Histogram

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_FAILURES",
    "BUS_RECONNECTS",
    "COMMANDS",
    "COMMIT_FAILURES",
    "DELIVERY_LAG",
    "ENTITIES_ACTIVE",
    "EVENTS_DELIVERED",
    "GATEWAY",
    "GROUP_COMMIT_DURATION",
    "GROUP_COMMIT_SIZE",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "JOBS_RUNNING",
    "JOB_QUEUE_DEPTH",
    "JOB_RUN_DURATION",
    "PASSIVATIONS",
    "RATE_LIMIT_REFUSALS",
    "ROUTER_BATCH_SIZE",
    "ROUTER_CALL_DURATION",
    "ROUTER_CALL_FAILURES",
    "SEQ_GAPS_DETECTED",
    "SEQ_GAPS_REPAIRED",
    "SHARD",
    "SOCKETS_CONNECTED",
    "SOCKET_DELIVERIES",
    "SSE_DELIVERIES",
    "SSE_STREAMS_OPEN",
]

#: Seconds a job runs: from a quick job to a long export.
_RUN_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400)
#: Seconds from the bus to a socket: a healthy gateway writes within milliseconds.
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

GATEWAY = CollectorRegistry()
SHARD = CollectorRegistry()
for _registry in (GATEWAY, SHARD):
    ProcessCollector(registry=_registry)
PlatformCollector(registry=GATEWAY)
GCCollector(registry=GATEWAY)


def _on(registry: CollectorRegistry, *instruments: Counter | Gauge | Histogram) -> None:
    for instrument in instruments:
        registry.register(instrument)


# --- gateway: realtime. Defined here, to be observed by the realtime layer
# (the bus, hubbub/realtime/fanout.py; SeqStream, hubbub/realtime/seq_stream.py;
# the Socket.IO server and the SSE streams of jobs/stream.py).

SOCKETS_CONNECTED = Gauge(
    "hubbub_sockets_connected",
    "Socket.IO connections open on this gateway. Raise on connect, lower on "
    "disconnect, in the realtime server's connection handlers.",
)
SSE_STREAMS_OPEN = Gauge(
    "hubbub_sse_streams_open",
    "SSE responses streaming from this gateway. Raise when a stream's response "
    "is prepared, lower when it ends (the shared SSE stream helper).",
)
EVENTS_DELIVERED = Counter(
    "hubbub_events_delivered",
    "Events written to a local recipient, by transport (socketio, sse). Count "
    "once per SeqStream delivery loop with the number of recipients, never per write.",
    ("transport",),
)
DELIVERY_LAG = Histogram(
    "hubbub_delivery_lag_seconds",
    "Seconds from the bus (Fanout._dispatch) receiving an event to its consumer "
    "having handled it: written to every local follower, or queued behind a "
    "repair read of its stream (whose time shows in seq gaps instead). Bus "
    "publications carry no commit timestamp, so this is bus-receive to socket "
    "write, not commit to socket write.",
    buckets=_LAG_BUCKETS,
)
SEQ_GAPS_DETECTED = Counter(
    "hubbub_seq_gaps_detected",
    "Times a SeqStream saw an event whose seq was past its head + 1 (events "
    "lost on the bus); count where the stream starts a repair.",
)
SEQ_GAPS_REPAIRED = Counter(
    "hubbub_seq_gaps_repaired",
    "Gaps a SeqStream filled by read_after(seq) from Postgres; count when the "
    "repair read has been delivered (beside RepairStats.repaired).",
)
#: The bound children the delivery paths count on (no label lookup per event).
SOCKET_DELIVERIES = EVENTS_DELIVERED.labels("socketio")
SSE_DELIVERIES = EVENTS_DELIVERED.labels("sse")
BUS_RECONNECTS = Counter(
    "hubbub_bus_reconnects",
    "Times the gateway's bus subscription to Redis was re-established after it "
    "broke (Fanout._rebuilt).",
)

# --- gateway: router, HTTP, rate limits, jobs

ROUTER_BATCH_SIZE = Histogram(
    "hubbub_router_batch_size",
    "Commands carried by one router call to a shard, by entity kind.",
    ("kind",),
    buckets=SIZE_BUCKETS,
)
ROUTER_CALL_DURATION = Histogram(
    "hubbub_router_call_duration_seconds",
    "Seconds of one router call to a shard (Ray call, decide, group commit), by entity kind.",
    ("kind",),
    buckets=LATENCY_BUCKETS,
)
ROUTER_CALL_FAILURES = Counter(
    "hubbub_router_call_failures",
    "Router calls that failed as a whole (the shard dead, restarting or fenced), by kind.",
    ("kind",),
)
HTTP_REQUESTS = Counter(
    "hubbub_http_requests",
    "HTTP requests answered, by method, route template (never the raw path) and status.",
    ("method", "route", "status"),
)
HTTP_REQUEST_DURATION = Histogram(
    "hubbub_http_request_duration_seconds",
    "Seconds to the response of an HTTP request (to its headers, for a stream), by route.",
    ("method", "route"),
    buckets=LATENCY_BUCKETS,
)
RATE_LIMIT_REFUSALS = Counter(
    "hubbub_rate_limit_refusals",
    "Requests refused 429 by a rate limit, by the limit's name.",
    ("limit",),
)
JOB_QUEUE_DEPTH = Gauge(
    "hubbub_job_queue_depth",
    "Jobs queued or retrying and not yet launched, deployment-wide (read at scrape).",
)
JOBS_RUNNING = Gauge(
    "hubbub_jobs_running",
    "Jobs running or launched and starting, deployment-wide (read at scrape).",
)
_on(
    GATEWAY,
    SOCKETS_CONNECTED,
    SSE_STREAMS_OPEN,
    EVENTS_DELIVERED,
    DELIVERY_LAG,
    SEQ_GAPS_DETECTED,
    SEQ_GAPS_REPAIRED,
    BUS_RECONNECTS,
    ROUTER_BATCH_SIZE,
    ROUTER_CALL_DURATION,
    ROUTER_CALL_FAILURES,
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    RATE_LIMIT_REFUSALS,
    JOB_QUEUE_DEPTH,
    JOBS_RUNNING,
)
for _transport in ("socketio", "sse"):
    EVENTS_DELIVERED.labels(_transport)

# --- shard: entities, group commit, job runs

COMMANDS = Counter("hubbub_commands", "Commands this shard received.")
GROUP_COMMIT_SIZE = Histogram(
    "hubbub_group_commit_size",
    "Entity commit requests (one per entity per staged group) one group commit carried.",
    buckets=SIZE_BUCKETS,
)
GROUP_COMMIT_DURATION = Histogram(
    "hubbub_group_commit_duration_seconds",
    "Seconds of one group commit, splits after a refusal included.",
    buckets=LATENCY_BUCKETS,
)
COMMIT_FAILURES = Counter(
    "hubbub_commit_failures",
    "Entity commit requests a group commit did not store, by error code: "
    "commit_failed (retriable), commit_refused (Postgres refused the writes), "
    "shard_fenced (another process holds the lease), shard_reset (not tried: "
    "an earlier request of its entity failed).",
    ("code",),
)
ACTIVATIONS = Counter("hubbub_entity_activations", "Entities loaded from Postgres into memory.")
ACTIVATION_FAILURES = Counter(
    "hubbub_entity_activation_failures", "Entity loads that failed (their commands got 503)."
)
PASSIVATIONS = Counter("hubbub_entity_passivations", "Idle entities dropped from memory.")
ENTITIES_ACTIVE = Gauge("hubbub_entities_active", "Entities in this shard's memory.")
JOB_RUN_DURATION = Histogram(
    "hubbub_job_run_duration_seconds",
    "Seconds from a job's start to its end, by job kind and final status; "
    "observed by its job entity when the job stops running.",
    ("job_kind", "status"),
    buckets=_RUN_BUCKETS,
)
_on(
    SHARD,
    COMMANDS,
    GROUP_COMMIT_SIZE,
    GROUP_COMMIT_DURATION,
    COMMIT_FAILURES,
    ACTIVATIONS,
    ACTIVATION_FAILURES,
    PASSIVATIONS,
    ENTITIES_ACTIVE,
    JOB_RUN_DURATION,
)
for _code in ("commit_failed", "commit_refused", "shard_fenced", "shard_reset"):
    COMMIT_FAILURES.labels(_code)
