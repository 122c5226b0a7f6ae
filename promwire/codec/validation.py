"""What a receiver checks in a series before storing it, as Prometheus does.

Two checks, each a plain function returning ``None`` (valid) or a short
reason, so that every write path (the v1 and v2 handlers, a columnar one)
applies the same rule to what it decoded:

* :func:`labels_problem` - a label set (a tuple of
  :class:`~promwire.codec.messages.Label`): a label with an empty value is no
  label; what is left must not be empty nor name a label twice
  (:func:`promwire.codec.labelset.label_set_problem`, the rule of remote
  write 1.0); with ``v2_rules`` (remote write 2.0, as Prometheus' receiver)
  it must also hold a non-empty ``__name__`` and no empty label name.
* :func:`histogram_problem` - a native histogram (v1's ``Histogram`` or
  v2's, which share field names), the rules of Prometheus'
  ``model/histogram`` ``Histogram.Validate`` / ``FloatHistogram.Validate``:

  - the schema is -4..8 (exponential), 9..52 (finer exponential, which
    Prometheus' receiver scales down to 8) or -53 (custom buckets);
  - spans: the sum of their lengths is the number of buckets on that side,
    no span but the first has a negative offset (custom buckets: none);
  - integer histograms: no bucket count (the running sum of the deltas)
    below zero, and ``count`` equals zero count plus all bucket counts -
    or is at least that when ``sum`` is NaN (NaN observations land in no
    bucket);
  - float histograms: no negative bucket, zero count or count (no sum
    check: float rounding would make it refuse good data, as Prometheus
    says);
  - custom buckets: bounds strictly increasing, not NaN, the last not
    +Inf, enough bounds for the spans, no zero bucket (count and threshold
    0), no negative side; exponential schemas carry no custom bounds.

  promwire also refuses NaN custom bounds (Prometheus' comparison lets them
  through).

:func:`check_histograms` applies the histogram rule to a decoded remote
write 1.0 request, which is refused whole (1.0 has no partial writes).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from itertools import accumulate
from typing import Protocol

from ..errors import DecodeError
from .labelset import label_set_problem
from .messages import BucketSpan, Label

__all__ = ["HistogramLike", "SeriesLike", "check_histograms", "histogram_problem", "labels_problem"]

#: Schemas of exponential buckets Prometheus stores, those its receiver scales
#: down to 8, and the custom-buckets schema.
EXPONENTIAL_SCHEMAS = range(-4, 9)
REDUCIBLE_SCHEMAS = range(9, 53)
CUSTOM_BUCKETS_SCHEMA = -53


class HistogramLike(Protocol):
    """The fields of a native histogram the checks read (v1's and v2's ``Histogram``)."""

    @property
    def count_int(self) -> int | None: ...
    @property
    def count_float(self) -> float | None: ...
    @property
    def sum(self) -> float: ...
    @property
    def schema(self) -> int: ...
    @property
    def zero_threshold(self) -> float: ...
    @property
    def zero_count_int(self) -> int | None: ...
    @property
    def zero_count_float(self) -> float | None: ...
    @property
    def negative_spans(self) -> list[BucketSpan]: ...
    @property
    def negative_deltas(self) -> list[int]: ...
    @property
    def negative_counts(self) -> list[float]: ...
    @property
    def positive_spans(self) -> list[BucketSpan]: ...
    @property
    def positive_deltas(self) -> list[int]: ...
    @property
    def positive_counts(self) -> list[float]: ...
    @property
    def custom_values(self) -> list[float]: ...
    @property
    def timestamp(self) -> int: ...


def labels_problem(labels: Sequence[Label], *, v2_rules: bool = False) -> str | None:
    """What is wrong with ``labels`` as a series' label set, or ``None``.

    Labels with an empty value count as absent. ``v2_rules`` also asks for
    a non-empty ``__name__`` and refuses an empty label name (remote write 2.0).
    """
    problem = label_set_problem(labels)
    if problem is not None or not v2_rules:
        return problem
    if any(not lb.name for lb in labels):
        return "empty label name"
    if any(lb.name == "__name__" and lb.value for lb in labels):
        return None
    return "no metric name (__name__)"


def _spans_problem(spans: list[BucketSpan], buckets: int, *, custom: bool) -> str | None:
    need = 0
    for n, span in enumerate(spans):
        if span.offset < 0 and (custom or n > 0):
            return f"span {n + 1} has negative offset {span.offset}"
        need += span.length
    if need != buckets:
        return f"spans need {need} buckets, {buckets} given"
    return None


def _counts_problem(counts: Sequence[float]) -> str | None:
    """The first negative bucket count, named; ``counts`` are absolute (not deltas)."""
    if counts and min(counts) < 0:  # min() in C: the usual all-good case costs one pass
        i = next(i for i, c in enumerate(counts) if c < 0)
        return f"bucket {i + 1} has count {counts[i]}"
    return None


def _side(
    spans: list[BucketSpan], deltas: list[int], counts: list[float], is_float: bool, custom: bool
) -> tuple[str | None, float]:
    """A side's problem (or None) and the sum of its bucket counts."""
    absolute: Sequence[float] = counts if is_float else list(accumulate(deltas))
    problem = _spans_problem(spans, len(absolute), custom=custom) or _counts_problem(absolute)
    return problem, (math.fsum(absolute) if is_float else sum(absolute))


def _custom_bounds_problem(bounds: list[float], spans: list[BucketSpan]) -> str | None:
    previous = -math.inf
    for bound in bounds:
        if math.isnan(bound):
            return "custom bound is NaN"
        if bound <= previous:
            return f"custom bounds not increasing ({previous} then {bound})"
        previous = bound
    if previous == math.inf:
        return "last custom bound is +Inf (it is implied)"
    covered = sum(s.offset + s.length for s in spans)
    if covered > len(bounds) + 1:
        return f"{len(bounds)} custom bounds cannot cover spans reaching bucket {covered}"
    return None


def histogram_problem(h: HistogramLike) -> str | None:
    """What is wrong with the native histogram ``h``, or ``None`` (see the module docstring)."""
    is_float = h.count_float is not None
    schema = h.schema
    custom = schema == CUSTOM_BUCKETS_SCHEMA
    if not custom and schema not in EXPONENTIAL_SCHEMAS and schema not in REDUCIBLE_SCHEMAS:
        return f"schema {schema} is not -4..8 (or 9..52) nor -53 (custom buckets)"
    zero = (h.zero_count_float or 0.0) if is_float else (h.zero_count_int or 0)
    if custom:
        if h.negative_spans or h.negative_deltas or h.negative_counts:
            return "custom buckets with a negative side"
        if zero != 0 or h.zero_threshold != 0:
            return "custom buckets with a zero bucket"
        problem = _custom_bounds_problem(h.custom_values, h.positive_spans)
        if problem is not None:
            return problem
        negative_sum: float = 0
    else:
        if h.custom_values:
            return f"custom bounds with exponential schema {schema}"
        problem, negative_sum = _side(
            h.negative_spans, h.negative_deltas, h.negative_counts, is_float, False
        )
        if problem is not None:
            return f"negative side: {problem}"
    problem, positive_sum = _side(
        h.positive_spans, h.positive_deltas, h.positive_counts, is_float, custom
    )
    if problem is not None:
        return f"positive side: {problem}"
    if is_float:
        count = h.count_float or 0.0
        if zero < 0 or count < 0:
            return f"negative count ({count}) or zero count ({zero})"
        return None
    in_buckets = negative_sum + positive_sum + zero
    count_int = h.count_int or 0
    if math.isnan(h.sum):
        if in_buckets > count_int:
            return f"count {count_int} is below the {in_buckets} observations in buckets"
    elif in_buckets != count_int:
        return f"count {count_int} differs from the {in_buckets} observations in buckets"
    return None


_histograms_of = operator.attrgetter("histograms")


def _series_name(series: SeriesLike, index: int) -> str:
    inner = ", ".join(f"{lb.name[:40]}={lb.value[:40]!r}" for lb in series.labels)
    return f"series #{index} {{{inner[:200]}}}"


class SeriesLike(Protocol):
    """A series the histogram check reads: v1's ``TimeSeries`` or a columnar ``SeriesColumns``."""

    @property
    def labels(self) -> Sequence[Label]: ...
    @property
    def histograms(self) -> Sequence[HistogramLike]: ...


def check_histograms(series: Sequence[SeriesLike]) -> None:
    """Raise :class:`~promwire.errors.DecodeError` (400) naming the first series
    holding an invalid native histogram (:func:`histogram_problem`).

    Takes v1 ``TimeSeries`` or :class:`~promwire.codec.columns.SeriesColumns`."""
    if not any(map(_histograms_of, series)):  # the usual float-only request: one C-level pass
        return
    for index, ts in enumerate(series):
        for h in ts.histograms:
            problem = histogram_problem(h)
            if problem is not None:
                raise DecodeError(
                    f"{_series_name(ts, index)}: invalid histogram at {h.timestamp}: {problem}"
                )
