"""XOR chunk codec: PROTOCOL.md golden chunk, Prometheus' own chunks, edge cases, properties.

The independent oracle is the bit-by-bit reference codec of benchmarks/bench_xor.py.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promwire
from promwire import (
    Chunk,
    ChunkEncoding,
    DecodeError,
    EncodeError,
    Sample,
    UnsupportedChunkEncoding,
)
from promwire.chunks.frames import iter_frames
from promwire.chunks.xor import (
    UnsupportedChunk,
    bits_to_floats,
    cut_chunks,
    decode_chunk,
    decode_xor,
    decode_xor_bits,
    encode_xor,
    encode_xor_bits,
    floats_to_bits,
    iter_xor,
)
from tests.support.xor_reference import ref

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
STALE = 0x7FF0000000000002


def f(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


# ----------------------------------------------------------------------------- golden

GOLDEN_TS = [1000, 2000, 3000, 4010, 5020, 6020]
GOLDEN_VS = [1.0, 1.0, 2.0, 3.0, 3.0, 2.0]
GOLDEN = bytes.fromhex("0006d00f3ff0000000000000e8073097ffe002b6032ffda8")


def test_protocol_worked_chunk_encodes_exactly() -> None:
    assert encode_xor(GOLDEN_TS, GOLDEN_VS) == GOLDEN


def test_protocol_worked_chunk_decodes() -> None:
    assert decode_xor(GOLDEN) == (GOLDEN_TS, GOLDEN_VS)
    assert list(iter_xor(GOLDEN)) == list(zip(GOLDEN_TS, GOLDEN_VS, strict=True))
    assert ref.ref_decode(GOLDEN) == (GOLDEN_TS, floats_to_bits(GOLDEN_VS))


def test_empty_and_single_sample_chunks() -> None:
    assert encode_xor([], []) == b"\x00\x00"
    assert decode_xor(b"\x00\x00") == ([], [])
    one = encode_xor([-5], [f(STALE)])
    # Go's bstream leaves an empty byte after the 64 raw value bits (they end
    # on a byte boundary; checked against Prometheus 2.42 in
    # tests/test_histogram_live.py::test_xor_chunks_reencode_byte_identically).
    assert one == b"\x00\x01\x09" + STALE.to_bytes(8, "big") + b"\x00"
    ts, bits = decode_xor_bits(one)
    assert ts == [-5] and bits == [STALE]


# ----------------------------------------------------------------------------- Prometheus' chunks


def _fixture_chunks(fixtures_dir: Path) -> list[Chunk]:
    out: list[Chunk] = []
    for path in sorted((fixtures_dir / "rr_server").glob("*_streamed.response.bin")):
        for message in iter_frames([path.read_bytes()]):
            response = promwire.decode(promwire.ChunkedReadResponse, message)
            for series in response.chunked_series:
                out.extend(series.chunks)
    return out


def test_prometheus_chunks_decode_and_reencode_byte_identical(fixtures_dir: Path) -> None:
    chunks = [c for c in _fixture_chunks(fixtures_dir) if c.type == ChunkEncoding.XOR]
    assert len(chunks) >= 30
    for chunk in chunks:
        ts, bits = decode_xor_bits(chunk.data)
        assert len(ts) == int.from_bytes(chunk.data[:2], "big")
        assert ts[0] == chunk.min_time_ms and ts[-1] == chunk.max_time_ms
        assert ts == sorted(ts)
        assert (ts, bits) == ref.ref_decode(chunk.data)
        assert encode_xor_bits(ts, bits) == chunk.data
        assert encode_xor(ts, bits_to_floats(bits)) == chunk.data


def test_histogram_chunks_are_reported_unsupported(fixtures_dir: Path) -> None:
    hist = [c for c in _fixture_chunks(fixtures_dir) if c.type == ChunkEncoding.HISTOGRAM]
    assert hist
    for chunk in hist:
        with pytest.raises(UnsupportedChunkEncoding) as info:
            decode_chunk(chunk)
        assert isinstance(info.value, UnsupportedChunk)
        assert info.value.chunk.data == chunk.data and info.value.encoding == 2
        assert info.value.status == 400


@pytest.mark.parametrize("encoding", [0, 2, 3, 4, 5, 6, 7, 99, -1])
def test_decode_chunk_never_reads_other_encodings_as_xor(encoding: int) -> None:
    chunk = Chunk(min_time_ms=1000, max_time_ms=6020, type=encoding, data=GOLDEN)
    with pytest.raises(UnsupportedChunk) as info:
        decode_chunk(chunk)
    assert info.value.encoding == encoding
    assert str(encoding) in str(info.value)


def test_decode_chunk_xor() -> None:
    chunk = Chunk(min_time_ms=1000, max_time_ms=6020, type=ChunkEncoding.XOR, data=GOLDEN)
    assert decode_chunk(chunk) == (GOLDEN_TS, GOLDEN_VS)
    assert decode_chunk(Chunk(type=1, data=GOLDEN)) == (GOLDEN_TS, GOLDEN_VS)


# ----------------------------------------------------------------------------- edge cases


def _stream_bits_after_sample1(data: bytes, ts: list[int]) -> str:
    """The bit string after sample 1's delta varint (for 3-sample chunks)."""
    u = ((ts[0] << 1) ^ (ts[0] >> 63)) & ((1 << 64) - 1)
    pos = (
        2
        + len(ref._uvarint_bytes(u))
        + 8
        + len(ref._uvarint_bytes((ts[1] - ts[0]) & ((1 << 64) - 1)))
    )
    return "".join(f"{b:08b}" for b in data[pos:])


@pytest.mark.parametrize(
    ("dod", "prefix", "width"),
    [
        (1, "10", 14),
        (8192, "10", 14),
        (-8191, "10", 14),
        (8193, "110", 17),
        (-8192, "110", 17),
        (65536, "110", 17),
        (-65535, "110", 17),
        (65537, "1110", 20),
        (-65536, "1110", 20),
        (524288, "1110", 20),
        (-524287, "1110", 20),
        (524289, "1111", 64),
        (-524288, "1111", 64),
    ],
)
def test_dod_buckets_are_asymmetric(dod: int, prefix: str, width: int) -> None:
    ts = [10_000_000, 11_000_000, 12_000_000 + dod]
    data = encode_xor(ts, [1.0, 1.0, 1.0])
    bits = _stream_bits_after_sample1(data, ts)
    # sample 1's value block "0", then sample 2's dod block
    assert bits[0] == "0"
    assert bits[1 : 1 + len(prefix)] == prefix
    payload = int(bits[1 + len(prefix) : 1 + len(prefix) + width], 2)
    assert payload == dod & ((1 << width) - 1)
    assert decode_xor(data)[0] == ts
    assert data == ref.ref_encode(ts, floats_to_bits([1.0] * 3))


def test_leading_zeros_capped_at_31_and_64_significant_bits_written_as_0() -> None:
    # x1 = 1: 63 leading zeros, written as L=31, so M = 64 - 31 - 0 = 33.
    # x2 = 1 ^ (1 << 63) ... with top and bottom bit set: L=0, T=0, M=64 written as 0.
    values = [0, 1, 1 ^ ((1 << 63) | 1)]
    data = encode_xor_bits([1, 2, 3], values)
    bits = _stream_bits_after_sample1(data, [1, 2, 3])
    assert bits[:13] == "11" + f"{31:05b}" + f"{33:06b}"
    assert bits[13:46] == f"{1:033b}"
    rest = bits[46:]
    assert rest[0] == "0"  # dod 0
    assert rest[1:14] == "11" + "00000" + "000000"  # L=0, M=64 written as 0
    assert rest[14:78] == "1" + "0" * 62 + "1"
    assert decode_xor_bits(data) == ([1, 2, 3], values)
    assert data == ref.ref_encode([1, 2, 3], values)


def test_window_reuse_rule() -> None:
    # 2.0 -> 3.0 opens a window (L=12, T=51); 3.0 -> 2.0 has the same x: reuse ("10").
    data = encode_xor([0, 1, 2], [2.0, 3.0, 2.0])
    bits = _stream_bits_after_sample1(data, [0, 1, 2])
    assert bits.startswith("11" + "01100" + "000001" + "1")
    assert bits[14:].startswith("0" + "10" + "1")


def test_stale_nan_and_payloads_survive() -> None:
    specials = [
        STALE,
        0x7FF8000000000001,
        0x7FF8000000000000,
        0xFFF8000000000000,
        0x7FFFFFFFFFFFFFFF,
        0x7FF0000000000001,
        0x8000000000000000,
        0,
        0x7FF0000000000000,
        0xFFF0000000000000,
        1,
    ]
    ts = list(range(0, 15_000 * len(specials), 15_000))
    data = encode_xor(ts, [f(b) for b in specials])
    got_ts, got = decode_xor(data)
    assert got_ts == ts
    assert floats_to_bits(got) == specials
    assert data == ref.ref_encode(ts, specials)


def test_int64_extremes_wrap_like_go() -> None:
    ts = [INT64_MIN, INT64_MIN, INT64_MAX, INT64_MAX, 0, INT64_MIN]
    bits = [0, 1, 2, 3, 4, 5]
    data = encode_xor_bits(ts, bits)
    assert data == ref.ref_encode(ts, bits)
    assert decode_xor_bits(data) == (ts, bits)
    # dod = 2**64 - 1 wraps to -1 in Go and takes the 14-bit bucket.
    wrap_ts = [INT64_MIN, INT64_MIN, INT64_MAX]
    small = encode_xor_bits(wrap_ts, [0, 0, 0])
    assert _stream_bits_after_sample1(small, wrap_ts).startswith("0" + "10" + "1" * 14 + "0")
    assert decode_xor_bits(small) == (wrap_ts, [0, 0, 0])


def test_long_runs_of_repeats_decode() -> None:
    ts = list(range(0, 1000 * 5000, 1000))
    data = encode_xor(ts, [7.0] * len(ts))
    assert decode_xor(data) == (ts, [7.0] * len(ts))
    ts2 = [5] * 300  # zero delta
    assert decode_xor(encode_xor(ts2, [1.5] * 300)) == (ts2, [1.5] * 300)
    desc = list(range(10_000, 0, -7))  # negative delta (not Prometheus data, but encodable)
    assert decode_xor(encode_xor(desc, [0.0] * len(desc)))[0] == desc


# ----------------------------------------------------------------------------- errors


def test_every_truncation_raises_decode_error() -> None:
    rng = random.Random(3)
    ts = [1_000_000 + i * 15_000 + rng.randint(-9, 9) for i in range(120)]
    vs = [float(rng.randint(0, 5)) for _ in range(120)]
    data = encode_xor(ts, vs)
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            decode_xor(data[:cut])


def test_corrupt_window_raises() -> None:
    # sample 1 value block "11", L=31, M=40 -> 71 bits > 64
    header = b"\x00\x02\x00" + bytes(8) + b"\x01"
    window = int("11" + f"{31:05b}" + f"{40:06b}" + "1" * 40 + "0" * 3, 2)
    with pytest.raises(DecodeError, match="window"):
        decode_xor(header + window.to_bytes(7, "big"))


def test_bad_varints_raise() -> None:
    with pytest.raises(DecodeError):
        decode_xor(b"\x00\x01" + b"\xff" * 11)
    with pytest.raises(DecodeError):
        decode_xor(b"\x00")


def test_encode_errors() -> None:
    with pytest.raises(EncodeError):
        encode_xor([1, 2], [1.0])
    with pytest.raises(EncodeError):
        encode_xor([1 << 63], [1.0])
    with pytest.raises(EncodeError):
        encode_xor([1.5], [1.0])  # type: ignore[list-item]
    with pytest.raises(EncodeError):
        encode_xor([True], [1.0])
    with pytest.raises(EncodeError):
        encode_xor(list(range(65536)), [0.0] * 65536)
    with pytest.raises(EncodeError):
        encode_xor([1], ["x"])  # type: ignore[list-item]
    assert len(decode_xor(encode_xor(list(range(65535)), [0.0] * 65535))[0]) == 65535


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_garbage_raises_only_decode_error(data: bytes) -> None:
    try:
        ts, vs = decode_xor(data)
    except DecodeError:
        return
    assert len(ts) == len(vs) == int.from_bytes(data[:2], "big")
    assert all(INT64_MIN <= t <= INT64_MAX for t in ts)


# ----------------------------------------------------------------------------- cut_chunks


def test_cut_chunks_like_prometheus_head() -> None:
    samples = [Sample(value=float(i % 7), timestamp=1_000 + 15_000 * i) for i in range(1000)]
    chunks = cut_chunks(samples)
    assert [int.from_bytes(c.data[:2], "big") for c in chunks] == [120] * 8 + [40]
    ts: list[int] = []
    vs: list[float] = []
    for c in chunks:
        assert c.type == ChunkEncoding.XOR
        t, v = decode_chunk(c)
        assert (c.min_time_ms, c.max_time_ms) == (t[0], t[-1])
        ts += t
        vs += v
    assert ts == [s.timestamp for s in samples] and vs == [s.value for s in samples]
    assert cut_chunks([]) == []
    assert [int.from_bytes(c.data[:2], "big") for c in cut_chunks(samples, max_samples=400)] == [
        400,
        400,
        200,
    ]


def test_cut_chunks_never_exceed_1024_bytes() -> None:
    rng = random.Random(7)
    samples = [
        Sample(value=f(rng.getrandbits(64)), timestamp=i * 1000 + rng.randint(0, 10**6))
        for i in range(3000)
    ]
    samples.sort(key=lambda s: s.timestamp)
    chunks = cut_chunks(samples, max_samples=1000)
    assert all(len(c.data) <= 1024 for c in chunks)
    assert max(len(c.data) for c in chunks) > 900  # filled, not cut needlessly early
    bits: list[int] = []
    for c in chunks:
        bits += decode_xor_bits(c.data)[1]
    assert bits == floats_to_bits([s.value for s in samples])
    with pytest.raises(ValueError):
        cut_chunks(samples, max_samples=0)
    with pytest.raises(ValueError):
        cut_chunks(samples, max_samples=65536)


# ----------------------------------------------------------------------------- properties

ordered_timestamps = st.lists(st.integers(INT64_MIN, INT64_MAX), max_size=40).map(sorted)
near_timestamps = st.lists(st.integers(-(10**6), 10**6), max_size=40).map(
    lambda xs: [1_700_000_000_000 + x for x in sorted(xs)]
)
value_bits = st.one_of(
    st.integers(0, (1 << 64) - 1),
    st.sampled_from([0, STALE, 0x7FF8000000000001, 0x3FF0000000000000, 0x8000000000000000]),
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(ordered_timestamps, near_timestamps), st.data())
def test_roundtrip_any_samples(ts: list[int], data: st.DataObject) -> None:
    bits = data.draw(st.lists(value_bits, min_size=len(ts), max_size=len(ts)))
    chunk = encode_xor_bits(ts, bits)
    assert decode_xor_bits(chunk) == (ts, bits)
    assert chunk == ref.ref_encode(ts, bits)
    assert ref.ref_decode(chunk) == (ts, bits)
    got_ts, got_vs = decode_xor(encode_xor(ts, bits_to_floats(bits)))
    assert got_ts == ts and floats_to_bits(got_vs) == bits


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(INT64_MIN, INT64_MAX), max_size=20), st.data())
def test_unordered_timestamps_match_reference(ts: list[int], data: st.DataObject) -> None:
    bits = data.draw(st.lists(value_bits, min_size=len(ts), max_size=len(ts)))
    chunk = encode_xor_bits(ts, bits)
    assert chunk == ref.ref_encode(ts, bits)
    assert decode_xor_bits(chunk) == (ts, bits)


def test_benchmark_script_runs(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ref.WORKLOADS:
        ref.bench_workload(name, 240, 240, 1)  # asserts promwire == reference on its data
    out = capsys.readouterr().out
    assert out.count("decode") == len(ref.WORKLOADS)
