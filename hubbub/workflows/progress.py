"""Where a run stands in its workflow, from its job and its ``step`` events.

Pure: no I/O. A run's steps are entered in order (``<stage>.<step>`` step
events, each with its time); the step last entered is the run's position.
A step before the position is ``succeeded`` if it was entered and
``skipped`` if not; the step at the position is ``running`` while the job
is live and ends as the job did (``succeeded``, ``failed``, ``cancelled``,
``timed_out``); the steps after it are ``pending`` while the job is live
and ``skipped`` once it finished. A stage's status is that of its steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hubbub.jobs.state import TERMINAL
from hubbub.workflows.declaration import Step, Workflow

__all__ = ["Entered", "current", "stages"]

#: A stage shows the first of these its steps have, else it is succeeded.
_STAGE_ORDER = ("running", "failed", "cancelled", "timed_out")


@dataclass(frozen=True, slots=True)
class Entered:
    """One ``step`` event of a run: the step's name and when it was entered."""

    name: str
    at: str


def current(step_name: str | None) -> tuple[str | None, str | None]:
    """``(stage, step)`` keys of a job's latest step name (``None`` parts if none)."""
    if not step_name or "." not in step_name:
        return None, None
    stage, _, step = step_name.partition(".")
    return stage, step


def stages(flow: Workflow, job: dict[str, Any], entered: list[Entered]) -> list[dict[str, Any]]:
    """The workflow's stages, each with its steps' status and times."""
    started = _starts(flow, entered)
    position = max(started, default=-1)
    views = [
        _step_view(step, index, started, position, job)
        for index, (_, step) in enumerate(flow.steps())
    ]
    result, offset = [], 0
    for stage in flow.stages:
        steps = views[offset : offset + len(stage.steps)]
        offset += len(stage.steps)
        result.append(
            {
                "key": stage.key,
                "title": stage.title,
                "status": _stage_status([s["status"] for s in steps]),
                "steps": steps,
            }
        )
    return result


def _starts(flow: Workflow, entered: list[Entered]) -> dict[int, str]:
    """When each declared step was first entered, by its index; others are left out."""
    starts: dict[int, str] = {}
    for event in entered:
        stage, step = current(event.name)
        index = None if stage is None or step is None else flow.position(stage, step)
        if index is not None:
            starts.setdefault(index, event.at)
    return starts


def _step_view(
    step: Step, index: int, started: dict[int, str], position: int, job: dict[str, Any]
) -> dict[str, Any]:
    finished = job["status"] in TERMINAL
    later = sorted(at for i, at in started.items() if i > index)
    if index == position:
        status = job["status"] if finished else "running"
        ended = job["finished_at"] if finished else None
    elif index < position:
        status = "succeeded" if index in started else "skipped"
        ended = later[0] if index in started else None
    else:
        status, ended = ("skipped" if finished else "pending"), None
    return {
        "key": step.key,
        "title": step.title,
        "status": status,
        "started_at": started.get(index),
        "finished_at": ended,
    }


def _stage_status(statuses: list[str]) -> str:
    for status in _STAGE_ORDER:
        if status in statuses:
            return status
    for status in ("pending", "skipped"):
        if all(s == status for s in statuses):
            return status
    return "succeeded"  # succeeded steps, maybe with skipped ones
