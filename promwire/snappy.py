"""Snappy *block* (raw) format, the only compression remote write/read use.

Backed by cramjam. The framed ("streaming") snappy format is refused: both
remote write specs forbid it, and it is recognisable by its stream identifier.

The declared decompressed size (the varint preamble of a snappy block) is
checked against ``max_decompressed_size`` *before* anything is inflated, so a
48-byte body that declares gigabytes costs nothing.
"""

from __future__ import annotations

import cramjam

from .errors import LimitExceeded, SnappyError
from .wire import read_varint

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    "compress",
    "decompress",
    "declared_size",
]

#: Prometheus' own receive limit for the decoded body (32 MiB).
DEFAULT_MAX_DECOMPRESSED_SIZE = 32 * 1024 * 1024

_FRAMED_MAGIC = b"\xff\x06\x00\x00sNaPpY"


def declared_size(data: bytes | bytearray | memoryview) -> int:
    """The decompressed size a snappy block declares in its preamble."""
    buf = bytes(data[:10])
    if buf.startswith(_FRAMED_MAGIC[:4]):
        raise SnappyError("framed snappy stream: remote storage uses the snappy block format")
    try:
        size, _ = read_varint(buf, 0)
    except Exception:
        raise SnappyError("snappy block has no valid length preamble") from None
    if size >= 1 << 32:
        raise SnappyError(f"snappy block declares an impossible size ({size} bytes)")
    return size


def decompress(
    data: bytes | bytearray | memoryview,
    *,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
) -> bytes:
    """Inflate a snappy block, refusing one that declares more than the limit.

    Raises :class:`~promwire.errors.LimitExceeded` (status 400) when the
    declared size exceeds ``max_decompressed_size`` and
    :class:`~promwire.errors.SnappyError` for anything that is not a valid
    snappy block (including framed snappy and plain uncompressed protobuf).
    """
    if not data:
        raise SnappyError("empty body: a snappy block is at least one byte")
    size = declared_size(data)
    if size > max_decompressed_size:
        raise LimitExceeded(
            f"snappy block declares {size} bytes, over the limit of {max_decompressed_size}",
            status=400,
        )
    try:
        out = cramjam.snappy.decompress_raw(bytes(data) if type(data) is memoryview else data)
    except Exception as exc:
        raise SnappyError(f"invalid snappy block: {exc}") from None
    result = bytes(out)
    if len(result) != size:
        raise SnappyError(f"snappy block declared {size} bytes but inflated to {len(result)}")
    return result


def compress(data: bytes | bytearray | memoryview) -> bytes:
    """Compress to a snappy block (raw format)."""
    return bytes(cramjam.snappy.compress_raw(bytes(data)))
