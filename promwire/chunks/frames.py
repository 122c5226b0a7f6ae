"""Framing of streamed remote-read responses (``STREAMED_XOR_CHUNKS``).

The body is a plain sequence of frames, no header and no trailer::

    uvarint N | uint32 big-endian CRC-32C of the message | N bytes message

End of stream is EOF exactly at a frame boundary. :class:`FrameReader` is the
sans-I/O parser (feed bytes, pull frames); :func:`iter_frames` and
:func:`aiter_frames` drive it over a (sync or async) iterable of byte chunks
split anywhere. Errors, all :class:`~promwire.errors.DecodeError`\\ s except
the limit:

* :class:`~promwire.errors.LimitExceeded` - a frame declares more than
  ``max_frame_size`` bytes; raised as soon as the length prefix is read,
  before the message is buffered (Prometheus' client limit, 50 000 000);
* :class:`~promwire.errors.TruncatedStreamError` - EOF inside a frame;
* :class:`~promwire.errors.ChecksumError` - CRC-32C mismatch;
* :class:`~promwire.errors.FrameError` - unreadable length prefix.

Messages are returned as raw bytes; decoding them as ``ChunkedReadResponse``
is :mod:`promwire.chunks.streamed`'s job.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

from ..codec.wire import varint
from ..errors import ChecksumError, FrameError, LimitExceeded, TruncatedStreamError
from .checksum import crc32c

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "FrameReader",
    "aiter_frames",
    "encode_frame",
    "iter_frames",
]

#: Prometheus' default ``chunked_read_limit``: the largest frame a reader accepts.
DEFAULT_MAX_FRAME_SIZE = 50_000_000


def encode_frame(message: bytes) -> bytes:
    """One frame: uvarint length, big-endian CRC-32C of ``message``, ``message``."""
    return varint(len(message)) + crc32c(message).to_bytes(4, "big") + message


class FrameReader:
    """Incremental frame parser: :meth:`feed` bytes, :meth:`next_frame` messages.

    ::

        reader = FrameReader()
        for piece in body:
            reader.feed(piece)
            while (msg := reader.next_frame()) is not None:
                handle(msg)
        reader.close()  # TruncatedStreamError if the body stopped inside a frame

    ``max_frame_size`` bounds what one frame may declare (and so the memory
    the reader buffers, which never exceeds one frame plus one fed piece).
    """

    def __init__(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 0:
            raise ValueError("max_frame_size must be >= 0")
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        # Parsed header of the frame being assembled: (message start, message end).
        self._pending: tuple[int, int] | None = None
        self.frames = 0  # frames returned so far

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes."""
        self._buf += data

    def _header(self) -> tuple[int, int] | None:
        buf = self._buf
        size = 0
        shift = 0
        pos = 0
        end = len(buf)
        while True:
            if pos == end:
                return None  # need more bytes for the length prefix
            byte = buf[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift >= 70:
                raise FrameError("frame length prefix longer than 10 bytes")
        if size > self.max_frame_size:
            raise LimitExceeded(
                f"frame of {size} bytes exceeds max_frame_size={self.max_frame_size}",
                status=400,
            )
        return pos, pos + 4 + size

    def next_frame(self) -> bytes | None:
        """The next complete message, or ``None`` if more bytes are needed."""
        if self._pending is None:
            self._pending = self._header()
            if self._pending is None:
                return None
        start, end = self._pending
        buf = self._buf
        if len(buf) < end:
            return None
        message = bytes(buf[start + 4 : end])
        expected = int.from_bytes(buf[start : start + 4], "big")
        # bytearray keeps an offset for deletions at the front: this is cheap.
        del buf[:end]
        self._pending = None
        if crc32c(message) != expected:
            raise ChecksumError(
                f"frame {self.frames}: CRC-32C {crc32c(message):08x} != declared {expected:08x}"
            )
        self.frames += 1
        return message

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf)

    def close(self) -> None:
        """Declare EOF; raise :class:`TruncatedStreamError` if inside a frame."""
        if self._buf:
            raise TruncatedStreamError(
                f"stream ended inside frame {self.frames} ({len(self._buf)} bytes left over)"
            )


def iter_frames(
    chunks: Iterable[bytes] | bytes, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> Iterator[bytes]:
    """Yield the messages of a framed stream given as byte chunks of any split.

    A single ``bytes`` object is taken as the whole stream.
    """
    if isinstance(chunks, (bytes, bytearray, memoryview)):
        chunks = [bytes(chunks)]
    reader = FrameReader(max_frame_size=max_frame_size)
    for piece in chunks:
        reader.feed(piece)
        while (message := reader.next_frame()) is not None:
            yield message
    reader.close()


async def aiter_frames(
    chunks: AsyncIterable[bytes], *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> AsyncIterator[bytes]:
    """Async twin of :func:`iter_frames` over an async iterable of byte chunks."""
    reader = FrameReader(max_frame_size=max_frame_size)
    async for piece in chunks:
        reader.feed(piece)
        while (message := reader.next_frame()) is not None:
            yield message
    reader.close()
