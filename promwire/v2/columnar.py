"""Remote write 2.0 in columns: :func:`promwire.decode_columns` / ``encode_columns`` of ``Request``.

Registered into :mod:`promwire.codec.columnar` when :mod:`promwire.v2` is
imported. Decoding resolves each series' label refs through the symbol table
(refs are checked as :func:`promwire.v2.validate` does: a bad one is a
:class:`~promwire.errors.DecodeError` naming the series), reads the float
samples of the usual shape in bulk, and converts exemplars and histograms to
their 1.0 classes. Start timestamps and per-series metadata have no place in
:class:`~promwire.codec.columns.SeriesColumns` and are dropped (metadata is
still decoded, so a malformed one is an error as with ``decode``).
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Sequence

from ..codec import columnar as _c
from ..codec import messages as v1
from ..codec.columns import SeriesColumns
from ..codec.encoder import encode
from ..codec.read_columns import append_sample_records
from ..codec.wire import MASK32, read_varint, skip_unknown, varint
from ..errors import DecodeError, EncodeError
from . import fastdecode as _fd
from . import messages as v2
from .convert import _by_name, histogram_to_v1, histogram_to_v2
from .symbols import SymbolTable, series_error

__all__ = ["request_columns"]

_Part = tuple[v2.TimeSeries, "array[int]", "array[float]"]


def _series(buf: bytes, pos: int, end: int) -> _Part:
    """One v2 TimeSeries: the series without its samples, and the samples as columns."""
    refs: list[int] = []
    ts: array[int] = array("q")
    vs: array[float] = array("d")
    histograms: list[v2.Histogram] = []
    exemplars: list[v2.Exemplar] = []
    md_ranges: list[tuple[int, int]] = []
    while pos < end:
        t = buf[pos]
        if t == 0x12 and buf[pos + 1] == 0x10:
            p = _c.sample_run(buf, pos, end, ts, vs)
            if p != pos:
                pos = p
                continue
        pos += 1
        if 0x0A <= t <= 0x2A and t & 7 == 2:  # LEN fields 1-5
            n = buf[pos]
            if n < 0x80:
                pos += 1
            else:
                n, pos = read_varint(buf, pos)
            stop = pos + n
            if stop > end:
                raise DecodeError("TimeSeries: length runs past the end")
            if t == 0x12:
                s = _fd._sample(buf, pos, stop)
                vs.append(s.value)
                ts.append(s.timestamp)
            elif t == 0x0A:
                _fd._packed_refs(buf, pos, stop, refs)
            elif t == 0x1A:
                histograms.append(_fd._generic_histogram(buf, pos, stop))
            elif t == 0x22:
                exemplars.append(_fd._generic_exemplar(buf, pos, stop))
            else:  # 0x2A metadata: decoded for its errors only
                md_ranges.append((pos, stop))
            pos = stop
        elif t == 0x08:  # labels_refs, unpacked
            v, pos = read_varint(buf, pos)
            refs.append(v & MASK32)
        else:
            if t >= 0x80:
                t, pos = read_varint(buf, pos - 1)
            pos = skip_unknown(buf, pos, end, t, "TimeSeries")
    if pos != end:
        raise DecodeError("TimeSeries: last field runs past the end of the message")
    metadata = None
    if md_ranges:
        joined = b"".join(buf[a:b] for a, b in md_ranges)
        metadata = _fd._generic_metadata(joined, 0, len(joined))
    return v2.TimeSeries(refs, [], histograms, exemplars, metadata), ts, vs


class _Labels:
    """Resolves ref lists into label tuples, one Label per distinct (name, value) pair."""

    __slots__ = ("pairs", "symbols")

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.pairs: dict[tuple[int, int], v1.Label] = {}

    def __call__(self, refs: list[int], sort: bool = False) -> tuple[v1.Label, ...]:
        pairs = self.pairs
        out = []
        for key in zip(refs[::2], refs[1::2], strict=True):
            label = pairs.get(key)
            if label is None:
                label = pairs[key] = v1.Label(self.symbols[key[0]], self.symbols[key[1]])
            out.append(label)
        if sort:
            out.sort(key=_by_name)
        return tuple(out)


def _columns(
    labels: _Labels, series: v2.TimeSeries, ts: array[int], vs: array[float], sort: bool
) -> SeriesColumns:
    return SeriesColumns(
        labels(series.labels_refs, sort),
        ts,
        vs,
        [histogram_to_v1(h) for h in series.histograms],
        [v1.Exemplar(list(labels(e.labels_refs)), e.value, e.timestamp) for e in series.exemplars],
    )


def _request(buf: bytes, pos: int, end: int) -> list[SeriesColumns]:
    symbols: list[str] = []
    parts: list[_Part] = []
    while pos < end:
        t = buf[pos]
        if t >= 0x80:
            t, pos = read_varint(buf, pos)
        else:
            pos += 1
        if t == 0x22 or t == 0x2A:
            n, pos = read_varint(buf, pos)
            stop = pos + n
            if stop > end:
                raise DecodeError("Request: length runs past the end")
            if t == 0x22:
                try:
                    symbols.append(buf[pos:stop].decode("utf-8"))
                except UnicodeDecodeError:
                    raise DecodeError("symbols: string is not valid UTF-8") from None
            else:
                parts.append(_series(buf, pos, stop))
            pos = stop
        else:
            pos = skip_unknown(buf, pos, end, t, "Request")
    labels = _Labels(symbols)
    out = []
    for index, (series, ts, vs) in enumerate(parts):
        problem = series_error(symbols, series, index)
        if problem is not None:
            raise DecodeError(problem)
        out.append(_columns(labels, series, ts, vs, False))
    return out


_timestamp_of = operator.attrgetter("timestamp")
_value_of = operator.attrgetter("value")


def request_columns(request: v2.Request, *, sort_labels: bool = False) -> list[SeriesColumns]:
    """The series of a decoded, checked v2 request as columns (the handler's view).

    Refs must be valid (:func:`promwire.v2.validate` or the handler's checks).
    ``sort_labels`` sorts each label set by name, as :func:`promwire.v2.to_v1` can.
    """
    labels = _Labels(request.symbols)
    return [
        _columns(
            labels,
            series,
            array("q", map(_timestamp_of, series.samples)),
            array("d", map(_value_of, series.samples)),
            sort_labels,
        )
        for series in request.timeseries
    ]


def _encode_request(series: Sequence[SeriesColumns]) -> bytes:
    """``encode(v2.from_v1(...))`` of the same content, without per-sample objects."""
    table = SymbolTable()
    refs = table.refs
    records = []
    for sc in series:
        ts = sc.timestamps
        vs = sc.values
        if len(ts) != len(vs):
            raise EncodeError(f"timestamps ({len(ts)}) and values ({len(vs)}) differ")
        label_refs = refs(list(sc.labels))
        packed = b"".join(varint(r) for r in label_refs)
        head = b"\x0a" + varint(len(packed)) + packed if packed else b""
        sample_records: list[bytes] = []
        append_sample_records(ts, vs, sample_records)  # v2's Sample: the same fields 1, 2
        samples = b"".join(sample_records)
        tail = encode(
            v2.TimeSeries(
                histograms=[histogram_to_v2(h) for h in sc.histograms],
                exemplars=[v2.Exemplar(refs(e.labels), e.value, e.timestamp) for e in sc.exemplars],
                metadata=v2.Metadata(),
            )
        )
        body = head + samples + tail
        records.append(b"\x2a" + varint(len(body)) + body)
    return encode(v2.Request(symbols=table.symbols)) + b"".join(records)


_c.COLUMN_DECODERS[v2.Request] = _request
_c.COLUMN_ENCODERS[v2.Request] = _encode_request
