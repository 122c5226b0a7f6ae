"""XOR ("Gorilla") float chunks, bit-exact with Prometheus' TSDB.

A chunk of ``Chunk.type == ChunkEncoding.XOR`` holds up to 65535 float samples::

    bytes 0-1   sample count, uint16 big-endian
    sample 0    zigzag varint timestamp, 64 raw value bits          (byte aligned)
    sample 1    uvarint timestamp delta, value block                (delta byte aligned)
    sample n>=2 delta-of-delta block, value block
    zero padding to the next byte, plus one empty byte when the last write
    was whole bytes ending on a byte boundary (Go's bstream.writeByte
    always appends the next byte): always after a lone sample 0, and after
    a last value block of 8, 16, ... significant bits that ends aligned

Delta-of-delta blocks (``dod = delta_n - delta_(n-1)``)::

    0                  dod == 0
    10   + 14 bits     -8191 ... 8192        (asymmetric: payload p > 2**(n-1) means p - 2**n)
    110  + 17 bits     -65535 ... 65536
    1110 + 20 bits     -524287 ... 524288
    1111 + 64 bits     anything (two's complement)

Value blocks, with ``x = bits(v_n) XOR bits(v_(n-1))`` and a window of
(leading, trailing) zero counts::

    0                                  x == 0
    10 + (64 - L - T) bits             x fits the current window
    11 + L:5 + M:6 + M bits            new window; L capped at 31, M == 64 written as 0

Values are handled as raw 64-bit patterns from end to end: no float arithmetic
ever touches them, so the stale marker (``0x7ff0000000000002``) and NaN
payloads survive. Floats are converted to and from bits in bulk with
:mod:`struct`, which copies the 8 bytes verbatim.

Timestamps follow Go's int64/uint64 wrap-around arithmetic: this module
computes with unbounded Python integers and reduces to int64 only where the
result is observable, which gives the same bits (arithmetic mod 2**64 commutes
with the reduction).

Speed comes from the shape of real chunks. Prometheus scrapes at a fixed
interval (and snaps timestamps jittering by <= 2 ms to it, prometheus#7976), so
nearly every delta-of-delta is the single bit "0", and many series are
constant ("00" per sample) or integer counters that change now and then.
Both directions have a fixed-interval path that does Python work only per
*changed value*: the decoder skips runs of "00" with one ``bit_length`` and
builds the timestamps from a ``range`` (or, for columns, with two big-int
multiplications, :func:`_progression`); the encoder finds the changes in C
(``compress``/``map``) and writes a run of "00" as one shift. Chunks with
jittered timestamps take the general per-sample loops.

Rates (CPython 3.11, samples per CPU second, 120-sample chunks, measured on
a loaded 2-core machine; ``python3 benchmarks/bench_xor.py --baseline main``
re-measures them against another revision): decode ~17 M/s for constant
series, ~3.6 M/s for fixed-interval counters, ~2.3 M/s for fixed-interval
gauges, 1.1-1.5 M/s with millisecond jitter; the compaction encoder about
11, 3.8, 2.4 and 1.4-1.8 M/s.

Public API: :func:`encode_xor`, :func:`decode_xor`, :func:`decode_xor_bits`,
:func:`iter_xor`, :func:`decode_chunk`, :func:`cut_chunks`. Errors are
:class:`~promwire.errors.DecodeError` (corrupt or truncated chunk),
:class:`~promwire.errors.UnsupportedChunkEncoding` (not an XOR chunk) and
:class:`~promwire.errors.EncodeError` (values that cannot be encoded).
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator, Sequence
from itertools import chain, compress
from operator import ne

from ..codec import messages as m
from ..codec.wire import MASK64, read_varint, varint, zigzag_decode, zigzag_encode
from ..errors import DecodeError, EncodeError, UnsupportedChunkEncoding

__all__ = [
    "MAX_BYTES_PER_CHUNK",
    "MAX_SAMPLES_PER_CHUNK",
    "SAMPLES_PER_CHUNK",
    "UnsupportedChunk",
    "bits_to_floats",
    "cut_chunks",
    "decode_chunk",
    "decode_xor",
    "decode_xor_bits",
    "decode_xor_columns",
    "encode_xor",
    "encode_xor_bits",
    "floats_to_bits",
    "iter_xor",
]

#: Samples per chunk Prometheus' head aims for.
SAMPLES_PER_CHUNK = 120
#: XOR chunk size (bytes) recent Prometheus heads cut at; :func:`cut_chunks` stays below.
MAX_BYTES_PER_CHUNK = 1024
#: The count header is a uint16.
MAX_SAMPLES_PER_CHUNK = 0xFFFF

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_M128 = (1 << 128) - 1
_BIG_ENDIAN = sys.byteorder == "big"
#: A 128-bit peek below this starts with "00".
_TOP2 = 1 << 126
#: Upper bound of the bits one sample can take (sample 1: 10-byte uvarint + 77-bit value block).
_MAX_SAMPLE_BITS = 80 + 77


class UnsupportedChunk(UnsupportedChunkEncoding):
    """A chunk whose encoding promwire does not decode; ``chunk`` keeps its raw bytes."""

    def __init__(self, chunk: m.Chunk) -> None:
        encoding = int(chunk.type)
        try:
            name = m.ChunkEncoding(encoding).name
        except ValueError:
            name = "unknown"
        super().__init__(f"chunk encoding {encoding} ({name}) is not supported, only XOR (1)")
        self.chunk = chunk
        self.encoding = encoding


# ----------------------------------------------------------------------------- value bits


def floats_to_bits(values: Sequence[float]) -> list[int]:
    """IEEE-754 bit patterns (uint64) of ``values``; NaN payloads are kept."""
    n = len(values)
    try:
        return list(struct.unpack(f"<{n}Q", struct.pack(f"<{n}d", *values)))
    except struct.error as exc:
        raise EncodeError(f"values must be floats: {exc}") from None


def bits_to_floats(bits: Sequence[int]) -> list[float]:
    """Floats carrying exactly the uint64 patterns ``bits`` (inverse of :func:`floats_to_bits`)."""
    n = len(bits)
    return list(struct.unpack(f"<{n}d", struct.pack(f"<{n}Q", *bits)))


# ----------------------------------------------------------------------------- decoding


def _wrap64(t: int) -> int:
    """Reduce an integer to int64 the way Go's wrapping arithmetic would."""
    return ((t - _INT64_MIN) & MASK64) + _INT64_MIN


def _decode(
    data: bytes | bytearray | memoryview,
) -> tuple[list[int] | None, int, int, list[int]]:
    """The decoding core: ``(ts, t0, delta, value_bits)``.

    ``ts`` is None when every delta-of-delta is 0 (a fixed scrape interval,
    the usual case): the timestamps are then ``t0, t0 + delta, t0 + 2*delta,
    ...`` and :func:`_fixed_interval` builds them with ``range`` in C instead of
    one Python addition per sample. Otherwise ``ts`` lists them all. Either
    way they are not yet reduced to int64 (see :func:`_wrap64`).
    """
    data = bytes(data)
    size = len(data)
    if size < 2:
        raise DecodeError("XOR chunk shorter than its 2-byte header")
    count = (data[0] << 8) | data[1]
    if count == 0:
        return None, 0, 0, []
    if size < 3:
        raise DecodeError("truncated XOR chunk")

    # Samples 0 and 1 are byte aligned: read them with the protobuf varint reader.
    u, pos = read_varint(data, 2)
    t0 = zigzag_decode(u)
    if pos + 8 > size:
        raise DecodeError("truncated XOR chunk (first value)")
    v = int.from_bytes(data[pos : pos + 8], "big")
    pos += 8
    vs = [v]
    if count == 1:
        return None, t0, 0, vs
    delta, pos = read_varint(data, pos)
    if (size - pos) * 8 >= 2 * count - 3 and not int.from_bytes(data[pos:], "big"):
        # All zero bits and enough of them: a constant series at a fixed
        # interval (sample 1 is "0", every later one "00").
        vs *= count
        return None, t0, delta, vs

    # Sample 1 has no delta-of-delta block. Putting a virtual "0" bit (dod = 0)
    # in front of its value block makes it decode like every later sample:
    # with ``delta`` already set, "dod = 0" adds exactly that first delta.
    # The stream gets one zero byte in front and reading starts at its last
    # bit (p = 7): that bit is the virtual "0".
    nbytes = size - pos + 1
    real_bits = nbytes * 8

    # Bit reader. The stream is cut into 256-bit words that start every 128
    # bits (consecutive words overlap by 128 bits), so the 128 bits starting
    # at any bit p sit inside words[p >> 7] and one shift + mask of a small
    # int reads them: no big-int shifting of the whole stream, no per-read
    # bounds checks. Zero padding at the end lets the reader run past the
    # data; the truncation check happens once, after the loops.
    stream = b"\x00" + data[pos:] + bytes(48)
    from_bytes = int.from_bytes
    words = [from_bytes(stream[i : i + 32], "big") for i in range(0, nbytes + 16, 16)]
    m128 = _M128
    vs_append = vs.append

    # Window state of the value encoding: L leading zeros, T trailing zeros and
    # the number of significant bits M = 64 - L - T. Decoders start with L=T=0
    # and accept whatever valid choice the encoder made.
    lead = 0
    trail = 0
    sig = 64
    sig_mask = MASK64
    p = 7  # bit position in the stream
    left = count - 1  # samples still to decode
    try:
        # Fixed-interval loop: while every dod is "0", a sample is "0" + a
        # value block and its timestamp needs no work at all (see ``ts`` above).
        # The first 3 bits pick the case: "00" repeat, "010" + M bits in the
        # window, "011" new window; "1" (a dod block) hands over to the
        # general loop below.
        while left:
            w = (words[p >> 7] >> (128 - (p & 127))) & m128
            if w < _TOP2:
                # "00": dod == 0 and the value repeats. Count the run of zero
                # bits in one go; every pair of zeros is one whole sample.
                run = (128 - w.bit_length()) >> 1
                if run >= left:
                    vs += [v] * left
                    p += left << 1
                    left = 0
                    break
                vs += [v] * run
                left -= run
                p += run << 1
                if run > 25:
                    continue
                # The sample after the run (not "00") starts in this peek with
                # >= 78 bits to go, enough for any value block: no new peek.
                w = (w << (run << 1)) & m128
            top = w >> 125
            if top == 0b010:
                v ^= ((w >> (125 - sig)) & sig_mask) << trail
                p += 3 + sig
            elif top == 0b011:
                lead = (w >> 120) & 0x1F
                sig = ((w >> 114) & 0x3F) or 64
                trail = 64 - lead - sig
                if trail < 0:
                    raise DecodeError(
                        f"corrupt XOR chunk: window of {lead} leading + {sig} significant bits"
                    )
                sig_mask = (1 << sig) - 1
                v ^= ((w >> (114 - sig)) & sig_mask) << trail
                p += 14 + sig
            else:
                break
            vs_append(v)
            left -= 1
        if not left:
            if p > real_bits:
                raise DecodeError("truncated XOR chunk")
            return None, t0, delta, vs

        # General loop, from the first dod block on: timestamps one by one.
        ts = [t0]
        if delta:
            ts += range(t0 + delta, t0 + delta * len(vs), delta)
        else:
            ts += [t0] * (len(vs) - 1)
        t = ts[-1]
        ts_append = ts.append
        while left:
            # Peek 128 bits at p; ``top`` = its first 4 bits pick the dod block.
            w = (words[p >> 7] >> (128 - (p & 127))) & m128
            top = w >> 124
            if top < 0b0100:
                # "00": dod == 0 and the value repeats (a run, as above).
                run = (128 - w.bit_length()) >> 1
                if run > left:
                    run = left
                if delta:
                    ts += range(t + delta, t + delta * (run + 1), delta)
                else:
                    ts += [t] * run
                vs += [v] * run
                t += delta * run
                left -= run
                p += run << 1
                continue
            if top < 0b1000:  # "0": dod == 0
                w = (w << 1) & m128
                p += 1
                t += delta
            else:
                if top < 0b1100:  # "10" + 14 bits
                    dod = (w >> 112) & 0x3FFF
                    if dod > 0x2000:
                        dod -= 0x4000
                    w = (w << 16) & m128
                    p += 16
                elif top < 0b1110:  # "110" + 17 bits
                    dod = (w >> 108) & 0x1FFFF
                    if dod > 0x10000:
                        dod -= 0x20000
                    w = (w << 20) & m128
                    p += 20
                elif top == 0b1110:  # "1110" + 20 bits
                    dod = (w >> 104) & 0xFFFFF
                    if dod > 0x80000:
                        dod -= 0x100000
                    w = (w << 24) & m128
                    p += 24
                else:  # "1111" + 64 raw bits (two's complement, congruent mod 2**64)
                    dod = (w >> 60) & MASK64
                    p += 68
                    w = (words[p >> 7] >> (128 - (p & 127))) & m128
                delta += dod
                t += delta

            # Value block; w holds at least 104 valid bits here (>= 77 needed).
            top = w >> 126
            if top < 0b10:  # "0": repeat
                p += 1
            elif top == 0b10:  # "10": reuse the window
                v ^= ((w >> (126 - sig)) & sig_mask) << trail
                p += 2 + sig
            else:  # "11": new window
                lead = (w >> 121) & 0x1F
                sig = ((w >> 115) & 0x3F) or 64
                trail = 64 - lead - sig
                if trail < 0:
                    raise DecodeError(
                        f"corrupt XOR chunk: window of {lead} leading + {sig} significant bits"
                    )
                sig_mask = (1 << sig) - 1
                v ^= ((w >> (115 - sig)) & sig_mask) << trail
                p += 13 + sig
            ts_append(t)
            vs_append(v)
            left -= 1
    except IndexError:
        raise DecodeError("truncated XOR chunk") from None
    if p > real_bits:
        raise DecodeError("truncated XOR chunk")
    return ts, t0, delta, vs


def _fixed_interval(t0: int, delta: int, n: int) -> list[int]:
    """``[t0, t0 + delta, ...]`` (``n`` items, not reduced to int64), the loop in C."""
    if n == 0:
        return []
    ts = [t0]
    ts += range(t0 + delta, t0 + delta * n, delta) if delta else [t0] * (n - 1)
    return ts


def _in_int64(ts: list[int]) -> bool:
    return min(ts) >= _INT64_MIN and max(ts) <= _INT64_MAX


def decode_xor_bits(data: bytes | bytearray | memoryview) -> tuple[list[int], list[int]]:
    """Decode an XOR chunk into ``(timestamps, value_bits)`` (uint64 patterns).

    This is the fast core; :func:`decode_xor` converts the bits to floats.
    Raises :class:`DecodeError` for a truncated or corrupt chunk. Bytes after
    the last sample (beyond the zero padding) are ignored, as Prometheus does.
    """
    ts, t0, delta, vs = _decode(data)
    if ts is None:
        ts = _fixed_interval(t0, delta, len(vs))
        if not ts or (_INT64_MIN <= t0 <= _INT64_MAX and _INT64_MIN <= ts[-1] <= _INT64_MAX):
            return ts, vs  # an arithmetic sequence is in range when both ends are
    elif _in_int64(ts):
        return ts, vs
    return [_wrap64(x) for x in ts], vs


def decode_xor(data: bytes | bytearray | memoryview) -> tuple[list[int], list[float]]:
    """Decode an XOR chunk (with its 2-byte header) into ``(timestamps, values)``.

    Values are floats carrying the exact stored bits (stale NaN included).
    """
    ts, bits = decode_xor_bits(data)
    return ts, bits_to_floats(bits)


#: Per chunk length n: (sum of 2**(64k), sum of k * 2**(64k)) for k < n (see _progression).
_PROGRESSIONS: dict[int, tuple[int, int]] = {}
#: Longer chunks take the plain path, which keeps the cache under ~2 MB.
_PROGRESSION_MAX = 512


def _progression(t0: int, delta: int, n: int) -> array[int] | None:
    """``array('q', [t0, t0 + delta, ..., t0 + (n-1)*delta])`` built without a
    Python int per element, or None when the trick below does not apply.

    An integer whose 64-bit little-endian fields are ``t0 + k*delta`` is
    ``t0 * ONES + delta * RAMP`` (ONES has 1 in every field, RAMP has k in
    field k): two multiplications and one ``to_bytes`` in C, 5x faster
    than ``array('q', range(...))`` for 120 samples. Fields must not carry
    into each other, so this needs ``t0 >= 0``, ``delta >= 0`` and a last
    value within int64 (true of every real scrape).
    """
    if n > _PROGRESSION_MAX or t0 < 0 or delta < 0 or t0 + delta * (n - 1) > _INT64_MAX:
        return None
    pair = _PROGRESSIONS.get(n)
    if pair is None:
        if len(_PROGRESSIONS) >= 256:
            _PROGRESSIONS.clear()
        ones = int.from_bytes(array("Q", [1] * n).tobytes(), "little")
        ramp = int.from_bytes(array("Q", range(n)).tobytes(), "little")
        _PROGRESSIONS[n] = pair = (ones, ramp)
    out: array[int] = array("q")
    out.frombytes((t0 * pair[0] + delta * pair[1]).to_bytes(n << 3, "little"))
    if _BIG_ENDIAN:  # array items are native-endian
        out.byteswap()
    return out


def decode_xor_columns(data: bytes | bytearray | memoryview) -> tuple[array[int], array[float]]:
    """Decode an XOR chunk into ``(array('q') timestamps, array('d') values)``.

    The columnar form of :func:`decode_xor`: the value bits go into the
    ``array('d')`` as they are (one copy through an ``array('Q')``, no float
    object per sample), so NaN payloads and the stale marker survive.
    Fixed-interval timestamps are built in C (:func:`_progression`).
    """
    ts, t0, delta, vs = _decode(data)
    if vs and vs[-1] == vs[0] and vs.count(vs[0]) == len(vs):
        bits = array("Q", vs[:1]) * len(vs)  # a constant chunk: one conversion, copied in C
    else:
        bits = array("Q", vs)
    values: array[float] = array("d")
    values.frombytes(bits.tobytes())  # same width, same byte order: a bit copy
    if ts is None:
        if not vs:
            return array("q"), values
        timestamps = _progression(t0, delta, len(vs))
        if timestamps is not None:
            return timestamps, values
        ts = _fixed_interval(t0, delta, len(vs))
    if _in_int64(ts):
        return array("q", ts), values
    return array("q", [_wrap64(x) for x in ts]), values


def iter_xor(data: bytes | bytearray | memoryview) -> Iterator[tuple[int, float]]:
    """Iterate ``(timestamp, value)`` pairs of an XOR chunk.

    The chunk is decoded (and validated) completely before the first pair is
    yielded: a chunk is at most a few KiB and bulk decoding is much faster.
    """
    ts, vs = decode_xor(data)
    return zip(ts, vs, strict=True)


def decode_chunk(chunk: m.Chunk) -> tuple[list[int], list[float]]:
    """Decode a remote-read :class:`~promwire.codec.messages.Chunk` into ``(timestamps, values)``.

    Only XOR chunks are decoded. Every other encoding (HISTOGRAM,
    FLOAT_HISTOGRAM, XOR2, the ``*_ST`` ones or a number this version does not
    know) raises :class:`UnsupportedChunk`, a subclass of
    :class:`~promwire.errors.UnsupportedChunkEncoding` whose ``chunk``
    attribute keeps the raw bytes; nothing else is ever read as XOR.
    """
    if int(chunk.type) != m.ChunkEncoding.XOR:
        raise UnsupportedChunk(chunk)
    return decode_xor(chunk.data)


# ----------------------------------------------------------------------------- encoding


def _encode_prefix(
    ts: Sequence[int], bits: Sequence[int], start: int, max_samples: int, max_bits: int
) -> tuple[bytes, int]:
    """Encode samples ``start, start+1, ...`` into one XOR chunk.

    Stops after ``max_samples`` samples or before a sample that could push the
    chunk past ``max_bits`` (checked against the worst case a sample can
    take, so the limit is never exceeded). Returns ``(chunk_bytes, n)``.
    Timestamps must already be validated as int64 and bits as uint64.

    Fixed-interval samples (every dod 0, the usual scrape) take
    :func:`_encode_fixed_interval`, every other chunk :func:`_encode_general`:
    both write the same bits.
    """
    stop = min(len(ts), start + max_samples)
    n = stop - start
    if n > 2:
        tseg = list(ts[start:stop])
        t0 = tseg[0]
        step = tseg[1] - t0
        # A cheap necessary condition first, then the comparison in C.
        if tseg[-1] - t0 == step * (n - 1) and (
            tseg == list(range(t0, t0 + step * n, step)) if step else tseg.count(t0) == n
        ):
            return _encode_fixed_interval(t0, step, list(bits[start:stop]), max_bits)
    return _encode_general(ts, bits, start, max_samples, max_bits)


def _encode_fixed_interval(t0: int, step: int, bits: list[int], max_bits: int) -> tuple[bytes, int]:
    """:func:`_encode_prefix` of samples ``t0 + k*step`` with value bits ``bits`` (>= 3).

    Every dod block is one "0" bit, so a sample whose value repeats is "00"
    and only the samples whose value changes need Python work: they are
    picked out in C (``compress`` over ``map(ne, ...)`` of the shifted
    value lists), and a run of "00" samples between two of them is one
    shift of the bit accumulator. A constant series costs two iterations.
    """
    n = len(bits)
    out = bytearray(b"\x00\x00")
    out += varint(zigzag_encode(t0))
    out += bits[0].to_bytes(8, "big")
    # A sample may start while the bits so far are <= budget (8 bits kept for
    # the empty byte Go may leave at the end, see _encode_general).
    budget = max_bits - _MAX_SAMPLE_BITS - 8
    if len(out) << 3 > budget:
        out[0:2] = b"\x00\x01"
        return bytes(out), 1
    out += varint(step & MASK64)  # sample 1: a uvarint delta, no dod block
    # Bits gather MSB-first in ``acc`` (``nacc`` bits), flushed to ``out`` in
    # whole bytes; ``room`` = budget - bits in ``out``, so a sample may start
    # while ``nacc <= room``. Sample 1 passed its check above, before its
    # varint: clamping ``room`` at 0 lets it pass again and changes nothing
    # later (``nacc`` >= 1 after sample 1 fails against 0 as against < 0).
    acc = 0
    # Every sample below is written with a leading dod "0" bit. Sample 1 has
    # none: starting at -1 bits turns its "0" into a leading zero of ``acc``
    # that is never counted, so sample 1 needs no case of its own.
    nacc = -1
    room = max(budget - (len(out) << 3), 0)
    # The value window as a mask: an XOR fits the window (Go's "leading >=
    # window leading and trailing >= window trailing", leading capped at 31)
    # exactly when it has no bit in ``outside``. No window yet: all bits.
    outside = MASK64
    trail_w = 0
    sig_w = 0
    stop = n
    last = 1  # the next sample not written yet
    # Indices k >= 1 with bits[k] != bits[k-1] (none at all for a constant series).
    changed = (
        [] if bits[1:] == bits[:-1] else list(compress(range(1, n), map(ne, bits[1:], bits[:-1])))
    )
    if room >= ((n - 1) << 1) + 76 * len(changed):
        # Even if every change took the longest value block (78 bits instead
        # of 2) the budget holds: no checks, and a run of "00" before a
        # change is folded into the shift that writes the change.
        for k in changed:
            gap = (k - last) << 1
            last = k + 1
            x = bits[k] ^ bits[k - 1]
            if x & outside:  # "00"s, "0" + "11" + leading:5 + significant:6 + the bits
                lead = 64 - x.bit_length()
                if lead > 31:
                    lead = 31
                trail_w = (x & -x).bit_length() - 1
                sig_w = 64 - lead - trail_w
                outside = MASK64 ^ (((1 << sig_w) - 1) << trail_w)
                acc = (
                    ((((acc << gap + 3) | 0b011) << 11) | (lead << 6) | (sig_w & 0x3F)) << sig_w
                ) | (x >> trail_w)
                nacc += gap + 14 + sig_w
            else:  # "00"s, "0" + "10" + the bits inside the window
                acc = (((acc << gap + 3) | 0b010) << sig_w) | (x >> trail_w)
                nacc += gap + 3 + sig_w
            if nacc >= 256:
                keep = nacc & 7
                out += (acc >> keep).to_bytes(nacc >> 3, "big")
                acc &= (1 << keep) - 1
                nacc = keep
        acc <<= (n - last) << 1  # the run of "00"s at the end
        nacc += (n - last) << 1
        last = n
        changed = []
    for k in chain(changed, (n,)):
        gap = k - last
        if gap:  # samples last .. k-1 are "00"
            acc <<= gap << 1
            nacc += gap << 1
            if nacc - 2 > room:  # the run crosses the budget: keep the "00"s that may start
                keep = (room - nacc + (gap << 1)) // 2 + 1 if nacc - (gap << 1) <= room else 0
                acc >>= (gap - keep) << 1
                nacc -= (gap - keep) << 1
                stop = last + keep
                break
        if k == n:
            break
        if nacc > room:
            stop = k
            break
        last = k + 1
        x = bits[k] ^ bits[k - 1]
        if x & outside:  # "0" + "11" + leading:5 + significant:6 + the bits: a new window
            lead = 64 - x.bit_length()
            if lead > 31:
                lead = 31
            trail_w = (x & -x).bit_length() - 1
            sig_w = 64 - lead - trail_w
            outside = MASK64 ^ (((1 << sig_w) - 1) << trail_w)
            acc = (((((acc << 3) | 0b011) << 11) | (lead << 6) | (sig_w & 0x3F)) << sig_w) | (
                x >> trail_w
            )
            nacc += 14 + sig_w
        else:  # "0" + "10" + the bits inside the window
            acc = (((acc << 3) | 0b010) << sig_w) | (x >> trail_w)
            nacc += 3 + sig_w
        if nacc >= 256:
            keep = nacc & 7
            out += (acc >> keep).to_bytes(nacc >> 3, "big")
            room -= nacc - keep
            acc &= (1 << keep) - 1
            nacc = keep
    if nacc:
        pad = -nacc & 7
        out += (acc << pad).to_bytes((nacc + pad) >> 3, "big")
    # Go's trailing empty byte (see _encode_general): when the last sample
    # written changed its value with a whole-bytes value write, byte aligned.
    if bits[stop - 1] != bits[stop - 2] and sig_w % 8 == 0 and not nacc & 7:
        out.append(0)
    out[0:2] = stop.to_bytes(2, "big")
    return bytes(out), stop


def _encode_general(
    ts: Sequence[int], bits: Sequence[int], start: int, max_samples: int, max_bits: int
) -> tuple[bytes, int]:
    """:func:`_encode_prefix` for any timestamps, one sample after the other."""
    stop = min(len(ts), start + max_samples)
    n = stop - start
    if n <= 0:
        return b"\x00\x00", 0
    out = bytearray(b"\x00\x00")
    i = start
    t_prev = ts[i]
    v_prev = bits[i]
    out += varint(zigzag_encode(t_prev))
    out += v_prev.to_bytes(8, "big")
    i += 1
    if i == stop:
        out[0:2] = (1).to_bytes(2, "big")
        # Go's bstream: writeByte always appends the byte after the one it
        # fills, so a chunk whose last write was whole bytes on a byte
        # boundary ends with one empty byte. Sample 0 always does.
        out.append(0)
        return bytes(out), 1

    # Bits are gathered MSB-first in ``acc`` (``nacc`` valid bits) and flushed
    # to ``out`` as whole bytes once the accumulator holds a few hundred bits,
    # keeping every shift on a small integer.
    acc = 0
    nacc = 0
    delta_prev = 0
    outside = MASK64  # the window as a mask, see _encode_fixed_interval
    trail_w = 0
    sig_w = 0
    whole = False  # the last value block ended with a whole-bytes write (see above)
    # A sample may start while total bits <= budget (8 bits kept for the
    # empty byte Go may leave at the end, see above).
    budget = max_bits - _MAX_SAMPLE_BITS - 8
    for j in range(i, stop):
        if (len(out) << 3) + nacc > budget:
            stop = j
            break
        t = ts[j]
        delta = t - t_prev
        if j == start + 1:
            # The first delta is an unsigned varint of the uint64 difference.
            out += varint(delta & MASK64)
            code = 0
            ncode = 0
        else:
            dod = delta - delta_prev
            if dod == 0:
                code = 0
                ncode = 1
            else:
                if not -524287 <= dod <= 524288:
                    # Reduce to int64 as Go does before picking the bucket (a
                    # wrapped dod can be small again).
                    dod = _wrap64(dod)
                if dod == 0:
                    code = 0
                    ncode = 1
                elif -8191 <= dod <= 8192:
                    code = (0b10 << 14) | (dod & 0x3FFF)
                    ncode = 16
                elif -65535 <= dod <= 65536:
                    code = (0b110 << 17) | (dod & 0x1FFFF)
                    ncode = 20
                elif -524287 <= dod <= 524288:
                    code = (0b1110 << 20) | (dod & 0xFFFFF)
                    ncode = 24
                else:
                    code = (0b1111 << 64) | (dod & MASK64)
                    ncode = 68
        delta_prev = delta
        t_prev = t

        v = bits[j]
        x = v ^ v_prev
        v_prev = v
        if x == 0:
            code <<= 1
            ncode += 1
            whole = False
        else:
            if x & outside:  # a new window
                lead = 64 - x.bit_length()
                if lead > 31:
                    lead = 31
                trail_w = (x & -x).bit_length() - 1
                sig_w = 64 - lead - trail_w
                outside = MASK64 ^ (((1 << sig_w) - 1) << trail_w)
                code = (((((code << 2) | 0b11) << 11) | (lead << 6) | (sig_w & 0x3F)) << sig_w) | (
                    x >> trail_w
                )
                ncode += 13 + sig_w
            else:  # the previous window
                code = (((code << 2) | 0b10) << sig_w) | (x >> trail_w)
                ncode += 2 + sig_w
            whole = sig_w % 8 == 0
        acc = (acc << ncode) | code
        nacc += ncode
        if nacc >= 256:
            keep = nacc & 7
            out += (acc >> keep).to_bytes(nacc >> 3, "big")
            acc &= (1 << keep) - 1
            nacc = keep
    if nacc:
        pad = -nacc & 7
        out += (acc << pad).to_bytes((nacc + pad) >> 3, "big")
    if whole and not nacc & 7:
        out.append(0)
    n = stop - start
    out[0:2] = n.to_bytes(2, "big")
    return bytes(out), n


def _check_timestamps(timestamps: Sequence[int]) -> list[int]:
    ts = list(timestamps)
    if set(map(type, ts)) - {int}:  # the usual all-int case is checked in C
        for t in ts:
            if type(t) is not int and (not isinstance(t, int) or isinstance(t, bool)):
                raise EncodeError(f"timestamp {t!r} is not an int")
    if ts and (min(ts) < _INT64_MIN or max(ts) > _INT64_MAX):
        raise EncodeError("timestamp out of int64 range")
    return ts


def encode_xor_bits(timestamps: Sequence[int], bits: Sequence[int]) -> bytes:
    """Encode samples given as timestamps and uint64 value bit patterns."""
    if len(timestamps) != len(bits):
        raise EncodeError("timestamps and values differ in length")
    if len(timestamps) > MAX_SAMPLES_PER_CHUNK:
        raise EncodeError(f"an XOR chunk holds at most {MAX_SAMPLES_PER_CHUNK} samples")
    ts = _check_timestamps(timestamps)
    if bits and (set(map(type, bits)) - {int} or min(bits) < 0 or max(bits) > MASK64):
        for b in bits:
            if type(b) is not int and (not isinstance(b, int) or isinstance(b, bool)):
                raise EncodeError(f"value bits {b!r} are not an int")
            if not 0 <= b <= MASK64:
                raise EncodeError(f"value bits {b!r} out of uint64 range")
    data, _ = _encode_prefix(ts, bits, 0, len(ts), 1 << 62)
    return data


def encode_xor(timestamps: Sequence[int], values: Sequence[float]) -> bytes:
    """Encode samples into one XOR chunk, byte-identical to Prometheus' appender.

    ``timestamps`` are int64 milliseconds (the encoder does not require them
    to be ordered; Go's wrap-around arithmetic is reproduced). ``values`` keep
    their exact bits. At most 65535 samples fit a chunk (:class:`EncodeError`
    otherwise); use :func:`cut_chunks` to split longer series.
    """
    if len(timestamps) != len(values):
        raise EncodeError("timestamps and values differ in length")
    if len(timestamps) > MAX_SAMPLES_PER_CHUNK:
        raise EncodeError(f"an XOR chunk holds at most {MAX_SAMPLES_PER_CHUNK} samples")
    ts = _check_timestamps(timestamps)
    bits = floats_to_bits(values)  # uint64 by construction: no range check needed
    return _encode_prefix(ts, bits, 0, len(ts), 1 << 62)[0]


def cut_chunks(
    samples: Sequence[m.Sample],
    *,
    max_samples: int = SAMPLES_PER_CHUNK,
    max_bytes: int = MAX_BYTES_PER_CHUNK,
) -> list[m.Chunk]:
    """Cut samples (in time order) into XOR :class:`~promwire.codec.messages.Chunk` messages.

    Each chunk holds at most ``max_samples`` samples (default 120, like
    Prometheus' head; at most 65535) and never grows past ``max_bytes``
    (default 1024): a sample is only appended while the worst case it could
    take (157 bits) still fits, so chunks of incompressible values cut a
    little earlier than strictly needed. ``min_time_ms``/``max_time_ms`` are
    the first and last timestamps of each chunk. An empty input gives no chunks.

    Prometheus' head cuts at a predicted end time aiming at 120 samples per
    chunk; for regular scrapes both give the same chunks (re-encoding the
    samples of Prometheus' SAMPLES answer reproduces its streamed chunks
    byte for byte, see tests/test_streamed.py).
    """
    if not 1 <= max_samples <= MAX_SAMPLES_PER_CHUNK:
        raise ValueError(f"max_samples must be in 1..{MAX_SAMPLES_PER_CHUNK}")
    if max_bytes < 2 + (_MAX_SAMPLE_BITS + 144 + 7) // 8:
        raise ValueError("max_bytes too small to hold two samples")
    ts = _check_timestamps([s.timestamp for s in samples])
    bits = floats_to_bits([s.value for s in samples])
    chunks: list[m.Chunk] = []
    start = 0
    total = len(ts)
    max_bits = max_bytes * 8
    while start < total:
        data, n = _encode_prefix(ts, bits, start, max_samples, max_bits)
        chunks.append(
            m.Chunk(
                min_time_ms=ts[start],
                max_time_ms=ts[start + n - 1],
                type=m.ChunkEncoding.XOR,
                data=data,
            )
        )
        start += n
    return chunks
