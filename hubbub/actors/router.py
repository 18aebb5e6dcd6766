"""The gateway's router: key → shard, and one Ray call per batch.

A key maps to its shard by a stable hash (the same on every gateway and
across restarts). Commands bound for one shard are coalesced into one Ray
call — it leaves when full or after ``router_flush_ms`` — and each caller
gets its own outcome back. A command that carries an idempotency key, or
that its entity dedupes itself (``retry_safe``), is retried, until its
deadline, when its shard is unavailable (dead, restarting or fenced); any
other command fails with a clear retriable error, because it may or may not
have been applied. A ``shard_reset`` (the command was decided against memory
that a failed commit spoiled, and not applied) is resent for any command.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from hubbub.actors.batcher import Batcher
from hubbub.actors.command import Command, Outcome
from hubbub.actors.fencing import Fencing
from hubbub.actors.runtime import ShardRef
from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.metrics import ROUTER_BATCH_SIZE, ROUTER_CALL_DURATION, ROUTER_CALL_FAILURES

__all__ = ["Router", "shard_index"]

_RETRY_FIRST_DELAY = 0.02
_RETRY_MAX_DELAY = 0.5
# Failures after which a command may or may not have taken effect.
_OUTCOME_UNKNOWN = frozenset({"shard_unavailable", "command_timeout", "commit_failed"})
# Failures that say the command was not applied: any command may be resent.
_NOT_APPLIED = frozenset({"shard_reset"})


def shard_index(key: str, shards: int) -> int:
    """The shard of ``key`` among ``shards``: stable, uniform, cheap."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


class Router:
    """Owns: one batcher per shard. Concurrency: one event loop, any callers."""

    def __init__(self, shards: Mapping[str, Sequence[ShardRef]], settings: Settings) -> None:
        self._shards = {kind: list(refs) for kind, refs in shards.items()}
        self._timeout = settings.command_timeout_seconds
        self.fencing = Fencing()
        self._batchers = {
            (ref.kind, ref.index): Batcher(
                _measured(ref),
                max_size=settings.router_batch_size,
                max_delay=settings.router_flush_ms / 1000,
                max_concurrency=settings.router_calls_in_flight,
            )
            for refs in self._shards.values()
            for ref in refs
        }

    @property
    def kinds(self) -> list[str]:
        return list(self._shards)

    def shards(self, kind: str) -> list[ShardRef]:
        return self._shards[kind]

    async def send(self, command: Command) -> Any:
        """The command's reply; raises its AppError."""
        return (await self.ask(command)).unwrap()

    async def ask(self, command: Command) -> Outcome:
        """The command's outcome, within the command deadline."""
        refs = self._shards.get(command.kind)
        if refs is None:
            return Outcome(error=AppError("unknown_kind", f"no entity kind {command.kind!r}"))
        ref = refs[shard_index(command.key, len(refs))]
        batcher = self._batchers[(ref.kind, ref.index)]
        deadline = time.monotonic() + self._timeout
        delay = _RETRY_FIRST_DELAY
        while True:
            try:
                async with asyncio.timeout_at(_loop_deadline(deadline)):
                    outcome = await batcher.submit(command)
            except TimeoutError:
                return Outcome(error=_timed_out(command))
            except AppError as error:  # the whole shard call failed
                outcome = Outcome(error=error)
            self.fencing.observe(ref, outcome.error)
            if not _should_retry(command, outcome, deadline, delay):
                return _explain(command, outcome)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_DELAY)

    async def close(self) -> None:
        """Let batches in flight finish; accept no more commands."""
        await asyncio.gather(*(batcher.close() for batcher in self._batchers.values()))
        await self.fencing.close()


def _measured(ref: ShardRef) -> Callable[[list[Command]], Awaitable[list[Outcome]]]:
    """``ref.call``, observed: batch size, call duration, whole-call failures."""
    sizes = ROUTER_BATCH_SIZE.labels(ref.kind)
    durations = ROUTER_CALL_DURATION.labels(ref.kind)
    failures = ROUTER_CALL_FAILURES.labels(ref.kind)

    async def call(commands: list[Command]) -> list[Outcome]:
        sizes.observe(len(commands))
        started = time.perf_counter()
        try:
            return await ref.call(commands)
        except AppError:
            failures.inc()
            raise
        finally:
            durations.observe(time.perf_counter() - started)

    return call


def _loop_deadline(deadline: float) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())


def _should_retry(command: Command, outcome: Outcome, deadline: float, delay: float) -> bool:
    error = outcome.error
    return (
        error is not None
        and error.retriable
        and (_repeatable(command) or error.code in _NOT_APPLIED)
        and time.monotonic() + delay < deadline
    )


def _repeatable(command: Command) -> bool:
    """Whether sending ``command`` again cannot apply it twice."""
    return command.idempotency_key is not None or command.retry_safe


def _explain(command: Command, outcome: Outcome) -> Outcome:
    error = outcome.error
    if error is None or error.code not in _OUTCOME_UNKNOWN or _repeatable(command):
        return outcome
    message = f"{error.message}; the command may not have been applied, retry it with an "
    message += "idempotency key to apply it exactly once"
    return Outcome(error=AppError(error.code, message, error.status, True, error.errors))


def _timed_out(command: Command) -> AppError:
    return AppError.unavailable(
        "command_timeout", f"{command.kind} {command.key!r} did not answer in time; retry"
    )
