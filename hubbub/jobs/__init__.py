"""Jobs: long work on Ray workers with live progress (see docs/jobs.md).

The job entity (``hubbub/actors/job.py``) owns each job's lifecycle; the
rules are in ``state.py``; kinds are declared in ``registry.py``; a run on a
worker is ``worker.py`` with its ``context.py``; followers (SSE and
Socket.IO) replay and go live through ``feeds.py``.
"""
