"""Converting between remote write 2.0 ``Request`` and 1.0 ``WriteRequest``.

:func:`to_v1` gives a storage the same view of a v2 request it gets from a v1
one: label sets resolved into ``Label`` objects, samples, exemplars with
labels, v1 histograms and ``MetricMetadata`` per metric family. What v1
cannot carry is dropped:

* ``Sample.start_timestamp`` and ``Histogram.start_timestamp`` (v1 has no
  field for them);
* per-series metadata beyond one entry per metric family: v1 keys metadata by
  family, found from ``__name__`` and the type (:func:`family_of`:
  ``x_bucket``/``x_count``/``x_sum`` of a histogram are family ``x``), so the
  first non-empty metadata seen for a family wins and series without
  ``__name__`` contribute none; an empty or absent metadata contributes
  nothing;
* the symbol table's order and any unused symbols.

:func:`from_v1` goes the other way, building the symbol table. Each series
gets the metadata of its metric family, found the way Prometheus' scrape
finds the family of a sample: the ``__name__`` itself, else the name without
the suffix the family's type gives its series (:data:`FAMILY_SUFFIXES`:
``_bucket``/``_count``/``_sum`` of a histogram, ``_count``/``_sum`` of a
summary, ``_gcount``/``_gsum`` of a gauge histogram, ``_total`` of a counter,
``_created`` of a counter, histogram or summary, ``_info`` of an info
metric). A suffix only counts when the family's type has it, so a gauge
``x_count`` next to a counter family ``x`` stays untyped. Summary quantile
series carry the family's own name and match directly. Series without a
family get an empty ``Metadata()``, as Prometheus sends. Metadata entries that
match no series are lost: v2 has no metadata-only records (Prometheus' v1
sender ships metadata in separate requests with no series at all; those
convert to an empty ``Request``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from operator import attrgetter
from typing import Any, TypeVar

from ..codec import messages as v1
from ..codec.fields import SCHEMAS, Kind
from ..errors import DecodeError
from . import messages as v2
from .symbols import SymbolTable, series_error

__all__ = [
    "FAMILY_SUFFIXES",
    "family_metadata",
    "family_of",
    "from_v1",
    "histogram_to_v1",
    "histogram_to_v2",
    "metadata_to_v1",
    "to_v1",
]

_T = v1.MetricType
#: The series-name suffixes each metric type gives its family's series
#: (OpenMetrics / Prometheus text format).
FAMILY_SUFFIXES: dict[str, frozenset[int]] = {
    "_bucket": frozenset({_T.HISTOGRAM, _T.GAUGEHISTOGRAM}),
    "_count": frozenset({_T.HISTOGRAM, _T.SUMMARY}),
    "_sum": frozenset({_T.HISTOGRAM, _T.SUMMARY}),
    "_gcount": frozenset({_T.GAUGEHISTOGRAM}),
    "_gsum": frozenset({_T.GAUGEHISTOGRAM}),
    "_total": frozenset({_T.COUNTER}),
    "_created": frozenset({_T.COUNTER, _T.HISTOGRAM, _T.SUMMARY}),
    "_info": frozenset({_T.INFO}),
}


def family_metadata(name: str, by_family: dict[str, v1.MetricMetadata]) -> v1.MetricMetadata | None:
    """The metadata of the family series ``name`` belongs to (see the module
    docstring), or None."""
    known = by_family.get(name)
    if known is not None:
        return known
    for suffix, types in FAMILY_SUFFIXES.items():
        if name.endswith(suffix):
            family = by_family.get(name[: -len(suffix)])
            if family is not None and int(family.type) in types:
                return family
    return None


#: Suffixes :func:`to_v1` strips to find a series' family: those that never
#: end a family's own name in Prometheus' text format (a counter's family is
#: named with its ``_total`` there, so ``_total`` stays).
_STRIP = ("_bucket", "_count", "_sum", "_gcount", "_gsum", "_created", "_info")


def family_of(name: str, kind: int) -> str:
    """The metric family a series named ``name`` with metadata type ``kind``
    belongs to: ``name`` without a suffix of :data:`_STRIP` the type gives its
    series (``x_bucket`` of a histogram is family ``x``), else ``name``."""
    for suffix in _STRIP:
        if name.endswith(suffix) and kind in FAMILY_SUFFIXES[suffix] and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


E = TypeVar("E", bound=enum.IntEnum)


def _enum(value: enum.IntEnum | int, target: type[E]) -> E | int:
    """Carry an enum across packages by number; unknown numbers stay plain ``int``."""
    n = int(value)
    try:
        return target(n)
    except ValueError:
        return n


_by_name = attrgetter("name")


def _histogram_fields(h: v1.Histogram | v2.Histogram, reset_hint: type[E]) -> dict[str, Any]:
    """Fields 1-16, which v1 and v2 histograms share, as keyword arguments.

    Taken from v1's field table, so a field added there is carried too; lists
    are copied, ``reset_hint`` crosses to the other package's enum by number.
    """
    kw: dict[str, Any] = {}
    for spec in SCHEMAS[v1.Histogram]:
        value = getattr(h, spec.name)
        if spec.repeated:
            value = list(value)
        elif spec.kind == Kind.ENUM:
            value = _enum(value, reset_hint)
        kw[spec.name] = value
    return kw


def histogram_to_v1(h: v2.Histogram) -> v1.Histogram:
    """The v1 histogram with the same content (``start_timestamp`` is dropped)."""
    return v1.Histogram(**_histogram_fields(h, v1.ResetHint))


def histogram_to_v2(h: v1.Histogram, *, start_timestamp: int = 0) -> v2.Histogram:
    """The v2 histogram with the same content (``start_timestamp`` unset unless given)."""
    return v2.Histogram(**_histogram_fields(h, v2.ResetHint), start_timestamp=start_timestamp)


def to_v1(
    request: v2.Request, *, errors: list[str] | None = None, sort_labels: bool = False
) -> v1.WriteRequest:
    """Resolve a v2 request into the equivalent v1 ``WriteRequest``.

    Every series' refs are checked (see :func:`promwire.v2.symbols.series_error`).
    Without ``errors``, the first bad series raises
    :class:`~promwire.errors.DecodeError` naming it. With an ``errors`` list,
    bad series are left out and their messages appended to it, so a receiver
    can store the rest and answer 400 with a partial write, like Prometheus.
    Series order is kept; metadata entries come in order of first appearance.
    Labels keep the sender's order (the spec asks senders to sort them by
    name); ``sort_labels=True`` sorts each label set by name, as Prometheus
    does after de-symbolising. Exemplar labels are left as sent.
    """
    symbols = request.symbols
    # One Label object per distinct (name_ref, value_ref) pair: label pairs
    # repeat across the series of a request, and Label is frozen (shareable).
    pairs: dict[tuple[int, int], v1.Label] = {}
    Label = v1.Label
    out_series: list[v1.TimeSeries] = []
    metadata: dict[str, v1.MetricMetadata] = {}

    def make(key: tuple[int, int]) -> v1.Label:
        label = pairs[key] = Label(symbols[key[0]], symbols[key[1]])
        return label

    get = pairs.get

    def labels_of(refs: list[int]) -> list[v1.Label]:
        # zip of the even and odd slices walks the (name, value) pairs in C.
        return [get(key) or make(key) for key in zip(refs[::2], refs[1::2], strict=True)]

    for index, series in enumerate(request.timeseries):
        problem = series_error(symbols, series, index)
        if problem is not None:
            if errors is None:
                raise DecodeError(problem)
            errors.append(problem)
            continue
        labels = labels_of(series.labels_refs)
        if sort_labels:
            labels.sort(key=_by_name)
        out_series.append(
            v1.TimeSeries(
                labels=labels,
                samples=[v1.Sample(s.value, s.timestamp) for s in series.samples],
                exemplars=[
                    v1.Exemplar(labels_of(e.labels_refs), e.value, e.timestamp)
                    for e in series.exemplars
                ],
                histograms=[histogram_to_v1(h) for h in series.histograms],
            )
        )
        md = series.metadata
        if md is not None and (md.type or md.help_ref or md.unit_ref):
            name = next((lb.value for lb in labels if lb.name == "__name__"), "")
            _add_family(metadata, name, md, symbols)
    return v1.WriteRequest(timeseries=out_series, metadata=list(metadata.values()))


def _add_family(
    metadata: dict[str, v1.MetricMetadata], name: str, md: v2.Metadata, symbols: Sequence[str]
) -> None:
    """Record a series' metadata under its family (the first entry of a family wins)."""
    name = family_of(name, int(md.type)) if name else name
    if name and name not in metadata:
        metadata[name] = v1.MetricMetadata(
            type=_enum(md.type, v1.MetricType),
            metric_family_name=name,
            help=symbols[md.help_ref],
            unit=symbols[md.unit_ref],
        )


def metadata_to_v1(request: v2.Request) -> list[v1.MetricMetadata]:
    """The v1 metadata :func:`to_v1` gives a checked ``request``, without its samples
    (for the columnar write path, which converts the series itself)."""
    symbols = request.symbols
    metadata: dict[str, v1.MetricMetadata] = {}
    for series in request.timeseries:
        md = series.metadata
        if md is None or not (md.type or md.help_ref or md.unit_ref):
            continue
        refs = series.labels_refs
        name = ""
        for i in range(0, len(refs) - 1, 2):
            if symbols[refs[i]] == "__name__":
                name = symbols[refs[i + 1]]
                break
        _add_family(metadata, name, md, symbols)
    return list(metadata.values())


def from_v1(request: v1.WriteRequest) -> v2.Request:
    """Build the v2 request carrying the series of a v1 ``WriteRequest``.

    Label order is kept as given (senders sort by name). Symbols are
    numbered in order of first use. See the module docstring for metadata.
    """
    table = SymbolTable()
    ref = table.ref
    refs = table.refs
    by_name: dict[str, v1.MetricMetadata] = {}
    for md in request.metadata:
        by_name.setdefault(md.metric_family_name, md)
    out: list[v2.TimeSeries] = []
    for ts in request.timeseries:
        labels_refs = refs(ts.labels)
        name = next((lb.value for lb in ts.labels if lb.name == "__name__"), None)
        known = family_metadata(name, by_name) if name is not None else None
        if known is None:
            metadata = v2.Metadata()
        else:
            metadata = v2.Metadata(
                type=_enum(known.type, v2.MetricType),
                help_ref=ref(known.help),
                unit_ref=ref(known.unit),
            )
        out.append(
            v2.TimeSeries(
                labels_refs=labels_refs,
                samples=[v2.Sample(s.value, s.timestamp) for s in ts.samples],
                histograms=[histogram_to_v2(h) for h in ts.histograms],
                exemplars=[v2.Exemplar(refs(e.labels), e.value, e.timestamp) for e in ts.exemplars],
                metadata=metadata,
            )
        )
    return v2.Request(symbols=table.symbols, timeseries=out)
