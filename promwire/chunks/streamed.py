"""Streamed remote read (``STREAMED_XOR_CHUNKS``): both ends, no I/O.

Server side, :func:`stream_chunked_response` turns query results into the
frames of the response body, filled the way Prometheus fills them:

* queries in the order given, every frame carrying its ``query_index``;
* exactly one ``ChunkedSeries`` per frame, labels sorted by name;
* frame budget = ``max_bytes_in_frame`` minus the encoded size of the labels;
  chunks are appended, each subtracting its encoded size, until the budget is
  <= 0 or the series has no more chunks - so a frame always holds >= 1 chunk
  and may overshoot by one chunk; a long series continues in the next frame,
  repeating its labels; a series without chunks produces no frame.

Client side, :func:`read_streamed_response` (and :func:`aread_streamed_response`)
turns a body back into ``(query_index, TimeSeries)`` pairs: consecutive frames
of the same series (same ``query_index`` and labels) are joined, XOR chunks
decoded into samples, histogram chunks into histograms.
:func:`iter_chunked_series` gives the joined series with their raw chunks
instead (for encodings promwire does not decode).

Remote-read chunks may hold samples outside the queried range (whole TSDB
chunks are sent): clients filter by time. The readers return every sample
unless given ``start_ms``/``end_ms``.

Memory stays flat on both sides: one series (server) or one frame plus the
series being joined (client) at a time.
"""

from __future__ import annotations

import heapq
import struct
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, pairwise
from typing import Literal

from ..codec import encoder as _e
from ..codec import messages as m
from ..codec.columns import SeriesColumns
from ..codec.decoder import decode
from ..codec.encoder import encode
from ..codec.wire import MASK64, read_varint, varint
from ..errors import EncodeError
from .checksum import crc32c
from .float_histogram import decode_float_histogram_chunk
from .frames import DEFAULT_MAX_FRAME_SIZE, aiter_frames, iter_frames
from .histogram import decode_histogram_chunk
from .histogram_cut import cut_histogram_chunks
from .xor import SAMPLES_PER_CHUNK, UnsupportedChunk, cut_chunks, decode_xor, decode_xor_columns

__all__ = [
    "DEFAULT_MAX_BYTES_IN_FRAME",
    "STREAMED_CONTENT_TYPE",
    "EncodedSeries",
    "aiter_chunked_series",
    "aread_streamed_columns",
    "aread_streamed_response",
    "chunked_messages",
    "decode_series",
    "decode_series_columns",
    "decode_series_histograms",
    "iter_chunked_series",
    "read_streamed_columns",
    "read_streamed_response",
    "stream_chunked_response",
]

#: Content-Type of a streamed response (Prometheus' client matches it as a prefix; note the space).
STREAMED_CONTENT_TYPE = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
#: Prometheus' default ``--storage.remote.read-max-bytes-in-frame``.
DEFAULT_MAX_BYTES_IN_FRAME = 1_048_576

OnUnsupported = Literal["raise", "skip"]

# ----------------------------------------------------------------------------- server side


def _labels_key(labels: Sequence[m.Label]) -> tuple[tuple[str, str], ...]:
    """Sort key of a label set in Prometheus' order (name, value pairwise, then length)."""
    return tuple(sorted((lb.name, lb.value) for lb in labels))


_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_INT32_MAX = (1 << 31) - 1
# 12 <record size> | 08 <mint: 6-byte varint> 10 <maxt: 6-byte varint> 18 <type> 22 <data size>:
# a chunk's record before its data, sizes as one-byte (B) or two-byte (H) varints
_PACK_PREFIX = [
    struct.Struct(f"<B{size}BHHHBHHHBBB{data}").pack for size in ("B", "H") for data in ("B", "H")
]
#: The largest data a usual chunk's record holds with two-byte varint sizes.
_TWO_BYTE_DATA = (1 << 14) - 1 - 19


def _chunk_records(chunks: Sequence[m.Chunk]) -> tuple[list[bytes], list[int]]:
    """Every chunk's record in a ``ChunkedSeries`` as two pieces, and the size
    of every chunk's body: ``pieces[2i] + pieces[2i + 1] == b"\\x12" +
    varint(len(body)) + body`` and ``sizes[i] == len(body)`` with ``body =
    encode(chunks[i])``.

    The data is taken as it is (``pieces[2i + 1]``), never copied into a
    chunk body first. The generic encoder walks the field table (about 9 us
    a chunk, more than the rest of a streamed answer together); this writes
    the same bytes with one ``struct`` pack for the chunk a store yields: an
    ``XOR`` (or other small type) chunk of today's millisecond times (6-byte
    varints, from the encoder's 14-bit tables) and data under 16 kB
    (Prometheus cuts chunks at 1 kB). Other chunks of plain ints and bytes
    are written field by field (:func:`_other_prefix`); anything else (a
    bool, a negative enum, a bytearray, empty data) by the generic encoder,
    which encodes it or says what is wrong.
    """
    if not _e._pair_more:
        _e._build_pair_tables()
    more = _e._pair_more
    last = _e._pair_last
    packs = _PACK_PREFIX
    chunk_type = m.Chunk
    pieces: list[bytes] = []
    sizes: list[int] = []
    for chunk in chunks:
        if type(chunk) is chunk_type:
            mint = chunk.min_time_ms
            maxt = chunk.max_time_ms
            ctype = chunk.type
            data = chunk.data
            n = len(data) if type(data) is bytes else 0
            if (
                0 < n <= _TWO_BYTE_DATA
                and type(mint) is int
                and type(maxt) is int
                and 0x8_0000_0000 <= mint < 0x400_0000_0000
                and 0x8_0000_0000 <= maxt < 0x400_0000_0000
                and isinstance(ctype, int)
                and type(ctype) is not bool
                and 0 < ctype < 0x80
            ):
                size = n + (18 if n < 0x80 else 19)  # 17 bytes of fields, data size, data
                pieces.append(
                    packs[(size >= 0x80) * 2 + (n >= 0x80)](
                        0x12,
                        size if size < 0x80 else last[size],
                        0x08,
                        more[mint & 0x3FFF],
                        more[(mint >> 14) & 0x3FFF],
                        last[mint >> 28],
                        0x10,
                        more[maxt & 0x3FFF],
                        more[(maxt >> 14) & 0x3FFF],
                        last[maxt >> 28],
                        0x18,
                        ctype,
                        0x22,
                        n if n < 0x80 else last[n],
                    )
                )
                pieces.append(data)
                sizes.append(size)
                continue
            other = _other_prefix(chunk)
            if other is not None:
                pieces.append(other[0])
                pieces.append(data)
                sizes.append(other[1])
                continue
        body = encode(chunk)
        pieces.append(b"\x12" + varint(len(body)) + body)
        pieces.append(b"")
        sizes.append(len(body))
    return pieces, sizes


@dataclass(frozen=True, slots=True)
class EncodedSeries:
    """A series of a streamed answer whose chunks are already in wire form.

    A store that keeps chunk records (their ``ChunkedSeries`` field, tag,
    size and ``Chunk`` fields before the data) from one read to the next
    yields these instead of :class:`~promwire.codec.messages.ChunkedSeries`,
    so a read only joins bytes. ``pieces[2i] + pieces[2i + 1]`` is chunk
    ``i``'s record and ``sizes[i]`` the size of its ``Chunk`` body (what a
    frame's budget counts); make them with :meth:`of`. Labels are in any
    order (they are sorted when framed, as for a ``ChunkedSeries``).
    """

    labels: tuple[m.Label, ...]
    pieces: tuple[bytes, ...]
    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.pieces) != 2 * len(self.sizes):
            raise ValueError("EncodedSeries needs two pieces per chunk")

    @classmethod
    def of(cls, labels: Iterable[m.Label], chunks: Sequence[m.Chunk]) -> EncodedSeries:
        """The series of ``chunks`` (any encoding), encoded now."""
        pieces, sizes = _chunk_records(chunks)
        return cls(tuple(labels), tuple(pieces), tuple(sizes))


def _other_prefix(chunk: m.Chunk) -> tuple[bytes, int] | None:
    """The record of a chunk of plain ints and bytes with other times, type
    or data size, up to its data, field by field (the proto3 defaults, 0 and
    ``UNKNOWN``, left out; an ``int64`` in two's complement), and its body's
    size; ``None`` when a field is of another type or out of its range, or
    the data is empty."""
    mint = chunk.min_time_ms
    maxt = chunk.max_time_ms
    ctype = chunk.type
    data = chunk.data
    if (
        type(mint) is not int
        or type(maxt) is not int
        or type(data) is not bytes
        or not data
        or not isinstance(ctype, int)
        or type(ctype) is bool
        or not 0 <= ctype <= _INT32_MAX
        or not (_INT64_MIN <= mint <= _INT64_MAX and _INT64_MIN <= maxt <= _INT64_MAX)
    ):
        return None
    parts = []
    if mint:
        parts.append(b"\x08" + varint(mint & MASK64))
    if maxt:
        parts.append(b"\x10" + varint(maxt & MASK64))
    if ctype:
        parts.append(b"\x18" + varint(int(ctype)))
    parts.append(b"\x22" + varint(len(data)))
    head = b"".join(parts)
    size = len(head) + len(data)
    return b"\x12" + varint(size) + head, size


def _label_body_size(record: bytes) -> int:
    """The size of the ``Label`` body in its record ``0a <size> <body>``."""
    size, _ = read_varint(record, 1)
    return size


def _with_histogram_chunks(
    chunks: list[m.Chunk], histograms: list[m.Histogram], samples_per_chunk: int
) -> list[m.Chunk]:
    """XOR ``chunks`` and the histogram chunks cut from ``histograms``, by start time."""
    if any(a.timestamp > b.timestamp for a, b in pairwise(histograms)):
        histograms = sorted(histograms, key=lambda h: h.timestamp)
    cut = cut_histogram_chunks(histograms, max_samples=min(samples_per_chunk, 0xFFFF))
    if not chunks:
        return cut
    return sorted(chunks + cut, key=lambda c: c.min_time_ms)  # stable: floats first on a tie


#: What a streamed answer is made of: series to cut into chunks, chunks, encoded chunks.
AnySeries = m.TimeSeries | m.ChunkedSeries | EncodedSeries


def chunked_messages(
    results: Iterable[tuple[int, Iterable[AnySeries]]],
    *,
    max_bytes_in_frame: int = DEFAULT_MAX_BYTES_IN_FRAME,
    samples_per_chunk: int = SAMPLES_PER_CHUNK,
) -> Iterator[bytes]:
    """The encoded ``ChunkedReadResponse`` messages of :func:`stream_chunked_response`, unframed."""
    for pieces in _message_pieces(results, max_bytes_in_frame, samples_per_chunk):
        yield b"".join(pieces)


def _message_pieces(
    results: Iterable[tuple[int, Iterable[AnySeries]]],
    max_bytes_in_frame: int,
    samples_per_chunk: int,
) -> Iterator[list[bytes]]:
    """Each ``ChunkedReadResponse`` message as the pieces it is joined from
    (its chunks' data as they are)."""
    if max_bytes_in_frame <= 0:
        raise ValueError("max_bytes_in_frame must be > 0")
    for query_index, series_iterable in results:
        if not isinstance(query_index, int) or isinstance(query_index, bool):
            raise EncodeError(f"query_index must be an int, got {query_index!r}")
        # query_index is field 2 (int64, tag 0x10); 0 is the proto3 default, omitted.
        trailer = b"\x10" + varint(query_index & MASK64) if query_index else b""
        if isinstance(series_iterable, list):
            series_iterable = sorted(series_iterable, key=lambda s: _labels_key(s.labels))
        for series in series_iterable:
            pieces: Sequence[bytes]
            sizes: Sequence[int]
            if isinstance(series, EncodedSeries):
                pieces, sizes = series.pieces, series.sizes
            else:
                if isinstance(series, m.TimeSeries):
                    chunks = cut_chunks(series.samples, max_samples=samples_per_chunk)
                    if series.histograms:
                        chunks = _with_histogram_chunks(
                            chunks, series.histograms, samples_per_chunk
                        )
                else:
                    chunks = series.chunks
                pieces, sizes = _chunk_records(chunks)
            if not sizes:
                continue
            labels = sorted(series.labels, key=lambda lb: lb.name)
            label_records = [_e._label_record(lb) for lb in labels]
            labels_block = b"".join(label_records)
            # Prometheus subtracts the labels' own sizes, not their records'
            # (``0a <size> <label>``: two bytes more while a size fits one byte)
            if max(map(len, label_records), default=0) <= 129:
                labels_size = sum(map(len, label_records)) - 2 * len(label_records)
            else:
                labels_size = sum(map(_label_body_size, label_records))
            budget = max_bytes_in_frame - labels_size
            # A frame ends after the chunk that brings its sizes to the budget
            # (so it holds at least one chunk and may pass the budget by one),
            # or after the last chunk: found by bisecting the running sums.
            ends = list(accumulate(sizes))
            start = 0
            spent = 0
            while start < len(sizes):
                stop = min(bisect_left(ends, spent + budget, start), len(sizes) - 1) + 1
                body = pieces[2 * start : 2 * stop]
                size = len(labels_block) + sum(map(len, body))
                yield [b"\x0a", varint(size), labels_block, *body, trailer]
                spent = ends[stop - 1]
                start = stop


def stream_chunked_response(
    results: Iterable[tuple[int, Iterable[AnySeries]]],
    *,
    max_bytes_in_frame: int = DEFAULT_MAX_BYTES_IN_FRAME,
    samples_per_chunk: int = SAMPLES_PER_CHUNK,
) -> Iterator[bytes]:
    """Yield the frames of a ``STREAMED_XOR_CHUNKS`` response body, one at a time.

    ``results`` holds ``(query_index, series)`` per query, in request order.
    Series are :class:`~promwire.codec.messages.TimeSeries` (float samples in time
    order, cut into XOR chunks of ``samples_per_chunk`` samples, never more
    than 1024 bytes; native histograms cut into HISTOGRAM / FLOAT_HISTOGRAM
    chunks by :func:`~promwire.chunks.histogram_cut.cut_histogram_chunks`,
    at most ``samples_per_chunk`` each, chunks ordered by start time) or
    :class:`~promwire.codec.messages.ChunkedSeries` (chunks passed through as they
    are, any encoding).

    Series order: Prometheus sends each query's series sorted by label set.
    When ``series`` is a ``list`` it is sorted here; any other iterable is
    streamed in the order given (sort it yourself), so a generator is never
    materialised. Labels inside a series are sorted by name.

    Every frame holds one ``ChunkedSeries``; see the module docstring for how
    ``max_bytes_in_frame`` splits long series.
    """
    for pieces in _message_pieces(results, max_bytes_in_frame, samples_per_chunk):
        # The message joined, then its checksum in one call: a CRC carried
        # from piece to piece costs a call per chunk's two pieces (3x the
        # time of the extra copy of a 320 KB frame).
        message = b"".join(pieces)
        yield b"".join((varint(len(message)), crc32c(message).to_bytes(4, "big"), message))


# ----------------------------------------------------------------------------- client side


class _Joiner:
    """Joins consecutive frames of one series (same query_index and labels)."""

    def __init__(self) -> None:
        self._key: tuple[int, tuple[m.Label, ...]] | None = None
        self._series: m.ChunkedSeries | None = None

    def add(self, message: bytes) -> list[tuple[int, m.ChunkedSeries]]:
        response = decode(m.ChunkedReadResponse, message)
        done: list[tuple[int, m.ChunkedSeries]] = []
        query_index = response.query_index
        for series in response.chunked_series:
            key = (query_index, tuple(series.labels))
            if self._series is not None and key == self._key:
                self._series.chunks.extend(series.chunks)
                continue
            if self._series is not None and self._key is not None:
                done.append((self._key[0], self._series))
            self._key = key
            self._series = series
        return done

    def finish(self) -> list[tuple[int, m.ChunkedSeries]]:
        if self._series is None or self._key is None:
            return []
        done = [(self._key[0], self._series)]
        self._series = None
        self._key = None
        return done


def iter_chunked_series(
    chunks: Iterable[bytes] | bytes, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> Iterator[tuple[int, m.ChunkedSeries]]:
    """Yield ``(query_index, ChunkedSeries)`` from a streamed body, frames of a series joined.

    ``chunks`` is the body as byte pieces split anywhere. Chunks keep their
    raw bytes and encodings. Raises the errors of
    :func:`~promwire.chunks.frames.iter_frames` and
    :class:`~promwire.errors.DecodeError` for a frame that is not a
    ``ChunkedReadResponse``. A frame with several series is accepted.
    """
    joiner = _Joiner()
    for message in iter_frames(chunks, max_frame_size=max_frame_size):
        yield from joiner.add(message)
    yield from joiner.finish()


async def aiter_chunked_series(
    chunks: AsyncIterable[bytes], *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> AsyncIterator[tuple[int, m.ChunkedSeries]]:
    """Async twin of :func:`iter_chunked_series`."""
    joiner = _Joiner()
    async for message in aiter_frames(chunks, max_frame_size=max_frame_size):
        for item in joiner.add(message):
            yield item
    for item in joiner.finish():
        yield item


def _first(pair: tuple[int, float]) -> int:
    return pair[0]


def decode_series(
    series: m.ChunkedSeries,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    on_unsupported: OnUnsupported = "raise",
) -> tuple[list[int], list[float]]:
    """Decode a series' chunks into ``(timestamps, values)`` in time order.

    Chunks in order and not overlapping (the usual case) are concatenated;
    otherwise samples are merged by timestamp and a timestamp seen in an
    earlier chunk wins over a later duplicate. ``start_ms``/``end_ms``
    (inclusive, optional) drop samples outside the range. Non-XOR chunks
    raise :class:`~promwire.chunks.xor.UnsupportedChunk` (a
    :class:`~promwire.errors.UnsupportedChunkEncoding` holding the chunk), or
    are left out with ``on_unsupported="skip"``.
    """
    parts: list[tuple[list[int], list[float]]] = []
    ordered = True
    last = None
    for chunk in series.chunks:
        if int(chunk.type) != m.ChunkEncoding.XOR:
            if on_unsupported == "skip":
                continue
            raise UnsupportedChunk(chunk)
        ts, vs = decode_xor(chunk.data)
        if not ts:
            continue
        if last is not None and ts[0] <= last:
            ordered = False
        last = ts[-1]
        parts.append((ts, vs))
    if not parts:
        return [], []
    if len(parts) == 1:
        timestamps, values = parts[0]
    elif ordered:
        timestamps = list(chain.from_iterable(ts for ts, _ in parts))
        values = list(chain.from_iterable(vs for _, vs in parts))
    else:
        # heapq.merge is stable: on equal timestamps the earlier chunk comes first.
        timestamps, values = [], []
        merged = heapq.merge(*(zip(ts, vs, strict=True) for ts, vs in parts), key=_first)
        for t, v in merged:
            if not timestamps or t != timestamps[-1]:
                timestamps.append(t)
                values.append(v)
    if start_ms is not None or end_ms is not None:
        lo = start_ms if start_ms is not None else -(1 << 63)
        hi = end_ms if end_ms is not None else (1 << 63) - 1
        if min(timestamps) < lo or max(timestamps) > hi:
            keep = [i for i, t in enumerate(timestamps) if lo <= t <= hi]
            timestamps = [timestamps[i] for i in keep]
            values = [values[i] for i in keep]
    return timestamps, values


_HISTOGRAM_DECODERS = {
    m.ChunkEncoding.HISTOGRAM: decode_histogram_chunk,
    m.ChunkEncoding.FLOAT_HISTOGRAM: decode_float_histogram_chunk,
}


def _timestamp(h: m.Histogram) -> int:
    return h.timestamp


def decode_series_histograms(
    series: m.ChunkedSeries, *, start_ms: int | None = None, end_ms: int | None = None
) -> list[m.Histogram]:
    """Decode a series' ``HISTOGRAM`` and ``FLOAT_HISTOGRAM`` chunks, in time order.

    Other chunks are ignored (:func:`decode_series` reads the XOR ones).
    Overlapping chunks are merged like :func:`decode_series` does (the
    earlier chunk wins a duplicate timestamp); ``start_ms``/``end_ms``
    (inclusive, optional) drop histograms outside the range. Each histogram
    carries its ``timestamp`` and the reset hint Prometheus reports (see
    :func:`~promwire.chunks.histogram_layout.hint_at`). Raises
    :class:`~promwire.errors.DecodeError` for a corrupt chunk.
    """
    parts: list[list[m.Histogram]] = []
    ordered = True
    last = None
    for chunk in series.chunks:
        decoder = _HISTOGRAM_DECODERS.get(int(chunk.type))  # type: ignore[call-overload]
        if decoder is None:
            continue
        hs = decoder(chunk.data)
        if not hs:
            continue
        if last is not None and hs[0].timestamp <= last:
            ordered = False
        last = hs[-1].timestamp
        parts.append(hs)
    out: list[m.Histogram]
    if not ordered:
        out = []
        for h in heapq.merge(*parts, key=_timestamp):
            if not out or h.timestamp != out[-1].timestamp:
                out.append(h)
    else:
        out = list(chain.from_iterable(parts))
    if start_ms is not None or end_ms is not None:
        lo = start_ms if start_ms is not None else -(1 << 63)
        hi = end_ms if end_ms is not None else (1 << 63) - 1
        out = [h for h in out if lo <= h.timestamp <= hi]
    return out


def _split_histograms(
    series: m.ChunkedSeries, start_ms: int | None, end_ms: int | None
) -> tuple[list[m.Histogram], m.ChunkedSeries]:
    """The series' histograms in range, and the series without its histogram chunks."""
    if not any(int(c.type) in _HISTOGRAM_DECODERS for c in series.chunks):
        return [], series
    histograms = decode_series_histograms(series, start_ms=start_ms, end_ms=end_ms)
    others = [c for c in series.chunks if int(c.type) not in _HISTOGRAM_DECODERS]
    return histograms, m.ChunkedSeries(labels=series.labels, chunks=others)


def _to_timeseries(
    series: m.ChunkedSeries,
    start_ms: int | None,
    end_ms: int | None,
    on_unsupported: OnUnsupported,
) -> m.TimeSeries:
    histograms, series = _split_histograms(series, start_ms, end_ms)
    ts, vs = decode_series(series, start_ms=start_ms, end_ms=end_ms, on_unsupported=on_unsupported)
    sample = m.Sample
    return m.TimeSeries(
        labels=list(series.labels), samples=list(map(sample, vs, ts)), histograms=histograms
    )


def read_streamed_response(
    chunks: Iterable[bytes] | bytes,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    start_ms: int | None = None,
    end_ms: int | None = None,
    on_unsupported: OnUnsupported = "raise",
) -> Iterator[tuple[int, m.TimeSeries]]:
    """Yield ``(query_index, TimeSeries)`` from a ``STREAMED_XOR_CHUNKS`` body.

    ``chunks``: the body as byte pieces split anywhere (e.g. an HTTP response
    read in blocks), or the whole body as one ``bytes``. Frames of one series
    are joined and its XOR chunks decoded into ``samples`` (see
    :func:`decode_series` for overlapping chunks).

    Nothing is filtered by default: completed TSDB chunks are sent whole and
    may reach outside the query's range (Prometheus 2.42 trims only the
    head's open chunk), so pass the query's ``start_ms``/``end_ms``
    (inclusive) to get exactly its samples.

    ``HISTOGRAM`` and ``FLOAT_HISTOGRAM`` chunks become the series'
    ``histograms`` (see :func:`decode_series_histograms`). Chunks of other
    encodings (XOR2, the ``*_ST`` ones, unknown numbers) raise
    :class:`~promwire.chunks.xor.UnsupportedChunk`, or are skipped with
    ``on_unsupported="skip"`` (the series is then still yielded, with the
    samples and histograms it has, possibly none). Use
    :func:`iter_chunked_series` for the raw chunks. ``max_frame_size``
    limits each frame's declared size (Prometheus' client default,
    50 000 000 bytes).
    """
    for query_index, series in iter_chunked_series(chunks, max_frame_size=max_frame_size):
        yield query_index, _to_timeseries(series, start_ms, end_ms, on_unsupported)


async def aread_streamed_response(
    chunks: AsyncIterable[bytes],
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    start_ms: int | None = None,
    end_ms: int | None = None,
    on_unsupported: OnUnsupported = "raise",
) -> AsyncIterator[tuple[int, m.TimeSeries]]:
    """Async twin of :func:`read_streamed_response` over an async iterable of bytes."""
    async for query_index, series in aiter_chunked_series(chunks, max_frame_size=max_frame_size):
        yield query_index, _to_timeseries(series, start_ms, end_ms, on_unsupported)


# ------------------------------------------------------------------ columns


def decode_series_columns(
    series: m.ChunkedSeries,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    on_unsupported: OnUnsupported = "raise",
) -> SeriesColumns:
    """:func:`decode_series` into a :class:`~promwire.codec.columns.SeriesColumns`.

    XOR chunks are decoded straight into ``array('q')``/``array('d')``
    (:func:`~promwire.chunks.xor.decode_xor_columns`) and joined with
    ``array.extend`` (a copy of raw memory), and the time range is cut with
    two binary searches: no object per sample. Chunks that overlap or come
    out of order take :func:`decode_series`' merge instead. Native histogram
    chunks become ``histograms`` (:func:`decode_series_histograms`). The same
    errors and ``on_unsupported`` rule as :func:`decode_series`.
    """
    histograms, series = _split_histograms(series, start_ms, end_ms)
    timestamps: array[int] = array("q")
    values: array[float] = array("d")
    last = None
    for chunk in series.chunks:
        if int(chunk.type) != m.ChunkEncoding.XOR:
            if on_unsupported == "skip":
                continue
            raise UnsupportedChunk(chunk)
        ts, vs = decode_xor_columns(chunk.data)
        if not ts:
            continue
        if last is not None and ts[0] <= last:  # overlapping: merge the slow way
            merged_ts, merged_vs = decode_series(series, on_unsupported=on_unsupported)
            timestamps = array("q", merged_ts)
            values = array("d", merged_vs)  # a float's double is copied as it is
            break
        last = ts[-1]
        timestamps.extend(ts)
        values.extend(vs)
    if timestamps and (start_ms is not None or end_ms is not None):
        lo = start_ms if start_ms is not None else -(1 << 63)
        hi = end_ms if end_ms is not None else (1 << 63) - 1
        if timestamps[0] < lo or timestamps[-1] > hi:  # sorted: two binary searches
            a = bisect_left(timestamps, lo)
            b = bisect_right(timestamps, hi)
            timestamps = timestamps[a:b]
            values = values[a:b]
    return SeriesColumns(tuple(series.labels), timestamps, values, histograms)


def read_streamed_columns(
    chunks: Iterable[bytes] | bytes,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    start_ms: int | None = None,
    end_ms: int | None = None,
    on_unsupported: OnUnsupported = "raise",
) -> Iterator[tuple[int, SeriesColumns]]:
    """:func:`read_streamed_response` yielding ``(query_index, SeriesColumns)`` instead.

    Same arguments and errors; each series' float samples come as
    ``array('q')`` timestamps and ``array('d')`` values.
    """
    for query_index, series in iter_chunked_series(chunks, max_frame_size=max_frame_size):
        yield (
            query_index,
            decode_series_columns(
                series, start_ms=start_ms, end_ms=end_ms, on_unsupported=on_unsupported
            ),
        )


async def aread_streamed_columns(
    chunks: AsyncIterable[bytes],
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    start_ms: int | None = None,
    end_ms: int | None = None,
    on_unsupported: OnUnsupported = "raise",
) -> AsyncIterator[tuple[int, SeriesColumns]]:
    """Async twin of :func:`read_streamed_columns` over an async iterable of bytes."""
    async for query_index, series in aiter_chunked_series(chunks, max_frame_size=max_frame_size):
        yield (
            query_index,
            decode_series_columns(
                series, start_ms=start_ms, end_ms=end_ms, on_unsupported=on_unsupported
            ),
        )
