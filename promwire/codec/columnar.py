"""Columnar decode and encode: per series its labels plus ``array`` columns.

:func:`decode_columns` turns a remote-write body into a list of
:class:`~promwire.codec.columns.SeriesColumns` without making one Python
object per sample, and :func:`encode_columns` writes that shape back, byte
for byte what :func:`promwire.encode` writes for the same content.

The trick that makes it fast is the shape every sender gives a float sample,
18 bytes: ``12 10 | 09 <8-byte double> | 10 <6-byte varint timestamp>``. A run
of such records is checked and split into columns with C-level byte
operations only: strided slices (``run[k::18]``) pick out one byte position of
every record, ``bytes.translate`` masks and shifts each byte through a table,
and one big-integer OR joins the two septets that make each byte of the
timestamp. Anything else (other shapes, exemplars, histograms, unknown
fields) goes through the same hand-written record loop as
:mod:`promwire.codec.decoder`, with the same errors.

Remote write 2.0 registers its own decoder and encoder here when
:mod:`promwire.v2` is imported (the codec does not import the layers above it).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..errors import DecodeError, EncodeError
from . import decoder as _d
from . import messages as m
from .columns import ColumnBatch, SeriesColumns
from .decode_caches import _blocks, _cap
from .read_columns import encode_series_columns
from .wire import INT64_MAX, read_varint, skip_unknown, to_int64, unpack_double, varint

T = TypeVar("T")

__all__ = [
    "decode_columns",
    "decode_read_columns",
    "decode_write_batch",
    "decode_write_columns",
    "encode_columns",
]

ColumnDecoder = Callable[[bytes, int, int], list[SeriesColumns]]
ColumnEncoder = Callable[[Sequence[SeriesColumns]], bytes]

#: message class -> columnar decoder / encoder (remote write 2.0 adds itself)
COLUMN_DECODERS: dict[type[Any], ColumnDecoder] = {}
COLUMN_ENCODERS: dict[type[Any], ColumnEncoder] = {}

_LITTLE = sys.byteorder == "little"

# ------------------------------------------------------------------ byte tables

_LOW7 = bytes(b & 0x7F for b in range(256))  # a varint byte's payload
_FLIP80 = bytes(b ^ 0x80 for b in range(256))  # all-high bytes become ASCII
# (b >> s) and ((b << s) & 0xff) for every shift: one translate per byte column
_SHR = [bytes(b >> s for b in range(256)) for s in range(8)]
_SHL = [bytes((b << s) & 0xFF for b in range(256)) for s in range(8)]

_REC = 18  # bytes of one float sample record of the usual shape


def _or_bytes(a: bytes, b: bytes) -> bytes:
    """Byte-wise OR of two equal-length byte strings, in C (through big ints)."""
    n = len(a)
    return (int.from_bytes(a, "little") | int.from_bytes(b, "little")).to_bytes(n, "little")


def _is_run(run: bytes, n: int) -> bool:
    """Whether ``run`` is ``n`` records ``12 10 09 <8> 10 <6-byte varint>``."""
    t12 = b"\x12" * n
    t10 = b"\x10" * n
    if run[0::_REC] != t12 or run[1::_REC] != t10 or run[2::_REC] != b"\x09" * n:
        return False
    if run[11::_REC] != t10:
        return False
    for j in range(12, 17):  # continuation bit set on the first five varint bytes
        if not run[j::_REC].translate(_FLIP80).isascii():
            return False
    return run[17::_REC].isascii()  # and clear on the sixth


def _split_run(run: bytes, n: int, timestamps: array[int], values: array[float]) -> None:
    """Append the samples of a checked run (see :func:`_is_run`) to the columns."""
    # values: byte k of every double sits at offset 3 + k of its record
    vb = bytearray(8 * n)
    for k in range(8):
        vb[k::8] = run[3 + k :: _REC]
    # timestamps: septet j (bits 7j..7j+6) at offset 12 + j; byte k of the
    # int64 (bits 8k..8k+7) is septet j >> s joined with septet j+1 << (7 - s)
    sept = [run[12 + j :: _REC].translate(_LOW7) for j in range(6)]
    tb = bytearray(8 * n)  # bytes 6 and 7 stay 0: a 6-byte varint is < 2**42
    for k in range(6):
        j, s = divmod(8 * k, 7)
        low = sept[j].translate(_SHR[s])
        tb[k::8] = low if j == 5 else _or_bytes(low, sept[j + 1].translate(_SHL[7 - s]))
    if not _LITTLE:
        va = array("d", bytes(vb))
        ta = array("q", bytes(tb))
        va.byteswap()
        ta.byteswap()
        values.extend(va)
        timestamps.extend(ta)
        return
    values.frombytes(vb)
    timestamps.frombytes(tb)


def sample_run(buf: bytes, pos: int, end: int, ts: array[int], vs: array[float]) -> int:
    """Take the run of usual-shape sample records starting at ``pos``; return where it ends.

    ``pos`` is returned unchanged when fewer than two records start there.
    Used by the v1 and v2 decoders (a v2 ``Sample`` has the same fields 1, 2).
    """
    n = (end - pos) // _REC
    if n >= 2 and (end - pos) % _REC == 0:
        run = buf[pos:end]
        if _is_run(run, n):  # the whole rest of the series: the common case
            _split_run(run, n, ts, vs)
            return end
    match = _d._SAMPLE18_RUN(buf, pos, end)
    if match is None:
        return pos
    stop = match.end()
    n = (stop - pos) // _REC
    _split_run(buf[pos:stop], n, ts, vs)
    return stop


def one_sample(buf: bytes, pos: int, stop: int, ts: array[int], vs: array[float]) -> None:
    """Append the Sample in ``buf[pos:stop]`` (any layout) to the columns."""
    n = stop - pos
    if n >= 11 and buf[pos] == 0x09 and buf[pos + 9] == 0x10:
        # 09 <double> 10 <varint>: the varint read inline
        p = pos + 10
        b = buf[p]
        t = b & 0x7F
        shift = 7
        p += 1
        while b >= 0x80 and shift < 70:
            b = buf[p]
            t |= (b & 0x7F) << shift
            shift += 7
            p += 1
        if p == stop and b < 0x80:
            if t > INT64_MAX:
                t = to_int64(t & ((1 << 64) - 1))
            vs.append(unpack_double(buf, pos + 1)[0])
            ts.append(t)
            return
    s: m.Sample = _d._generic_sample(buf, pos, stop)
    vs.append(s.value)
    ts.append(s.timestamp)


def _series(buf: bytes, pos: int, end: int) -> SeriesColumns:
    """Decode one v1 TimeSeries record into columns."""
    labels: tuple[m.Label, ...] | list[m.Label] = ()
    ts: array[int] = array("q")
    vs: array[float] = array("d")
    exemplars: list[m.Exemplar] = []
    histograms: list[m.Histogram] = []
    if pos < end and buf[pos] == 0x0A:  # the label block, as decoder._timeseries
        p = pos
        while p < end and buf[p] == 0x0A:
            n = buf[p + 1]
            if n < 0x80:
                p += 2 + n
            else:
                n, p = read_varint(buf, p + 1)
                p += n
        if p > end:
            raise DecodeError("TimeSeries.labels: length runs past the end")
        if p - pos <= _cap["blocks"]:
            key = buf[pos:p]
            block = _blocks.get(key)
            labels = block if block is not None else _d._label_block(buf, pos, p, key)
        else:
            labels = _d._label_block(buf, pos, p, None)
        pos = p
    while pos < end:
        t = buf[pos]
        if t == 0x12 and buf[pos + 1] == 0x10:
            if end - pos >= 2 * _REC:  # room for a run
                p = sample_run(buf, pos, end, ts, vs)
                if p != pos:
                    pos = p
                    continue
            if pos + _REC <= end and buf[pos + 2] == 0x09 and buf[pos + 11] == 0x10:
                # one record of the usual shape (a series' only sample, cold caches)
                v, a, b, c = _d._unpack_sample18(buf, pos)
                if (a & b & 0x8080) == 0x8080 and (c & 0x8080) == 0x0080:
                    t14 = _d._pair_table or _d._varint_pairs()
                    ts.append(t14[a] | t14[b] << 14 | t14[c] << 28)
                    vs.append(v)
                    pos += _REC
                    continue
        pos += 1
        if t == 0x12 or t == 0x0A or t == 0x1A or t == 0x22:
            n = buf[pos]
            if n < 0x80:
                pos += 1
            else:
                n, pos = read_varint(buf, pos)
            stop = pos + n
            if stop > end:
                raise DecodeError("TimeSeries: length runs past the end")
            if t == 0x12:
                one_sample(buf, pos, stop, ts, vs)
            elif t == 0x0A:  # a label after other fields: rare, kept in order
                labels = [*labels, _d._label(buf, pos, stop)]
            elif t == 0x1A:
                exemplars.append(_d._exemplar(buf, pos, stop))
            else:
                histograms.append(_d._histogram(buf, pos, stop))
            pos = stop
        else:
            if t >= 0x80:
                t, pos = read_varint(buf, pos - 1)
            pos = skip_unknown(buf, pos, end, t, "TimeSeries")
    if pos != end:
        raise DecodeError("TimeSeries: last field runs past the end of the message")
    return SeriesColumns(tuple(labels), ts, vs, histograms, exemplars)


_new = object.__new__
_Q1: array[int] = array("q", (0,))
_D1: array[float] = array("d", (0.0,))


def _write_request(
    buf: bytes,
    pos: int,
    end: int,
    unchecked: list[int] | None = None,
    metadata: list[m.MetricMetadata] | None = None,
) -> tuple[list[SeriesColumns], int]:
    """The series of a v1 WriteRequest as columns, and the largest series record's size."""
    out: list[SeriesColumns] = []
    append = out.append
    biggest = 0
    if unchecked is None:
        unchecked = []
    blocks_get = _blocks.get
    unpack18 = _d._unpack_sample18
    t14 = _d._pair_table or _d._varint_pairs()
    new_q = _Q1.__copy__  # copying a one-element array beats building one
    new_d = _D1.__copy__
    while pos < end:
        t = buf[pos]
        if t != 0x0A:
            if t >= 0x80:
                t, pos = read_varint(buf, pos)
            else:
                pos += 1
            if t == 0x1A:  # metadata
                n, pos = read_varint(buf, pos)
                stop = pos + n
                if stop > end:
                    raise DecodeError("WriteRequest.metadata: length runs past the end")
                md = _d._metadata(buf, pos, stop)
                if metadata is not None:
                    metadata.append(md)
                pos = stop
            else:
                pos = skip_unknown(buf, pos, end, t, "WriteRequest")
            continue
        n = buf[pos + 1]
        if n < 0x80:
            pos += 2
        elif buf[pos + 2] < 0x80:  # a 2-byte length
            n = (n & 0x7F) | (buf[pos + 2] << 7)
            pos += 3
        else:
            n, pos = read_varint(buf, pos + 1)
        stop = pos + n
        if stop > end:
            raise DecodeError("WriteRequest.timeseries: length runs past the end")
        if n > biggest:
            biggest = n
        # One sample, last, after a label block seen before (what Prometheus
        # sends every scrape): one dict lookup and two one-element arrays.
        s0 = stop - _REC
        if s0 > pos and buf[s0] == 0x12 and buf[s0 + 1] == 0x10 and buf[s0 + 2] == 0x09:
            block = blocks_get(buf[pos:s0])
            if block is not None and buf[s0 + 11] == 0x10:
                v, a, b, c = unpack18(buf, s0)
                if (a & b & 0x8080) == 0x8080 and (c & 0x8080) == 0x0080:
                    sc: SeriesColumns = _new(SeriesColumns)
                    sc.labels = block
                    sc.timestamps = tsa = new_q()
                    tsa[0] = t14[a] | t14[b] << 14 | t14[c] << 28
                    sc.values = va = new_d()
                    va[0] = v
                    sc.histograms = []
                    sc.exemplars = []
                    append(sc)
                    pos = stop
                    continue
        unchecked.append(len(out))
        append(_series(buf, pos, stop))
        pos = stop
    if pos != end:
        raise DecodeError("WriteRequest: last field runs past the end of the message")
    return out, biggest


# A zero value is left out by every proto3 encoder (Go's included): such a
# sample is ``12 07 10 <6-byte varint>``. The batch decoder gives it this
# usual-shape head (value +0.0), so one run check covers every record.
_ZERO_HEAD = b"\x12\x10\x09" + bytes(8) + b"\x10"


def decode_write_batch(data: bytes | bytearray | memoryview) -> tuple[ColumnBatch, int] | None:
    """A 1.0 body as one :class:`ColumnBatch` when it has the shape every
    scrape sends, else None (then decode it with :func:`decode_write_columns`).

    The shape: only series, each a label block already in the decoder's
    block cache (decoded, and found a valid label set, by an earlier request)
    followed by exactly one float sample of the usual shape (or a zero value,
    left out). Returns the batch and the size of the largest series record.
    Never raises: anything else, malformed bytes included, is None.

    Why a cache hit is enough: a protobuf record parses left to right, and
    the bytes before the sample are, byte for byte, a complete run of label
    records seen before; the sample records are then checked all at once
    (:func:`_is_run`).
    """
    buf = bytes(data) if not isinstance(data, bytes) else data
    blocks_get = _blocks.get
    labels: list[tuple[m.Label, ...]] = []
    add_labels = labels.append
    tails: list[bytes] = []
    add_tail = tails.append
    biggest = 0
    pos = 0
    end = len(buf)
    try:
        while pos < end:
            if buf[pos] != 0x0A:  # metadata or an unknown field: not this shape
                return None
            n = buf[pos + 1]
            if n < 0x80:
                pos += 2
            elif buf[pos + 2] < 0x80:  # a 2-byte length
                n = (n & 0x7F) | (buf[pos + 2] << 7)
                pos += 3
            else:
                return None
            stop = pos + n
            if stop > end or n < 20:
                return None
            if n > biggest:
                biggest = n
            if buf[stop - _REC] == 0x12 and buf[stop - 17] == 0x10:
                block = blocks_get(buf[pos : stop - _REC])
                add_tail(buf[stop - _REC : stop])
            elif buf[stop - 9] == 0x12 and buf[stop - 8] == 0x07 and buf[stop - 7] == 0x10:
                block = blocks_get(buf[pos : stop - 9])
                add_tail(_ZERO_HEAD + buf[stop - 6 : stop])
            else:
                return None
            if block is None:
                return None
            add_labels(block)
            pos = stop
    except IndexError:  # a length byte past the end
        return None
    n = len(labels)
    if n == 0:
        return None
    run = b"".join(tails)
    if not _is_run(run, n):
        return None
    ts: array[int] = array("q")
    vs: array[float] = array("d")
    _split_run(run, n, ts, vs)
    return ColumnBatch(labels, array("q", range(n + 1)), ts, vs), biggest


def _v1_columns(buf: bytes, pos: int, end: int) -> list[SeriesColumns]:
    return _write_request(buf, pos, end)[0]


COLUMN_DECODERS[m.WriteRequest] = _v1_columns


def decode_columns(
    raw: bytes | bytearray | memoryview, message: type[Any] = m.WriteRequest
) -> list[SeriesColumns]:
    """Decode a remote-write body (uncompressed) into one :class:`SeriesColumns` per series.

    ``message`` is :class:`~promwire.WriteRequest` (remote write 1.0) or
    ``promwire.v2.Request`` (2.0: labels resolved through the symbol table,
    exemplars and histograms converted to their 1.0 classes; start
    timestamps and per-series metadata are not part of this shape).
    Series come in request order, samples in the order sent; float bits are
    kept exactly (NaN payloads, stale markers, ``-0.0``). The errors are those
    of :func:`promwire.decode` (:class:`~promwire.errors.DecodeError` for
    anything malformed), and the decoder's label caches are used and filled
    alike (:func:`promwire.codec.decoder.set_cache_limits`). A 1.0 request's
    metadata is decoded (and checked) but not returned.
    """
    fn = COLUMN_DECODERS.get(message)
    if fn is None:
        raise TypeError(f"no columnar decoder for {message!r}")
    result: list[SeriesColumns] = _d._run(fn, message.__name__, raw)
    return result


def decode_write_columns(
    data: bytes | bytearray | memoryview,
    *,
    unchecked: list[int] | None = None,
    metadata: list[m.MetricMetadata] | None = None,
) -> tuple[list[SeriesColumns], int]:
    """:func:`decode_columns` of a 1.0 body plus the size of its largest series record.

    The receiver's variant, like :func:`promwire.codec.decoder.decode_write_request`:
    ``unchecked`` collects the indexes of series whose label sets still need
    a check, ``metadata`` (when a list) the request's metadata.
    """

    def run(buf: bytes, pos: int, end: int) -> tuple[list[SeriesColumns], int]:
        return _write_request(buf, pos, end, unchecked, metadata)

    result: tuple[list[SeriesColumns], int] = _d._run(run, "WriteRequest", data)
    return result


def _field1(
    buf: bytes, pos: int, end: int, parse: Callable[[bytes, int, int], T], message: str, field: str
) -> list[T]:
    """Every field-1 submessage of ``message`` in ``buf[pos:end]``, parsed by ``parse``."""
    out = []
    while pos < end:
        t = buf[pos]
        if t >= 0x80:
            t, pos = read_varint(buf, pos)
        else:
            pos += 1
        if t == 0x0A:
            n, pos = read_varint(buf, pos)
            stop = pos + n
            if stop > end:
                raise DecodeError(f"{message}.{field}: length runs past the end")
            out.append(parse(buf, pos, stop))
            pos = stop
        else:
            pos = skip_unknown(buf, pos, end, t, message)
    return out


def _query_result(buf: bytes, pos: int, end: int) -> list[SeriesColumns]:
    return _field1(buf, pos, end, _series, "QueryResult", "timeseries")


def _read_response(buf: bytes, pos: int, end: int) -> list[list[SeriesColumns]]:
    return _field1(buf, pos, end, _query_result, "ReadResponse", "results")


def decode_read_columns(data: bytes | bytearray | memoryview) -> list[list[SeriesColumns]]:
    """A remote-read ``ReadResponse`` (SAMPLES answer) as columns: one list per query result.

    The errors of ``decode(ReadResponse, data)``; series in columns as
    :func:`decode_columns` makes them (exemplars and histograms kept).
    """
    result: list[list[SeriesColumns]] = _d._run(_read_response, "ReadResponse", data)
    return result


# ----------------------------------------------------------------------- encoding


def _v1_encode(series: Sequence[SeriesColumns]) -> bytes:
    out = []
    for sc in series:
        body = encode_series_columns(sc)
        out.append(b"\x0a" + varint(len(body)) + body)
    return b"".join(out)


COLUMN_ENCODERS[m.WriteRequest] = _v1_encode


def encode_columns(series: Sequence[SeriesColumns], message: type[Any] = m.WriteRequest) -> bytes:
    """Encode series in columns as ``message`` (uncompressed protobuf).

    For :class:`~promwire.WriteRequest` the bytes equal ``encode`` of the
    same content (``TimeSeries(labels, samples, exemplars, histograms)``);
    ``promwire.v2.Request`` builds the symbol table in order of first use.
    Raises :class:`~promwire.errors.EncodeError` for what cannot be encoded
    (columns of different lengths, wrong types).
    """
    fn = COLUMN_ENCODERS.get(message)
    if fn is None:
        raise TypeError(f"no columnar encoder for {message!r}")
    try:
        return fn(series)
    except EncodeError:
        raise
    except (TypeError, OverflowError, AttributeError) as exc:
        raise EncodeError(f"{message.__name__}: cannot encode: {exc}") from None
