"""Garbage-collector settings for hubbub's long-running processes.

CPython's defaults collect the youngest generation every 700 net
allocations and rescan every long-lived object in full collections. A busy
gateway allocates a few objects per delivery, so at tens of thousands of
deliveries a second full collections paused its event loop for 100 to 120 ms
every few seconds (measured with a bare python-socketio relay; see
docs/performance.md). Everything allocated while starting (modules, the app,
clients) lives as long as the process: frozen, full collections skip it;
higher thresholds make the collections that remain rarer.
"""

from __future__ import annotations

import gc

__all__ = ["settle_heap"]

#: Youngest generation every 50,000 net allocations; older ones 20 and 100 times rarer.
THRESHOLDS = (50_000, 20, 100)


def settle_heap() -> None:
    """Call once start-up is done: freeze what exists, collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
