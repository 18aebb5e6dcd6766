"""Job kinds: a kind's name → its handler, input model and Ray task needs.

A kind is declared where its handler is defined, with :func:`job_kind`::

    class CountInput(BaseModel):
        to: int = Field(ge=1, le=10_000)

    @job_kind("demo.count", CountInput)
    async def count(context: JobContext, input: CountInput) -> dict:
        ...

Declaring registers the kind in :data:`KINDS` when its module is imported.
hubbub's own kinds are imported by the jobs plugin; an installed package adds
kinds through the entry-point group ``hubbub.jobs`` (each entry point names
a module, or an object in one, whose import declares them), found by
:meth:`Registry.discover`. A worker finds a kind again by importing its
module (:meth:`Registry.load`), so that module must be importable on every
Ray node. Handlers may be ``async`` (run on the worker's event loop) or
plain functions (run in a thread beside it); either returns the job's
result as a JSON value.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from hubbub.errors import AppError, FieldError

__all__ = [
    "ENTRY_POINT_GROUP",
    "KINDS",
    "Handler",
    "JobKind",
    "Policy",
    "Registry",
    "job_kind",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hubbub.jobs"

#: ``handler(context, input) -> result``, async or not.
Handler = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Policy:
    """How a kind's jobs are run; copied into each job when it is submitted."""

    #: Attempts a job gets before it fails; an attempt fails when its handler
    #: raises (an ``AppError`` fails the job at once), its worker is lost or
    #: it runs past ``timeout_seconds``.
    max_attempts: int = 1
    #: The wait before the second attempt, doubled for each later one (with jitter).
    backoff_seconds: float = 1.0
    #: Longest run of one attempt; None: no limit.
    timeout_seconds: float | None = None
    #: Most jobs of the kind running at once in one tenant; None: no limit.
    concurrency: int | None = None
    #: Jobs of higher priority are launched first.
    priority: int = 0
    #: The key of the input (its value a string, e.g. a project id) of which
    #: a tenant may have one active job at a time; None: no conflicts.
    conflict_key: Callable[[Any], str | None] | None = None
    #: Jobs seen (read, listed, followed) only by their creator and the
    #: tenant's owners and admins — for results other members must not see.
    private: bool = False

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.backoff_seconds < 0:
            raise ValueError("expected max_attempts >= 1 and backoff_seconds >= 0")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("expected a concurrency of at least 1, or None")


@dataclass(frozen=True)
class JobKind:
    """One kind of job: how to validate its input and run it."""

    name: str
    handler: Handler
    input: type[BaseModel]
    description: str = ""
    #: Ray task resources of one run, e.g. ``{"num_cpus": 1}`` or a custom resource.
    resources: Mapping[str, float] = field(default_factory=lambda: {"num_cpus": 1})
    #: Entity kinds the handler sends commands to through ``context.router``
    #: (its own job's shards are always reachable).
    entities: tuple[str, ...] = ()
    policy: Policy = field(default_factory=Policy)

    @property
    def module(self) -> str:
        """The module a worker imports to find this kind again."""
        return self.handler.__module__

    def parse(self, raw: Any, location: str = "body", prefix: str = "input") -> BaseModel:
        """The validated input; 422 naming each bad field (``input.<field>``)."""
        try:
            return self.input.model_validate(raw)
        except ValidationError as exc:
            errors = tuple(
                FieldError(location, ".".join([prefix, *map(str, e["loc"])]), e["msg"])
                for e in exc.errors(include_url=False)
            )
            names = ", ".join(e.field for e in errors)
            message = f"invalid input for job kind {self.name!r}: {names}"
            raise AppError("validation_failed", message, status=422, errors=errors) from None


class Registry:
    """Owns: the kinds known to this process. Concurrency: filled at import
    and start-up, read afterwards."""

    def __init__(self) -> None:
        self._kinds: dict[str, JobKind] = {}
        self._discovered = False

    def add(self, kind: JobKind) -> JobKind:
        known = self._kinds.get(kind.name)
        if known is not None and known.handler is not kind.handler:
            raise ValueError(f"job kind {kind.name!r} is declared twice")
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> JobKind:
        """The kind called ``name``; 422 naming the ``kind`` field if unknown."""
        kind = self._kinds.get(name)
        if kind is None:
            known = ", ".join(sorted(self._kinds)) or "none"
            raise AppError(
                "unknown_job_kind",
                f"expected a registered job kind ({known}), got {name[:100]!r}",
                status=422,
                errors=(FieldError("body", "kind", "not a registered job kind"),),
            )
        return kind

    def find(self, name: str) -> JobKind | None:
        return self._kinds.get(name)

    def load(self, module: str, name: str) -> JobKind:
        """The kind ``name`` once ``module`` (which declares it) is imported."""
        importlib.import_module(module)
        return self.get(name)

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def discover(self) -> None:
        """Import every ``hubbub.jobs`` entry point once; a broken one is logged."""
        if self._discovered:
            return
        self._discovered = True
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                point.load()
            except Exception:  # one broken package must not stop the gateway
                log.exception("job kinds of entry point %r failed to load", point.value)


#: The kinds of this process.
KINDS = Registry()


def job_kind(
    name: str,
    input: type[BaseModel],
    *,
    description: str = "",
    resources: Mapping[str, float] | None = None,
    entities: tuple[str, ...] = (),
    policy: Policy | None = None,
) -> Callable[[Handler], Handler]:
    """Declare the decorated function as the handler of job kind ``name``."""

    def declare(handler: Handler) -> Handler:
        needs = {"num_cpus": 1.0} if resources is None else dict(resources)
        doc = description or (handler.__doc__ or "").strip().split("\n")[0]
        KINDS.add(JobKind(name, handler, input, doc, needs, entities, policy or Policy()))
        return handler

    return declare
