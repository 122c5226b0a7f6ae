"""Streamed remote-read framing: PROTOCOL.md's worked frame, splits, limits, errors."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promwire
from promwire import (
    ChecksumError,
    Chunk,
    ChunkedReadResponse,
    ChunkedSeries,
    FrameError,
    Label,
    LimitExceeded,
    PromwireError,
    TruncatedStreamError,
)
from promwire.chunks.frames import FrameReader, aiter_frames, encode_frame, iter_frames

GOLDEN_CHUNK = bytes.fromhex("0006d00f3ff0000000000000e8073097ffe002b6032ffda8")
GOLDEN_MESSAGE = (
    bytes.fromhex("0a340a0e0a085f5f6e616d655f5f12027570122208e80710842f18012218") + GOLDEN_CHUNK
)
GOLDEN_FRAME = bytes.fromhex("36b35855d6") + GOLDEN_MESSAGE


def test_protocol_worked_frame() -> None:
    message = promwire.encode(
        ChunkedReadResponse(
            chunked_series=[
                ChunkedSeries(
                    labels=[Label("__name__", "up")],
                    chunks=[Chunk(min_time_ms=1000, max_time_ms=6020, type=1, data=GOLDEN_CHUNK)],
                )
            ]
        )
    )
    assert message == GOLDEN_MESSAGE and len(message) == 54
    frame = encode_frame(message)
    assert frame == GOLDEN_FRAME and len(frame) == 59
    assert list(iter_frames([frame])) == [message]


def test_fixture_streams_reencode_to_the_same_bytes(fixtures_dir: Path) -> None:
    paths = sorted((fixtures_dir / "rr_server").glob("*_streamed.response.bin"))
    assert len(paths) == 3
    for path in paths:
        raw = path.read_bytes()
        messages = list(iter_frames([raw]))
        assert messages
        assert b"".join(encode_frame(m) for m in messages) == raw
        # byte by byte gives the same frames
        assert list(iter_frames(raw[i : i + 1] for i in range(len(raw)))) == messages


def test_eof_at_boundary_ends_and_empty_frames_are_accepted() -> None:
    assert list(iter_frames([])) == []
    assert list(iter_frames([b"", b""])) == []
    stream = encode_frame(b"") + encode_frame(b"abc") + encode_frame(b"")
    assert encode_frame(b"") == b"\x00\x00\x00\x00\x00"
    assert list(iter_frames([stream])) == [b"", b"abc", b""]


def test_every_cut_inside_a_frame_is_truncation() -> None:
    frames = [encode_frame(b"x" * n) for n in (0, 1, 200, 3)]
    stream = b"".join(frames)
    boundaries = {0}
    for fr in frames:
        boundaries.add(max(boundaries) + len(fr))
    for cut in range(len(stream) + 1):
        if cut in boundaries:
            assert len(list(iter_frames([stream[:cut]]))) == sorted(boundaries).index(cut)
        else:
            with pytest.raises(TruncatedStreamError):
                list(iter_frames([stream[:cut]]))


def test_bad_crc() -> None:
    frame = bytearray(GOLDEN_FRAME)
    frame[-1] ^= 1
    with pytest.raises(ChecksumError) as info:
        list(iter_frames([bytes(frame)]))
    assert info.value.status == 400
    frame = bytearray(GOLDEN_FRAME)
    frame[2] ^= 0x80  # the checksum itself
    with pytest.raises(ChecksumError):
        list(iter_frames([bytes(frame)]))


def test_size_limit_is_checked_before_reading_the_frame() -> None:
    pulled = []

    def body() -> Iterator[bytes]:
        yield promwire.codec.wire.varint(50_000_001)  # declares 50 MB + 1
        pulled.append("more")
        raise AssertionError("the reader asked for the frame body")

    with pytest.raises(LimitExceeded):
        list(iter_frames(body()))
    assert pulled == []
    assert list(iter_frames([encode_frame(b"12345")], max_frame_size=5)) == [b"12345"]
    with pytest.raises(LimitExceeded):
        list(iter_frames([encode_frame(b"123456")], max_frame_size=5))


def test_overlong_length_prefix() -> None:
    with pytest.raises(FrameError):
        list(iter_frames([b"\x80" * 11]))


def test_prometheus_error_text_after_frames_is_an_error() -> None:
    # A server failing mid-stream appends plain text; readers must fail, after
    # yielding the good frames.
    stream = GOLDEN_FRAME + b"query timed out in expression evaluation\n"
    got = []
    with pytest.raises(PromwireError):
        for message in iter_frames([stream]):
            got.append(message)
    assert got == [GOLDEN_MESSAGE]


def test_frame_reader_sans_io() -> None:
    reader = FrameReader()
    reader.feed(GOLDEN_FRAME[:3])
    assert reader.next_frame() is None
    reader.feed(GOLDEN_FRAME[3:] + GOLDEN_FRAME[:1])
    assert reader.next_frame() == GOLDEN_MESSAGE
    assert reader.next_frame() is None
    assert reader.buffered == 1
    with pytest.raises(TruncatedStreamError):
        reader.close()
    assert reader.frames == 1


def test_async_variant() -> None:
    async def body(pieces: list[bytes]) -> AsyncIterator[bytes]:
        for piece in pieces:
            await asyncio.sleep(0)
            yield piece

    async def collect(pieces: list[bytes]) -> list[bytes]:
        return [m async for m in aiter_frames(body(pieces))]

    stream = GOLDEN_FRAME * 3
    assert asyncio.run(collect([stream[:7], stream[7:100], stream[100:]])) == [GOLDEN_MESSAGE] * 3
    with pytest.raises(TruncatedStreamError):
        asyncio.run(collect([stream[:-1]]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=6), st.lists(st.integers(0, 2000), max_size=8))
def test_any_split_round_trips(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(m) for m in messages)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    pieces = [stream[a:b] for a, b in itertools.pairwise(points)]
    assert list(iter_frames(pieces)) == messages


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=50), min_size=1, max_size=4), st.data())
def test_corrupted_streams_raise_only_promwire_errors(
    messages: list[bytes], data: st.DataObject
) -> None:
    stream = bytearray(b"".join(encode_frame(m) for m in messages))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(stream) - 1))
        stream[i] = data.draw(st.integers(0, 255))
    stream = stream[: data.draw(st.integers(0, len(stream)))]
    try:
        out = list(iter_frames([bytes(stream)], max_frame_size=1000))
    except PromwireError:
        return
    assert b"".join(encode_frame(m) for m in out) == bytes(stream)


def test_whole_body_as_bytes() -> None:
    assert list(iter_frames(GOLDEN_FRAME * 2)) == [GOLDEN_MESSAGE] * 2
    assert list(iter_frames(bytearray(GOLDEN_FRAME))) == [GOLDEN_MESSAGE]
