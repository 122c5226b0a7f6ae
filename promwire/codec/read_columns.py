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

A run of either shape is written with C-level operations only: one
``bytearray`` of the run, strided slice assignment (``out[k::18] = ...``)
puts one byte position of every record in place, and ``bytes.translate``
tables turn the timestamps' little-endian bytes into the six septets of
their varints (a big-integer OR joins the two bytes a septet straddles).
Anything else (a timestamp outside the 6-byte range, a series whose +0.0
values are scattered in many short runs) goes through the object encoder's
own per-sample loop, so the bytes cannot differ.
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Sequence
from math import copysign
from operator import not_
from typing import Any

from ..errors import EncodeError
from . import encoder as _e
from . import messages as m
from .columns import SeriesColumns
from .wire import varint

__all__ = [
    "append_sample_records",
    "encode_read_response_columns",
    "encode_series_columns",
    "result_points",
]

_LITTLE = sys.byteorder == "little"
_TS_LOW = 1 << 35  # timestamps in [2**35, 2**42) are 6-byte varints
_TS_HIGH = 1 << 42
_LONG = 18  # 12 10 09 <double> 10 <varint6>
_SHORT = 9  # 12 07 10 <varint6>
#: Fewer samples per run of +0.0 values than this on average: one by one is faster.
_MIN_RUN = 32

# Byte tables: (b >> s) & 0x7F, (b << s) & 0x7F, and b | 0x80.
_SHR7 = [bytes((b >> s) & 0x7F for b in range(256)) for s in range(8)]
_SHL7 = [bytes((b << s) & 0x7F for b in range(256)) for s in range(8)]
_SET80 = bytes(b | 0x80 for b in range(256))
_ONES = re.compile(b"\x01+")
_GE4 = bytes(b >= 4 for b in range(256))
_NO_HIGH_EXPONENT = bytes(b & 0x7F == 0 for b in range(256))


def _or_bytes(a: bytes, b: bytes) -> bytes:
    """Byte-wise OR of two equal-length byte strings, in C (through big ints)."""
    n = len(a)
    return (int.from_bytes(a, "little") | int.from_bytes(b, "little")).to_bytes(n, "little")


def _le_bytes(column: array[Any]) -> bytes:
    """The column's items as little-endian bytes."""
    if _LITTLE:
        return column.tobytes()
    swapped = array(column.typecode, column)
    swapped.byteswap()
    return swapped.tobytes()


def _septets(ts: array[int]) -> list[bytes] | None:
    """Byte ``j`` of every timestamp's 6-byte varint, one bytes object per
    ``j``; ``None`` unless every timestamp is in ``[2**35, 2**42)``.

    Septet ``j`` holds bits ``7j .. 7j+6``: bits of byte ``k = 7j // 8`` from
    ``s = 7j % 8`` on, and when ``s > 1`` the low bits of byte ``k + 1``.
    The first five carry the continuation bit.
    """
    n = len(ts)
    tb = _le_bytes(ts)
    columns = [tb[k::8] for k in range(8)]
    # below 2**42: bytes 6 and 7 zero, byte 5 below 4 (checked in C, no loop)
    if columns[6].count(0) != n or columns[7].count(0) != n or 1 in columns[5].translate(_GE4):
        return None
    out = []
    for j in range(6):
        k, s = divmod(7 * j, 8)
        septet = columns[k].translate(_SHR7[s])
        if s > 1:  # the septet reaches into the next byte
            septet = _or_bytes(septet, columns[k + 1].translate(_SHL7[8 - s]))
        out.append(septet.translate(_SET80) if j < 5 else septet)
    if 0 in out[5]:  # a top septet of 0: below 2**35, a shorter varint
        return None
    return out


def _long_records(sept: list[bytes], vs: array[float]) -> bytes:
    """The 18-byte records of samples whose timestamps' septets are ``sept``."""
    n = len(vs)
    out = bytearray(_LONG * n)
    out[0::_LONG] = b"\x12" * n
    out[1::_LONG] = b"\x10" * n
    out[2::_LONG] = b"\x09" * n
    vb = _le_bytes(vs)
    for k in range(8):
        out[3 + k :: _LONG] = vb[k::8]
    out[11::_LONG] = b"\x10" * n
    for j, septet in enumerate(sept):
        out[12 + j :: _LONG] = septet
    return bytes(out)


def _short_records(sept: list[bytes]) -> bytes:
    """The 9-byte records of +0.0 samples whose timestamps' septets are ``sept``."""
    n = len(sept[0])
    out = bytearray(_SHORT * n)
    out[0::_SHORT] = b"\x12" * n
    out[1::_SHORT] = b"\x07" * n
    out[2::_SHORT] = b"\x10" * n
    for j, septet in enumerate(sept):
        out[3 + j :: _SHORT] = septet
    return bytes(out)


def _may_hold_zero(vs: array[float]) -> bool:
    """False when no value can be a zero: every exponent's top seven bits
    (byte 7 without the sign) are non-zero, as for every double of
    magnitude from 2**-1007 on. Strided slice and translate: no loop in Python."""
    return 1 in _le_bytes(vs)[7::8].translate(_NO_HIGH_EXPONENT)


def _one_by_one(ts: array[int], vs: array[float], out: list[bytes]) -> None:
    """The object encoder's own per-sample loop (the reference for every shape)."""
    _e._sample_records([m.Sample(v, t) for v, t in zip(vs, ts, strict=True)], out)


def _plus_zero_runs(vs: array[float]) -> list[tuple[int, int]] | None:
    """``[start, stop)`` of every run of +0.0 values (``-0.0`` is not one), or
    ``None`` when they are too scattered (fewer than ``_MIN_RUN`` samples a run)."""
    limit = len(vs) // _MIN_RUN
    runs: list[tuple[int, int]] = []
    # one byte per value, 1 for a zero of either sign (not_ is true for those
    # only), and the runs of ones found by the regex engine: no Python loop per value
    mask = bytes(map(not_, vs))
    for match in _ONES.finditer(mask):
        start, stop = match.span()
        if _le_bytes(vs[start:stop])[7::8].strip(b"\x00"):  # a sign bit set: a -0.0 among them
            for i in range(start, stop):
                if copysign(1.0, vs[i]) < 0:
                    continue
                if runs and runs[-1][1] == i:
                    runs[-1] = (runs[-1][0], i + 1)
                else:
                    runs.append((i, i + 1))
        else:
            runs.append((start, stop))
        if len(runs) > limit:
            return None
    return runs


def append_sample_records(ts: array[int], vs: array[float], out: list[bytes]) -> None:
    """Append the ``12 <len> <Sample>`` record of every sample to ``out``: the
    bytes :func:`promwire.encode` writes for the same samples (remote write
    2.0's ``Sample`` has the same fields 1 and 2)."""
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
    if not (_may_hold_zero(vs) and vs.count(0.0)):  # no zero: one run of 18-byte records
        out.append(_long_records(sept, vs))
        return
    runs = _plus_zero_runs(vs)
    if runs is None:
        _one_by_one(ts, vs, out)
        return
    pos = 0
    for start, stop in runs:
        if pos < start:
            out.append(_long_records([c[pos:start] for c in sept], vs[pos:start]))
        out.append(_short_records([c[start:stop] for c in sept]))
        pos = stop
    if pos < n:
        out.append(_long_records([c[pos:] for c in sept], vs[pos:]))


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


def encode_series_columns(sc: SeriesColumns) -> bytes:
    """The ``TimeSeries`` body of one series in columns (labels, samples,
    exemplars, histograms), as ``encode(TimeSeries(...))`` writes it."""
    if type(sc) is not SeriesColumns:
        raise EncodeError(f"expected SeriesColumns, got {type(sc).__name__}")
    out = [_e._label_record(label) for label in sc.labels]
    ts, vs = _columns(sc)
    append_sample_records(ts, vs, out)
    for e in sc.exemplars:
        body = _e._exemplar(e)
        out.append(b"\x1a" + varint(len(body)) + body)
    for h in sc.histograms:
        if type(h) is not m.Histogram:
            raise EncodeError(f"histograms: cannot encode {type(h).__name__} as Histogram")
        body = _e._histogram(h)
        out.append(b"\x22" + varint(len(body)) + body)
    return b"".join(out)


def encode_read_response_columns(results: Sequence[Sequence[SeriesColumns]]) -> bytes:
    """The uncompressed ``ReadResponse`` of one list of series per query, in order.

    Series are written in the order given (a storage sorts them by label
    set, as Prometheus does). Raises :class:`~promwire.errors.EncodeError`
    for what cannot be encoded (columns of different lengths, a timestamp
    outside int64, wrong types).
    """
    try:
        out = []
        for series in results:
            parts = []
            for sc in series:
                body = encode_series_columns(sc)
                parts.append(b"\x0a" + varint(len(body)))
                parts.append(body)
            result = b"".join(parts)
            out.append(b"\x0a" + varint(len(result)) + result)
        return b"".join(out)
    except EncodeError:
        raise
    except (TypeError, OverflowError, AttributeError, ValueError) as exc:
        raise EncodeError(f"ReadResponse: cannot encode: {exc}") from None


def result_points(series: Sequence[SeriesColumns]) -> int:
    """Samples + histograms of one query's answer in columns (what
    ``max_read_samples`` counts)."""
    return sum(len(sc.timestamps) + len(sc.histograms) for sc in series)
