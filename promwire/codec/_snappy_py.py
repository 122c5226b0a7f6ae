"""Pure-Python snappy *block* format: the fallback when cramjam is missing.

:mod:`promwire.snappy` picks this backend when ``cramjam`` cannot be
imported or when ``PROMWIRE_SNAPPY=python`` asks for it; use that module,
not this one. Both functions work on whole blocks in memory and do no I/O.

The block format, in short: a little-endian base-128 varint giving the
uncompressed length, then a sequence of elements, each starting with a tag
byte whose two low bits give its kind:

* ``00`` literal: the length minus one is ``tag >> 2`` when below 60;
  60..63 say the length minus one follows in 1..4 little-endian bytes.
  The literal bytes follow.
* ``01`` copy, 1-byte offset: length ``4 + ((tag >> 2) & 7)``, offset
  ``(tag >> 5) << 8`` plus the next byte (11 bits).
* ``10`` copy, 2-byte offset: length ``1 + (tag >> 2)``, offset in the next
  two bytes (little-endian).
* ``11`` copy, 4-byte offset: as ``10`` with a four-byte offset.

A copy repeats ``length`` bytes starting ``offset`` bytes back in the output;
``offset < length`` is legal and repeats the last ``offset`` bytes.

The compressor is a greedy hash-table matcher over 64 KiB blocks, the
algorithm Google's snappy (and the Rust ``snap`` crate inside cramjam) uses;
it is written from the description of the algorithm, and its output is
meant to match theirs byte for byte (the tests compare with cramjam).
"""

from __future__ import annotations

import struct

from ..errors import DecodeError, LimitExceeded, SnappyError
from .wire import read_varint, varint

__all__ = ["compress", "decompress"]

_u32_at = struct.Struct("<I").unpack_from

#: The compressor works on independent 64 KiB blocks, so offsets fit in 16
#: bits and 4-byte-offset copies are never emitted (only decoded).
_BLOCK_SIZE = 1 << 16
_MAX_TABLE_SIZE = 1 << 14
#: No match search starts within the last 15 bytes of a block, so that
#: 4-byte loads at the candidate positions never run off the end.
_INPUT_MARGIN = 15
_MIN_MATCHED_BLOCK = 1 + 1 + _INPUT_MARGIN
_HASH_MUL = 0x1E35A7BD


# --------------------------------------------------------------------------
# Decompression
# --------------------------------------------------------------------------


def decompress(data: bytes, *, max_size: int) -> bytes:
    """Inflate a snappy block, validating every element.

    Raises :class:`SnappyError` for a missing/oversized preamble, a truncated
    element, a copy whose offset is 0 or reaches before the output start, or
    output longer or shorter than declared; :class:`LimitExceeded` (400) when
    the declared size is over ``max_size`` (checked before inflating).
    """
    try:
        size, pos = read_varint(data, 0)
    except DecodeError:
        raise SnappyError("snappy block has no valid length preamble") from None
    if size >= 1 << 32:
        raise SnappyError(f"snappy block declares an impossible size ({size} bytes)")
    if size > max_size:
        raise LimitExceeded(
            f"snappy block declares {size} bytes, over the limit of {max_size}", status=400
        )
    out = bytearray()
    olen = 0  # len(out), kept by hand: cheaper than calling len()
    n = len(data)
    while pos < n:
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            length = tag >> 2
            if length >= 60:
                # 60..63: the length minus one follows in 1..4 bytes.
                extra = length - 59
                if pos + extra > n:
                    raise SnappyError("snappy literal length is truncated")
                length = int.from_bytes(data[pos : pos + extra], "little")
                pos += extra
            end = pos + length + 1
            if end > n:
                raise SnappyError("snappy literal runs past the end of the block")
            out += data[pos:end]
            olen += end - pos
            pos = end
        else:
            if kind == 1:
                if pos >= n:
                    raise SnappyError("snappy copy is truncated")
                length = 4 + ((tag >> 2) & 7)
                offset = ((tag >> 5) << 8) | data[pos]
                pos += 1
            elif kind == 2:
                if pos + 2 > n:
                    raise SnappyError("snappy copy is truncated")
                length = 1 + (tag >> 2)
                offset = data[pos] | (data[pos + 1] << 8)
                pos += 2
            else:
                if pos + 4 > n:
                    raise SnappyError("snappy copy is truncated")
                length = 1 + (tag >> 2)
                offset = _u32_at(data, pos)[0]
                pos += 4
            if offset == 0 or offset > olen:
                raise SnappyError(
                    f"snappy copy offset {offset} is outside the {olen} bytes written so far"
                )
            start = olen - offset
            if offset >= length:
                # Source and destination do not overlap: one slice copy.
                out += out[start : start + length]
            else:
                # Overlapping copy: the output repeats its last `offset`
                # bytes, so tile that pattern and cut it to length.
                out += (out[start:] * (length // offset + 1))[:length]
            olen += length
        if olen > size:
            raise SnappyError(f"snappy block inflates past its declared {size} bytes")
    if olen != size:
        raise SnappyError(f"snappy block declared {size} bytes but inflated to {olen}")
    return bytes(out)


# --------------------------------------------------------------------------
# Compression
# --------------------------------------------------------------------------


def compress(data: bytes) -> bytes:
    """Compress ``data`` to one snappy block."""
    out = bytearray(varint(len(data)))
    if not data:
        return bytes(out)  # just the zero-length preamble, b"\x00"
    for start in range(0, len(data), _BLOCK_SIZE):
        block = data[start : start + _BLOCK_SIZE]
        if len(block) < _MIN_MATCHED_BLOCK:
            _emit_literal(out, block, 0, len(block))
        else:
            _compress_block(out, block)
    return bytes(out)


def _emit_literal(out: bytearray, src: bytes, start: int, end: int) -> None:
    n = end - start - 1
    if n < 60:
        out.append(n << 2)
    elif n < 0x100:
        out += bytes((60 << 2, n))
    elif n < 0x10000:
        out += bytes((61 << 2, n & 0xFF, n >> 8))
    elif n < 0x1000000:  # pragma: no cover - blocks are at most 64 KiB
        out += bytes((62 << 2, n & 0xFF, (n >> 8) & 0xFF, n >> 16))
    else:  # pragma: no cover
        out += bytes((63 << 2,)) + n.to_bytes(4, "little")
    out += src[start:end]


def _emit_copy(out: bytearray, offset: int, length: int) -> None:
    lo = offset & 0xFF
    hi = offset >> 8
    # Long matches go out as 64-byte copies; when what would remain is 1..3
    # bytes (too short for a 1-byte-offset copy) a 60-byte copy goes first.
    while length >= 68:
        out += bytes((63 << 2 | 2, lo, hi))
        length -= 64
    if length > 64:
        out += bytes((59 << 2 | 2, lo, hi))
        length -= 60
    if length < 12 and offset < 2048:
        out += bytes(((hi << 5) | ((length - 4) << 2) | 1, lo))
    else:
        out += bytes((((length - 1) << 2) | 2, lo, hi))


def _match_length(src: bytes, i: int, j: int, end: int) -> int:
    """How many bytes from ``src[i:end]`` equal those from ``src[j:]`` (``j < i``)."""
    start = i
    step = 32
    # XOR two little-endian integers read from equal-length slices: the
    # lowest set bit of the result sits in the first differing byte, so one
    # C-level step finds the mismatch within a whole chunk.
    while i < end:
        k = min(step, end - i)
        diff = int.from_bytes(src[i : i + k], "little") ^ int.from_bytes(src[j : j + k], "little")
        if diff:
            return i - start + ((diff & -diff).bit_length() - 1) // 8
        i += k
        j += k
        if step < 4096:
            step <<= 1
    return i - start


def _words(src: bytes) -> list[int]:
    """The little-endian 32-bit word at every offset of ``src`` (``len - 3`` of them)."""
    n = len(src) - 3
    words = [0] * n
    # Four C-level unpacks of aligned runs (offsets r, r+4, r+8, ...) woven
    # together by slice assignment: far cheaper than one unpack per offset.
    for r in range(4):
        count = (n - r + 3) // 4
        words[r::4] = struct.unpack_from(f"<{count}I", src, r)
    return words


def _compress_block(out: bytearray, src: bytes) -> None:
    n = len(src)
    shift = 24
    table_size = 256
    while table_size < _MAX_TABLE_SIZE and table_size < n:
        table_size <<= 1
        shift -= 1
    table = [0] * table_size
    words = _words(src)
    mul = _HASH_MUL
    limit = n - _INPUT_MARGIN
    next_emit = 0
    s = 1
    next_hash = ((words[s] * mul) & 0xFFFFFFFF) >> shift
    while True:
        # Look for a 4-byte match, skipping faster the longer none is found
        # (one more byte of stride every 32 misses): incompressible input
        # is crossed quickly.
        skip = 32
        next_s = s
        while True:
            s = next_s
            stride = skip >> 5
            next_s = s + stride
            skip += stride
            if next_s > limit:
                if next_emit < n:
                    _emit_literal(out, src, next_emit, n)
                return
            candidate = table[next_hash]
            table[next_hash] = s
            next_hash = ((words[next_s] * mul) & 0xFFFFFFFF) >> shift
            if words[s] == words[candidate]:
                break
        _emit_literal(out, src, next_emit, s)
        # Emit copies as long as the byte right after a match starts another.
        while True:
            offset = s - candidate
            matched = 4 + _match_length(src, s + 4, candidate + 4, n)
            s += matched
            if matched < 12 and offset < 2048:  # the common case, inlined
                out.append(((offset >> 8) << 5) | ((matched - 4) << 2) | 1)
                out.append(offset & 0xFF)
            else:
                _emit_copy(out, offset, matched)
            next_emit = s
            if s >= limit:
                if next_emit < n:
                    _emit_literal(out, src, next_emit, n)
                return
            # Index the last byte of the match, then try the next position.
            table[((words[s - 1] * mul) & 0xFFFFFFFF) >> shift] = s - 1
            cur = words[s]
            cur_hash = ((cur * mul) & 0xFFFFFFFF) >> shift
            candidate = table[cur_hash]
            table[cur_hash] = s
            if cur != words[candidate]:
                next_hash = ((words[s + 1] * mul) & 0xFFFFFFFF) >> shift
                s += 1
                break
