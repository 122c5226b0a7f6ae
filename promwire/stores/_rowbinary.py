"""ClickHouse's ``RowBinary`` format: what the ClickHouse store sends and reads.

Integers and floats are little-endian fixed width, a ``String`` is a varint
length and its bytes, an ``Array`` a varint count and its elements. Floats
travel as their 8 bytes, so NaN payloads and the stale marker round-trip
bit for bit (no text conversion anywhere).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

__all__ = ["RowReader", "string", "strings"]

_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def string(value: str | bytes) -> bytes:
    """A ``String`` value."""
    data = value.encode() if isinstance(value, str) else value
    return _varint(len(data)) + data


def strings(values: Sequence[str]) -> bytes:
    """An ``Array(String)`` value."""
    return _varint(len(values)) + b"".join(string(v) for v in values)


class RowReader:
    """Reads values one after another from a ``RowBinary`` answer (an integer cursor)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def more(self) -> bool:
        return self.pos < len(self.data)

    def u64(self) -> int:
        value = int(_U64.unpack_from(self.data, self.pos)[0])
        self.pos += 8
        return value

    def i64(self) -> int:
        value = int(_I64.unpack_from(self.data, self.pos)[0])
        self.pos += 8
        return value

    def f64(self) -> float:
        value = float(_F64.unpack_from(self.data, self.pos)[0])
        self.pos += 8
        return value

    def _length(self) -> int:
        data, pos = self.data, self.pos
        shift = n = 0
        while True:
            b = data[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
        self.pos = pos
        return n

    def raw(self) -> bytes:
        """A ``String`` as bytes."""
        n = self._length()
        value = self.data[self.pos : self.pos + n]
        if len(value) != n:
            raise ValueError("RowBinary answer ends inside a string")
        self.pos += n
        return value

    def text(self) -> str:
        """A ``String`` decoded as UTF-8."""
        return self.raw().decode("utf-8", "replace")

    def texts(self) -> list[str]:
        """An ``Array(String)``."""
        return [self.text() for _ in range(self._length())]
