"""The application keys of jobs on a gateway: what its plugin's cleanup
contexts create and its routes, socket handlers and sweep use.

A leaf module (no edge imports another to reach them).
"""

from __future__ import annotations

from aiohttp import web

from hubbub.jobs.feeds import JobFeeds
from hubbub.periodic import Periodic

__all__ = ["FEEDS", "SWEEP_ROUNDS"]

#: This gateway's followers of jobs (SSE streams and socket subscriptions).
FEEDS = web.AppKey("job_feeds", JobFeeds)
#: The rounds of this gateway's job sweep, which a submit starts at once.
SWEEP_ROUNDS = web.AppKey("job_sweep_rounds", Periodic)
