"""Protobuf wire primitives: varints, zigzag, tags, fixed 64-bit doubles, skipping.

Everything that knows how protobuf lays out bits lives here; the message
codecs (:mod:`promwire.decode`, :mod:`promwire.encode`) only combine these.

Readers take ``(buf, pos)`` and return ``(value, new_pos)``; they never slice.
They raise :class:`~promwire.errors.DecodeError` on malformed input. Bounds
against the end of an enclosing sub-message are checked by the caller (a
read that runs past the *buffer* raises ``IndexError``/``struct.error``,
which the public ``decode`` turns into ``DecodeError``).
"""

from __future__ import annotations

import struct

from ..errors import DecodeError, EncodeError

__all__ = [
    "I32",
    "I64",
    "LEN",
    "MASK64",
    "VARINT",
    "double_bits",
    "pack_double",
    "read_varint",
    "skip_field",
    "skip_unknown",
    "tag",
    "to_int32",
    "to_int64",
    "unpack_double",
    "varint",
    "zigzag_decode",
    "zigzag_encode",
]

VARINT = 0
I64 = 1
LEN = 2
SGROUP = 3
EGROUP = 4
I32 = 5

MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

_double = struct.Struct("<d")
#: ``unpack_double(buf, pos)[0]`` reads a little-endian double without slicing.
unpack_double = _double.unpack_from
#: ``pack_double(x)`` gives the 8 wire bytes; struct copies the bits, so NaN payloads survive.
pack_double = _double.pack
_bits = struct.Struct("<Q")


def double_bits(value: float) -> int:
    """The IEEE-754 bit pattern of ``value`` as an unsigned 64-bit integer."""
    return int(_bits.unpack(_double.pack(value))[0])


def bits_double(bits: int) -> float:
    """The double whose IEEE-754 bit pattern is ``bits`` (the inverse of :func:`double_bits`)."""
    return float(_double.unpack(_bits.pack(bits))[0])


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Read a base-128 varint of at most 10 bytes starting at ``pos``.

    Returns ``(value, new_pos)`` with ``value`` an unsigned 64-bit integer
    (bits beyond 64 in a tenth byte are dropped, as protobuf does).
    """
    result = 0
    shift = 0
    while True:
        try:
            byte = buf[pos]
        except IndexError:
            raise DecodeError("truncated varint") from None
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & MASK64, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes")


def to_int64(u: int) -> int:
    """Reinterpret an unsigned 64-bit varint value as ``int64`` (two's complement)."""
    return u - (1 << 64) if u > INT64_MAX else u


def to_int32(u: int) -> int:
    """Truncate a varint value to 32 bits and read it as signed (``int32``, enums)."""
    u &= MASK32
    return u - (1 << 32) if u & 0x80000000 else u


def zigzag_decode(u: int) -> int:
    """Undo zigzag encoding (``sint32``/``sint64``)."""
    return (u >> 1) ^ -(u & 1)


def zigzag_encode(n: int) -> int:
    """Zigzag-encode a signed integer (64-bit form; equals the 32-bit one in range)."""
    return ((n << 1) ^ (n >> 63)) & MASK64


def skip_field(buf: bytes, pos: int, end: int, wire_type: int) -> int:
    """Skip one field's payload of ``wire_type`` at ``pos``; return the new position.

    Groups (3/4) and the undefined wire types 6/7 are rejected.
    """
    if wire_type == VARINT:
        _, pos = read_varint(buf, pos)
    elif wire_type == I64:
        pos += 8
    elif wire_type == LEN:
        n, pos = read_varint(buf, pos)
        pos += n
    elif wire_type == I32:
        pos += 4
    else:
        raise DecodeError(f"unsupported wire type {wire_type}")
    if pos > end:
        raise DecodeError("field runs past the end of its message")
    return pos


MAX_FIELD_NUMBER = (1 << 29) - 1


def skip_unknown(buf: bytes, pos: int, end: int, tag_value: int, where: str) -> int:
    """Skip an unknown field whose tag ``tag_value`` was just read; return the new position.

    Rejects what protobuf rejects: field number 0, field numbers above
    2**29 - 1, and the wire types :func:`skip_field` refuses. ``where`` names
    the message for the error.
    """
    number = tag_value >> 3
    if number == 0:
        raise DecodeError(f"{where}: field number 0")
    if number > MAX_FIELD_NUMBER:
        raise DecodeError(f"{where}: field number {number} out of range")
    return skip_field(buf, pos, end, tag_value & 7)


# ----------------------------------------------------------------------------- writing

# Varints below 2**14 cover almost every tag, length and small integer: keep them ready.
_SMALL = [bytes([i]) if i < 0x80 else bytes([(i & 0x7F) | 0x80, i >> 7]) for i in range(1 << 14)]


def varint(value: int) -> bytes:
    """Encode an unsigned value (< 2**64) as a varint.

    Callers convert signed ``int64`` first (``value & MASK64``), which is what
    makes a negative ``int64`` ten bytes long.
    """
    if 0 <= value < 16384:
        return _SMALL[value]
    if value < 0 or value > MASK64:
        raise EncodeError(f"integer {value} does not fit in 64 bits")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(field_number: int, wire_type: int) -> bytes:
    """The encoded key of a field."""
    return varint((field_number << 3) | wire_type)
