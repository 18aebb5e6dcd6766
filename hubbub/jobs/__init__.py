"""Jobs: long work on Ray workers with live progress (see docs/jobs.md).

The job entity (``entity.py``) owns each job's lifecycle; the rules are in
``state.py``, over the typed commands of ``commands.py`` and events of
``events.py``; its rows are ``rows.py``, its wire view ``view.py``; kinds are
declared in ``registry.py``; a run on a worker is ``worker.py`` with its
``context.py``; followers (SSE and Socket.IO) replay and go live through
``feeds.py``, and ``stream.py`` relays one to an SSE client. The job routes
(``api.py``) and other capabilities submit jobs through ``dispatch.py`` and
cancel and retry them through ``control.py``.
"""
