"""Hypothesis strategies for every promwire message, and for raw wire bytes.

Use them to fuzz your own storage or handler with the full range of what the
wire can carry: 64-bit integers including negatives, every float bit pattern
(NaN payloads, ``-0.0``, Prometheus' stale marker), any Unicode text, enum
numbers promwire does not know, histogram oneofs absent or holding a zero::

    from hypothesis import given
    from promwire import WriteRequest, decode, encode
    from promwire.testing import canonical, write_requests

    @given(write_requests())
    def test_my_storage_keeps_what_it_is_given(req: WriteRequest) -> None:
        storage = MyStorage()
        storage.write(decode(WriteRequest, encode(req)))
        assert canonical(storage.dump()) == canonical(req)   # floats compared by bits

``messages(cls)`` gives the strategy for any message class, and
``prometheus_write_requests()`` requests shaped like the ones Prometheus
sends (repeating sorted label sets, current millisecond timestamps). For the
wire itself: ``encodings(cls)`` gives canonical bytes of a class,
``scrambled_encodings(cls)`` valid non-canonical ones paired with their
message (fields reordered, unknown fields of every wire type inserted),
``mutations(data)`` and ``mutated_encodings(cls)`` damaged ones (bit flips,
truncation, inserted/deleted bytes) for robustness tests: ``decode`` must
answer those with a :class:`~promwire.errors.DecodeError`, never another
exception. ``canonical(msg)`` makes messages comparable bit for bit.

This module needs ``hypothesis`` (a test dependency); promwire itself never
imports it.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Callable
from typing import Any, TypeVar

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        "promwire.testing needs the 'hypothesis' package, which promwire does not "
        "install: pip install hypothesis"
    ) from exc

from ..codec import messages as m
from ..codec.encoder import encode
from ..codec.fields import SCHEMAS, Kind
from ..codec.wire import I32, I64, LEN, VARINT, double_bits, read_varint, skip_field, tag, varint

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "INT64_MAX",
    "INT64_MIN",
    "MESSAGE_CLASSES",
    "SPECIAL_DOUBLES",
    "UINT32_MAX",
    "UINT64_MAX",
    "bucket_spans",
    "canonical",
    "chunk_types",
    "chunked_read_responses",
    "chunked_series",
    "chunks",
    "doubles",
    "encodings",
    "enum_numbers",
    "exemplars",
    "histograms",
    "int32s",
    "int64s",
    "label_matchers",
    "labels",
    "messages",
    "metric_metadata",
    "mutated_encodings",
    "mutations",
    "prometheus_write_requests",
    "queries",
    "query_results",
    "read_hints",
    "read_requests",
    "read_responses",
    "samples",
    "scrambled_encodings",
    "sint32s",
    "sint64s",
    "texts",
    "timeseries",
    "timestamps_ms",
    "uint32s",
    "uint64s",
    "valid_histograms",
    "write_requests",
]

T = TypeVar("T")
E = TypeVar("E", bound=enum.IntEnum)

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
UINT32_MAX = (1 << 32) - 1

_from_bits = struct.Struct("<Q")
_to_double = struct.Struct("<d")


def _double_from_bits(bits: int) -> float:
    # struct moves the 8 bytes unchanged, so signalling NaNs keep their payload.
    return float(_to_double.unpack(_from_bits.pack(bits))[0])


#: Bit patterns worth always trying: both zeros, the stale marker, Prometheus'
#: normal NaN, a quiet NaN with payload, negative NaN, infinities, extremes.
SPECIAL_DOUBLES: tuple[float, ...] = tuple(
    _double_from_bits(b)
    for b in (
        0x0000000000000000,  # +0.0
        0x8000000000000000,  # -0.0
        m.STALE_NAN_BITS,  # stale marker (signalling NaN)
        0x7FF8000000000001,  # Prometheus' "normal" NaN
        0x7FF8000000000000,  # the canonical quiet NaN
        0xFFF8000000000000,  # negative NaN
        0x7FFFFFFFFFFFFFFF,  # NaN, all payload bits
        0x7FF0000000000000,  # +inf
        0xFFF0000000000000,  # -inf
        0x0000000000000001,  # smallest subnormal
        0x7FEFFFFFFFFFFFFF,  # largest finite
        0x3FF0000000000000,  # 1.0
    )
)

# ----------------------------------------------------------------- scalar strategies


def int64s() -> st.SearchStrategy[int]:
    """Any ``int64`` (negatives encode as 10-byte varints)."""
    return st.integers(INT64_MIN, INT64_MAX)


def uint64s() -> st.SearchStrategy[int]:
    """Any ``uint64``."""
    return st.integers(0, UINT64_MAX)


def uint32s() -> st.SearchStrategy[int]:
    """Any ``uint32``."""
    return st.integers(0, UINT32_MAX)


def int32s() -> st.SearchStrategy[int]:
    """Any ``int32`` (the range of enum numbers)."""
    return st.integers(INT32_MIN, INT32_MAX)


def sint32s() -> st.SearchStrategy[int]:
    """Any ``sint32`` (zigzag on the wire)."""
    return int32s()


def sint64s() -> st.SearchStrategy[int]:
    """Any ``sint64`` (zigzag on the wire)."""
    return int64s()


def doubles() -> st.SearchStrategy[float]:
    """Any float *bit pattern*: ordinary floats, raw 64-bit patterns and :data:`SPECIAL_DOUBLES`.

    NaNs never compare equal: compare results with :func:`canonical`.
    """
    return st.one_of(
        st.sampled_from(SPECIAL_DOUBLES),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(0, UINT64_MAX).map(_double_from_bits),
    )


def texts(max_size: int = 12) -> st.SearchStrategy[str]:
    """Any Unicode text encodable as UTF-8 (no lone surrogates), NUL included."""
    return st.text(st.characters(exclude_categories=["Cs"]), max_size=max_size)


def enum_numbers(enum_cls: type[E]) -> st.SearchStrategy[E | int]:
    """Members of ``enum_cls`` and, less often, any other ``int32`` (unknown numbers)."""
    known: st.SearchStrategy[E | int] = st.sampled_from(list(enum_cls))
    return st.one_of(known, known, int32s())


def chunk_types() -> st.SearchStrategy[m.ChunkEncoding | int]:
    """Chunk encodings 0-6 (4-6 are new in Prometheus 3.14) and unknown numbers."""
    return enum_numbers(m.ChunkEncoding)


def _lists(elements: st.SearchStrategy[T], max_size: int) -> st.SearchStrategy[list[T]]:
    return st.lists(elements, max_size=max_size)


# ---------------------------------------------------------------- types.proto messages


def labels() -> st.SearchStrategy[m.Label]:
    """``Label`` with any Unicode name and value (empty ones included)."""
    return st.builds(m.Label, name=texts(), value=texts())


def samples() -> st.SearchStrategy[m.Sample]:
    """``Sample`` with any float bits and any ``int64`` timestamp."""
    return st.builds(m.Sample, value=doubles(), timestamp=int64s())


def exemplars() -> st.SearchStrategy[m.Exemplar]:
    """``Exemplar`` (labels may be empty)."""
    return st.builds(m.Exemplar, labels=_lists(labels(), 3), value=doubles(), timestamp=int64s())


def bucket_spans() -> st.SearchStrategy[m.BucketSpan]:
    """``BucketSpan``: ``sint32`` offset, ``uint32`` length."""
    return st.builds(m.BucketSpan, offset=sint32s(), length=uint32s())


def _oneof(
    as_int: st.SearchStrategy[int], as_float: st.SearchStrategy[float]
) -> st.SearchStrategy[tuple[int | None, float | None]]:
    """A two-member oneof: absent, the int member (zero included) or the float member."""
    absent: st.SearchStrategy[tuple[int | None, float | None]] = st.just((None, None))
    return st.one_of(
        absent,
        st.one_of(st.just(0), as_int).map(lambda v: (v, None)),
        st.one_of(st.just(0.0), as_float).map(lambda v: (None, v)),
    )


@st.composite
def histograms(draw: st.DrawFn) -> m.Histogram:
    """``Histogram``: each oneof absent, a present zero, or any value; every field full range.

    The content need not be a *consistent* histogram (span lengths vs bucket
    counts): the wire codec carries whatever it is given.
    """
    count_int, count_float = draw(_oneof(uint64s(), doubles()))
    zero_int, zero_float = draw(_oneof(uint64s(), doubles()))
    return m.Histogram(
        count_int=count_int,
        count_float=count_float,
        sum=draw(doubles()),
        schema=draw(st.one_of(st.integers(-53, 52), sint32s())),
        zero_threshold=draw(doubles()),
        zero_count_int=zero_int,
        zero_count_float=zero_float,
        negative_spans=draw(_lists(bucket_spans(), 3)),
        negative_deltas=draw(_lists(sint64s(), 4)),
        negative_counts=draw(_lists(doubles(), 4)),
        positive_spans=draw(_lists(bucket_spans(), 3)),
        positive_deltas=draw(_lists(sint64s(), 4)),
        positive_counts=draw(_lists(doubles(), 4)),
        reset_hint=draw(enum_numbers(m.ResetHint)),
        timestamp=draw(int64s()),
        custom_values=draw(_lists(doubles(), 3)),
    )


@st.composite
def _side(
    draw: st.DrawFn, *, first_offset: st.SearchStrategy[int], is_float: bool
) -> tuple[list[m.BucketSpan], list[int], list[float], float]:
    """Spans, deltas or counts of one side whose lengths match, counts >= 0; and their sum."""
    spans = []
    for n in range(draw(st.integers(0, 3))):
        offset = draw(first_offset if n == 0 else st.integers(0, 5))
        spans.append(m.BucketSpan(offset, draw(st.integers(0, 4))))
    buckets = sum(s.length for s in spans)
    if is_float:
        counts = draw(st.lists(st.floats(0, 1e6), min_size=buckets, max_size=buckets))
        return spans, [], counts, sum(counts)
    absolute = draw(st.lists(st.integers(0, 1000), min_size=buckets, max_size=buckets))
    deltas = [b - a for a, b in zip([0, *absolute], absolute, strict=False)]
    return spans, deltas, [], float(sum(absolute))


@st.composite
def valid_histograms(draw: st.DrawFn) -> m.Histogram:
    """``Histogram`` that a receiver validating as Prometheus does accepts
    (:func:`promwire.codec.validation.histogram_problem` is ``None``): schema
    -4..8 or custom buckets (-53), spans matching the buckets, counts >= 0,
    an integer ``count`` equal to zero count plus buckets (or above it with a
    NaN ``sum``), float or integer flavour."""
    is_float = draw(st.integers(0, 3)) == 0
    custom = draw(st.integers(0, 4)) == 0
    pos_spans, pos_deltas, pos_counts, total = draw(
        _side(first_offset=st.integers(0, 5) if custom else st.integers(-10, 10), is_float=is_float)
    )
    h = m.Histogram(
        schema=-53 if custom else draw(st.integers(-4, 8)),
        positive_spans=pos_spans,
        positive_deltas=pos_deltas,
        positive_counts=pos_counts,
        reset_hint=draw(enum_numbers(m.ResetHint)),
        timestamp=draw(timestamps_ms()),
    )
    if custom:
        covered = sum(s.offset + s.length for s in pos_spans)
        need = max(covered - 1, 0)
        bounds = draw(st.lists(st.floats(-1e9, 1e9), min_size=need, max_size=need + 3))
        h.custom_values = sorted(set(bounds))
        while len(h.custom_values) < covered - 1:  # duplicates were dropped: extend upwards
            h.custom_values.append((h.custom_values[-1] if h.custom_values else 0.0) + 1.0)
    else:
        neg_spans, neg_deltas, neg_counts, neg_total = draw(
            _side(first_offset=st.integers(-10, 10), is_float=is_float)
        )
        h.negative_spans, h.negative_deltas, h.negative_counts = neg_spans, neg_deltas, neg_counts
        h.zero_threshold = draw(st.sampled_from([0.0, 1e-128, 0.001]))
        total += neg_total
    nan_sum = draw(st.integers(0, 5)) == 0
    h.sum = math.nan if nan_sum else draw(st.floats(-1e9, 1e9))
    if is_float:
        zero = 0.0 if custom else draw(st.floats(0, 100))
        h.zero_count_float = zero
        h.count_float = total + zero
    else:
        zero_int = 0 if custom else draw(st.integers(0, 100))
        h.zero_count_int = zero_int
        h.count_int = int(total) + zero_int + (draw(st.integers(0, 5)) if nan_sum else 0)
    return h


def timeseries(max_size: int = 3) -> st.SearchStrategy[m.TimeSeries]:
    """``TimeSeries`` with up to ``max_size`` of each repeated field (any may be empty)."""
    return st.builds(
        m.TimeSeries,
        labels=_lists(labels(), max_size + 1),
        samples=_lists(samples(), max_size),
        exemplars=_lists(exemplars(), max_size),
        histograms=_lists(histograms(), max_size - 1 if max_size > 1 else max_size),
    )


def metric_metadata() -> st.SearchStrategy[m.MetricMetadata]:
    """``MetricMetadata`` including enum numbers promwire does not know."""
    return st.builds(
        m.MetricMetadata,
        type=enum_numbers(m.MetricType),
        metric_family_name=texts(),
        help=texts(),
        unit=texts(),
    )


# --------------------------------------------------------------- remote.proto messages


def write_requests(max_size: int = 3) -> st.SearchStrategy[m.WriteRequest]:
    """``WriteRequest`` with up to ``max_size`` series and metadata entries."""
    return st.builds(
        m.WriteRequest,
        timeseries=_lists(timeseries(2), max_size),
        metadata=_lists(metric_metadata(), max_size),
    )


def label_matchers() -> st.SearchStrategy[m.LabelMatcher]:
    """``LabelMatcher`` (types 0-3 and unknown numbers)."""
    return st.builds(m.LabelMatcher, type=enum_numbers(m.MatchType), name=texts(), value=texts())


def read_hints() -> st.SearchStrategy[m.ReadHints]:
    """``ReadHints`` with every field full range (possibly all defaults)."""
    return st.builds(
        m.ReadHints,
        step_ms=int64s(),
        func=texts(),
        start_ms=int64s(),
        end_ms=int64s(),
        grouping=_lists(texts(), 3),
        by=st.booleans(),
        range_ms=int64s(),
    )


def queries() -> st.SearchStrategy[m.Query]:
    """``Query`` with ``hints`` absent (``None``), present but empty, or filled."""
    return st.builds(
        m.Query,
        start_timestamp_ms=int64s(),
        end_timestamp_ms=int64s(),
        matchers=_lists(label_matchers(), 3),
        hints=st.one_of(st.none(), st.just(m.ReadHints()), read_hints()),
    )


def read_requests(max_size: int = 3) -> st.SearchStrategy[m.ReadRequest]:
    """``ReadRequest`` (accepted response types include unknown and negative numbers)."""
    return st.builds(
        m.ReadRequest,
        queries=_lists(queries(), max_size),
        accepted_response_types=_lists(enum_numbers(m.ResponseType), 3),
    )


def query_results(max_size: int = 3) -> st.SearchStrategy[m.QueryResult]:
    """``QueryResult`` (possibly empty: an answer to a query that matched nothing)."""
    return st.builds(m.QueryResult, timeseries=_lists(timeseries(2), max_size))


def read_responses(max_size: int = 3) -> st.SearchStrategy[m.ReadResponse]:
    """``ReadResponse``: up to ``max_size`` results, empty ones included."""
    return st.builds(m.ReadResponse, results=_lists(query_results(2), max_size))


def chunks() -> st.SearchStrategy[m.Chunk]:
    """``Chunk`` with any encoding number and arbitrary (not necessarily valid) data."""
    return st.builds(
        m.Chunk,
        min_time_ms=int64s(),
        max_time_ms=int64s(),
        type=chunk_types(),
        data=st.binary(max_size=40),
    )


def chunked_series(max_size: int = 3) -> st.SearchStrategy[m.ChunkedSeries]:
    """``ChunkedSeries``."""
    return st.builds(
        m.ChunkedSeries,
        labels=_lists(labels(), max_size + 1),
        chunks=_lists(chunks(), max_size),
    )


def chunked_read_responses(max_size: int = 3) -> st.SearchStrategy[m.ChunkedReadResponse]:
    """``ChunkedReadResponse`` with any ``int64`` query index."""
    return st.builds(
        m.ChunkedReadResponse,
        chunked_series=_lists(chunked_series(2), max_size),
        query_index=int64s(),
    )


# ------------------------------------------------------ realistic (Prometheus-shaped)

_NAMES = ("__name__", "instance", "job", "le", "quantile", "code", "method", "replica")
_VALUES = ("up", "http_requests_total", "127.0.0.1:9090", "prometheus", "+Inf", "0.5", "200", "")


def timestamps_ms() -> st.SearchStrategy[int]:
    """Timestamps as Prometheus sends them (ms since 1970: 6-byte varints), sometimes any int64."""
    return st.one_of(
        st.integers(1 << 35, (1 << 42) - 1), st.integers(1 << 35, (1 << 42) - 1), int64s()
    )


@st.composite
def _label_set(draw: st.DrawFn) -> list[m.Label]:
    names = draw(st.lists(st.one_of(st.sampled_from(_NAMES), texts(20)), max_size=6, unique=True))
    values = st.one_of(st.sampled_from(_VALUES), texts(40))
    labels = [m.Label(n, draw(values)) for n in sorted(names)]
    if not any(lb.value for lb in labels):  # Prometheus sends none without a labelled value
        labels = [lb for lb in labels if lb.name != "__name__"] + [m.Label("__name__", "up")]
        labels.sort(key=lambda lb: lb.name)
    return labels


@st.composite
def prometheus_write_requests(draw: st.DrawFn, max_series: int = 12) -> m.WriteRequest:
    """``WriteRequest`` shaped like Prometheus' own: sorted label sets that repeat across
    series, mostly one sample per series with a realistic timestamp, sometimes runs of
    samples, an exemplar or a native histogram (valid, as Prometheus sends them:
    :func:`valid_histograms`), and metadata-only requests.

    This is the input decoders' fast paths are tuned for; :func:`write_requests`
    covers the rest of what the wire allows.
    """
    if draw(st.integers(0, 9)) == 0:
        return m.WriteRequest(metadata=draw(_lists(metric_metadata(), 4)))
    pool = draw(st.lists(_label_set(), min_size=1, max_size=4))
    series = []
    for _ in range(draw(st.integers(0, max_series))):
        labels = list(draw(st.sampled_from(pool)))
        shape = draw(st.integers(0, 9))
        sample = st.builds(m.Sample, value=doubles(), timestamp=timestamps_ms())
        if shape < 6:
            series.append(m.TimeSeries(labels, [draw(sample)]))
        elif shape < 8:
            series.append(m.TimeSeries(labels, draw(_lists(sample, 6))))
        elif shape == 8:
            series.append(m.TimeSeries(labels, exemplars=[draw(exemplars())]))
        else:
            series.append(m.TimeSeries(labels, histograms=[draw(valid_histograms())]))
    return m.WriteRequest(series)


_BY_CLASS: dict[type[Any], Callable[[], st.SearchStrategy[Any]]] = {
    m.Label: labels,
    m.Sample: samples,
    m.Exemplar: exemplars,
    m.BucketSpan: bucket_spans,
    m.Histogram: histograms,
    m.TimeSeries: timeseries,
    m.MetricMetadata: metric_metadata,
    m.WriteRequest: write_requests,
    m.LabelMatcher: label_matchers,
    m.ReadHints: read_hints,
    m.Query: queries,
    m.ReadRequest: read_requests,
    m.QueryResult: query_results,
    m.ReadResponse: read_responses,
    m.Chunk: chunks,
    m.ChunkedSeries: chunked_series,
    m.ChunkedReadResponse: chunked_read_responses,
}

#: Every message class that has a strategy (all of :mod:`promwire.codec.messages`).
MESSAGE_CLASSES: tuple[type[Any], ...] = tuple(_BY_CLASS)


def messages(cls: type[T]) -> st.SearchStrategy[T]:
    """The strategy for message class ``cls``."""
    try:
        factory = _BY_CLASS[cls]
    except KeyError:
        raise TypeError(f"no strategy for {cls!r}") from None
    strategy: st.SearchStrategy[T] = factory()
    return strategy


# ------------------------------------------------------------------------- wire bytes


def encodings(cls: type[Any]) -> st.SearchStrategy[bytes]:
    """Valid protobuf encodings of messages of class ``cls``."""
    return messages(cls).map(encode)


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` damaged 1-3 times: a bit flipped, cut short, bytes inserted, deleted or set."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(("flip", "truncate", "insert", "delete", "set")))
        if op == "insert" or not buf:
            at = draw(st.integers(0, len(buf)))
            buf[at:at] = draw(st.binary(min_size=1, max_size=4))
            continue
        at = draw(st.integers(0, len(buf) - 1))
        if op == "flip":
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del buf[at:]
        elif op == "delete":
            del buf[at : at + draw(st.integers(1, 4))]
        else:  # "set": bytes a decoder finds interesting (continuation bits, wire types)
            buf[at] = draw(st.sampled_from((0x00, 0x7F, 0x80, 0xFF, 0x03, 0x04, 0x06, 0x07)))
    return bytes(buf)


def mutated_encodings(cls: type[Any]) -> st.SearchStrategy[bytes]:
    """Encodings of ``cls`` damaged by bit flips, truncation, inserted/deleted/overwritten bytes.

    Most are invalid; some still decode (a flipped bit inside a double). Either
    way ``decode`` may only raise :class:`~promwire.errors.DecodeError`.
    """
    return encodings(cls).flatmap(mutations)


def _unknown_field(known: set[int]) -> st.SearchStrategy[bytes]:
    """One field record of a number outside ``known``, any wire type a decoder must skip."""
    number = st.one_of(st.integers(1, 40), st.integers(1, (1 << 29) - 1)).filter(
        lambda n: n not in known
    )
    payload = st.one_of(
        uint64s().map(lambda v: (VARINT, varint(v))),
        st.binary(min_size=8, max_size=8).map(lambda b: (I64, b)),
        st.binary(max_size=6).map(lambda b: (LEN, varint(len(b)) + b)),
        st.binary(min_size=4, max_size=4).map(lambda b: (I32, b)),
    )
    return st.tuples(number, payload).map(lambda x: tag(x[0], x[1][0]) + x[1][1])


@st.composite
def _scramble(draw: st.DrawFn, cls: type[Any], data: bytes) -> bytes:
    """Re-lay ``data`` (a valid ``cls``) without changing what it means: fields of
    different numbers in a random order, unknown fields in between, recursively."""
    specs = {spec.number: spec for spec in SCHEMAS[cls]}
    groups: dict[int, list[bytes]] = {}
    pos = 0
    while pos < len(data):
        start = pos
        t, pos = read_varint(data, pos)
        spec = specs.get(t >> 3)
        if spec is not None and spec.kind == Kind.MESSAGE and t & 7 == LEN:
            n, body_start = read_varint(data, pos)
            pos = body_start + n
            body = draw(_scramble(spec.message, data[body_start:pos]))
            record = data[start : start + len(varint(t))] + varint(len(body)) + body
        else:
            pos = skip_field(data, pos, len(data), t & 7)
            record = data[start:pos]
        groups.setdefault(t >> 3, []).append(record)
    order = draw(st.permutations(list(groups)))
    out: list[bytes] = []
    for number in order:
        out.extend(draw(st.lists(_unknown_field(set(specs)), max_size=1)))
        out.extend(groups[number])  # same-numbered records keep their order
    out.extend(draw(st.lists(_unknown_field(set(specs)), max_size=1)))
    return b"".join(out)


def scrambled_encodings(cls: type[T]) -> st.SearchStrategy[tuple[T, bytes]]:
    """``(message, bytes)``: valid but non-canonical encodings of ``message`` - fields
    reordered and unknown fields of every wire type inserted, at every nesting level.

    ``decode(cls, bytes)`` must equal ``message`` (compare with :func:`canonical`).
    """
    return messages(cls).flatmap(
        lambda msg: _scramble(cls, encode(msg)).map(lambda raw: (msg, raw))
    )


# ------------------------------------------------------------------------- comparison


def canonical(value: Any) -> Any:
    """A comparable form of a message (or list of them) with floats replaced by their bits.

    ``canonical(a) == canonical(b)`` is bitwise equality: NaN payloads and
    ``-0.0`` count, and enum members equal their numbers.
    """
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, float):
        return ("double", double_bits(value))
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, int):
        return int(value)
    specs = SCHEMAS.get(type(value))
    if specs is None:
        raise TypeError(f"cannot compare {type(value).__name__}")
    out: list[Any] = [type(value).__name__]
    for spec in specs:
        v = getattr(value, spec.name)
        if spec.kind == Kind.DOUBLE and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        out.append((spec.name, canonical(v)))
    return tuple(out)
