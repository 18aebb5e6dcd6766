"""Ray, in one place: the shard actor, its options, and every ``ray.*`` call.

Shard actors are named ``<kind>.<index>`` in the deployment's namespace and
detached, so they are shared by every gateway and outlive any one of them;
a gateway finds the existing ones by name or creates the missing ones.
Ray restarts a shard that dies (its process is rebuilt from Postgres); the
router, not Ray, retries the calls that were in flight.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ray
from ray.actor import ActorHandle

from hubbub.actors.command import (
    Command,
    Outcome,
    decode_commands,
    decode_outcomes,
    encode_commands,
    encode_outcomes,
)
from hubbub.actors.entity import Entity
from hubbub.actors.lease import acquire_lease
from hubbub.actors.sequencer import Sequencer
from hubbub.actors.shard import ShardHost
from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.heap import settle_heap

if TYPE_CHECKING:
    from hubbub.actors.router import Router

__all__ = [
    "ShardRef",
    "attach_shards",
    "connect_ray",
    "disconnect_ray",
    "entity_class_path",
    "launch_task",
    "open_shards",
    "ray_status",
]

log = logging.getLogger(__name__)

_SHARD_OPTIONS: dict[str, Any] = {
    "lifetime": "detached",
    "max_restarts": -1,  # Ray restarts a dead shard, forever
    "max_task_retries": 0,  # the router decides what may be retried
    "max_concurrency": 10_000,  # an async actor: entities run concurrently
    "num_cpus": 0,  # shards are I/O bound; leave CPUs to job workers
    # A gateway's container may be a Ray node too (docker-compose.yml labels it);
    # a shard there would die with that gateway, so shards avoid such nodes.
    "label_selector": {"hubbub-role": "!gateway"},
}


def entity_class_path(entity_cls: type[Entity]) -> str:
    """``module:Class``, the importable name a shard process loads."""
    return f"{entity_cls.__module__}:{entity_cls.__qualname__}"


def _import_entity_class(path: str) -> type[Entity]:
    module_name, _, class_name = path.partition(":")
    entity_cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(entity_cls, type) and issubclass(entity_cls, Entity)):
        raise TypeError(f"expected an Entity subclass at {path!r}, got {entity_cls!r}")
    return entity_cls


@ray.remote
class ShardActor:
    """The Ray actor around a :class:`ShardHost`.

    Owns: one shard's host. Concurrency: async actor; calls run on one
    event loop. Durability: none of its own (see ShardHost).
    Failure: Ray restarts the process; the new host takes a fresh lease,
    which fences out any writes of the old one.
    """

    def __init__(self, class_path: str, index: int, settings: Settings) -> None:
        self._class_path = class_path
        self._index = index
        self._settings = settings
        self._host: ShardHost | None = None
        self._opening: asyncio.Lock | None = None
        self._sequencer = Sequencer()

    async def handle(self, commands: bytes, origin: str, number: int) -> bytes:
        """Run batch ``number`` of router ``origin``, after its predecessors."""
        host = await self._open()
        await self._sequencer.admit(origin, number)
        return encode_outcomes(await asyncio.gather(*host.enqueue(decode_commands(commands))))

    async def stats(self) -> dict[str, Any]:
        return (await self._open()).stats()

    async def _open(self) -> ShardHost:
        if self._host is not None:
            return self._host
        self._opening = self._opening or asyncio.Lock()
        async with self._opening:
            if self._host is None:
                self._host = await self._build_host()
        return self._host

    async def _build_host(self) -> ShardHost:
        # Imported here: the storage clients exist only inside shard processes.
        from hubbub.storage.database import Database
        from hubbub.storage.redis import connect_redis

        settings = self._settings
        entity_cls = _import_entity_class(self._class_path)
        assert settings.database_url and settings.redis_url, "resolved URLs expected"
        db = await Database.connect(
            settings.database_url, role=settings.app_role, size=settings.db_pool_size
        )
        owner = ray.get_runtime_context().get_actor_id() or "unknown"
        lease = await acquire_lease(db.pool, entity_cls.kind, self._index, owner)
        log.info("%s shard %d started with epoch %d", entity_cls.kind, self._index, lease.epoch)
        settle_heap()
        return ShardHost(
            entity_cls,
            lease,
            db,
            connect_redis(settings.redis_url),
            idle_seconds=settings.entity_idle_seconds,
            idempotency_window_hours=settings.idempotency_window_hours,
        )


class ShardRef:
    """A gateway's handle on one shard actor."""

    def __init__(self, kind: str, index: int, handle: ActorHandle) -> None:
        self.kind = kind
        self.index = index
        self._handle = handle
        self._origin = uuid.uuid4().hex
        self._numbers = itertools.count()

    async def call(self, commands: list[Command]) -> list[Outcome]:
        """Send one batch; ``shard_unavailable`` if the actor died or restarts.

        Batches are numbered when the call starts, so the shard admits them
        in the order this gateway sent them.
        """
        number = next(self._numbers)
        try:
            reply = await self._handle.handle.remote(
                encode_commands(commands), self._origin, number
            )
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            raise AppError.unavailable(
                "shard_unavailable", f"{self.kind} shard {self.index} is unavailable: {exc}"
            ) from None
        return decode_outcomes(reply)

    async def stats(self) -> dict[str, Any]:
        return await self._handle.stats.remote()


def connect_ray(settings: Settings) -> None:
    """Join ``settings.ray_address``, or start a local Ray bound to this process."""
    if ray.is_initialized():
        return
    common: dict[str, Any] = {
        "namespace": settings.ray_namespace,
        "logging_level": logging.WARNING,
        "log_to_driver": False,
    }
    if settings.ray_address:
        ray.init(address=settings.ray_address, **common)
    else:
        # Shards are on every request's path: Ray's default niceness (15) would
        # starve them whenever the gateway or Postgres keep the CPU busy.
        system = {"worker_niceness": 0}
        ray.init(include_dashboard=False, _system_config=system, **common)


def disconnect_ray() -> None:
    """Leave the cluster; a local Ray stops with every actor it hosted."""
    if ray.is_initialized():
        ray.shutdown()


def ray_status() -> dict[str, Any]:
    """A cheap, non-blocking check for the readiness report."""
    if not ray.is_initialized():
        raise RuntimeError("not connected to Ray")
    context = ray.get_runtime_context()
    return {"namespace": context.namespace, "node_id": context.get_node_id()}


def open_shards(entity_cls: type[Entity], count: int, settings: Settings) -> Sequence[ShardRef]:
    """Find or create the ``count`` shard actors of a kind. Blocking."""
    kind = entity_cls.kind
    running = _running_shard_count(kind, settings.ray_namespace)
    if running not in (0, count):
        raise RuntimeError(
            f"this deployment runs {running} {kind} shards but HUBBUB_SHARDS is {count}; "
            "use the same value on every gateway, or stop the deployment to change it"
        )
    class_path = entity_class_path(entity_cls)
    refs = []
    for index in range(count):
        handle = ShardActor.options(
            name=f"{kind}.{index}",
            namespace=settings.ray_namespace,
            get_if_exists=True,
            **_SHARD_OPTIONS,
        ).remote(class_path, index, settings)
        refs.append(ShardRef(kind, index, handle))
    ray.get([ref._handle.stats.remote() for ref in refs])  # every shard is up
    return refs


def _running_shard_count(kind: str, namespace: str) -> int:
    prefix = f"{kind}."
    return sum(
        1
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["namespace"] == namespace and actor["name"].startswith(prefix)
    )


def attach_shards(kind: str, settings: Settings) -> list[ShardRef]:
    """Handles on the running shard actors of ``kind`` (a worker's view). Blocking."""
    return [
        ShardRef(kind, index, _shard_actor(kind, index, settings.ray_namespace))
        for index in range(settings.shards)
    ]


_ATTACHED: dict[tuple[str, str], ActorHandle] = {}  # a worker process looks each up once


def _shard_actor(kind: str, index: int, namespace: str) -> ActorHandle:
    name = f"{kind}.{index}"
    handle = _ATTACHED.get((namespace, name))
    if handle is None:
        handle = _ATTACHED[(namespace, name)] = ray.get_actor(name, namespace=namespace)
    return handle


#: ``work(payload, router, settings)``: what a task runs, found by ``module:function``.
TaskWork = Callable[[Any, "Router", Settings], Awaitable[None]]


def launch_task(
    work_path: str,
    payload: Any,
    *,
    kinds: Sequence[str],
    resources: Mapping[str, float],
    settings: Settings,
) -> None:
    """Run ``work_path`` (``module:function``) as a Ray task anywhere in the cluster.

    The task gets ``payload``, a router over the shards of ``kinds`` and the
    settings. Fire and forget: the work reports through the router. Ray does
    not retry it (retries are the caller's policy). Non-blocking once the
    task function is exported (the first call exports it).
    """
    needs = dict(resources)
    options: dict[str, Any] = {
        "num_cpus": needs.pop("num_cpus", 1),
        "max_retries": 0,
        "label_selector": {"hubbub-role": "!gateway"},  # a gateway node dies with its gateway
    }
    if needs:
        options["resources"] = needs
    _task.options(**options).remote(work_path, payload, list(kinds), settings)


@ray.remote
def _task(work_path: str, payload: Any, kinds: list[str], settings: Settings) -> None:
    module_name, _, function_name = work_path.partition(":")
    work = getattr(importlib.import_module(module_name), function_name)
    shards = {kind: attach_shards(kind, settings) for kind in kinds}
    asyncio.run(_run_with_router(work, payload, shards, settings))


async def _run_with_router(
    work: TaskWork, payload: Any, shards: dict[str, list[ShardRef]], settings: Settings
) -> None:
    from hubbub.actors.router import Router  # router.py imports this module

    router = Router(shards, settings)
    try:
        await work(payload, router, settings)
    finally:
        await router.close()
