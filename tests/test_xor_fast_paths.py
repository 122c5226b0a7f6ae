"""The XOR codec's fast paths against the bit-by-bit reference of benchmarks/bench_xor.py.

Fixed-interval chunks (every dod 0) take their own decode loop and their own
encoder (:func:`promwire.chunks.xor._encode_fixed_interval`); constant runs
are skipped in bulk, fixed-interval timestamps are built from a ``range`` or
by big-int arithmetic (:func:`promwire.chunks.xor._progression`). Each must
give exactly the bits and samples of the reference and of the general path.
"""

from __future__ import annotations

import sys
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire import DecodeError
from promwire.chunks.xor import (
    MAX_BYTES_PER_CHUNK,
    _encode_fixed_interval,
    _encode_general,
    _encode_prefix,
    decode_xor_bits,
    decode_xor_columns,
    encode_xor_bits,
)
from promwire.codec.wire import varint, zigzag_encode
from tests.support.xor_reference import ref

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
MASK64 = (1 << 64) - 1
STALE = 0x7FF0000000000002


# Value bit patterns at the edges of the window encoding: 0 and all-ones (64
# significant bits, written as 0), leading/trailing zero counts 0, 31, 32, 63,
# NaN payloads, the stale marker, -0.0, integers as floats (counters).
EDGE_BITS = [
    0,
    MASK64,
    1,
    1 << 63,
    (1 << 32) | 1,
    (1 << 33) - 1,
    0xFFFFFFFF00000000,
    STALE,
    0x7FF8000000000001,
    0xFFF8000000000000,
    0x7FF0000000000000,
    0x3FF0000000000000,  # 1.0
    0x4059000000000000,  # 100.0
    0x4059040000000000,  # 100.0625
    0x0000000000000001,
]
value_bits = st.one_of(st.sampled_from(EDGE_BITS), st.integers(0, MASK64))


@st.composite
def runs(draw: st.DrawFn, max_samples: int = 300) -> list[int]:
    """Value bits in runs: repeats (constant series), counters, random patterns."""
    out: list[int] = []
    n = draw(st.integers(0, max_samples))
    while len(out) < n:
        kind = draw(st.sampled_from(["repeat", "counter", "any"]))
        length = draw(st.integers(1, 70))
        if kind == "repeat":
            out += [draw(value_bits)] * length
        elif kind == "counter":
            v = draw(st.integers(0, 1 << 40))
            for _ in range(length):
                v += draw(st.sampled_from([0, 0, 0, 1, 7, 1000]))
                out.append(_bits(v))
        else:
            out += draw(st.lists(value_bits, min_size=length, max_size=length))
    return out[:n]


def _bits(v: int) -> int:
    return int.from_bytes(array("d", [float(v)]).tobytes(), sys.byteorder)


start_times = st.one_of(
    st.integers(-(10**6), 10**6),
    st.just(1_700_000_000_000),
    st.integers(INT64_MIN, INT64_MAX),
)
steps = st.one_of(st.sampled_from([0, 1, 15_000, 60_000, -15_000]), st.integers(-(2**64), 2**64))


def _fixed(t0: int, step: int, n: int) -> list[int] | None:
    """Timestamps t0 + k*step, or None when they leave int64 (not encodable)."""
    ts = [t0 + k * step for k in range(n)]
    return ts if all(INT64_MIN <= t <= INT64_MAX for t in ts) else None


def _check_roundtrip(ts: list[int], bits: list[int]) -> bytes:
    chunk = encode_xor_bits(ts, bits)
    assert chunk == ref.ref_encode(ts, bits)
    assert decode_xor_bits(chunk) == (ts, bits)
    assert ref.ref_decode(chunk) == (ts, bits)
    cts, cvs = decode_xor_columns(chunk)
    assert cts.typecode == "q" and cvs.typecode == "d"
    assert list(cts) == ts
    assert cvs.tobytes() == array("Q", bits).tobytes()
    return chunk


@settings(max_examples=300, deadline=None)
@given(start_times, steps, runs())
def test_fixed_interval_chunks_match_reference(t0: int, step: int, bits: list[int]) -> None:
    ts = _fixed(t0, step, len(bits))
    if ts is None:
        ts = _fixed(t0, step % 1_000_000, len(bits)) or [0] * len(bits)
    _check_roundtrip(ts, bits)


@settings(max_examples=300, deadline=None)
@given(
    start_times,
    st.sampled_from([15_000, 1_000, 0]),
    runs(150),
    st.lists(
        st.one_of(
            st.integers(-8191, 8192),  # every dod bucket and past the last one
            st.integers(-524287, 524288),
            st.integers(-(2**40), 2**40),
            st.sampled_from([-8192, 8193, -65536, 65537, -524288, 524289, 0]),
        ),
        max_size=40,
    ),
)
def test_fixed_interval_then_any_dods_match_reference(
    t0: int, step: int, bits: list[int], jitters: list[int]
) -> None:
    """A regular prefix, then dod blocks of every size: the decoder changes loops mid-chunk."""
    ts = _fixed(t0 % (1 << 62), step, len(bits)) or []
    if not ts:
        return
    cut = len(ts) // 2
    extra = 0
    for i in range(cut, len(ts)):
        extra += jitters[i % len(jitters)] if jitters else 0
        ts[i] += extra
    if any(not INT64_MIN <= t <= INT64_MAX for t in ts):
        return
    _check_roundtrip(ts, bits)


@settings(max_examples=200, deadline=None)
@given(start_times, steps, runs(400), st.integers(60, 8 * MAX_BYTES_PER_CHUNK))
def test_fixed_interval_cut_like_general_path(
    t0: int, step: int, bits: list[int], max_bytes: int
) -> None:
    """Under a byte budget both encoders stop before the same sample, with the same bytes."""
    ts = _fixed(t0 % (1 << 62), step % (1 << 20), len(bits))
    if ts is None or len(ts) < 3:
        return
    max_bits = max_bytes * 8
    fast = _encode_fixed_interval(ts[0], ts[1] - ts[0], bits, max_bits)
    general = _encode_general(ts, bits, 0, len(ts), max_bits)
    assert fast == general
    assert _encode_prefix(ts, bits, 0, len(ts), max_bits) == general
    data, n = fast
    assert data == ref.ref_encode(ts[:n], bits[:n])
    assert len(data) <= max_bytes or n <= 2


def test_cut_inside_a_run_of_repeats() -> None:
    """The budget ends inside a run of "00" samples: some of the run stays, at every offset."""
    head = [0x3FF0000000000000, 0x4000000000000000]
    for extra in range(6):
        bits = head + [0x4000000000000000] * 200 + [0x4010000000000000] * 3
        ts = list(range(0, 15_000 * len(bits), 15_000))
        for max_bits in range(160, 900, 7):
            fast = _encode_fixed_interval(ts[extra], 15_000, bits[extra:], max_bits)
            assert fast == _encode_general(ts[extra:], bits[extra:], 0, len(bits), max_bits)


@pytest.mark.parametrize("kind", ["constant", "counter", "gauge"])
def test_every_truncation_of_fixed_interval_chunks_raises(kind: str) -> None:
    ts, vs = ref.workload(120, interval=15_000, jitter=0, kind=kind)
    data = encode_xor_bits(ts, list(array("Q", array("d", vs).tobytes())))
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            decode_xor_bits(data[:cut])
        with pytest.raises(DecodeError):
            decode_xor_columns(data[:cut])


def test_long_constant_runs_and_extreme_progressions() -> None:
    # 65535 repeats: the decoder consumes at most 64 samples per peek.
    ts = list(range(0, 65535 * 1000, 1000))
    bits = [STALE] * len(ts)
    _check_roundtrip(ts, bits)
    # Progressions the big-int array trick must refuse (negative start or
    # step, ends at the int64 limits) and ones it takes (up to INT64_MAX).
    for t0, step, n in [
        (-1000, 10, 300),
        (0, -7, 100),
        (INT64_MAX - 119, 1, 120),
        (INT64_MIN, (1 << 56), 200),
        (0, (1 << 55), 256),
        (5, 0, 70),
    ]:
        ts = [t0 + k * step for k in range(n)]
        _check_roundtrip(ts, [0x3FF0000000000000] * n)


def test_huge_delta_wraps_like_go() -> None:
    """A first delta above int64 (uvarint) and dods that only wrap back to 0 in Go."""
    ts = [INT64_MIN, INT64_MAX, INT64_MIN, INT64_MAX, INT64_MIN]
    _check_roundtrip(ts, [0, 0, 1, 1, 1])
    chunk = ref.ref_encode([INT64_MIN, INT64_MAX, INT64_MAX - 1], [0, 0, 0])
    assert decode_xor_bits(chunk) == ([INT64_MIN, INT64_MAX, INT64_MAX - 1], [0, 0, 0])


def test_encode_rejects_non_int_bits() -> None:
    from promwire import EncodeError

    with pytest.raises(EncodeError):
        encode_xor_bits([1, 2], [1, 1.5])  # type: ignore[list-item]
    with pytest.raises(EncodeError):
        encode_xor_bits([1, 2], [1, -1])
    with pytest.raises(EncodeError):
        encode_xor_bits([1, 2], [1, 1 << 64])


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["constant", "counter", "gauge"]),
    st.integers(1, 200),
    st.lists(st.integers(0, 10_000), min_size=1, max_size=4),
)
def test_bit_flipped_chunks_decode_like_the_reference(kind: str, n: int, flips: list[int]) -> None:
    """A corrupted chunk decodes to exactly what the reference reads, or raises
    DecodeError exactly when the reference runs out of bits or meets a bad window."""
    ts, vs = ref.workload(n, interval=15_000, jitter=0, kind=kind)
    data = bytearray(encode_xor_bits(ts, list(array("Q", array("d", vs).tobytes()))))
    # Flip bits of the bit stream only: the header and the byte-aligned
    # varints are read by the protobuf varint reader, whose limits differ
    # from the reference's on purpose (tests/test_xor.py covers them).
    start = 8 * (2 + len(varint(zigzag_encode(ts[0]))) + 8)
    if n > 1:
        start += 8 * len(varint(ts[1] - ts[0]))
    for flip in flips:
        if len(data) * 8 > start:
            bit = start + flip % (len(data) * 8 - start)
            data[bit >> 3] ^= 0x80 >> (bit & 7)
    try:
        want = ref.ref_decode(bytes(data))
    except (EOFError, ValueError):
        with pytest.raises(DecodeError):
            decode_xor_bits(bytes(data))
        return
    assert decode_xor_bits(bytes(data)) == want
    cts, cvs = decode_xor_columns(bytes(data))
    assert (list(cts), list(array("Q", cvs.tobytes()))) == want
