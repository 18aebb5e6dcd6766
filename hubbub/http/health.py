"""Health: liveness, readiness (every dependency checked) and storage.

Each resource of the gateway adds a named check to the :class:`Readiness`
registry when it starts. A check returns details or raises; checks run
concurrently, each with a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from hubbub import __version__
from hubbub.errors import AppError
from hubbub.http.routing import Api

__all__ = ["READINESS", "Readiness", "health_api"]

Check = Callable[[], Awaitable[dict[str, Any] | None]]

_CHECK_TIMEOUT = 3.0
_STORAGE_CHECKS = ("postgres", "redis")


class Readiness:
    """Owns: the named readiness checks of one gateway."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def run(self, only: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
        names = [n for n in self._checks if only is None or n in only]
        results = await asyncio.gather(*(self._run_one(self._checks[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def _run_one(self, check: Check) -> dict[str, Any]:
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT):
                details = await check()
        except TimeoutError:
            return {"ok": False, "error": f"no answer within {_CHECK_TIMEOUT} s"}
        except Exception as exc:  # a check failing is what we report, not a crash
            message = exc.message if isinstance(exc, AppError) else str(exc) or type(exc).__name__
            return {"ok": False, "error": message}
        return {"ok": True, **(details or {})}


READINESS = web.AppKey("readiness", Readiness)

health_api = Api("health", "Liveness and readiness of this gateway.")


class Alive(BaseModel):
    status: str = "ok"


class Ready(BaseModel):
    status: str
    checks: dict[str, dict[str, Any]]


class About(BaseModel):
    name: str = "hubbub"
    version: str = __version__


@health_api.get("/", response=About)
async def about(request: web.Request) -> About:
    """Name and version of this server."""
    return About()


@health_api.get("/health", response=Alive)
async def liveness(request: web.Request) -> Alive:
    """Liveness: the process answers."""
    return Alive()


@health_api.get("/health/ready", response=Ready, responses={503: "A dependency is down"})
async def readiness(request: web.Request) -> Ready:
    """Readiness: Postgres, Redis, Ray and the fan-out subscription all work."""
    return _verdict(await request.app[READINESS].run())


@health_api.get("/health/storage", response=Ready, responses={503: "Storage is down"})
async def storage(request: web.Request) -> Ready:
    """Postgres and Redis only."""
    return _verdict(await request.app[READINESS].run(_STORAGE_CHECKS))


def _verdict(checks: dict[str, dict[str, Any]]) -> Ready:
    failed = [name for name, result in checks.items() if not result["ok"]]
    if failed:
        raise AppError(
            "not_ready",
            f"not ready: {', '.join(failed)} failed",
            status=503,
            retriable=True,
            extra={"checks": checks},
        )
    return Ready(status="ready", checks=checks)
