"""``demo.count``: a job kind to try the job system with, and to test it by.

It counts to ``to``, pausing ``pause_ms`` between numbers: a step at the
start and at the end, progress and counters at every number, a log line at
every tenth of the way and the numbers as streamed output. It stops when its
job is cancelled.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from hubbub.jobs.context import JobContext
from hubbub.jobs.registry import job_kind

__all__ = ["CountInput", "count"]


class CountInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: int = Field(ge=1, le=100_000, description="The number to count to.")
    pause_ms: int = Field(0, ge=0, le=10_000, description="Pause after each number.")


@job_kind("demo.count", CountInput, resources={"num_cpus": 0.1})
async def count(context: JobContext, input: CountInput) -> dict[str, int]:
    """Count to a number with progress, steps, logs and output."""
    context.step("counting")
    tenth = max(1, input.to // 10)
    for n in range(1, input.to + 1):
        context.raise_if_cancelled()
        context.counters(n, input.to)
        context.progress(100 * n / input.to)
        context.output(f"{n}\n")
        if n % tenth == 0:
            context.log(f"counted to {n}")
        await asyncio.sleep(input.pause_ms / 1000)
    context.step("done")
    return {"counted": input.to}
