"""Bit-level reader and writer for Prometheus' histogram chunks.

Histogram chunks (:mod:`promwire.chunks.histogram`,
:mod:`promwire.chunks.float_histogram`) are written MSB-first into a byte
stream, like TSDB's ``bstream``. Three encodings are used on top of raw bits:

* **varbit** integers (``varbit.go``): a unary prefix of up to eight bits picks
  the width of the payload::

      0                    value 0
      10       + 3 bits    -3 ... 4          (signed) / 0 ... 7        (unsigned)
      110      + 6 bits    -31 ... 32                 / 0 ... 63
      1110     + 9 bits    -255 ... 256               / 0 ... 511
      11110    + 12 bits   -2047 ... 2048             / 0 ... 4095
      111110   + 18 bits   -131071 ... 131072         / 0 ... 262143
      1111110  + 25 bits   -16777215 ... 16777216     / 0 ... 33554431
      11111110 + 56 bits   -(2**55 - 1) ... 2**55     / 0 ... 2**56 - 1
      11111111 + 64 bits   anything (two's complement)

  Signed payloads are two's complement, read asymmetrically: a payload ``p``
  greater than ``2**(n-1)`` means ``p - 2**n``.

* **XOR** values (Gorilla, as in XOR chunks): ``0`` when the bits repeat,
  ``10`` + the significant bits inside the previous (leading, trailing) window,
  ``11`` + leading:5 + significant:6 + bits for a new window (leading capped at
  31, 64 significant bits written as 0). Every XOR-coded field keeps its own
  window, which starts as "no window yet".

The reader works on a zero-padded copy of the data; callers check
:attr:`BitReader.pos` against :attr:`BitReader.size` to detect truncation.
Everything here raises only :class:`~promwire.errors.DecodeError`.
"""

from __future__ import annotations

from ..errors import DecodeError

__all__ = ["NO_WINDOW", "BitReader", "BitWriter", "add_varbit_dods", "varbit_int_at", "xor_fields"]

MASK64 = (1 << 64) - 1
_INT64_MIN = -(1 << 63)
#: Window state of an XOR field before its first non-repeating value.
NO_WINDOW = 0xFF

# (prefix bits, payload bits) by the first 8 bits of a varbit number, indexed
# by the count of leading one bits (0..8).
_VARBIT = [(1, 0), (2, 3), (3, 6), (4, 9), (5, 12), (6, 18), (7, 25), (8, 56), (8, 64)]
_LEADING_ONES = [8 - (((~b) & 0xFF).bit_length()) for b in range(256)]


# By the first 8 bits of a varbit int with at least one leading 1:
# (total bits, payload mask, largest positive payload, 2**payload bits).
# Payloads above "largest positive" are negative (asymmetric two's complement;
# for 64 bits that is plain int64).
_VARBIT_INT = [(0, 0, 0, 0)] * 128 + [
    (p + n, (1 << n) - 1, (1 << (n - 1)) if n < 64 else (1 << 63) - 1, 1 << n)
    for p, n in (_VARBIT[_LEADING_ONES[b]] for b in range(128, 256))
]


def varbit_int_at(words: list[int], p: int) -> tuple[int, int]:
    """The varbit int at bit ``p`` of a :class:`BitReader`'s ``words``, and the next ``p``.

    One word holds it whole: a read starts at most 127 bits into a 256-bit
    word and takes at most 72 bits.
    """
    w = words[p >> 7]
    off = p & 127
    top = (w >> (248 - off)) & 0xFF
    if top < 0x80:  # "0": the value 0, one bit
        return 0, p + 1
    total, mask, half, full = _VARBIT_INT[top]
    v = (w >> (256 - off - total)) & mask
    return (v - full if v > half else v), p + total


def add_varbit_dods(words: list[int], p: int, deltas: list[int], values: list[int]) -> int:
    """Read one varbit delta-of-delta per bucket: ``deltas[i] += dod; values[i] += deltas[i]``.

    The integer histogram decoder's inner loop (every bucket of every
    sample), inlined from :func:`varbit_int_at`. Returns the next ``p``.
    """
    table = _VARBIT_INT
    for i in range(len(deltas)):
        w = words[p >> 7]
        off = p & 127
        top = (w >> (248 - off)) & 0xFF
        if top < 0x80:  # dod 0, the common case: one bit
            p += 1
            values[i] += deltas[i]
            continue
        total, mask, half, full = table[top]
        v = (w >> (256 - off - total)) & mask
        if v > half:
            v -= full
        p += total
        d = deltas[i] + v
        deltas[i] = d
        values[i] += d
    return p


def xor_fields(
    words: list[int], p: int, values: list[int], leads: list[int], trails: list[int], start: int
) -> int:
    """Read one XOR value for each field ``start..`` (float histogram decoder's inner loop).

    ``values`` are uint64 bit patterns, ``leads``/``trails`` each field's
    window; all updated in place. Returns the next ``p``; a window that does
    not fit 64 bits raises :class:`DecodeError`.
    """
    for i in range(start, len(values)):
        w = words[p >> 7]
        off = p & 127
        top = (w >> (254 - off)) & 3
        if top < 0b10:  # "0": repeat
            p += 1
            continue
        if top == 0b10:  # "10": the previous window (2 + <= 64 bits fit the word)
            trail = trails[i]
            sig = 64 - leads[i] - trail
            values[i] ^= ((w >> (254 - off - sig)) & ((1 << sig) - 1)) << trail
            p += 2 + sig
            continue
        lead = (w >> (249 - off)) & 0x1F  # "11" + leading:5 + significant:6 + bits
        sig = ((w >> (243 - off)) & 0x3F) or 64
        trail = 64 - lead - sig
        if trail < 0:
            raise DecodeError(
                f"corrupt histogram chunk: window of {lead} leading + {sig} significant bits"
            )
        leads[i] = lead
        trails[i] = trail
        values[i] ^= ((w >> (243 - off - sig)) & ((1 << sig) - 1)) << trail
        p += 13 + sig
    return p


def _varbit_code(v: int) -> tuple[int, int]:
    """Prefix and payload of the varbit int ``v`` (an int64, not 0) and their bit count."""
    if -3 <= v <= 4:
        return (0b10 << 3) | (v & 0x7), 5
    if -31 <= v <= 32:
        return (0b110 << 6) | (v & 0x3F), 9
    if -255 <= v <= 256:
        return (0b1110 << 9) | (v & 0x1FF), 13
    if -2047 <= v <= 2048:
        return (0b11110 << 12) | (v & 0xFFF), 17
    if -131071 <= v <= 131072:
        return (0b111110 << 18) | (v & 0x3FFFF), 24
    if -16777215 <= v <= 16777216:
        return (0b1111110 << 25) | (v & 0x1FFFFFF), 32
    if -(1 << 55) + 1 <= v <= 1 << 55:
        return (0b11111110 << 56) | (v & ((1 << 56) - 1)), 64
    return (0b11111111 << 64) | (v & MASK64), 72


def _wrap64(v: int) -> int:
    """Reduce to int64 the way Go's wrapping arithmetic does."""
    return ((v - _INT64_MIN) & MASK64) + _INT64_MIN


class BitReader:
    """Reads bits MSB-first from ``data`` starting at bit ``pos``.

    The data is cut into 256-bit words starting every 128 bits (consecutive
    words overlap by 128 bits), so any read of up to 128 bits is one shift and
    one mask of a small integer. 64 zero bytes of padding let reads run past
    the end; ``pos > size`` afterwards means the data was truncated, and a
    read far past the end raises :class:`DecodeError`.
    """

    __slots__ = ("pos", "size", "words")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        padded = bytes(data) + bytes(64)
        self.words = [
            int.from_bytes(padded[i : i + 32], "big") for i in range(0, len(data) + 16, 16)
        ]
        self.pos = pos
        self.size = len(data) * 8

    def bits(self, n: int) -> int:
        """The next ``n`` bits (``n <= 128``) as an unsigned integer."""
        p = self.pos
        try:
            w = self.words[p >> 7]
        except IndexError:
            raise DecodeError("truncated histogram chunk") from None
        self.pos = p + n
        return (w >> (256 - (p & 127) - n)) & ((1 << n) - 1)

    def varbit_uint(self) -> int:
        """A varbit-encoded unsigned integer (``readVarbitUint``)."""
        p = self.pos
        try:
            w = self.words[p >> 7]
        except IndexError:
            raise DecodeError("truncated histogram chunk") from None
        off = p & 127
        prefix, size = _VARBIT[_LEADING_ONES[(w >> (248 - off)) & 0xFF]]
        if size == 0:
            self.pos = p + 1
            return 0
        self.pos = p + prefix
        return self.bits(size)

    def varbit_int(self) -> int:
        """A varbit-encoded signed integer (``readVarbitInt``; :func:`varbit_int_at`)."""
        try:
            v, self.pos = varbit_int_at(self.words, self.pos)
        except IndexError:
            raise DecodeError("truncated histogram chunk") from None
        return v

    def xor(self, value: int, lead: int, trail: int) -> tuple[int, int, int]:
        """One XOR-coded value: ``(value_bits, lead, trail)`` after reading it."""
        top = self.bits(2)
        if top < 0b10:  # "0": repeat (one bit only)
            self.pos -= 1
            return value, lead, trail
        if top == 0b10:  # "10": the previous window
            if lead == NO_WINDOW:
                raise DecodeError("corrupt histogram chunk: XOR window reused before it was set")
            sig = 64 - lead - trail
        else:  # "11": a new window
            lead = self.bits(5)
            sig = self.bits(6) or 64
            trail = 64 - lead - sig
            if trail < 0:
                raise DecodeError(
                    f"corrupt histogram chunk: window of {lead} leading + {sig} significant bits"
                )
        return value ^ (self.bits(sig) << trail), lead, trail


class BitWriter:
    """Collects bits MSB-first; :meth:`getvalue` pads the last byte with zeros.

    Bits are gathered in a small integer accumulator and flushed to a
    bytearray once it holds a few hundred bits, so shifts stay cheap.

    One quirk of Go's ``bstream`` is kept: ``writeBits`` writes whole bytes
    with ``writeByte``, which always appends the byte after the one it
    fills. When a chunk's last ``writeBits`` call is a multiple of 8 bits
    and ends on a byte boundary, that appended byte stays, empty: Prometheus'
    chunk then ends with one zero byte more. ``_whole`` remembers whether the
    last Go call this writer stands for was such a whole-bytes write.
    """

    __slots__ = ("_acc", "_nacc", "_out", "_whole")

    def __init__(self) -> None:
        self._out = bytearray()
        self._acc = 0
        self._nacc = 0
        self._whole = False

    def write(self, value: int, n: int, whole: bool | None = None) -> None:
        """Append the low ``n`` bits of ``value`` (two's complement for negatives).

        ``whole``: whether Go's last ``writeBits`` call for these bits wrote
        whole bytes (default: ``n`` is a multiple of 8, as for one call).
        """
        self._whole = n % 8 == 0 if whole is None else whole
        self._acc = (self._acc << n) | (value & ((1 << n) - 1))
        self._nacc += n
        if self._nacc >= 256:
            keep = self._nacc & 7
            self._out += (self._acc >> keep).to_bytes(self._nacc >> 3, "big")
            self._acc &= (1 << keep) - 1
            self._nacc = keep

    def varbit_int(self, v: int) -> None:
        """``putVarbitInt``: ``v`` must already be an int64."""
        if v == 0:
            self.write(0, 1)
        else:
            code, n = _varbit_code(v)
            self.write(code, n, n >= 64)  # payloads of 56 and 64 bits are whole bytes

    def varbit_dods(self, values: list[int], last: list[int], deltas: list[int]) -> None:
        """The integer histogram encoder's inner loop, one bucket after the other:
        ``d = values[i] - last[i]``, write the varbit int ``d - deltas[i]``, then
        ``deltas[i] = d`` and ``last[i] = values[i]`` (int64 wrap-around, as in Go).

        Bits go straight into the accumulator (no per-value method call).
        """
        acc = self._acc
        nacc = self._nacc
        whole = self._whole
        lo = _INT64_MIN
        hi = -_INT64_MIN - 1
        for i, v in enumerate(values):
            d = v - last[i]
            if not lo <= d <= hi:
                d = _wrap64(d)
            dod = d - deltas[i]
            deltas[i] = d
            last[i] = v
            if dod == 0:  # the common case: one 0 bit
                acc <<= 1
                nacc += 1
                whole = False
            else:
                if not lo <= dod <= hi:
                    dod = _wrap64(dod)
                code, n = _varbit_code(dod)
                acc = (acc << n) | code
                nacc += n
                whole = n >= 64
            if nacc >= 256:
                keep = nacc & 7
                self._out += (acc >> keep).to_bytes(nacc >> 3, "big")
                acc &= (1 << keep) - 1
                nacc = keep
        self._acc = acc
        self._nacc = nacc
        self._whole = whole

    def varbit_uint(self, v: int) -> None:
        """``putVarbitUint``: ``v`` must already be a uint64."""
        if v == 0:
            self.write(0, 1)
        elif v < 1 << 3:
            self.write((0b10 << 3) | v, 5)
        elif v < 1 << 6:
            self.write((0b110 << 6) | v, 9, False)
        elif v < 1 << 9:
            self.write((0b1110 << 9) | v, 13)
        elif v < 1 << 12:
            self.write((0b11110 << 12) | v, 17)
        elif v < 1 << 18:
            self.write((0b111110 << 18) | v, 24, False)
        elif v < 1 << 25:
            self.write((0b1111110 << 25) | v, 32, False)
        elif v < 1 << 56:
            self.write((0b11111110 << 56) | v, 64, True)
        else:
            self.write((0b11111111 << 64) | v, 72, True)

    def xor(self, new: int, old: int, lead_w: int, trail_w: int) -> tuple[int, int]:
        """``xorWrite`` of value bits ``new`` after ``old``; returns the window after it."""
        x = new ^ old
        if x == 0:
            self.write(0, 1)
            return lead_w, trail_w
        lead = 64 - x.bit_length()
        if lead > 31:
            lead = 31
        trail = (x & -x).bit_length() - 1
        if lead_w != NO_WINDOW and lead >= lead_w and trail >= trail_w:
            sig = 64 - lead_w - trail_w
            self.write((0b10 << sig) | (x >> trail_w), 2 + sig, sig % 8 == 0)
            return lead_w, trail_w
        sig = 64 - lead - trail
        self.write(
            (((0b11 << 5 | lead) << 6 | (sig & 0x3F)) << sig) | (x >> trail), 13 + sig, sig % 8 == 0
        )
        return lead, trail

    def size(self) -> int:
        """``len(self.getvalue())``, without building the bytes."""
        n = len(self._out) + ((self._nacc + 7) >> 3)
        return n + 1 if self._whole and not self._nacc & 7 else n

    def getvalue(self) -> bytes:
        """The bytes written so far, the last one padded with zero bits (plus the
        empty byte Go leaves after a final whole-bytes write on a byte boundary)."""
        out = bytes(self._out)
        if self._nacc:
            pad = -self._nacc & 7
            out += (self._acc << pad).to_bytes((self._nacc + pad) >> 3, "big")
        if self._whole and not self._nacc & 7:
            out += b"\x00"
        return out
