"""Ray, in one place: the shard actor, its options, and every ``ray.*`` call.

Shard actors are named ``<kind>.<index>`` in the deployment's namespace and
detached, so they are shared by every gateway and outlive any one of them;
a gateway finds the existing ones by name or creates the missing ones.
Ray restarts a shard that dies (its process is rebuilt from Postgres); the
router, not Ray, retries the calls that were in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import logging
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray._private import ray_constants
from ray.actor import ActorHandle

import hubbub
from hubbub.actors.command import (
    Command,
    Outcome,
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
    "Launcher",
    "LauncherActor",
    "ShardRef",
    "Task",
    "attach_shards",
    "connect_ray",
    "disconnect_ray",
    "entity_class_path",
    "open_launcher",
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
    # Every call is on the hot path: no per-call task records for the GCS
    # (about 4 % less CPU a call here, bench/ray_call_bench.py; Ray Serve's
    # replicas do the same). `ray list tasks` does not show shard calls.
    "enable_task_events": False,
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
        return encode_outcomes(await asyncio.gather(*host.enqueue(host.codec.decode(commands))))

    async def stats(self) -> dict[str, Any]:
        return (await self._open()).stats()

    async def metrics(self) -> bytes:
        """This process's :data:`hubbub.metrics.SHARD` registry, in the text format."""
        # Imported here: Ray pickles this class by value, and a registry holds locks.
        from prometheus_client import generate_latest

        from hubbub.metrics import SHARD

        return generate_latest(SHARD)

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

    def restart(self) -> None:
        """Kill the actor's process; Ray restarts it (calls meanwhile fail with
        ``shard_unavailable``) and the new one takes a fresh lease. Blocking."""
        ray.kill(self._handle, no_restart=False)

    async def metrics(self) -> bytes:
        """The shard's metrics text; ``shard_unavailable`` if it is dead or
        restarting (the caller sets the deadline)."""
        try:
            return await self._handle.metrics.remote()
        except (
            ray.exceptions.RayActorError,
            ray.exceptions.ActorUnavailableError,
            AttributeError,  # a shard still running a release without metrics
        ) as exc:
            raise AppError.unavailable(
                "shard_unavailable", f"{self.kind} shard {self.index} gave no metrics: {exc!r}"
            ) from None


def connect_ray(settings: Settings) -> None:
    """Join ``settings.ray_address``, or start a local Ray bound to this process.

    A local Ray listens on loopback only and keeps no session folder after a
    clean stop (:func:`disconnect_ray`).
    """
    if ray.is_initialized():
        return
    common: dict[str, Any] = {
        "namespace": settings.ray_namespace,
        # Ray's own logger is left alone: its records are lines of hubbub's log.
        "configure_logging": False,
        "log_to_driver": False,
    }
    with _importable_cwd():
        if settings.ray_address:
            ray.init(address=settings.ray_address, **common)
        else:
            _start_local_ray(common)


#: The session folder of the local Ray this process started, removed at stop.
_LOCAL_SESSION: Path | None = None


def _start_local_ray(common: dict[str, Any]) -> None:
    # Ray binds its servers (GCS, raylet, object manager, every worker) to
    # the node's address, which it resolves to the outward one even when told
    # 127.0.0.1; with clusters "disabled" (Ray's switch for single-machine
    # use, read at call time here and from the environment by its children)
    # the node address, hence every listener, is loopback.
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    # Shards are on every request's path: Ray's default niceness (15) would
    # starve them whenever the gateway or Postgres keep the CPU busy.
    system = {"worker_niceness": 0}
    ray.init(include_dashboard=False, _system_config=system, **common)
    global _LOCAL_SESSION
    _LOCAL_SESSION = Path(ray._private.worker._global_node.get_session_dir_path())


@contextlib.contextmanager
def _importable_cwd() -> Iterator[None]:
    """Run ``ray.init`` from the folder this ``hubbub`` was imported from.

    Ray puts the driver's working directory first on every worker's
    ``sys.path``: started from a folder holding some other ``hubbub/`` (a
    clone's parent, say) workers would import that instead of the installed
    package. From here, they import what the gateway imports.
    """
    before = Path.cwd()
    os.chdir(Path(hubbub.__file__).resolve().parent.parent)
    try:
        yield
    finally:
        os.chdir(before)


def disconnect_ray() -> None:
    """Leave the cluster; a local Ray stops with every actor it hosted, and
    its session folder (logs, sockets, spilled objects) is removed."""
    global _LOCAL_SESSION
    if ray.is_initialized():
        ray.shutdown()
    session, _LOCAL_SESSION = _LOCAL_SESSION, None
    if session is not None:
        shutil.rmtree(session, ignore_errors=True)
        latest = session.parent / "session_latest"
        if latest.is_symlink() and latest.resolve() == session.resolve():
            latest.unlink(missing_ok=True)


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


@dataclass(frozen=True, slots=True)
class Task:
    """One task to launch: ``work`` (``module:function``) with ``payload``, a
    router over the shards of ``kinds``, on a node with ``resources``.

    ``key`` names what the task works on (a job id) and ``tag`` this launch
    of it, so a later launch of the same key is told from an earlier one.
    """

    key: str
    tag: str
    work: str
    payload: Any
    kinds: tuple[str, ...]
    resources: Mapping[str, float]


@ray.remote
class LauncherActor:
    """The Ray actor that launches tasks and owns them.

    Owns: the running tasks' references, by key. Ray ties a task to the
    process that submitted it, so tasks launched here outlive any gateway.
    Concurrency: async actor, one event loop. Failure: when Ray restarts it,
    the tasks it owned are gone and it knows none: their keys are no longer
    ``alive``, which is how the caller learns they were lost.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._running: dict[str, tuple[str, ray.ObjectRef]] = {}

    async def launch(self, tasks: list[Task]) -> None:
        for task in tasks:
            ref = _task.options(**_task_options(task.resources)).remote(
                task.work, task.payload, list(task.kinds), self._settings
            )
            self._running[task.key] = (task.tag, ref)
            asyncio.get_running_loop().create_task(self._forget_when_done(task.key, task.tag, ref))

    async def alive(self, keys: dict[str, str]) -> list[str]:
        """Those of ``keys`` (key → tag) whose launch with that tag still runs or waits."""
        return [key for key, tag in keys.items() if tag is not None and self._tag(key) == tag]

    async def kill(self, keys: dict[str, str]) -> None:
        """Force-stop the tasks of ``keys`` (key → tag), killing their worker processes."""
        for key, tag in keys.items():
            if self._tag(key) == tag:
                ray.cancel(self._running[key][1], force=True)

    def _tag(self, key: str) -> str | None:
        running = self._running.get(key)
        return None if running is None else running[0]

    async def _forget_when_done(self, key: str, tag: str, ref: ray.ObjectRef) -> None:
        try:
            await ref
        except Exception as error:  # the task's own failures are its work's business
            log.info("task %s (%s) ended abnormally: %s", key, tag, type(error).__name__)
        if self._tag(key) == tag:
            del self._running[key]


def _task_options(resources: Mapping[str, float]) -> dict[str, Any]:
    needs = dict(resources)
    options: dict[str, Any] = {
        "num_cpus": needs.pop("num_cpus", 1),
        "max_retries": 0,  # retries are the caller's policy
        "label_selector": {"hubbub-role": "!gateway"},  # a gateway node dies with its gateway
    }
    if needs:
        options["resources"] = needs
    return options


#: Longest wait for the launcher actor: its callers hold a lock meanwhile.
_LAUNCHER_TIMEOUT = 30.0


class Launcher:
    """A gateway's handle on the deployment's launcher actor; every call
    answers ``launcher_unavailable`` while the actor is dead or restarting."""

    def __init__(self, handle: ActorHandle) -> None:
        self._handle = handle

    async def launch(self, tasks: list[Task]) -> None:
        if tasks:
            await self._call("launch", tasks)

    async def alive(self, keys: dict[str, str]) -> set[str]:
        return set(await self._call("alive", keys)) if keys else set()

    async def kill(self, keys: dict[str, str]) -> None:
        if keys:
            await self._call("kill", keys)

    async def _call(self, method: str, argument: Any) -> Any:
        try:
            call = getattr(self._handle, method).remote(argument)
            return await asyncio.wait_for(call, _LAUNCHER_TIMEOUT)
        except (
            ray.exceptions.RayActorError,
            ray.exceptions.ActorUnavailableError,
            TimeoutError,
        ) as exc:
            raise AppError.unavailable(
                "launcher_unavailable", f"the launcher actor is unavailable: {exc!r}"
            ) from None


def open_launcher(settings: Settings) -> Launcher:
    """Find or create the deployment's launcher actor. Blocking."""
    handle = LauncherActor.options(
        name="launcher", namespace=settings.ray_namespace, get_if_exists=True, **_SHARD_OPTIONS
    ).remote(settings)
    ray.get(handle.alive.remote({}))  # it is up
    return Launcher(handle)


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
