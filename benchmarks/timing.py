"""Repeat-and-summarise timing for the benchmark suite.

Each measurement runs a callable several times with ``time.perf_counter`` and
keeps every duration. The number of repeats adapts to the cost of one run so a
full suite stays short: cheap cells repeat until a time budget is spent (with
a floor and a ceiling), a multi-second run (a slow peer on W2) is done once.
Cells of one workload are measured *interleaved* (round-robin, one run of
each cell per round) by :func:`measure_interleaved`: on a shared machine a
burst of load then slows every library alike instead of skewing one cell, so
the ratios stay meaningful even when the absolute times wobble.

The garbage collector stays on (allocation-heavy decoders pay for it in real
life too) but ``gc.collect()`` runs before every repeat, outside the timing.
Everything alive when a measurement starts (the workloads themselves, tens of
MB of tuples) is moved out of the collector's sight with ``gc.freeze()``:
otherwise every collection, timed or not, would rescan it, which is neither
cheap nor what a server process with a modest heap pays.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Budget", "Cell", "Stats", "measure_interleaved"]


@dataclass(frozen=True)
class Budget:
    """How long to keep repeating one cell.

    ``seconds``: stop repeating once this much time was spent (after the
    minimum); ``max_repeats``: hard ceiling. The minimum number of repeats
    depends on the first run: 5 below 0.1 s, 3 below 1 s, 1 above.
    """

    seconds: float = 1.0
    max_repeats: int = 25

    def min_repeats(self, first: float) -> int:
        if first < 0.1:
            return min(5, self.max_repeats)
        if first < 1.0:
            return min(3, self.max_repeats)
        return 1


@dataclass
class Stats:
    """Durations of one cell, in seconds, and their summary."""

    times: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def low(self) -> float:
        """25th percentile with 5+ runs, else the minimum."""
        if self.n >= 5:
            return statistics.quantiles(self.times, n=4, method="inclusive")[0]
        return min(self.times)

    @property
    def high(self) -> float:
        """75th percentile with 5+ runs, else the maximum."""
        if self.n >= 5:
            return statistics.quantiles(self.times, n=4, method="inclusive")[2]
        return max(self.times)

    @property
    def spread_kind(self) -> str:
        return "IQR" if self.n >= 5 else "min-max"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            n=self.n,
            median=self.median,
            low=self.low,
            high=self.high,
            min=min(self.times),
            max=max(self.times),
            spread=self.spread_kind,
        )
        return d


@dataclass
class Cell:
    """One thing to time: ``fn`` (timed) after ``setup`` (untimed), each round."""

    key: Any
    fn: Callable[[], object]
    setup: Callable[[], object] | None = None
    stats: Stats = field(default_factory=Stats)
    minimum: int = 1

    def wants_more(self, budget: Budget) -> bool:
        if self.stats.n >= budget.max_repeats:
            return False
        return self.stats.n < self.minimum or sum(self.stats.times) < budget.seconds


def measure_interleaved(cells: list[Cell], budget: Budget) -> list[Cell]:
    """Time all ``cells`` round-robin until each has spent its budget; returns ``cells``.

    A cell stops once it has its minimum number of runs (see :class:`Budget`)
    and its runs add up to ``budget.seconds``, or at ``budget.max_repeats``.
    """
    active = list(cells)
    gc.collect()
    gc.freeze()
    try:
        _rounds(active, budget)
    finally:
        gc.unfreeze()
    return cells


def _rounds(active: list[Cell], budget: Budget) -> None:
    first = True
    while active:
        for cell in active:
            if cell.setup is not None:
                cell.setup()
            gc.collect()
            t0 = time.perf_counter()
            cell.fn()
            t1 = time.perf_counter()
            cell.stats.times.append(t1 - t0)
            if first:
                cell.minimum = budget.min_repeats(t1 - t0)
        first = False
        active = [c for c in active if c.wants_more(budget)]
