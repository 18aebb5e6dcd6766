"""The wire view of a job (issue 5's "Wire names"): what its routes answer,
its entity replies and its reads return, written once.

``JobView`` in ``hubbub.jobs.wire`` is its schema in the OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hubbub.jobs.state import JobState

__all__ = ["view"]


def view(state: JobState) -> dict[str, Any]:
    """The wire shape of ``state``."""
    return {
        "id": state.id,
        "tenant_id": state.tenant_id,
        "kind": state.kind,
        "status": state.status,
        "progress": state.progress,
        "step": state.step,
        "done": state.done,
        "total": state.total,
        "result": state.result,
        "error": state.error,
        "attempts": state.attempts,
        "max_attempts": state.max_attempts,
        "priority": state.priority,
        "conflict_key": state.conflict_key,
        "run_at": _time(state.run_at),
        "retry_at": _time(state.retry_at),
        "cancel_requested": state.cancel_requested,
        "last_seq": state.seq,
        "created_by": state.created_by,
        "created_at": state.created_at.isoformat(),
        "started_at": _time(state.started_at),
        "finished_at": _time(state.finished_at),
    }


def _time(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()
