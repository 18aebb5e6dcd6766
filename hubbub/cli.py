"""The ``hubbub`` command: ``serve``, ``migrate``, ``doctor``, ``staff`` and ``keys``.

``serve`` starts, in order, what the settings leave to it — an embedded
Postgres and Valkey under ``HUBBUB_DATA_DIR``, the migrations, a local Ray —
then the gateway; on SIGINT or SIGTERM it stops them in reverse order and
leaves no process behind. With ``HUBBUB_DATABASE_URL``, ``HUBBUB_REDIS_URL``
and ``HUBBUB_RAY_ADDRESS`` it starts nothing and joins those instead.

A command that starts anything of its own holds the data directory's lock
for its lifetime: a second ``serve`` on the same directory is refused, while
``migrate``, ``staff`` and ``keys`` use the running one's Postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hubbub import __version__
from hubbub.actors.runtime import connect_ray, disconnect_ray
from hubbub.config import ConfigError, Settings, load_settings
from hubbub.heap import settle_heap
from hubbub.log import configure_logging
from hubbub.plugin import Plugin, load_plugins, migration_streams
from hubbub.storage.embedded import (
    DataDirLock,
    DataDirLocked,
    EmbeddedPostgres,
    EmbeddedRedis,
    LockHolder,
)
from hubbub.storage.migrate import Migration, MigrationError, migrate

__all__ = ["Local", "main", "storage_services"]

log = logging.getLogger("hubbub")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(host=args.host, port=args.port, shards=args.shards)
    except ConfigError as error:
        print(f"hubbub: {error}", file=sys.stderr)
        return 2
    configure_logging(settings)
    command: Callable[..., Any] = args.run
    # A command that needs its parsed arguments names them in `arguments`.
    arguments = {name: getattr(args, name) for name in getattr(args, "arguments", ())}
    try:
        return _run(command(settings, **arguments))
    except (ConfigError, MigrationError, DataDirLocked) as error:
        print(f"hubbub: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hubbub", description="hubbub realtime backend")
    parser.add_argument("--version", action="version", version=f"hubbub {__version__}")
    commands = parser.add_subparsers(required=True, metavar="command")
    serve = commands.add_parser("serve", help="run a gateway (and, by default, everything else)")
    serve.add_argument("--host", help="listen address (HUBBUB_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (HUBBUB_PORT, default 8000)")
    serve.add_argument("--shards", type=int, help="shard actors per entity kind (HUBBUB_SHARDS)")
    serve.set_defaults(run=_serve)
    for name, run, text in [
        ("migrate", _migrate, "apply pending database migrations and exit"),
        ("doctor", _doctor, "say which Postgres, Redis and Ray hubbub uses, and check them"),
    ]:
        sub = commands.add_parser(name, help=text)
        sub.set_defaults(run=run, host=None, port=None, shards=None)
    staff = commands.add_parser("staff", help="grant or revoke platform staff status")
    staff.add_argument("action", choices=["grant", "revoke"])
    staff.add_argument("email", help="the account's email (any case)")
    staff.set_defaults(run=_staff, arguments=("action", "email"), host=None, port=None, shards=None)
    keys = commands.add_parser("keys", help="rotate the key that signs access tokens")
    keys.add_argument("action", choices=["rotate"])
    keys.set_defaults(run=_rotate_keys, host=None, port=None, shards=None)
    return parser


def _run(coroutine: Any) -> int:
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - Windows
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coroutine)


@dataclass(frozen=True, slots=True)
class Local:
    """What :func:`storage_services` gives a command: the resolved settings and,
    when this process owns the data directory, its lock."""

    settings: Settings
    lock: DataDirLock | None
    joined: LockHolder | None = None  # the process whose servers these are


@contextlib.asynccontextmanager
async def storage_services(
    settings: Settings, command: str, *, redis: bool = True, ray: bool = False
) -> AsyncIterator[Local]:
    """Start the embedded servers the settings leave to us, under the data
    directory's lock (also taken for a local Ray: ``ray``); yield the result.

    Raises :class:`DataDirLocked` if another process holds the directory,
    unless this is not ``serve`` and that process's Postgres can be used.
    """
    if not _uses_data_dir(settings, redis=redis, ray=ray):
        yield Local(settings, None)
        return
    lock = DataDirLock(settings.data_dir)
    try:
        lock.acquire(LockHolder(pid=os.getpid(), host=socket.gethostname(), command=command))
    except DataDirLocked as locked:
        joined = _join_holder(settings, locked, command, redis=redis)
        yield Local(joined, None, locked.holder)
        return
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(lock.release)  # last: after every server it guards stopped
        resolved = await _start_embedded(settings, stack, redis=redis)
        lock.update(**resolved)
        yield Local(settings.model_copy(update=resolved), lock)


def _uses_data_dir(settings: Settings, *, redis: bool, ray: bool) -> bool:
    embedded_redis = redis and settings.redis_url is None
    local_ray = ray and settings.ray_address is None
    return settings.database_url is None or embedded_redis or local_ray


async def _start_embedded(
    settings: Settings, stack: contextlib.AsyncExitStack, *, redis: bool
) -> dict[str, str]:
    resolved: dict[str, str] = {}
    if settings.database_url is None:
        postgres = EmbeddedPostgres(settings.data_dir / "postgres")
        resolved["database_url"] = await asyncio.to_thread(postgres.start)
        stack.callback(postgres.stop)
        log.info("embedded Postgres running with data in %s", postgres.directory)
    if redis and settings.redis_url is None:
        valkey = EmbeddedRedis(settings.data_dir / "redis")
        resolved["redis_url"] = await asyncio.to_thread(valkey.start)
        stack.callback(valkey.stop)
        log.info("embedded Valkey running at %s", resolved["redis_url"])
    return resolved


def _join_holder(
    settings: Settings, locked: DataDirLocked, command: str, *, redis: bool
) -> Settings:
    """The settings with the lock holder's servers, for a one-shot command."""
    holder = locked.holder
    needed = {"database_url": settings.database_url is None}
    needed["redis_url"] = redis and settings.redis_url is None
    if command == "serve" or holder is None:
        raise locked
    resolved = {name: getattr(holder, name) for name, need in needed.items() if need}
    if None in resolved.values():
        raise locked
    log.info("using the servers of %s", holder.describe())
    return settings.model_copy(update=resolved)


async def _migrate_to(settings: Settings, plugins: list[Plugin]) -> list[Migration]:
    assert settings.database_url is not None

    def announce(migration: Migration) -> None:
        log.info("applying migration %s", migration)

    return await migrate(
        settings.database_url,
        app_role=settings.app_role,
        on_apply=announce,
        streams=migration_streams(plugins),
    )


async def _migrate(settings: Settings) -> int:
    plugins = load_plugins(settings.plugins)
    async with storage_services(settings, "migrate", redis=False) as local:
        applied = await _migrate_to(local.settings, plugins)
    print(f"applied {len(applied)} migration(s); the database is up to date")
    return 0


async def _serve(settings: Settings) -> int:
    from hubbub.gateway import create_app

    plugins = load_plugins(settings.plugins)
    stop = asyncio.Event()
    _stop_on_signals(stop)
    async with (
        storage_services(settings, "serve", ray=True) as local,
        contextlib.AsyncExitStack() as stack,
    ):
        ready = local.settings
        await _migrate_to(ready, plugins)
        connect_ray(ready)
        stack.callback(disconnect_ray)
        _stop_on_signals(stop)  # Ray's start-up may have replaced our handlers
        runner = web.AppRunner(create_app(ready, plugins), handle_signals=False, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, ready.host, ready.port)
        await site.start()
        if local.lock is not None:
            local.lock.update(address=f"{ready.host}:{ready.port}")
        settle_heap()
        log.info("hubbub %s serving on http://%s:%d", __version__, ready.host, ready.port)
        await stop.wait()
        log.info("stopping")
    return 0


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)


async def _staff(settings: Settings, action: str, email: str) -> int:
    """Grant or revoke staff status, recorded in the staff audit log."""
    from hubbub.identity.staff import set_staff
    from hubbub.storage.database import connect_owner

    async with storage_services(settings, "staff", redis=False) as local:
        assert local.settings.database_url is not None
        conn = await connect_owner(local.settings.database_url)
        try:
            async with conn.transaction():
                grant = action == "grant"
                result = await set_staff(conn, email, grant=grant, reason=f"hubbub staff {action}")
        finally:
            await conn.close()
    if result is None:
        print(f"hubbub: no account has the email {email!r}", file=sys.stderr)
        return 1
    user, changed = result
    state = "staff" if user.is_staff else "not staff"
    print(f"{user.email} is {'now' if changed else 'already'} {state}")
    return 0


async def _rotate_keys(settings: Settings) -> int:
    """Start signing with a new key; the old one verifies until its tokens expire."""
    from hubbub.identity.keys import rotate_signing_key, signing_key_box
    from hubbub.storage.database import connect_owner

    async with storage_services(settings, "keys", redis=False) as local:
        assert local.settings.database_url is not None
        conn = await connect_owner(local.settings.database_url)
        try:
            secret = settings.two_factor_key
            box = signing_key_box(None if secret is None else secret.get_secret_value())
            kid = await rotate_signing_key(conn, box)
        finally:
            await conn.close()
    minutes = settings.access_token_minutes
    print(f"signing with key {kid}; the previous key verifies for {minutes} more minutes")
    return 0


async def _doctor(settings: Settings) -> int:
    from hubbub.doctor import run_checks

    return await run_checks(settings, storage_services(settings, "doctor"))
