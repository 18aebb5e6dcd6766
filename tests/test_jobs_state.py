"""The rules of one job, pure: submitting (idempotent by body), the lifecycle
queued → running → succeeded | failed | cancelled | timed_out through
retrying and nothing else, a gap-free event seq, report batches merged into
few events, cancellation at once, cooperative or forced after a grace
period, worker commands of a stale run or launch ignored, and the policies:
attempts with backoff, timeouts, lost workers, run_at and retry by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hubbub.errors import AppError
from hubbub.jobs import state as rules
from hubbub.jobs.commands import (
    Cancel,
    CountersReport,
    Dispatch,
    Finish,
    JobCommand,
    JobReport,
    LogReport,
    Lost,
    OutputReport,
    ProgressReport,
    Report,
    Retry,
    Start,
    StepReport,
    Submit,
    Supervise,
)
from hubbub.jobs.events import JobEvent, Queued, Started, Succeeded
from hubbub.jobs.state import JobState

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CREATOR = "00000000-0000-0000-0000-0000000000c1"
OTHER = "00000000-0000-0000-0000-0000000000c2"


def _submission(request_hash: str = "aa", **policy: object) -> Submit:
    return Submit(
        job_id="00000000-0000-0000-0000-00000000a0b1",
        tenant_id="00000000-0000-0000-0000-0000000000e1",
        kind="demo.count",
        input={"to": 3},
        created_by=CREATOR,
        request_hash=request_hash,
        idempotency_key="k-1",
        **policy,  # type: ignore[arg-type]
    )


def _run(state: JobState | None, command: JobCommand, at: float = 1) -> list[JobEvent]:
    """The events of ``command`` at ``at`` seconds after NOW, applied."""
    events = rules.decide(state, command, NOW + timedelta(seconds=at))
    for event in events:
        assert state is not None
        rules.apply(state, event)
    return events


def _queued(**policy: object) -> JobState:
    job, events = rules.submit(None, _submission(**policy), NOW)
    for event in events:
        rules.apply(job, event)
    return job


def _start(job: JobState, launch_id: str = "L1", at: float = 1) -> list[JobEvent]:
    """The sweep dispatches launch ``launch_id``, whose worker starts the job."""
    _run(job, Dispatch(launch_id=launch_id), at=at)
    return _run(job, Start(launch_id=launch_id), at=at)


def _running(**policy: object) -> JobState:
    job = _queued(**policy)
    _start(job)
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
    [started] = _start(job)
    assert started.data == {"status": "running", "attempt": 1}
    assert (job.status, job.attempts, job.started_at) == ("running", 1, NOW + timedelta(seconds=1))
    assert job.seq == 2  # the launch is bookkeeping, not an event
    assert _run(job, Start(launch_id="L1")) == []  # a duplicate launch: not started twice


def test_only_the_launch_a_job_waits_on_starts_it() -> None:
    job = _queued()
    assert _run(job, Start(launch_id="L0")) == []  # not dispatched yet
    _run(job, Dispatch(launch_id="L1"))
    assert _run(job, Dispatch(launch_id="L2")) == []  # it waits on L1 already
    assert _run(job, Start(launch_id="L2")) == []
    assert _run(job, Start(launch_id="L1"))[0].data["status"] == "running"


def test_reports_become_events_with_runs_merged_in_order() -> None:
    job = _running()
    reports: list[JobReport] = [
        StepReport("reading"),
        ProgressReport(10.0),
        CountersReport(1, 10),
        ProgressReport(20.0),
        OutputReport("a"),
        OutputReport("b"),
        LogReport("half way"),
        OutputReport("c"),
    ]
    events = _run(job, Report(attempt=1, reports=reports))
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
    reports: list[JobReport] = []
    for n in (1, 2, 3):
        reports += [CountersReport(n, 3), OutputReport(f"{n}")]
    events = _run(job, Report(attempt=1, reports=reports))
    assert [(e.type, e.data) for e in events] == [
        ("progress", {"progress": 0.0, "done": 3, "total": 3}),
        ("output", {"chunk": "123"}),
    ]


def test_a_stale_run_changes_nothing() -> None:
    job = _running()
    assert _run(job, Report(attempt=2, reports=[LogReport("x")])) == []
    assert _run(job, Finish(attempt=2, outcome="succeeded", result=1)) == []
    assert job.status == "running"


def test_a_finished_run_sets_the_result_or_the_error() -> None:
    job = _running()
    [done] = _run(job, Finish(attempt=1, outcome="succeeded", result={"n": 3}))
    assert done.data == {"status": "succeeded", "result": {"n": 3}}
    assert (job.status, job.result, job.progress) == ("succeeded", {"n": 3}, 100.0)
    failing = _running()
    error = {"code": "handler_failed", "message": "boom"}
    _run(failing, Finish(attempt=1, outcome="failed", error=error))
    assert (failing.status, failing.error, failing.finished_at is not None) == (
        "failed",
        error,
        True,
    )


def test_cancelling_a_queued_job_ends_it_at_once() -> None:
    job = _queued()
    [cancelled] = _run(job, Cancel(actor=CREATOR, role="member"))
    assert cancelled.data == {"status": "cancelled"}
    assert job.status == "cancelled"
    assert _run(job, Start(launch_id="L1")) == []  # its launch then finds it cancelled


def test_cancelling_a_running_job_asks_it_to_stop_once() -> None:
    job = _running()
    [asked] = _run(job, Cancel(actor=CREATOR, role="member"))
    assert asked.data == {"status": "running", "cancel_requested": True}
    assert _run(job, Cancel(actor=CREATOR, role="member")) == []
    # A handler that fails while asked to stop was stopping: cancelled.
    error = {"code": "handler_failed", "message": "interrupted"}
    [ended] = _run(job, Finish(attempt=1, outcome="failed", error=error))
    assert ended.data == {"status": "cancelled"} and job.status == "cancelled"


def test_a_finished_job_cannot_be_cancelled() -> None:
    job = _running()
    _run(job, Finish(attempt=1, outcome="succeeded", result=None))
    with pytest.raises(AppError) as refused:
        _run(job, Cancel(actor=CREATOR, role="owner"))
    assert (refused.value.code, refused.value.status) == ("job_finished", 409)


def test_only_the_creator_or_a_tenant_manager_cancels() -> None:
    with pytest.raises(AppError) as refused:
        _run(_queued(), Cancel(actor=OTHER, role="member"))
    assert refused.value.status == 403
    assert _run(_queued(), Cancel(actor=OTHER, role="admin"))[0].data["status"] == "cancelled"


def test_no_job_answers_not_found() -> None:
    with pytest.raises(AppError) as missing:
        rules.decide(None, Cancel(CREATOR), NOW)
    assert missing.value.status == 404


@pytest.mark.parametrize(
    ("source", "target"),
    [("queued", Succeeded(NOW, None)), ("succeeded", Started(NOW, 1)), ("cancelled", Queued(NOW))],
)
def test_a_status_change_outside_the_transitions_is_a_bug(source: str, target: JobEvent) -> None:
    job = _queued()
    job.status = source
    with pytest.raises(AssertionError):
        rules.apply(job, target)


def test_every_status_but_the_terminal_ones_has_a_way_on() -> None:
    assert set(rules.TRANSITIONS) | rules.TERMINAL == set(rules.STATUSES)
    assert all(targets <= set(rules.STATUSES) for targets in rules.TRANSITIONS.values())


def test_a_job_is_not_dispatched_before_its_run_at() -> None:
    job = _queued(run_at=NOW + timedelta(minutes=5))
    assert _run(job, Dispatch(launch_id="L1"), at=299) == []
    assert job.launch_id is None
    _start(job, at=300)
    assert job.status == "running"


def test_a_failed_attempt_is_retried_after_a_backoff_while_attempts_last() -> None:
    job = _running(max_attempts=3, backoff_seconds=10.0)
    error = {"code": "handler_failed", "message": "RuntimeError: boom"}
    [retrying] = _run(job, Finish(attempt=1, outcome="failed", error=error), at=2)
    assert retrying.data["status"] == "retrying" and retrying.data["error"] == error
    assert job.retry_at is not None
    wait = (job.retry_at - (NOW + timedelta(seconds=2))).total_seconds()
    assert 5 <= wait < 10  # the first backoff, times a jitter in [0.5, 1)
    assert _run(job, Dispatch(launch_id="L2"), at=2 + wait - 1) == []  # not due yet
    [second] = _start(job, "L2", at=2 + wait)
    assert second.data == {"status": "running", "attempt": 2}
    _run(job, Finish(attempt=2, outcome="failed", error=error), at=100)
    _start(job, "L3", at=1000)
    [failed] = _run(job, Finish(attempt=3, outcome="failed", error=error), at=1001)
    assert failed.data == {"status": "failed", "error": error}  # three attempts made
    assert (job.status, job.attempts) == ("failed", 3)


def test_backoff_doubles_per_attempt_with_a_jitter_fixed_by_job_and_attempt() -> None:
    job = _running(backoff_seconds=1.0)
    waits = []
    for attempts in (1, 2, 3, 4):
        job.attempts = attempts
        waits.append(rules.backoff(job))
        assert waits[-1] == rules.backoff(job)  # the same on every replay
        assert 2 ** (attempts - 1) * 0.5 <= waits[-1] < 2 ** (attempts - 1)
    job.attempts = 40
    assert rules.backoff(job) < rules.MAX_BACKOFF_SECONDS


def test_a_handler_refusing_its_input_is_not_retried() -> None:
    job = _running(max_attempts=3)
    error = {"code": "bad_project", "message": "no such project"}
    _run(job, Finish(attempt=1, outcome="failed", error=error, retryable=False))
    assert (job.status, job.error) == ("failed", error)


def test_a_lost_worker_fails_its_attempt_and_a_lost_launch_is_made_again() -> None:
    job = _running(max_attempts=2)
    assert _run(job, Lost(launch_id="L0")) == []  # not the job's launch: nothing
    [retrying] = _run(job, Lost(launch_id="L1"))
    assert retrying.data["error"]["code"] == "worker_lost"
    assert (job.status, job.launch_id) == ("retrying", None)
    _start(job, "L2", at=60)
    [failed] = _run(job, Lost(launch_id="L2"), at=61)
    assert failed.data["status"] == "failed"  # no attempt left
    waiting = _queued()
    _run(waiting, Dispatch(launch_id="L1"))
    assert [e.type for e in _run(waiting, Lost(launch_id="L1"))] == ["unlaunch"]
    assert (waiting.status, waiting.launch_id, waiting.seq) == ("queued", None, 1)


def test_an_attempt_past_its_timeout_ends_timed_out_or_is_retried() -> None:
    job = _running(timeout_seconds=30.0, max_attempts=2)
    assert _run(job, Supervise(grace=10), at=30) == []  # started at 1: due at 31
    [retrying] = _run(job, Supervise(grace=10), at=31)
    assert (retrying.data["status"], retrying.data["error"]["code"]) == ("retrying", "timed_out")
    _start(job, "L2", at=100)
    assert job.deadline == NOW + timedelta(seconds=130)
    [ended] = _run(job, Supervise(grace=10), at=130)
    assert ended.data["status"] == "timed_out" and job.finished_at is not None
    # Its worker's late reports and finish change nothing.
    assert _run(job, Finish(attempt=2, outcome="succeeded", result=1), at=131) == []


def test_a_job_that_does_not_stop_within_the_grace_period_is_cancelled() -> None:
    job = _running()
    _run(job, Cancel(actor=CREATOR, role="member"), at=5)
    assert _run(job, Supervise(grace=10), at=14) == []
    [forced] = _run(job, Supervise(grace=10), at=15)
    assert forced.data == {"status": "cancelled", "forced": True}


def test_a_retrying_job_is_cancelled_at_once() -> None:
    job = _running(max_attempts=2)
    _run(job, Lost(launch_id="L1"))
    [cancelled] = _run(job, Cancel(actor=CREATOR, role="member"))
    assert cancelled.data == {"status": "cancelled"}


def test_a_failed_job_retried_by_hand_starts_over_with_new_attempts() -> None:
    job = _running(max_attempts=1)
    error = {"code": "handler_failed", "message": "boom"}
    _run(job, Finish(attempt=1, outcome="failed", error=error))
    [queued] = _run(job, Retry(actor=CREATOR, role="member"))
    assert queued.data == {"status": "queued", "retry": True}
    assert (job.status, job.error, job.finished_at, job.attempt_budget) == ("queued", None, None, 2)
    _start(job, "L2")
    assert job.attempts == 2
    _run(job, Finish(attempt=2, outcome="succeeded", result=None))
    with pytest.raises(AppError) as refused:
        _run(job, Retry(actor=CREATOR, role="member"))
    assert (refused.value.code, refused.value.status) == ("job_not_retryable", 409)


def test_only_the_creator_or_a_tenant_manager_retries() -> None:
    job = _running()
    _run(job, Finish(attempt=1, outcome="failed", error={"code": "x", "message": "y"}))
    with pytest.raises(AppError) as refused:
        _run(job, Retry(actor=OTHER, role="member"))
    assert refused.value.status == 403


def test_a_running_job_with_no_launch_on_record_can_be_found_lost() -> None:
    job = _running()
    job.launch_id = None  # it started before launches were recorded
    [failed] = _run(job, Lost(launch_id=None))
    assert failed.data["error"]["code"] == "worker_lost"


def test_a_job_retried_by_hand_runs_now_whatever_its_run_at() -> None:
    job = _queued(run_at=NOW + timedelta(minutes=5))
    _start(job, at=300)
    _run(job, Finish(attempt=1, outcome="failed", error={"code": "x", "message": "y"}), at=301)
    _run(job, Retry(actor=CREATOR, role="member"), at=302)
    assert job.run_at is None and rules.is_waiting(job, NOW)
