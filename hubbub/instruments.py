"""Counters, gauges and histograms owned by one event loop, served by prometheus_client.

prometheus_client's own metrics take a ``threading.Lock`` on every
observation. hubbub observes only from its event loop thread (a gateway's,
or a shard actor's: Ray runs an async actor's methods on one loop), and a
scrape reads on that same loop, so a value here is a plain float with no
lock. Each instrument is a prometheus_client ``Collector``: registered in a
``CollectorRegistry`` it is rendered in the text format like any other.

Labelled children are bound once, by whoever observes (``labels(...)`` at
start-up or per shard), so the hot path is one attribute update; a child
bound once is reported from then on, even at zero. Never label with an
unbounded value (a path, a key, an id).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = [
    "LATENCY_BUCKETS",
    "SIZE_BUCKETS",
    "Counter",
    "CounterChild",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
]

#: Seconds: from a fast Ray call or commit (a millisecond) to a stalled one.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: Items per batch: powers of two up to the largest batch any hop sends.
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class CounterChild:
    """One series of a counter: only ever goes up."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class GaugeChild:
    """One series of a gauge: set, raised and lowered, or read from a function."""

    __slots__ = ("read", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.read: Callable[[], float] | None = None

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set_function(self, read: Callable[[], float]) -> None:
        """Report ``read()`` at each scrape instead of the stored value."""
        self.read = read

    def current(self) -> float:
        return self.read() if self.read is not None else self.value


class HistogramChild:
    """One series of a histogram: per-bucket counts (not cumulative) and a sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        running, buckets = 0, []
        for bound, count in zip([*self.bounds, math.inf], self.counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == math.inf else repr(float(bound)), running))
        return buckets


class _Instrument(Collector):
    """A named family of children keyed by label values."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], object] = {}
        #: The one child of an instrument without labels, observed directly.
        self.single: Any = None
        if not self.labelnames:
            self.single = self._children[()] = self._new_child()

    def _child(self, values: tuple[str, ...]) -> object:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._new_child()
        return child

    def _new_child(self) -> object:
        raise NotImplementedError

    def describe(self) -> list[Metric]:
        return [self._family()]

    def _family(self) -> Metric:
        raise NotImplementedError


class Counter(_Instrument):
    """A counter; ``name`` without ``_total`` (the text format adds it)."""

    def labels(self, *values: str) -> CounterChild:
        return self._child(values)  # type: ignore[return-value]

    def inc(self, amount: float = 1.0) -> None:
        self.single.inc(amount)

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, child in self._children.items():
            family.add_metric(list(values), child.value)  # type: ignore[attr-defined]
        yield family


class Gauge(_Instrument):
    """A gauge."""

    def labels(self, *values: str) -> GaugeChild:
        return self._child(values)  # type: ignore[return-value]

    def set(self, value: float) -> None:
        self.single.set(value)

    def inc(self, amount: float = 1.0) -> None:
        self.single.inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self.single.dec(amount)

    def set_function(self, read: Callable[[], float]) -> None:
        self.single.set_function(read)

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, child in self._children.items():
            family.add_metric(list(values), child.current())  # type: ignore[attr-defined]
        yield family


class Histogram(_Instrument):
    """A histogram over ``buckets`` (upper bounds, ascending; +Inf is implied)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
    ) -> None:
        if list(buckets) != sorted(set(buckets)):
            raise ValueError(f"{name}: expected ascending distinct buckets, got {buckets}")
        self.buckets = tuple(float(b) for b in buckets)
        super().__init__(name, documentation, labelnames)

    def labels(self, *values: str) -> HistogramChild:
        return self._child(values)  # type: ignore[return-value]

    def observe(self, value: float) -> None:
        self.single.observe(value)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.buckets)

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, child in self._children.items():
            assert isinstance(child, HistogramChild)
            family.add_metric(list(values), child.cumulative(), child.total)
        yield family
