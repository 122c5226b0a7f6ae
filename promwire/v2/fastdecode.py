"""A hand-written decoder for the v2 ``TimeSeries``, the bulk of every v2 request.

It is registered in :mod:`promwire.decode` in place of the table-driven one
and must produce exactly what that one produces (the tests hold it to that on
random and damaged input); anything unusual is handed to the generic
decoders of the sub-messages. What it speeds up:

* ``labels_refs``: when every byte of the packed record is below 0x80 (every
  ref < 128, the common case), each byte *is* one varint, so the record's
  bytes are the list of refs; ``bytes.isascii()`` checks that at C speed.
* ``samples``: the usual ``09 <double> 10 <varint> [18 <varint>]`` layout is
  read inline instead of through the field table.
"""

from __future__ import annotations

from ..codec.decoder import _DECODERS, _make_generic
from ..codec.wire import INT64_MAX, MASK32, read_varint, skip_unknown, unpack_double
from ..errors import DecodeError
from . import fields as _schema  # noqa: F401  (field tables first: the fallbacks need them)
from . import messages as v2

__all__ = ["decode_timeseries"]

_generic_sample = _make_generic(v2.Sample)
_generic_histogram = _make_generic(v2.Histogram)
_generic_exemplar = _make_generic(v2.Exemplar)
_generic_metadata = _make_generic(v2.Metadata)
Sample = v2.Sample
_TWO64 = 1 << 64


def _packed_refs(buf: bytes, pos: int, stop: int, out: list[int]) -> None:
    """Append the packed uint32 varints of ``buf[pos:stop]`` to ``out``."""
    seg = buf[pos:stop]
    if seg.isascii():  # every byte < 0x80: one byte per ref
        out.extend(seg)
        return
    while pos < stop:
        b = buf[pos]
        if b < 0x80:
            out.append(b)
            pos += 1
        else:
            v, pos = read_varint(buf, pos)
            out.append(v & MASK32)
    if pos != stop:
        raise DecodeError("TimeSeries.labels_refs: packed element runs past its record")


def _sample(buf: bytes, pos: int, stop: int) -> v2.Sample:
    """Decode a Sample whose fields are the plain 09 / 10 / 18 ones, else use the generic one."""
    start = pos
    value = 0.0
    ts = 0
    st = 0
    while pos < stop:
        t = buf[pos]
        if t == 0x09 and pos + 9 <= stop:
            value = unpack_double(buf, pos + 1)[0]
            pos += 9
        elif t == 0x10 or t == 0x18:
            v, pos = read_varint(buf, pos + 1)
            if pos > stop:
                break
            if v > INT64_MAX:
                v -= _TWO64
            if t == 0x10:
                ts = v
            else:
                st = v
        else:
            break
    else:
        return Sample(value, ts, st)
    generic: v2.Sample = _generic_sample(buf, start, stop)  # unusual layout or damage
    return generic


def decode_timeseries(buf: bytes, pos: int, end: int) -> v2.TimeSeries:
    """Decode one v2 ``TimeSeries`` occupying ``buf[pos:end]``."""
    refs: list[int] = []
    samples: list[v2.Sample] = []
    histograms: list[v2.Histogram] = []
    exemplars: list[v2.Exemplar] = []
    md_ranges: list[tuple[int, int]] = []
    created = 0
    while pos < end:
        t = buf[pos]
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
                samples.append(_sample(buf, pos, stop))
            elif t == 0x0A:
                _packed_refs(buf, pos, stop, refs)
            elif t == 0x1A:
                histograms.append(_generic_histogram(buf, pos, stop))
            elif t == 0x22:
                exemplars.append(_generic_exemplar(buf, pos, stop))
            else:  # 0x2A metadata
                md_ranges.append((pos, stop))
            pos = stop
        elif t == 0x08:  # labels_refs, unpacked
            v, pos = read_varint(buf, pos)
            refs.append(v & MASK32)
        elif t == 0x30:  # 6 created_timestamp (rc.3), int64
            created, pos = read_varint(buf, pos)
            if created > INT64_MAX:
                created -= _TWO64
        else:
            if t >= 0x80:
                t, pos = read_varint(buf, pos - 1)
            pos = skip_unknown(buf, pos, end, t, "TimeSeries")
    if pos != end:
        raise DecodeError("TimeSeries: last field runs past the end of the message")
    metadata = None
    if md_ranges:
        if len(md_ranges) == 1:
            metadata = _generic_metadata(buf, md_ranges[0][0], md_ranges[0][1])
        else:
            # Repeated singular message: protobuf merges the occurrences, which
            # is what parsing their concatenation gives.
            joined = b"".join(buf[a:b] for a, b in md_ranges)
            metadata = _generic_metadata(joined, 0, len(joined))
    return v2.TimeSeries(refs, samples, histograms, exemplars, metadata, created)


_DECODERS[v2.TimeSeries] = decode_timeseries
