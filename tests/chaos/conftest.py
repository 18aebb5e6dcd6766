"""The fault-injection suite's fixtures: ``record`` keeps each fault's
measurements, and the end of the run prints them as the table of
docs/deployment.md ("Faults and recovery")."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable

import psutil
import pytest

from tests.support.faults import Measured

MEASURED = pytest.StashKey[list[Measured]]()


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[[Measured], None]:
    """``record(measured)``: one row of the results table."""
    return request.config.stash.setdefault(MEASURED, []).append


def _seconds(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f} s"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    rows = terminalreporter.config.stash.get(MEASURED, [])
    if not rows:
        return
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, load {os.getloadavg()[0]:.1f}"
    )
    write = terminalreporter.write_line
    terminalreporter.section("faults and recovery")
    write(f"machine: {machine}")
    write(
        "| fault | first acked send | first live message | first live job event "
        "| acked sends | job events | lost | duplicated |"
    )
    write("|---|---|---|---|---|---|---|---|")
    for row in rows:
        recoveries = (row.send_recovery, row.chat_event_recovery, row.job_event_recovery)
        write(
            f"| {row.fault} | {' | '.join(map(_seconds, recoveries))} | {row.acked} "
            f"| {row.job_events} | {row.lost} | {row.duplicated} |"
        )
