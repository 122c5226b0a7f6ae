"""The write path for storages with ``write_columns``: columns instead of message objects.

When a storage has the optional ``write_columns(ctx, series)`` member (see
:mod:`promwire.stores.protocol`), a remote write 1.0 body is decoded straight
into :class:`~promwire.codec.columns.SeriesColumns` (no per-sample objects)
with the same limits and label-set checks as the object path; a 2.0 request
(for a storage without ``write_v2``) is checked as usual and handed over in
columns with its labels sorted by name, as ``write`` would get it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ... import v2
from ...codec.columnar import decode_write_batch, decode_write_columns
from ...codec.columns import ColumnBatch, SeriesColumns
from ...codec.messages import MetricMetadata, WriteRequest
from ...codec.validation import check_histograms
from ...errors import LimitExceeded
from .offload import _call
from .write_limits import _check_v1_label_sets, _check_v1_labels

__all__ = ["ColumnarWrite", "decode_v1_columns", "store_columns", "store_columns_async"]


@dataclass(slots=True)
class ColumnarWrite:
    """A decoded, checked remote write 1.0 request in columns, and its metadata."""

    series: Sequence[SeriesColumns]  # a ColumnBatch for the usual scrape-shaped request
    metadata: list[MetricMetadata] = field(default_factory=list)


def _check_counts(series: Sequence[SeriesColumns], max_series: int, max_samples: int) -> None:
    if len(series) > max_series:
        raise LimitExceeded(
            f"request holds {len(series)} series, over the limit of {max_series} (max_series)",
            status=400,
        )
    if isinstance(series, ColumnBatch):
        points = len(series.timestamps)
    else:
        points = sum(len(s.timestamps) + len(s.histograms) + len(s.exemplars) for s in series)
    if points > max_samples:
        raise LimitExceeded(
            f"request holds {points} samples/histograms/exemplars, "
            f"over the limit of {max_samples} (max_samples)",
            status=400,
        )


def decode_v1_columns(
    raw: bytes,
    *,
    max_series: int,
    max_samples: int,
    max_labels_per_series: int,
    max_label_bytes: int,
) -> ColumnarWrite:
    """Decode a 1.0 body into columns and apply the write limits (400 on a breach)."""
    fast = decode_write_batch(raw)
    if fast is not None:  # every label block seen (and found valid) before
        batch, biggest = fast
        _check_counts(batch, max_series, max_samples)
        if max(map(len, batch.labels)) > max_labels_per_series or biggest > max_label_bytes:
            _check_v1_labels(batch, max_labels_per_series, max_label_bytes, biggest)
        return ColumnarWrite(batch)
    unchecked: list[int] = []
    metadata: list[MetricMetadata] = []
    series, biggest = decode_write_columns(raw, unchecked=unchecked, metadata=metadata)
    _check_counts(series, max_series, max_samples)
    _check_v1_labels(series, max_labels_per_series, max_label_bytes, biggest)
    _check_v1_label_sets(series, unchecked)
    check_histograms(series)  # native histograms as Prometheus validates them
    return ColumnarWrite(series, metadata)


def v2_columns(stored: v2.Request) -> ColumnarWrite:
    """A checked 2.0 request's series in columns (labels sorted by name) and
    its metadata as ``write`` gets it from :func:`promwire.v2.to_v1`."""
    return ColumnarWrite(
        v2.columnar.request_columns(stored, sort_labels=True),
        v2.convert.metadata_to_v1(stored),
    )


def store_columns(storage: Any, ctx: Any, request: ColumnarWrite) -> None:
    """``write_columns`` the series; metadata, if any, still goes to ``write``."""
    if request.series:
        storage.write_columns(ctx, request.series)
    if request.metadata:
        storage.write(ctx, WriteRequest([], request.metadata))


async def store_columns_async(storage: Any, ctx: Any, request: ColumnarWrite) -> None:
    """:func:`store_columns` for an async or sync storage (sync runs in a thread)."""
    if request.series:
        await _call(storage.write_columns, ctx, request.series)
    if request.metadata:
        await _call(storage.write, ctx, WriteRequest([], request.metadata))
