"""How a running job's reports leave its worker: a report after a quiet spell
leaves at once, the ones right behind it wait out the report interval and
leave together, in order; a run that reports nothing still asks, every check
interval, whether its job was cancelled.

The reporter talks to a recording stand-in for the router here; the whole
path through the job entity is in tests/test_jobs_api.py."""

from __future__ import annotations

import asyncio
from typing import Any

from hubbub.actors.command import Command
from hubbub.config import Settings
from hubbub.jobs.commands import LogReport, ProgressReport, Report, StepReport
from hubbub.jobs.context import JobContext
from hubbub.jobs.worker import Launch, Reporter

_LAUNCH = Launch("launch-1", "job-1", "tenant-1", "demo.count", "hubbub.jobs.demo", {})


class _RecordingRouter:
    """Takes the reporter's commands; answers as a job that runs on."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.cancel = False
        self.arrived = asyncio.Event()

    async def send(self, command: Command) -> dict[str, Any]:
        assert (command.kind, command.key) == ("job", "job-1")
        assert isinstance(command.body, Report)
        self.batches.append(command.body.reports)
        self.arrived.set()
        return {"current": True, "cancel_requested": self.cancel}

    async def next_batch(self) -> list[Any]:
        await asyncio.wait_for(self.arrived.wait(), 10)
        self.arrived.clear()
        return self.batches[-1]


def _reporter(settings: Settings, **timing: float) -> tuple[Reporter, JobContext, Any]:
    router = _RecordingRouter()
    context = JobContext("job-1", 1)
    reporter = Reporter(router, _LAUNCH, context, settings.model_copy(update=timing))  # type: ignore[arg-type]
    reporter.start()
    return reporter, context, router


async def test_the_first_report_leaves_at_once_and_the_next_ones_together(
    settings: Settings,
) -> None:
    # An hour between batches: only the leading edge can send the first one.
    reporter, context, router = _reporter(settings, job_report_seconds=3600, job_check_seconds=3600)
    context.progress(10)
    assert await router.next_batch() == [ProgressReport(10.0)]
    context.progress(20)
    context.log("half way")
    await asyncio.sleep(0.05)
    assert len(router.batches) == 1  # they wait out the interval behind the first
    await reporter.close()
    assert router.batches[1] == [ProgressReport(20.0), LogReport("half way")]


async def test_a_report_from_the_handlers_thread_leaves_at_once_too(settings: Settings) -> None:
    reporter, context, router = _reporter(settings, job_report_seconds=3600, job_check_seconds=3600)
    await asyncio.to_thread(context.step, "loading")
    assert await router.next_batch() == [StepReport("loading")]
    await reporter.close()


async def test_a_quiet_run_still_learns_that_its_job_was_cancelled(settings: Settings) -> None:
    reporter, context, router = _reporter(settings, job_report_seconds=3600, job_check_seconds=0.05)
    router.cancel = True
    assert await router.next_batch() == []  # nothing to report: only the check
    assert context.cancelled
    await reporter.close()
