"""Receiver-side rules of remote write 2.0 (PROTOCOL.md §2.1).

:func:`check_v2_request` splits a decoded ``io.prometheus.write.v2.Request``
into the series and points that may be stored and one message per problem
(bad refs, no labels, no ``__name__``, empty or repeated label names, series
without samples and histograms or with both, points going back in time,
invalid native histograms, exemplars without a timestamp); the write
handlers answer those problems as a partial write. The label and histogram
rules are those of :mod:`promwire.codec.validation`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from ... import v2
from ...codec.encoder import encode
from ...codec.validation import histogram_problem, labels_problem
from ...errors import DecodeError


def _in_time_order(
    points: list[Any], what: str, problems: list[str], name: Callable[[], str]
) -> list[Any]:
    """The points a series may keep: each not older than the one before.

    A point older than the last kept one is out of order; one at the same
    timestamp is kept when equal (a harmless duplicate, as Prometheus counts
    it) and refused when different ("duplicate sample for timestamp").
    ``name`` makes the series' name for a message (only built when needed).
    """
    if len(points) < 2:
        return points
    stamps = [p.timestamp for p in points]
    if all(map(operator.lt, stamps, stamps[1:])):  # the usual case, checked in C
        return points
    kept = [points[0]]
    for p in points[1:]:
        last = kept[-1]
        if p.timestamp > last.timestamp:
            kept.append(p)
        elif p.timestamp < last.timestamp:
            problems.append(
                f"{name()}: out-of-order {what} at {p.timestamp} after {last.timestamp}"
            )
        elif _same_point(p, last):
            kept.append(p)
        else:
            problems.append(f"{name()}: duplicate {what} for timestamp {p.timestamp} (other value)")
    return kept


def _same_point(a: Any, b: Any) -> bool:
    if isinstance(a, v2.Sample):
        # Compare bits, not floats: NaN != NaN, and stale markers are NaNs.
        return bool(encode(a) == encode(b))
    return bool(a == b)


def _labels_ok(symbols: list[str], refs: list[int]) -> bool:
    """The common case of :func:`_labels_message` at C speed: a non-empty
    ``__name__``, no empty or repeated name (refs are known to be in range)."""
    names = list(map(symbols.__getitem__, refs[::2]))
    if "__name__" not in names or "" in names or len(set(names)) != len(names):
        return False
    return bool(symbols[refs[2 * names.index("__name__") + 1]])


def _labels_message(symbols: list[str], series: v2.TimeSeries) -> str | None:
    if _labels_ok(symbols, series.labels_refs):
        return None
    return labels_problem(v2.resolve_labels(symbols, series.labels_refs), v2_rules=True)


def _valid_histograms(
    histograms: list[Any], problems: list[str], name: Callable[[], str]
) -> list[Any]:
    """The histograms of a series that pass :func:`histogram_problem`; a problem per other one."""
    kept = histograms
    for i, h in enumerate(histograms):
        problem = histogram_problem(h)
        if problem is not None:
            if kept is histograms:
                kept = histograms[:i]
            problems.append(f"{name()}: invalid histogram at {h.timestamp}: {problem}")
        elif kept is not histograms:
            kept.append(h)
    return kept


def _with_start(points: list[Any], start: int) -> list[Any]:
    """rc.3's series-wide created timestamp as the start timestamp of points that have none."""
    return [p if p.start_timestamp else replace(p, start_timestamp=start) for p in points]


def check_v2_request(request: v2.Request) -> tuple[v2.Request, list[str]]:
    """Split a decoded v2 request into what may be stored and the problems of the rest.

    Checks the receiver-side rules of remote write 2.0 (PROTOCOL.md §2.1):

    * a non-empty symbol table must start with ``""`` - otherwise the whole
      request is refused (:class:`~promwire.errors.DecodeError`, a 400 with
      nothing written);
    * per series: refs in range and ``labels_refs`` of even length, the label
      rule of :func:`promwire.codec.validation.labels_problem` for 2.0 (a
      label with a value, a non-empty ``__name__``, no empty or repeated
      label name), at least one sample or histogram, not both - a failing
      series is left out whole;
    * per point: samples and histograms in time order (see
      :func:`_in_time_order`), histograms valid
      (:func:`promwire.codec.validation.histogram_problem`), exemplars with a
      timestamp - a failing point is left out, the rest of its series kept
      (a series left with no sample and no histogram is dropped whole,
      exemplars included).

    A series carrying rc.3's ``created_timestamp`` has it given to its
    samples and histograms without a ``start_timestamp`` of their own.
    Returns the request to store (same symbol table, kept series only) and
    one message per problem, naming the series.
    """
    symbols = request.symbols
    if symbols and symbols[0] != "":
        raise DecodeError(f"symbols[0] must be the empty string, got {symbols[0]!r}")
    problems: list[str] = []
    kept: list[v2.TimeSeries] = []
    changed = False
    for index, series in enumerate(request.timeseries):
        ref_problem = v2.series_error(symbols, series, index)
        if ref_problem is not None:
            problems.append(ref_problem)
            continue
        name = partial(v2.describe_series, symbols, series, index)
        label_problem = _labels_message(symbols, series)
        if label_problem is not None:
            problems.append(f"{name()}: {label_problem}")
            continue
        if not series.samples and not series.histograms:
            problems.append(f"{name()}: no samples and no histograms")
            continue
        if series.samples and series.histograms:
            problems.append(f"{name()}: both samples and histograms (send two series)")
            continue
        before = len(problems)
        samples = _in_time_order(series.samples, "sample", problems, name)
        histograms = series.histograms
        if histograms:
            histograms = _valid_histograms(
                _in_time_order(histograms, "histogram", problems, name), problems, name
            )
        if not samples and not histograms:
            continue  # every histogram invalid: nothing of the series is kept, exemplars neither
        exemplars = series.exemplars
        if any(e.timestamp == 0 for e in exemplars):
            exemplars = [e for e in exemplars if e.timestamp != 0]
            missing = len(series.exemplars) - len(exemplars)
            problems.append(f"{name()}: {missing} exemplar(s) without a timestamp")
        created = series.created_timestamp
        if created:
            samples = _with_start(samples, created)
            histograms = _with_start(histograms, created)
        if created or len(problems) != before:
            changed = True
            series = v2.TimeSeries(
                labels_refs=series.labels_refs,
                samples=samples,
                histograms=histograms,
                exemplars=exemplars,
                metadata=series.metadata,
                created_timestamp=created,
            )
        kept.append(series)
    if len(kept) == len(request.timeseries) and not changed:
        return request, problems
    return v2.Request(symbols=symbols, timeseries=kept), problems
