"""The columnar shape of a series: labels plus arrays, no per-sample objects.

:class:`SeriesColumns` is what a columnar decode produces and what a storage's
optional ``write_columns`` member takes (see :mod:`promwire.stores.protocol`).
Timestamps are milliseconds in an ``array('q')``, values float64 in an
``array('d')`` of the same length (bit-exact: NaN payloads and the stale
marker survive), in the order the request carried them.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from .messages import Exemplar, Histogram, Label

__all__ = ["SeriesColumns"]


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
