"""The CPU one awaited Ray actor call costs, in the caller and in an async actor.

A local Ray, one async actor whose method returns its argument (a 2 KB
batch, about what a router call carries), and ``--calls`` awaited calls in
sequence after a warm-up; the caller's and the actor's CPU time (user +
system, from psutil) over those calls, divided by their number; rounds
alternate an actor with Ray's task events on (Ray's default) and off (as
hubbub's shards run). Pin it to one core to see what a call costs where
everything shares that core::

    taskset -c 0 python -m bench.ray_call_bench
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence

import psutil
import ray

PAYLOAD = b"x" * 2000


@ray.remote
class Echo:
    async def handle(self, data: bytes, origin: str, number: int) -> bytes:
        return data

    def pid(self) -> int:
        return os.getpid()


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def measure(calls: int, warmup: int, task_events: bool) -> dict[str, float]:
    actor = Echo.options(enable_task_events=task_events).remote()  # type: ignore[attr-defined]
    own, remote = psutil.Process(), psutil.Process(await actor.pid.remote())
    for number in range(warmup):
        await actor.handle.remote(PAYLOAD, "bench", number)
    caller, callee, start = _cpu(own), _cpu(remote), time.perf_counter()
    for number in range(calls):
        await actor.handle.remote(PAYLOAD, "bench", number)
    per_call = 1000 / calls
    return {
        "wall_ms": (time.perf_counter() - start) * per_call,
        "caller_cpu_ms": (_cpu(own) - caller) * per_call,
        "actor_cpu_ms": (_cpu(remote) - callee) * per_call,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ray_call_bench", description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="measured calls")
    parser.add_argument("--warmup", type=int, default=200, help="calls before measuring")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds with and without task events"
    )
    args = parser.parse_args(argv)
    ray.init(include_dashboard=False, logging_level="ERROR", _system_config={"worker_niceness": 0})
    try:
        for _ in range(args.rounds):
            for task_events in (True, False):
                figures = asyncio.run(measure(args.calls, args.warmup, task_events))
                line = ", ".join(f"{name} {value:.3f}" for name, value in figures.items())
                print(f"task events {'on ' if task_events else 'off'}: {line}")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
