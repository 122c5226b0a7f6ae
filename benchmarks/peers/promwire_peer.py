"""Peer: promwire itself (the thing being measured)."""

from __future__ import annotations

from typing import Any

import promwire
from promwire import (
    BucketSpan,
    Exemplar,
    Histogram,
    Label,
    MetricMetadata,
    Sample,
    TimeSeries,
    WriteRequest,
    snappy,
)
from promwire.codec.decoder import clear_caches

from . import plain

NAME = "promwire"

__all__ = ["NAME", "build", "clear_caches", "content", "decode", "encode", "version", "walk"]


def version() -> str:
    return f"promwire {promwire.__version__}"


def decode(body: bytes) -> WriteRequest:
    """Decompress (with promwire's size check) and decode."""
    return promwire.decode(WriteRequest, snappy.decompress(body))


def walk(req: WriteRequest) -> int:
    """Read every field of a decoded WriteRequest into Python values."""
    n = 0
    for ts in req.timeseries:
        for lb in ts.labels:
            _ = lb.name
            _ = lb.value
        for s in ts.samples:
            _ = s.value
            _ = s.timestamp
        for e in ts.exemplars:
            for lb in e.labels:
                _ = lb.name
                _ = lb.value
            _ = e.value
            _ = e.timestamp
        for h in ts.histograms:
            _walk_histogram(h)
        n += 1
    for md in req.metadata:
        _ = md.type
        _ = md.metric_family_name
        _ = md.help
        _ = md.unit
    return n


def _walk_histogram(h: Histogram) -> None:
    # Oneof presence is ``None``/not ``None``: reading both members resolves it.
    _ = h.count_int
    _ = h.count_float
    _ = h.sum
    _ = h.schema
    _ = h.zero_threshold
    _ = h.zero_count_int
    _ = h.zero_count_float
    for sp in h.negative_spans:
        _ = sp.offset
        _ = sp.length
    _ = list(h.negative_deltas)
    _ = list(h.negative_counts)
    for sp in h.positive_spans:
        _ = sp.offset
        _ = sp.length
    _ = list(h.positive_deltas)
    _ = list(h.positive_counts)
    _ = h.reset_hint
    _ = h.timestamp
    _ = list(h.custom_values)


def content(req: Any) -> tuple[Any, Any]:
    """The plain content (see :mod:`benchmarks.workloads`) of a decoded WriteRequest."""
    return plain.content(req)


def _histogram(h: tuple[Any, ...]) -> Histogram:
    (ci, cf, sum_, schema, zt, zi, zf, nsp, nd, nc, psp, pd, pc, rh, ts, cv) = h
    return Histogram(
        count_int=ci,
        count_float=cf,
        sum=sum_,
        schema=schema,
        zero_threshold=zt,
        zero_count_int=zi,
        zero_count_float=zf,
        negative_spans=[BucketSpan(o, n) for o, n in nsp],
        negative_deltas=list(nd),
        negative_counts=list(nc),
        positive_spans=[BucketSpan(o, n) for o, n in psp],
        positive_deltas=list(pd),
        positive_counts=list(pc),
        reset_hint=Histogram.ResetHint(rh),
        timestamp=ts,
        custom_values=list(cv),
    )


def build(plain: tuple[Any, Any]) -> WriteRequest:
    """A WriteRequest of promwire objects holding ``plain``."""
    series, metadata = plain
    out = []
    for labels, samples, exemplars, hists in series:
        out.append(
            TimeSeries(
                labels=[Label(n, v) for n, v in labels],
                samples=[Sample(v, t) for v, t in samples],
                exemplars=[
                    Exemplar([Label(n, v) for n, v in el], value, t) for el, value, t in exemplars
                ],
                histograms=[_histogram(h) for h in hists],
            )
        )
    meta = [MetricMetadata(MetricMetadata.MetricType(t), n, h, u) for t, n, h, u in metadata]
    return WriteRequest(timeseries=out, metadata=meta)


def encode(req: WriteRequest) -> bytes:
    """Encode and snappy-compress."""
    return snappy.compress(promwire.encode(req))
