"""Conversation shards: messages persisted per second through the router and group commit.

Starts embedded Postgres and Valkey (or uses ``HUBBUB_DATABASE_URL`` /
``HUBBUB_REDIS_URL``), a local Ray and the ``conversation`` shards, creates
``--conversations`` group conversations of ``--members`` users in one tenant,
then sends messages exactly as the HTTP and socket handlers do (the ``send``
command, idempotent by ``client_msg_id``) with closed-loop senders. A send
counts once its reply arrived, i.e. once its group commit (message row,
event row, head, the author's read mark; the conversation itself dedupes
by ``client_msg_id``, so no idempotency receipt) is durable in Postgres and
its publication is queued for the bus.
Run from the repository root::

    python -m bench.conversation_bench --messages 60000 --concurrency 512,2048
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import random
import shlex
import signal
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.router_bench import (
    CountedShardRef,
    Result,
    drive,
    machine,
    services,
    write_section,
)
from hubbub.actors.command import Command
from hubbub.actors.router import Router
from hubbub.actors.runtime import connect_ray, disconnect_ray, open_shards
from hubbub.chat.commands import Create, Send
from hubbub.chat.entity import ConversationEntity
from hubbub.config import Settings, load_settings
from hubbub.ids import new_id
from hubbub.plugin import load_plugins, migration_streams
from hubbub.storage.database import connect_owner
from hubbub.storage.migrate import migrate

__all__ = ["main"]

SECTION = "## Conversation shards: messages persisted per second"
PATH = "router → conversation shards → group commit"


@dataclasses.dataclass(frozen=True, slots=True)
class Room:
    tenant_id: str
    conversation_id: str
    members: tuple[str, ...]


async def prepare_database(settings: Settings, users: int) -> tuple[list[str], dict[str, str]]:
    """hubbub's migrations, ``users`` user rows; their ids and server facts."""
    assert settings.database_url is not None
    streams = migration_streams(load_plugins([]))
    await migrate(settings.database_url, app_role=settings.app_role, streams=streams)
    owner = await connect_owner(settings.database_url)
    try:
        ids = [str(new_id()) for _ in range(users)]
        await owner.executemany(
            "INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, $3, '-')",
            [(uid, f"{uid}@bench.invalid", f"bench {n}") for n, uid in enumerate(ids)],
        )
        facts = {
            name: await owner.fetchval(f"SHOW {name}")
            for name in ("server_version", "fsync", "synchronous_commit")
        }
        return ids, facts
    finally:
        await owner.close()


async def create_rooms(router: Router, users: list[str], count: int, size: int) -> list[Room]:
    tenant_id, rng = str(uuid.uuid4()), random.Random(11)
    rooms = []
    for _ in range(count):
        members = tuple(rng.sample(users, size))
        room = Room(tenant_id, str(new_id()), members)
        create = Create(
            members[0], room.conversation_id, tenant_id, "group", list(members[1:]), "bench"
        )
        rooms.append(room)
        await router.send(Command("conversation", room.conversation_id, create, tenant_id))
    return rooms


def sends(rooms: Sequence[Room], count: int, seed: int = 7) -> list[Command]:
    """``count`` send commands as ``hubbub.chat.commands.send_message`` builds them."""
    rng = random.Random(seed)
    commands = []
    for n in range(count):
        room = rng.choice(rooms)
        author, client_msg_id = rng.choice(room.members), f"bench-{n}"
        text = f"message {n} of the conversation benchmark"
        send = Send(author, text, client_msg_id, str(new_id()))
        commands.append(Command("conversation", room.conversation_id, send, room.tenant_id))
    return commands


async def measure(settings: Settings, users: list[str], args: Any) -> list[Result]:
    refs = await asyncio.to_thread(open_shards, ConversationEntity, settings.shards, settings)
    counted = [CountedShardRef(ref) for ref in refs]
    router = Router({"conversation": counted}, settings)
    results = []
    try:
        rooms = await create_rooms(router, users, args.conversations, args.members)
        await drive(router.send, sends(rooms, len(rooms) * 2, seed=1), 256)  # warm up
        for concurrency in args.concurrency:
            before = [(ref.calls, ref.commands) for ref in counted]
            commands = sends(rooms, args.messages, seed=concurrency)
            seconds, latencies = await drive(router.send, commands, concurrency)
            calls = sum(ref.calls - b[0] for ref, b in zip(counted, before, strict=True))
            sent = sum(ref.commands - b[1] for ref, b in zip(counted, before, strict=True))
            result = Result(PATH, "send", concurrency, seconds, latencies, sent / max(calls, 1))
            print(f"  C={concurrency:<5} {result.rate:9,.0f} msg/s", file=sys.stderr, flush=True)
            results.append(result)
    finally:
        await router.close()
    return results


def bench(args: Any) -> tuple[Settings, dict[str, str], list[Result]]:
    """Everything started here is stopped on the way out, Ctrl-C included."""
    with (
        tempfile.TemporaryDirectory(prefix="hubbub-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        database_url, redis_url = stack.enter_context(services(Path(tmp)))
        settings = load_settings(
            database_url=database_url,
            redis_url=redis_url,
            data_dir=Path(tmp) / "data",
            ray_namespace=f"hubbub-bench-{uuid.uuid4().hex[:8]}",
            shards=args.shards,
            router_calls_in_flight=args.calls_in_flight,
            command_timeout_seconds=60.0,
            log_format="console",
        ).model_copy(update={"ray_address": None})  # always a local Ray: loopback only
        users, facts = asyncio.run(prepare_database(settings, args.users))
        stack.callback(disconnect_ray)
        connect_ray(settings)
        return settings, facts, asyncio.run(measure(settings, users, args))


def table(results: Sequence[Result]) -> str:
    lines = [
        "| senders | messages/s | p50 ms | p99 ms | max ms | mean batch |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        cells = [str(r.concurrency), f"**{r.rate:,.0f}**"]
        cells += [f"{r.percentile_ms(q):.1f}" for q in (0.5, 0.99, 1.0)]
        cells.append(f"{r.mean_batch:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section(settings: Settings, facts: dict[str, str], results: list[Result], args: Any) -> str:
    command = "python -m bench.conversation_bench " + shlex.join(sys.argv[1:])
    return f"""{SECTION}

Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {machine()};
PostgreSQL {facts["server_version"]} (embedded unless `HUBBUB_DATABASE_URL` was set;
`fsync={facts["fsync"]}`, `synchronous_commit={facts["synchronous_commit"]}`).

```sh
{command}
```

{args.messages:,} sends per run into {args.conversations:,} group conversations of
{args.members} members (one tenant), {settings.shards} conversation shards, closed-loop
senders; latency is per send, submit to the reply after commit. *Mean batch* is sends per
Ray call. Each send writes four rows (message, event, head, the author's read mark; the
conversation dedupes by `client_msg_id` itself, so no idempotency receipt), as the HTTP and
socket handlers send; group commit sends each statement once per flush for every entity
in it (`hubbub/actors/group_commit.py`).

{table(results)}
"""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.conversation_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--messages", type=int, default=60_000, help="sends per run")
    parser.add_argument("--concurrency", type=_counts, default=[512, 2048], help="senders")
    parser.add_argument("--conversations", type=int, default=1_000)
    parser.add_argument("--members", type=int, default=10, help="members per conversation")
    parser.add_argument("--users", type=int, default=2_000, help="users to draw members from")
    parser.add_argument("--shards", type=int, default=2, help="conversation shard actors")
    parser.add_argument(
        "--calls-in-flight", type=int, default=1, help="router calls in flight per shard"
    )
    parser.add_argument("--write", type=Path, help="update this Markdown file's section")
    return parser.parse_args(argv)


def _counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up as on Ctrl-C
    settings, facts, results = bench(args)
    print(table(results))
    if args.write is not None:
        write_section(args.write, section(settings, facts, results, args), SECTION)
        print(f"updated {args.write}", file=sys.stderr)


if __name__ == "__main__":
    main()
