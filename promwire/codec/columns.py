"""The columnar shape of a series: labels plus arrays, no per-sample objects.

:class:`SeriesColumns` is what a columnar decode produces and what a storage's
optional ``write_columns`` member takes (see :mod:`promwire.stores.protocol`).
Timestamps are milliseconds in an ``array('q')``, values float64 in an
``array('d')`` of the same length (bit-exact: NaN payloads and the stale
marker survive), in the order the request carried them.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from .messages import Exemplar, Histogram, Label, Sample, TimeSeries

__all__ = ["ColumnBatch", "SeriesColumns", "time_series_of"]


def _q() -> array[int]:
    return array("q")


def _d() -> array[float]:
    return array("d")


@dataclass(slots=True)
class SeriesColumns:
    """One series: ``labels`` and parallel ``timestamps``/``values`` arrays."""

    labels: tuple[Label, ...]
    timestamps: array[int] = field(default_factory=_q)
    values: array[float] = field(default_factory=_d)
    histograms: list[Histogram] = field(default_factory=list)
    exemplars: list[Exemplar] = field(default_factory=list)


def time_series_of(sc: SeriesColumns) -> TimeSeries:
    """``sc`` as a :class:`TimeSeries`: a ``Sample`` per sample, histograms and
    exemplars as they are."""
    return TimeSeries(
        labels=list(sc.labels),
        samples=list(map(Sample, sc.values, sc.timestamps)),
        histograms=sc.histograms,
        exemplars=sc.exemplars,
    )


class ColumnBatch(Sequence[SeriesColumns]):
    """Many series' float samples in shared flat columns (no histograms, no exemplars).

    Series ``i`` has the labels ``labels[i]`` and the samples
    ``timestamps[offsets[i]:offsets[i + 1]]`` / ``values[...]``. It is a
    sequence of :class:`SeriesColumns` (built on access), so code written for
    a list of them takes a batch unchanged; a storage that knows the class
    reads the flat columns instead and makes no object per series. The
    receiver hands one to ``write_columns`` for the requests every scrape
    sends (see :func:`promwire.codec.columnar.decode_write_batch`).
    """

    __slots__ = ("labels", "offsets", "timestamps", "values")

    def __init__(
        self,
        labels: list[tuple[Label, ...]],
        offsets: array[int],
        timestamps: array[int],
        values: array[float],
    ) -> None:
        if len(offsets) != len(labels) + 1 or len(timestamps) != len(values):
            raise ValueError("ColumnBatch: offsets, labels and columns do not line up")
        self.labels = labels
        self.offsets = offsets
        self.timestamps = timestamps
        self.values = values

    def __len__(self) -> int:
        return len(self.labels)

    def _one(self, i: int) -> SeriesColumns:
        a, b = self.offsets[i], self.offsets[i + 1]
        return SeriesColumns(self.labels[i], self.timestamps[a:b], self.values[a:b])

    @overload
    def __getitem__(self, index: int) -> SeriesColumns: ...

    @overload
    def __getitem__(self, index: slice) -> list[SeriesColumns]: ...

    def __getitem__(self, index: int | slice) -> SeriesColumns | list[SeriesColumns]:
        if isinstance(index, slice):
            return [self._one(i) for i in range(len(self.labels))[index]]
        return self._one(range(len(self.labels))[index])  # negative indexes, IndexError

    def __iter__(self) -> Iterator[SeriesColumns]:
        return map(self._one, range(len(self.labels)))

    def __repr__(self) -> str:
        return f"ColumnBatch({len(self.labels)} series, {len(self.timestamps)} samples)"
