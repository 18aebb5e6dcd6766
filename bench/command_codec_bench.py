"""The cost of moving a batch of commands across Ray: typed msgspec vs orjson.

A router batch is encoded by the gateway and decoded by the shard. Before
typed commands, a command was ``(kind, key, name, args-dict, ...)`` written
with orjson; now its body is a frozen ``msgspec.Struct`` of its kind's tagged
union, decoded per command against the union (so one malformed body fails
alone). This measures both for a batch of chat sends, in one process, CPU
only (no Ray, no I/O)::

    python -m bench.command_codec_bench
    python -m bench.command_codec_bench --batch 100 --rounds 2000
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from hubbub.actors.command import Command, CommandBody, CommandCodec, encode_commands

__all__ = ["main"]


class Send(CommandBody, frozen=True):
    actor: str
    message_id: str
    client_msg_id: str
    body: str
    reply_to: str | None = None


class Read(CommandBody, frozen=True):
    actor: str
    up_to_seq: int


@dataclass(frozen=True, slots=True)
class _OldCommand:
    """The command before typed bodies: a name and a dict of arguments."""

    kind: str
    key: str
    name: str
    args: dict[str, Any]
    tenant_id: str | None = None
    idempotency_key: str | None = None
    retry_safe: bool = False


def _old_encode(commands: list[_OldCommand]) -> bytes:
    return orjson.dumps(
        [
            (c.kind, c.key, c.name, c.args, c.tenant_id, c.idempotency_key, c.retry_safe)
            for c in commands
        ]
    )


def _old_decode(data: bytes) -> list[_OldCommand]:
    return [_OldCommand(*fields) for fields in orjson.loads(data)]


def _sends(batch: int) -> tuple[list[Command], list[_OldCommand]]:
    tenant, key = str(uuid.uuid4()), str(uuid.uuid4())
    typed, old = [], []
    for n in range(batch):
        fields = {
            "actor": str(uuid.uuid4()),
            "message_id": str(uuid.uuid4()),
            "client_msg_id": f"c-{n}",
            "body": "a message of about sixty characters, as chat messages are",
            "reply_to": None,
        }
        typed.append(Command("conversation", key, Send(**fields), tenant))
        old.append(_OldCommand("conversation", key, "send", fields, tenant, None, True))
    return typed, old


def _per_command_us(work: Callable[[], object], batch: int, rounds: int) -> float:
    """Median over five runs of ``rounds`` calls, in µs per command."""
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            work()
        runs.append((time.perf_counter() - start) / rounds / batch * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=50, help="commands per batch")
    parser.add_argument("--rounds", type=int, default=4000, help="batches per run")
    args = parser.parse_args()
    typed, old = _sends(args.batch)
    codec = CommandCodec(Send | Read)
    typed_bytes, old_bytes = encode_commands(typed), _old_encode(old)
    assert codec.decode(typed_bytes) == typed
    rows = [
        ("encode", lambda: _old_encode(old), lambda: encode_commands(typed)),
        ("decode", lambda: _old_decode(old_bytes), lambda: codec.decode(typed_bytes)),
    ]
    print(f"batch of {args.batch} chat sends, {args.rounds} batches a run, median of 5 runs")
    print(f"bytes per command: orjson+dict {len(old_bytes) / args.batch:.0f}, ", end="")
    print(f"msgspec typed {len(typed_bytes) / args.batch:.0f}")
    print("| step | orjson + dict (µs/command) | msgspec typed (µs/command) |")
    print("|---|--:|--:|")
    for name, before, after in rows:
        old_us = _per_command_us(before, args.batch, args.rounds)
        new_us = _per_command_us(after, args.batch, args.rounds)
        print(f"| {name} | {old_us:.2f} | {new_us:.2f} |")


if __name__ == "__main__":
    main()
