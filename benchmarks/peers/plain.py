"""Turn any peer's decoded WriteRequest into the plain content of :mod:`benchmarks.workloads`.

Every peer's messages carry the .proto field names as attributes; they differ
only in how a histogram's oneofs say which member is present. ``content``
takes that difference as a function, so one walk serves every peer (it is the
correctness check before timing, never timed itself).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: (count_int, count_float, zero_count_int, zero_count_float) of a histogram
Oneofs = Callable[[Any], tuple[Any, Any, Any, Any]]


def oneofs_by_none(h: Any) -> tuple[Any, Any, Any, Any]:
    """Oneof members as attributes that are ``None`` when absent (promwire, pure-protobuf)."""
    return h.count_int, h.count_float, h.zero_count_int, h.zero_count_float


def _labels(labels: Any) -> tuple[tuple[str, str], ...]:
    return tuple((lb.name, lb.value) for lb in labels)


def content(req: Any, oneofs: Oneofs = oneofs_by_none) -> tuple[Any, Any]:
    """The plain content of a decoded WriteRequest."""
    series = []
    for ts in req.timeseries:
        hists = []
        for h in ts.histograms:
            ci, cf, zi, zf = oneofs(h)
            hists.append(
                (
                    ci,
                    cf,
                    h.sum,
                    h.schema,
                    h.zero_threshold,
                    zi,
                    zf,
                    tuple((s.offset, s.length) for s in h.negative_spans),
                    tuple(h.negative_deltas),
                    tuple(h.negative_counts),
                    tuple((s.offset, s.length) for s in h.positive_spans),
                    tuple(h.positive_deltas),
                    tuple(h.positive_counts),
                    int(h.reset_hint),
                    h.timestamp,
                    tuple(h.custom_values),
                )
            )
        series.append(
            (
                _labels(ts.labels),
                tuple((s.value, s.timestamp) for s in ts.samples),
                tuple((_labels(e.labels), e.value, e.timestamp) for e in ts.exemplars),
                tuple(hists),
            )
        )
    meta = tuple((int(m.type), m.metric_family_name, m.help, m.unit) for m in req.metadata)
    return tuple(series), meta
