"""HTTP request metrics: counts by route template and status, and durations.

A request is labelled by its route's template (``/api/v1/jobs/{job_id}``),
never by its path, so path parameters (ids, a link's secret token) never
reach a metric; a request no route matched is ``unmatched``, and a method
outside the standard ones is ``other``. Both are observed when the response
is prepared (its headers leave), so a streaming response (SSE, a websocket)
counts once, with the time to its first byte rather than its whole life.
"""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler

from hubbub.instruments import CounterChild, HistogramChild
from hubbub.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

__all__ = ["observe_requests"]

_STARTED = web.RequestKey("metrics_started", float)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_Series = tuple[CounterChild, HistogramChild]
#: Children by (method, template, status), bound on first use; the set is
#: bounded by the app's routes times the statuses they answer.
_bound: dict[tuple[str, str, int], _Series] = {}


def observe_requests(app: web.Application) -> None:
    """Measure every request of ``app``: call before it is frozen."""
    app.middlewares.insert(0, _stamp)
    app.on_response_prepare.append(_observe)


@web.middleware
async def _stamp(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[_STARTED] = time.perf_counter()
    return await handler(request)


async def _observe(request: web.Request, response: web.StreamResponse) -> None:
    started = request.get(_STARTED)
    if started is None:
        return  # answered before any middleware ran (a malformed request)
    series = _series(request.method, _template(request), response.status)
    series[0].inc()
    series[1].observe(time.perf_counter() - started)


def _series(method: str, template: str, status: int) -> _Series:
    method = method if method in _METHODS else "other"
    key = (method, template, status)
    series = _bound.get(key)
    if series is None:
        series = _bound[key] = (
            HTTP_REQUESTS.labels(method, template, str(status)),
            HTTP_REQUEST_DURATION.labels(method, template),
        )
    return series


def _template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return "unmatched" if resource is None else resource.canonical
