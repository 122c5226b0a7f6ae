"""SAMPLES remote-read answers written from columns, without a ``Sample`` object.

A storage with ``process_query_columns`` answers each query as a list of
:class:`~promwire.codec.columns.SeriesColumns` (labels, ``array('q')``
timestamps, ``array('d')`` values, histograms as objects);
:func:`encode_read_response_columns` writes the ``ReadResponse`` of those
answers, byte for byte what :func:`promwire.encode` writes for
``ReadResponse(results=[QueryResult(timeseries=[TimeSeries(labels, samples,
exemplars, histograms)])])`` of the same content.

A float sample is almost always one of two records:

* ``12 10 | 09 <8-byte double> | 10 <6-byte varint>`` (18 bytes): a value
  other than +0.0 (``-0.0`` and NaN included: they are not the proto3
  default) at a millisecond timestamp of today (``2**35 <= t < 2**42``);
* ``12 07 | 10 <6-byte varint>`` (9 bytes): the value +0.0, which protobuf
  leaves out.

A run of either shape is written with C-level operations only: the
records' constant bytes copied in by doubling memmoves, strided slice
assignment (``out[k::18] = ...``) puts one byte position of every record in
place, and ``bytes.translate`` tables turn the timestamps' little-endian
bytes into the six septets of their varints (a big-integer OR joins the two
bytes a septet straddles). A large run (from ``_IN_PLACE_BYTES``) is written
straight into the one ``bytearray`` of the whole answer
(:func:`read_response_buffer`): a 40,000-sample answer is then one 720 kB
buffer instead of five copies of it. The SAMPLES handler goes one step
further (:func:`compressed_read_response`): the answer is encoded into a
buffer the thread keeps and compressed into another, so that the large
buffers of an answer are not fresh memory every time (each page of fresh
memory is a page fault on first touch: ~600 of them, a few ms in a VM, for
40,000 samples). A thread that answered a read keeps up to 4 MiB + 5 MiB +
2 MiB for that (``KEEP_BYTES``, ``snappy.KEEP_BYTES``,
``_KEEP_COLUMN_BYTES``); larger answers take fresh buffers.
Anything else (a timestamp outside the 6-byte range, a series whose +0.0
values are scattered in many short runs) goes through the object encoder's
own per-sample loop, so the bytes cannot differ.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from typing import Any

from ..errors import EncodeError
from . import encoder as _e
from . import messages as m
from . import snappy
from .columns import SeriesColumns
from .kept import kept_buffer
from .wire import varint

__all__ = [
    "KEEP_BYTES",
    "append_sample_records",
    "compressed_read_response",
    "encode_read_response_columns",
    "encode_series_columns",
    "read_response_buffer",
    "result_points",
]

_LITTLE = sys.byteorder == "little"
Bytes = bytes | bytearray
_TS_LOW = 1 << 35  # timestamps in [2**35, 2**42) are 6-byte varints
_TS_HIGH = 1 << 42
_LONG = 18  # 12 10 09 <double> 10 <varint6>
_SHORT = 9  # 12 07 10 <varint6>
#: Fewer samples per run of +0.0 values than this on average: one by one is faster.
_MIN_RUN = 32

# Byte tables: (b >> s) & 0x7F, (b << s) & 0x7F, and b | 0x80.
_SHR7 = [bytes((b >> s) & 0x7F for b in range(256)) for s in range(8)]
_SHL7 = [bytes((b << s) & 0x7F for b in range(256)) for s in range(8)]
#: ``_SHR7`` with the continuation bit set: septets 0-4 of a 6-byte varint.
_SHR7_MORE = [bytes(((b >> s) & 0x7F) | 0x80 for b in range(256)) for s in range(8)]
_GE4 = bytes(b >= 4 for b in range(256))
_IS_ZERO = bytes(b == 0 for b in range(256))
_ZERO_DOUBLE = bytes(8)


def _or_bytes(a: Bytes, b: Bytes) -> bytes:
    """Byte-wise OR of two equal-length byte strings, in C (through big ints)."""
    n = len(a)
    return (int.from_bytes(a, "little") | int.from_bytes(b, "little")).to_bytes(n, "little")


#: The most a thread keeps of the buffer columns are copied into (bytes).
_KEEP_COLUMN_BYTES = 2 << 20


def _le_bytes(column: array[Any]) -> Bytes:
    """The column's items as little-endian bytes: the first
    ``len(column) * itemsize`` bytes of what is returned, which may be
    longer (slice it with explicit stops) and is overwritten by the next
    call on the thread (use it before that).

    On a little-endian machine the items are copied (one memcpy) into a
    buffer the thread keeps, up to ``_KEEP_COLUMN_BYTES``: a fresh
    ``tobytes()`` of a 40,000-sample column is 80 new pages, each a page
    fault on first touch."""
    if not _LITTLE:
        swapped = array(column.typecode, column)
        swapped.byteswap()
        return swapped.tobytes()
    size = len(column) * column.itemsize
    if size > _KEEP_COLUMN_BYTES:
        return column.tobytes()
    buf = kept_buffer("columns", size, _KEEP_COLUMN_BYTES)
    buf[:size] = memoryview(column).cast("B")  # same length: a memcpy, no resize
    return buf


def _septets(ts: array[int]) -> list[Bytes] | None:
    """Byte ``j`` of every timestamp's 6-byte varint, one bytes object per
    ``j``; ``None`` unless every timestamp is in ``[2**35, 2**42)``.

    Septet ``j`` holds bits ``7j .. 7j+6``: bits of byte ``k = 7j // 8`` from
    ``s = 7j % 8`` on, and when ``s > 1`` the low bits of byte ``k + 1``.
    The first five carry the continuation bit (set by the same table that
    shifts their low part).
    """
    n = len(ts)
    tb = _le_bytes(ts)
    end = 8 * n
    # below 2**42: bytes 6 and 7 zero, byte 5 below 4 (checked in C, no loop)
    if tb[6:end:8].count(0) != n or tb[7:end:8].count(0) != n:
        return None
    columns = [tb[k:end:8] for k in range(6)]
    if 1 in columns[5].translate(_GE4):
        return None
    out = []
    for j in range(6):
        k, s = divmod(7 * j, 8)
        septet = columns[k].translate(_SHR7[s] if j == 5 else _SHR7_MORE[s])
        if s > 1:  # the septet reaches into the next byte
            septet = _or_bytes(septet, columns[k + 1].translate(_SHL7[8 - s]))
        out.append(septet)
    if 0 in out[5]:  # a top septet of 0: below 2**35, a shorter varint
        return None
    return out


#: The constant bytes of an 18-byte record (``12 10 09 <double> 10 <varint6>``)
#: and of a 9-byte one (``12 07 10 <varint6>``), zeros where the data goes.
_LONG_TEMPLATE = b"\x12\x10\x09" + bytes(8) + b"\x10" + bytes(6)
_SHORT_TEMPLATE = b"\x12\x07\x10" + bytes(6)
#: Runs of records from this size on are written straight into the answer's
#: buffer (:class:`_Run`); smaller ones are ``bytes`` at once.
_IN_PLACE_BYTES = 32 * 1024


def _fill(buf: bytearray, at: int, template: bytes, count: int) -> None:
    """``count`` copies of ``template`` at ``buf[at:]``: the template once,
    then the filled part copied onto what follows it (memmoves of a
    memoryview, doubling each time, no temporary object)."""
    size = len(template) * count
    buf[at : at + len(template)] = template
    done = len(template)
    with memoryview(buf) as view:
        while done < size:
            k = min(done, size - done)
            view[at + done : at + done + k] = view[at : at + k]
            done += k


class _Run:
    """A run of sample records of one shape, kept as columns until
    :meth:`write` puts them into a buffer: 18-byte records when ``values``
    is given, 9-byte (+0.0) records when it is ``None``."""

    __slots__ = ("sept", "size", "values")

    def __init__(self, sept: list[Bytes], values: array[float] | None) -> None:
        self.sept = sept
        self.values = values
        self.size = len(sept[0]) * (_SHORT if values is None else _LONG)

    def write(self, buf: bytearray, at: int) -> None:
        """Write the records at ``buf[at : at + self.size]``: the constant
        bytes by :func:`_fill`, every other byte position of all records by
        one strided slice assignment."""
        end = at + self.size
        values = self.values
        if values is None:
            _fill(buf, at, _SHORT_TEMPLATE, len(self.sept[0]))
            for j, septet in enumerate(self.sept):
                buf[at + 3 + j : end : _SHORT] = septet
            return
        _fill(buf, at, _LONG_TEMPLATE, len(values))
        vb = _le_bytes(values)
        stop = 8 * len(values)
        for k in range(8):
            buf[at + 3 + k : end : _LONG] = vb[k:stop:8]
        for j, septet in enumerate(self.sept):
            buf[at + 12 + j : end : _LONG] = septet

    def to_bytes(self) -> bytes:
        buf = bytearray(self.size)
        self.write(buf, 0)
        return bytes(buf)


Part = bytes | _Run


def _run(sept: list[Bytes], values: array[float] | None) -> Part:
    """A run of records: in place later when large, bytes now when small."""
    run = _Run(sept, values)
    return run if run.size >= _IN_PLACE_BYTES else run.to_bytes()


def _one_by_one(ts: array[int], vs: array[float], out: list[Part]) -> None:
    """The object encoder's own per-sample loop (the reference for every shape)."""
    records: list[bytes] = []
    _e._sample_records([m.Sample(v, t) for v, t in zip(vs, ts, strict=True)], records)
    out.extend(records)


def _plus_zero_runs(vs: array[float]) -> list[tuple[int, int]] | None:
    """``[start, stop)`` of every run of +0.0 values (``-0.0`` is not one):
    ``[]`` when there is none, ``None`` when they are too scattered (fewer
    than ``_MIN_RUN`` samples a run).

    A +0.0 is eight zero bytes. Its top byte (sign and exponent) is zero only
    for +0.0 and positive values under 2**-1007, so the runs of zero top
    bytes are the candidates (one strided slice, a translate, ``find`` for
    each end of a run), each checked whole against zero bytes; only
    a run holding such tiny values is looked at value by value. No Python
    loop per value otherwise, and little work when there is no zero at all.
    """
    n = len(vs)
    limit = n // _MIN_RUN
    vb = _le_bytes(vs)
    top_is_zero = vb[7 : 8 * n : 8].translate(_IS_ZERO)
    runs: list[tuple[int, int]] = []
    start = top_is_zero.find(1)  # find() of a byte is memchr: runs are found in C
    while start >= 0:
        stop = top_is_zero.find(0, start)
        if stop < 0:
            stop = n
        if vb.startswith(bytes(8 * (stop - start)), 8 * start):  # a memcmp with zeros
            runs.append((start, stop))
        else:
            _exact_zero_runs(vb, start, stop, runs)
        if len(runs) > limit:
            return None
        start = top_is_zero.find(1, stop)
    return runs


def _exact_zero_runs(
    vb: bytes | bytearray, start: int, stop: int, runs: list[tuple[int, int]]
) -> None:
    """Append the runs of +0.0 among values ``start .. stop - 1`` (eight zero
    bytes each), one value at a time."""
    for i in range(start, stop):
        if vb[8 * i : 8 * i + 8] != _ZERO_DOUBLE:
            continue
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))


def _sample_parts(ts: array[int], vs: array[float], out: list[Part]) -> None:
    """Append the ``12 <len> <Sample>`` records of the samples to ``out``, as
    bytes or as :class:`_Run` s (see :func:`append_sample_records`)."""
    n = len(ts)
    if n == 0:
        return
    if n == 1 and _TS_LOW <= ts[0] < _TS_HIGH and vs[0]:
        # one sample (a scrape): the encoder's 18-byte packer, no Sample object
        if not _e._pair_more:
            _e._build_pair_tables()
        t = ts[0]
        more = _e._pair_more
        out.append(
            _e._PACK_SAMPLE18(
                0x12,
                0x10,
                0x09,
                vs[0],
                0x10,
                more[t & 0x3FFF],
                more[(t >> 14) & 0x3FFF],
                _e._pair_last[t >> 28],
            )
        )
        return
    sept = _septets(ts) if n > 1 else None
    if sept is None:  # one sample, or a timestamp outside the 6-byte varints
        _one_by_one(ts, vs, out)
        return
    runs = _plus_zero_runs(vs)
    if runs is None:
        _one_by_one(ts, vs, out)
        return
    if not runs:  # no +0.0: one run of 18-byte records
        out.append(_run(sept, vs))
        return
    pos = 0
    for start, stop in runs:
        if pos < start:
            out.append(_run([c[pos:start] for c in sept], vs[pos:start]))
        out.append(_run([c[start:stop] for c in sept], None))
        pos = stop
    if pos < n:
        out.append(_run([c[pos:] for c in sept], vs[pos:]))


def append_sample_records(ts: array[int], vs: array[float], out: list[bytes]) -> None:
    """Append the ``12 <len> <Sample>`` record of every sample to ``out``: the
    bytes :func:`promwire.encode` writes for the same samples (remote write
    2.0's ``Sample`` has the same fields 1 and 2)."""
    parts: list[Part] = []
    _sample_parts(ts, vs, parts)
    out.extend(p if isinstance(p, bytes) else p.to_bytes() for p in parts)


def _columns(sc: SeriesColumns) -> tuple[array[int], array[float]]:
    ts: Any = sc.timestamps
    vs: Any = sc.values
    if not (isinstance(ts, array) and ts.typecode == "q"):
        ts = array("q", ts)
    if not (isinstance(vs, array) and vs.typecode == "d"):
        vs = array("d", vs)
    if len(ts) != len(vs):
        raise EncodeError(f"timestamps ({len(ts)}) and values ({len(vs)}) differ in length")
    return ts, vs


def _series_parts(sc: SeriesColumns, out: list[Part]) -> int:
    """Append the parts of one series' ``TimeSeries`` body (labels, samples,
    exemplars, histograms) to ``out``; return their size in bytes."""
    if type(sc) is not SeriesColumns:
        raise EncodeError(f"expected SeriesColumns, got {type(sc).__name__}")
    first = len(out)
    out.extend(_e._label_record(label) for label in sc.labels)
    ts, vs = _columns(sc)
    _sample_parts(ts, vs, out)
    for e in sc.exemplars:
        body = _e._exemplar(e)
        out.append(b"\x1a" + varint(len(body)) + body)
    for h in sc.histograms:
        if type(h) is not m.Histogram:
            raise EncodeError(f"histograms: cannot encode {type(h).__name__} as Histogram")
        body = _e._histogram(h)
        out.append(b"\x22" + varint(len(body)) + body)
    return sum(len(p) if isinstance(p, bytes) else p.size for p in out[first:])


def _assemble(parts: list[Part], size: int, into: bytearray | None = None) -> bytes | bytearray:
    """The parts one after the other: ``bytes`` joined when all are bytes,
    else a ``bytearray`` of ``size`` (or the first ``size`` bytes of
    ``into``) with each run written in place (so a large answer is one
    buffer, not a chain of copies of it)."""
    if all(isinstance(p, bytes) for p in parts):
        return b"".join(parts)  # type: ignore[arg-type]
    buf = bytearray(size) if into is None else into
    pos = 0
    pending: list[bytes] = []
    for part in parts:
        if isinstance(part, bytes):
            pending.append(part)
            continue
        if pending:
            chunk = b"".join(pending)
            buf[pos : pos + len(chunk)] = chunk
            pos += len(chunk)
            pending = []
        part.write(buf, pos)
        pos += part.size
    if pending:
        chunk = b"".join(pending)
        buf[pos : pos + len(chunk)] = chunk
        pos += len(chunk)
    if pos != size:  # pragma: no cover - the sizes are computed from the same parts
        raise EncodeError(f"ReadResponse: wrote {pos} bytes, planned {size}")
    return buf


def encode_series_columns(sc: SeriesColumns) -> bytes:
    """The ``TimeSeries`` body of one series in columns (labels, samples,
    exemplars, histograms), as ``encode(TimeSeries(...))`` writes it."""
    parts: list[Part] = []
    size = _series_parts(sc, parts)
    return bytes(_assemble(parts, size))


def _plan(results: Sequence[Sequence[SeriesColumns]]) -> tuple[list[Part], int]:
    """The parts of the whole ``ReadResponse`` (length prefixes included) and its size."""
    try:
        plan: list[Part] = []
        total = 0
        for series in results:
            parts: list[Part] = []
            result = 0
            for sc in series:
                head_at = len(parts)
                parts.append(b"")
                size = _series_parts(sc, parts)
                head = b"\x0a" + varint(size)
                parts[head_at] = head
                result += len(head) + size
            head = b"\x0a" + varint(result)
            plan.append(head)
            plan.extend(parts)
            total += len(head) + result
        return plan, total
    except EncodeError:
        raise
    except (TypeError, OverflowError, AttributeError, ValueError) as exc:
        raise EncodeError(f"ReadResponse: cannot encode: {exc}") from None


def read_response_buffer(results: Sequence[Sequence[SeriesColumns]]) -> bytes | bytearray:
    """:func:`encode_read_response_columns` as one buffer, not copied into
    ``bytes``: a ``bytearray`` when it holds long runs of samples (written
    in place), else ``bytes``."""
    plan, total = _plan(results)
    return _assemble(plan, total)


#: The most a thread keeps of the buffer it encodes SAMPLES answers into (bytes).
KEEP_BYTES = 4 << 20


def compressed_read_response(results: Sequence[Sequence[SeriesColumns]]) -> bytes:
    """``snappy.compress(encode_read_response_columns(results))``: the body of
    a SAMPLES answer, byte for byte, with less fresh memory.

    An answer of long runs of samples up to :data:`KEEP_BYTES` is encoded
    into a buffer the thread keeps from one answer to the next, and
    compressed from there by :func:`~promwire.codec.snappy.compress_kept`
    (whose output buffer is kept the same way): a large temporary buffer
    is otherwise memory the allocator hands back to the kernel and takes
    again, every page of it a page fault on first touch (about 600 of them,
    a few ms in a VM, for a 40,000-sample answer). At most two such buffers
    of :data:`KEEP_BYTES` stay with each thread that answered a read.
    """
    plan, total = _plan(results)
    if total > KEEP_BYTES or all(isinstance(p, bytes) for p in plan):
        return snappy.compress_kept(_assemble(plan, total))
    buf = kept_buffer("read_response", total, KEEP_BYTES)
    _assemble(plan, total, into=buf)
    with memoryview(buf) as view:
        return snappy.compress_kept(view[:total])


def encode_read_response_columns(results: Sequence[Sequence[SeriesColumns]]) -> bytes:
    """The uncompressed ``ReadResponse`` of one list of series per query, in order.

    Series are written in the order given (a storage sorts them by label
    set, as Prometheus does). Raises :class:`~promwire.errors.EncodeError`
    for what cannot be encoded (columns of different lengths, a timestamp
    outside int64, wrong types).
    """
    plan, total = _plan(results)
    return bytes(_assemble(plan, total))


def result_points(series: Sequence[SeriesColumns]) -> int:
    """Samples + histograms of one query's answer in columns (what
    ``max_read_samples`` counts)."""
    return sum(len(sc.timestamps) + len(sc.histograms) for sc in series)
