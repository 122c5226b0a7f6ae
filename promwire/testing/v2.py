"""Hypothesis strategies for the remote write 2.0 messages (needs ``hypothesis``).

``messages(cls)`` covers the full range of what the wire can carry, refs
included: a drawn ``Request`` may hold refs outside its symbol table (the
codec does not care; :func:`promwire.v2.validate` does). ``valid_requests()``
draws requests whose refs all resolve and whose ``symbols[0]`` is ``""``.
Scalar strategies and :func:`promwire.testing.canonical` come from
:mod:`promwire.testing`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import strategies as st

from ..v2 import messages as v2
from ..v2.convert import histogram_to_v2
from . import doubles, enum_numbers, int64s, texts, uint32s
from . import histograms as v1_histograms

__all__ = [
    "MESSAGE_CLASSES",
    "exemplars",
    "histograms",
    "messages",
    "metadata",
    "requests",
    "samples",
    "timeseries",
    "valid_requests",
]

T = TypeVar("T")


def samples() -> st.SearchStrategy[v2.Sample]:
    """``Sample`` with any float bits and any ``int64`` timestamps."""
    return st.builds(v2.Sample, value=doubles(), timestamp=int64s(), start_timestamp=int64s())


def exemplars() -> st.SearchStrategy[v2.Exemplar]:
    """``Exemplar`` with any refs (odd counts included)."""
    return st.builds(
        v2.Exemplar,
        labels_refs=st.lists(uint32s(), max_size=4),
        value=doubles(),
        timestamp=int64s(),
    )


@st.composite
def histograms(draw: st.DrawFn) -> v2.Histogram:
    """``Histogram``: v1's full-range histograms plus any ``start_timestamp`` and reset hint."""
    h = histogram_to_v2(draw(v1_histograms()), start_timestamp=draw(int64s()))
    h.reset_hint = draw(enum_numbers(v2.ResetHint))
    return h


def metadata() -> st.SearchStrategy[v2.Metadata]:
    """``Metadata`` with any type number and refs."""
    return st.builds(
        v2.Metadata, type=enum_numbers(v2.MetricType), help_ref=uint32s(), unit_ref=uint32s()
    )


def timeseries(max_size: int = 3) -> st.SearchStrategy[v2.TimeSeries]:
    """``TimeSeries``: any refs; ``metadata`` absent, present-empty or filled; rc.3's
    ``created_timestamp`` mostly unset."""
    return st.builds(
        v2.TimeSeries,
        labels_refs=st.lists(uint32s(), max_size=2 * max_size + 1),
        samples=st.lists(samples(), max_size=max_size),
        histograms=st.lists(histograms(), max_size=max(1, max_size - 1)),
        exemplars=st.lists(exemplars(), max_size=max_size),
        metadata=st.one_of(st.none(), st.just(v2.Metadata()), metadata()),
        created_timestamp=st.one_of(st.just(0), int64s()),
    )


def requests(max_size: int = 3) -> st.SearchStrategy[v2.Request]:
    """``Request`` with any symbols and series (refs need not resolve)."""
    return st.builds(
        v2.Request,
        symbols=st.lists(texts(), max_size=max_size + 3),
        timeseries=st.lists(timeseries(), max_size=max_size),
    )


@st.composite
def valid_requests(draw: st.DrawFn, max_size: int = 3) -> v2.Request:
    """A ``Request`` whose every ref resolves and whose ``symbols[0]`` is ``""``."""
    symbols = [
        "",
        *draw(st.lists(texts(), max_size=8, unique=True).filter(lambda xs: "" not in xs)),
    ]
    ref = st.integers(0, len(symbols) - 1)

    def refs(max_pairs: int) -> st.SearchStrategy[list[int]]:
        return st.lists(st.tuples(ref, ref), max_size=max_pairs).map(
            lambda pairs: [r for pair in pairs for r in pair]
        )

    series = st.builds(
        v2.TimeSeries,
        labels_refs=refs(4),
        samples=st.lists(samples(), max_size=max_size),
        histograms=st.lists(histograms(), max_size=max(1, max_size - 1)),
        exemplars=st.lists(
            st.builds(v2.Exemplar, labels_refs=refs(2), value=doubles(), timestamp=int64s()),
            max_size=2,
        ),
        metadata=st.one_of(
            st.none(),
            st.builds(v2.Metadata, type=enum_numbers(v2.MetricType), help_ref=ref, unit_ref=ref),
        ),
    )
    return v2.Request(symbols=symbols, timeseries=draw(st.lists(series, max_size=max_size)))


_BY_CLASS: dict[type[Any], Callable[[], st.SearchStrategy[Any]]] = {
    v2.Sample: samples,
    v2.Exemplar: exemplars,
    v2.Histogram: histograms,
    v2.Metadata: metadata,
    v2.TimeSeries: timeseries,
    v2.Request: requests,
}

#: Every v2 message class (``BucketSpan`` is v1's, see :mod:`promwire.testing`).
MESSAGE_CLASSES: tuple[type[Any], ...] = tuple(_BY_CLASS)


def messages(cls: type[T]) -> st.SearchStrategy[T]:
    """The strategy for v2 message class ``cls``."""
    try:
        factory = _BY_CLASS[cls]
    except KeyError:
        raise TypeError(f"no strategy for {cls!r}") from None
    strategy: st.SearchStrategy[T] = factory()
    return strategy
