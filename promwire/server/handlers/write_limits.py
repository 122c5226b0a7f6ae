"""Per-request limits of the write path, checked before the storage is called.

Series and data-point counts (``max_series``, ``max_samples``), labels per
series (``max_labels_per_series``) and UTF-8 bytes of one label name or value
(``max_label_bytes``), for remote write 1.0 and 2.0. A refused request is
refused whole with a 400 (:class:`~promwire.errors.LimitExceeded`). Also the
label-set rule of remote write 1.0 (:mod:`promwire.codec.labelset`: at least
one label with a value, no name twice), a 400
(:class:`~promwire.errors.DecodeError`) naming the series.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from itertools import chain

from ... import v2
from ...codec.columns import SeriesColumns
from ...codec.labelset import label_set_problem
from ...codec.messages import TimeSeries, WriteRequest
from ...errors import DecodeError, LimitExceeded


def _check_write_counts(
    request: WriteRequest | v2.Request, max_series: int, max_samples: int
) -> None:
    if len(request.timeseries) > max_series:
        raise LimitExceeded(
            f"request holds {len(request.timeseries)} series, "
            f"over the limit of {max_series} (max_series)",
            status=400,
        )
    points = sum(v2.count_request(request))
    if points > max_samples:
        raise LimitExceeded(
            f"request holds {points} samples/histograms/exemplars, "
            f"over the limit of {max_samples} (max_samples)",
            status=400,
        )


# The label checks below run on every write, so their common case is a few
# C-level passes (map/max over attrgetter) instead of a Python loop; the loop
# that finds and names the culprit only runs once a limit is known to be hit.
_labels_of = operator.attrgetter("labels")
_labels_refs_of = operator.attrgetter("labels_refs")
_name_of = operator.attrgetter("name")
_value_of = operator.attrgetter("value")


def _too_many_labels(what: str, count: int, limit: int) -> LimitExceeded:
    return LimitExceeded(
        f"{what} has {count} labels, over the limit of {limit} (max_labels_per_series)",
        status=400,
    )


def _utf8_len(text: str) -> int:
    """UTF-8 bytes of ``text``, measured piece by piece (no copy of a long string)."""
    if text.isascii():
        return len(text)
    # Decoded strings are valid UTF-8 (the decoder checks), so this never fails.
    step = 1 << 16
    return sum(
        len(text[i : i + step].encode("utf-8", "surrogatepass")) for i in range(0, len(text), step)
    )


def _label_too_long(what: str, kind: str, text: str, limit: int) -> LimitExceeded:
    shown = text[:40] + "..." if len(text) > 40 else text
    return LimitExceeded(
        f"{what}: label {kind} {shown!r} is {_utf8_len(text)} bytes, "
        f"over the limit of {limit} (max_label_bytes)",
        status=400,
    )


def _describe_v1(series: TimeSeries | SeriesColumns, index: int) -> str:
    name = next((lb.value for lb in series.labels if lb.name == "__name__"), None)
    shown = repr(name[:80]) if name is not None else "without __name__"
    return f"series #{index} ({shown}, {len(series.labels)} labels)"


def _check_v1_labels(
    series: Sequence[TimeSeries | SeriesColumns], max_labels: int, max_bytes: int, raw_size: int
) -> None:
    """Refuse (400) a v1 request with too many labels in a series or too long a label.

    Exemplar labels are not counted (Prometheus' own storage caps them).
    ``raw_size`` bounds every label's size (the largest series record, or
    the decoded body's size): only above the limit are labels measured.
    """
    if not series:
        return
    if max(map(len, map(_labels_of, series))) > max_labels:
        index, ts = next((i, ts) for i, ts in enumerate(series) if len(ts.labels) > max_labels)
        raise _too_many_labels(_describe_v1(ts, index), len(ts.labels), max_labels)
    if raw_size <= max_bytes:
        return
    labels = list(chain.from_iterable(map(_labels_of, series)))
    if not labels:
        return
    # len() counts code points and UTF-8 needs 1 to 4 bytes for each: a string
    # of at most max_bytes // 4 code points always fits, only longer ones are
    # measured in bytes.
    fits = max_bytes // 4
    if (
        max(map(len, map(_name_of, labels))) <= fits
        and max(map(len, map(_value_of, labels))) <= fits
    ):
        return
    for index, ts in enumerate(series):
        for lb in ts.labels:
            for kind, text in (("name", lb.name), ("value", lb.value)):
                if len(text) > fits and _utf8_len(text) > max_bytes:
                    raise _label_too_long(_describe_v1(ts, index), kind, text, max_bytes)


#: Longest text of one label name or value, and of all of them, an error message quotes.
_SHOWN_TEXT = 40
_SHOWN_SET = 200


def _describe_set(series: TimeSeries | SeriesColumns, index: int) -> str:
    """``series #3 {__name__="up", a="1", a="2"}``, each text and the whole cut short."""

    def cut(text: str) -> str:
        return text[:_SHOWN_TEXT] + "..." if len(text) > _SHOWN_TEXT else text

    inner = ", ".join(f"{cut(lb.name)}={cut(lb.value)!r}" for lb in series.labels)
    if len(inner) > _SHOWN_SET:
        inner = inner[:_SHOWN_SET] + "..."
    return f"series #{index} {{{inner}}}"


def _check_v1_label_sets(series: Sequence[TimeSeries | SeriesColumns], indexes: list[int]) -> None:
    """Refuse (400) a v1 request holding a series with an invalid label set.

    ``indexes`` are the series to look at: those the decoder did not find as
    a label block already seen valid (``decode_write_request(unchecked=)``).
    A ReadRequest posted to the write endpoint decodes as series without
    labels, so it is refused here instead of being stored.
    """
    for index in indexes:
        ts = series[index]
        problem = label_set_problem(ts.labels)
        if problem is not None:
            raise DecodeError(f"{_describe_set(ts, index)}: {problem}")


def _check_v2_labels(request: v2.Request, max_labels: int, max_bytes: int) -> None:
    """:func:`_check_v1_labels` for remote write 2.0: counts from ``labels_refs``,
    lengths from the symbol table (each string once). A refused request is
    refused whole, with nothing written (not a partial write)."""
    series = request.timeseries
    symbols = request.symbols
    if not series:
        return
    if max(map(len, map(_labels_refs_of, series))) > 2 * max_labels + 1:
        for index, ts in enumerate(series):
            if len(ts.labels_refs) // 2 > max_labels:
                what = v2.describe_series(symbols, ts, index)
                raise _too_many_labels(what, len(ts.labels_refs) // 2, max_labels)
    fits = max_bytes // 4
    if not symbols or max(map(len, symbols)) <= fits:
        return
    # A long symbol may be help text of metadata: only label refs count.
    long = {i for i, text in enumerate(symbols) if len(text) > fits and _utf8_len(text) > max_bytes}
    if not long:
        return
    for index, ts in enumerate(series):
        refs = ts.labels_refs
        for position, ref in enumerate(refs):
            if ref in long:
                kind = "value" if position % 2 else "name"
                what = f"series #{index}"
                raise _label_too_long(what, kind, symbols[ref], max_bytes)
