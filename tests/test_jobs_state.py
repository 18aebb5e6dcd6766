"""The rules of one job, pure: submitting (idempotent by body), the lifecycle
queued → running → succeeded | failed | cancelled and nothing else, a
gap-free event seq, report batches merged into few events, cancellation
at once or cooperative, and worker commands of a stale run ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hubbub.errors import AppError
from hubbub.jobs import state as rules
from hubbub.jobs.state import JobEvent, JobState, Submission

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CREATOR = "00000000-0000-0000-0000-0000000000c1"
OTHER = "00000000-0000-0000-0000-0000000000c2"


def _submission(request_hash: str = "aa") -> Submission:
    return Submission(
        job_id="00000000-0000-0000-0000-00000000a0b1",
        tenant_id="00000000-0000-0000-0000-0000000000e1",
        kind="demo.count",
        input={"to": 3},
        created_by=CREATOR,
        request_hash=request_hash,
        idempotency_key="k-1",
    )


def _run(state: JobState | None, name: str, **args: object) -> list[JobEvent]:
    events = rules.decide(state, name, dict(args), NOW + timedelta(seconds=1))
    for event in events:
        assert state is not None
        rules.apply(state, event)
    return events


def _queued() -> JobState:
    job, events = rules.submit(None, _submission(), NOW)
    for event in events:
        rules.apply(job, event)
    return job


def _running() -> JobState:
    job = _queued()
    _run(job, "start")
    return job


def test_a_submission_creates_a_queued_job_with_its_first_event() -> None:
    job, events = rules.submit(None, _submission(), NOW)
    assert [(e.type, e.data) for e in events] == [("status", {"status": "queued"})]
    rules.apply(job, events[0])
    assert (job.status, job.seq, job.attempts) == ("queued", 1, 0)


def test_the_same_submission_again_gets_the_same_job_and_changes_nothing() -> None:
    job = _queued()
    again, events = rules.submit(job, _submission(), NOW)
    assert again is job and events == []


def test_the_same_key_with_another_body_is_refused() -> None:
    with pytest.raises(AppError) as refused:
        rules.submit(_queued(), _submission(request_hash="bb"), NOW)
    assert (refused.value.code, refused.value.status) == ("idempotency_key_reused", 422)


def test_a_job_starts_once_and_counts_its_attempt() -> None:
    job = _queued()
    [started] = _run(job, "start")
    assert started.data == {"status": "running", "attempt": 1}
    assert (job.status, job.attempts, job.started_at) == ("running", 1, NOW + timedelta(seconds=1))
    assert _run(job, "start") == []  # a duplicate launch: not started twice


def test_reports_become_events_with_runs_merged_in_order() -> None:
    job = _running()
    reports = [
        ("step", {"name": "reading"}),
        ("progress", {"progress": 10.0}),
        ("counters", {"done": 1, "total": 10}),
        ("progress", {"progress": 20.0}),
        ("output", {"chunk": "a"}),
        ("output", {"chunk": "b"}),
        ("log", {"text": "half way"}),
        ("output", {"chunk": "c"}),
    ]
    events = _run(job, "report", attempt=1, reports=reports)
    assert [(e.type, e.data) for e in events] == [
        ("step", {"name": "reading"}),
        ("progress", {"progress": 20.0, "done": 1, "total": 10}),
        ("output", {"chunk": "ab"}),
        ("log", {"text": "half way"}),
        ("output", {"chunk": "c"}),
    ]
    assert (job.step, job.progress, job.done, job.total) == ("reading", 20.0, 1, 10)
    assert job.seq == 2 + len(events)  # queued, running, then one seq per event


def test_progress_and_output_interleaved_in_a_batch_give_one_event_each() -> None:
    job = _running()
    reports = []
    for n in (1, 2, 3):
        reports += [("counters", {"done": n, "total": 3}), ("output", {"chunk": f"{n}"})]
    events = _run(job, "report", attempt=1, reports=reports)
    assert [(e.type, e.data) for e in events] == [
        ("progress", {"progress": 0.0, "done": 3, "total": 3}),
        ("output", {"chunk": "123"}),
    ]


def test_a_stale_run_changes_nothing() -> None:
    job = _running()
    assert _run(job, "report", attempt=2, reports=[("log", {"text": "x"})]) == []
    assert _run(job, "finish", attempt=2, outcome="succeeded", result=1) == []
    assert job.status == "running"


def test_a_finished_run_sets_the_result_or_the_error() -> None:
    job = _running()
    [done] = _run(job, "finish", attempt=1, outcome="succeeded", result={"n": 3})
    assert done.data == {"status": "succeeded", "result": {"n": 3}}
    assert (job.status, job.result, job.progress) == ("succeeded", {"n": 3}, 100.0)
    failing = _running()
    error = {"code": "handler_failed", "message": "boom"}
    _run(failing, "finish", attempt=1, outcome="failed", error=error)
    assert (failing.status, failing.error, failing.finished_at is not None) == (
        "failed",
        error,
        True,
    )


def test_cancelling_a_queued_job_ends_it_at_once() -> None:
    job = _queued()
    [cancelled] = _run(job, "cancel", actor=CREATOR, role="member")
    assert cancelled.data == {"status": "cancelled"}
    assert job.status == "cancelled"
    assert _run(job, "start") == []  # its launch then finds it cancelled


def test_cancelling_a_running_job_asks_it_to_stop_once() -> None:
    job = _running()
    [asked] = _run(job, "cancel", actor=CREATOR, role="member")
    assert asked.data == {"status": "running", "cancel_requested": True}
    assert _run(job, "cancel", actor=CREATOR, role="member") == []
    # A handler that fails while asked to stop was stopping: cancelled.
    error = {"code": "handler_failed", "message": "interrupted"}
    [ended] = _run(job, "finish", attempt=1, outcome="failed", error=error)
    assert ended.data == {"status": "cancelled"} and job.status == "cancelled"


def test_a_finished_job_cannot_be_cancelled() -> None:
    job = _running()
    _run(job, "finish", attempt=1, outcome="succeeded", result=None)
    with pytest.raises(AppError) as refused:
        _run(job, "cancel", actor=CREATOR, role="owner")
    assert (refused.value.code, refused.value.status) == ("job_finished", 409)


def test_only_the_creator_or_a_tenant_manager_cancels() -> None:
    with pytest.raises(AppError) as refused:
        _run(_queued(), "cancel", actor=OTHER, role="member")
    assert refused.value.status == 403
    assert _run(_queued(), "cancel", actor=OTHER, role="admin")[0].data["status"] == "cancelled"


def test_no_job_answers_not_found() -> None:
    with pytest.raises(AppError) as missing:
        rules.decide(None, "cancel", {"actor": CREATOR}, NOW)
    assert missing.value.status == 404


@pytest.mark.parametrize(
    ("source", "target"),
    [("queued", "succeeded"), ("succeeded", "running"), ("cancelled", "queued")],
)
def test_a_status_change_outside_the_transitions_is_a_bug(source: str, target: str) -> None:
    job = _queued()
    job.status = source
    with pytest.raises(AssertionError):
        rules.apply(job, JobEvent("status", {"status": target}, NOW))


def test_every_status_but_the_terminal_ones_has_a_way_on() -> None:
    assert set(rules.TRANSITIONS) | rules.TERMINAL == set(rules.STATUSES)
    assert all(targets <= set(rules.STATUSES) for targets in rules.TRANSITIONS.values())
