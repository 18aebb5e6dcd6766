"""Declaring a workflow: a job kind whose handler moves through declared steps.

::

    @workflow(
        "summarize",
        SummarizeInput,
        title="Summarise a text",
        stages=(
            Stage("prepare", "Prepare", "Clean the text up.", (Step("split", "Split", "..."),)),
            ...
        ),
    )
    async def summarize(run: WorkflowRun, input: SummarizeInput) -> dict:
        run.enter("prepare", "split")
        ...

The kind is named ``workflow.<key>`` and registered in the job kind registry
(``hubbub.jobs.registry.KINDS``) like any other; its :class:`Workflow`
descriptor rides on the registered handler, so the workflows known to a
process are read off that registry (:func:`registered`), not kept beside it.
A run is a job: :meth:`WorkflowRun.enter` reports a ``step`` event named
``<stage>.<step>`` and the share of steps before it as progress (100 once
the handler returns).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from hubbub.errors import AppError
from hubbub.jobs.context import JobContext
from hubbub.jobs.registry import KINDS, JobKind, Policy, job_kind

__all__ = [
    "KEY_PATTERN",
    "KIND_PREFIX",
    "Stage",
    "Step",
    "Workflow",
    "WorkflowRun",
    "find",
    "registered",
    "workflow",
    "workflow_of",
]

#: A workflow ``key`` is the job kind ``KIND_PREFIX + key``.
KIND_PREFIX = "workflow."
#: Keys and stage/step keys: lower case, digits, ``_`` and ``-`` (no ``.``: it
#: joins stage and step in a step event's name).
KEY_PATTERN = r"[a-z][a-z0-9_-]{0,62}"
_KEY = re.compile(KEY_PATTERN)
#: Not a workflow key: ``/workflows/runs`` is the runs list.
_RESERVED = frozenset({"runs"})
#: The handler attribute that carries its workflow descriptor.
_ATTRIBUTE = "__workflow__"

WorkflowHandler = Callable[["WorkflowRun", Any], Awaitable[Any]]


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    description: str = ""


@dataclass(frozen=True)
class Stage:
    key: str
    title: str
    description: str = ""
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Workflow:
    """A workflow's descriptor: its key, words for people, and its stages."""

    key: str
    title: str
    description: str
    stages: tuple[Stage, ...]

    @property
    def kind(self) -> str:
        return KIND_PREFIX + self.key

    def steps(self) -> list[tuple[Stage, Step]]:
        """Every step with its stage, in declared order."""
        return [(stage, step) for stage in self.stages for step in stage.steps]

    def position(self, stage: str, step: str) -> int | None:
        """The index of ``<stage>.<step>`` in :meth:`steps`, None if undeclared."""
        keys = [(s.key, t.key) for s, t in self.steps()]
        return keys.index((stage, step)) if (stage, step) in keys else None

    def check(self) -> None:
        """ValueError for a bad key, an empty stage or a repeated key."""
        _check_key(self.key, "workflow")
        if self.key in _RESERVED or not self.stages:
            raise ValueError(f"workflow {self.key!r}: a reserved key, or no stages")
        _check_unique([s.key for s in self.stages], f"stage of workflow {self.key!r}")
        for stage in self.stages:
            _check_key(stage.key, "stage")
            if not stage.steps:
                raise ValueError(f"stage {stage.key!r} of workflow {self.key!r} has no steps")
            _check_unique([t.key for t in stage.steps], f"step of stage {stage.key!r}")
            for step in stage.steps:
                _check_key(step.key, "step")


class WorkflowRun:
    """What a workflow's handler gets: its job's context and the way through."""

    def __init__(self, context: JobContext, workflow: Workflow) -> None:
        self.context = context
        self.workflow = workflow

    def enter(self, stage: str, step: str) -> None:
        """Report that the run entered ``step`` of ``stage``; the steps before
        it count as done. ValueError for a step the workflow does not declare."""
        index = self.workflow.position(stage, step)
        if index is None:
            raise ValueError(f"workflow {self.workflow.key!r} declares no step {stage}.{step}")
        self.context.step(f"{stage}.{step}")
        self.context.progress(100 * index / len(self.workflow.steps()))


def workflow(
    key: str,
    input: type[BaseModel],
    *,
    title: str,
    stages: tuple[Stage, ...],
    description: str = "",
    resources: Mapping[str, float] | None = None,
    entities: tuple[str, ...] = (),
    policy: Policy | None = None,
) -> Callable[[WorkflowHandler], WorkflowHandler]:
    """Declare the decorated ``async`` function as workflow ``key``: the job
    kind ``workflow.<key>`` with these stages (ValueError if malformed);
    ``resources``, ``entities`` and ``policy`` are the kind's (``job_kind``)."""

    def declare(handler: WorkflowHandler) -> WorkflowHandler:
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"workflow {key!r}: expected an async handler")
        doc = description or (handler.__doc__ or "").strip().split("\n")[0]
        declared = Workflow(key, title, doc, stages)
        declared.check()

        @functools.wraps(handler)  # keeps __module__: workers import the kind by it
        async def run(context: JobContext, value: BaseModel) -> Any:
            result = await handler(WorkflowRun(context, declared), value)
            context.progress(100)  # every step done
            return result

        setattr(run, _ATTRIBUTE, declared)
        job_kind(
            declared.kind,
            input,
            description=doc,
            resources=resources,
            entities=entities,
            policy=policy,
        )(run)
        return handler

    return declare


def workflow_of(kind: JobKind) -> Workflow | None:
    """The workflow a job kind runs, None for a plain kind."""
    return getattr(kind.handler, _ATTRIBUTE, None)


def registered() -> list[tuple[Workflow, JobKind]]:
    """The workflows of this process with their job kinds, by key."""
    kinds = (KINDS.get(name) for name in KINDS.names() if name.startswith(KIND_PREFIX))
    return [(flow, kind) for kind in kinds if (flow := workflow_of(kind)) is not None]


def find(key: str) -> tuple[Workflow, JobKind]:
    """Workflow ``key`` and its job kind; 404 ``not_found`` if there is none."""
    for flow, kind in registered():
        if flow.key == key:
            return flow, kind
    raise AppError.not_found("workflow")


def _check_key(key: str, what: str) -> None:
    if not _KEY.fullmatch(key):
        raise ValueError(f"expected a {what} key of a-z, 0-9, _ and - (≤ 63), got {key!r}")


def _check_unique(keys: list[str], what: str) -> None:
    if len(set(keys)) != len(keys):
        raise ValueError(f"a {what} is declared twice: {keys}")
