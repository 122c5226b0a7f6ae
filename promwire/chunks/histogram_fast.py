"""The fast path of :func:`~promwire.chunks.histogram.decode_histogram_chunk`.

An integer histogram chunk is mostly varbit integers: per sample, three
delta-of-deltas (time, count, zero count), the sum (XOR-coded) and one
delta-of-delta per bucket. Read one at a time in Python, the buckets cost
most of a read. This path reads them in bulk instead:

* **A regular expression tokenises the varbit integers.** The chunk becomes
  one string of ``"0"``/``"1"`` characters; a pattern of ``k`` varbit groups
  (``0 | 10... | 110...... | ...``, one alternative per width, the unary
  prefixes make them exclusive) splits ``k`` integers off it in C with one
  ``match``. One match per sample covers a sample's buckets and the next
  sample's time, count and zero count; only the XOR-coded sum between them
  is read in Python (its width depends on the previous window).
* **Tokens become integers through a dict** (a token's string, e.g.
  ``"10011"``, to its value): ``map`` over the dict runs in C, and the same
  small values repeat all the time.
* **Sums run down columns.** Token ``k`` of every sample is bucket ``k``'s
  delta-of-delta over time, so ``accumulate(accumulate(column), initial=first)``
  gives the bucket's values (in C), and ``zip(*columns)`` turns them back into
  one list per histogram. Timestamps and counts likewise.

The results are those of the generic decoder (Python integers summed, then
reduced to int64/uint64 as Go's wrapping arithmetic would leave them). The
fast path gives up (returns ``None``) whenever it meets anything but the
common case - a stale marker, more buckets than :data:`MAX_FAST_BUCKETS`, a
token the patterns do not match (truncation), an impossible XOR window - and
the generic decoder then decodes the chunk, raising its errors.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from itertools import accumulate, chain, repeat

from ..codec import messages as m
from ..errors import DecodeError
from .bitstream import BitReader
from .histogram_layout import STALE_NAN_BITS, CounterResetHeader, Layout, hint_at, read_layout

__all__ = [
    "MAX_FAST_BUCKETS",
    "MAX_TOKENS",
    "HistogramColumns",
    "decode_columns",
    "decode_fast",
    "histograms_of",
]

#: Chunks with more buckets than this take the generic path (one compiled
#: pattern per bucket count is kept, so the count of patterns stays bounded).
MAX_FAST_BUCKETS = 256
#: The token -> value dict is emptied when it grows past this many entries
#: (about 10 MB at most; small values, the usual ones, come back at once).
MAX_TOKENS = 1 << 16
#: Bytes of a chunk the start is read from (layout and first sample fit in far fewer).
_PREFIX = 256

_MASK64 = (1 << 64) - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

# One varbit integer (bitstream.py's table): the prefix, then its payload.
_TOKEN = (
    "(0|10.{3}|110.{6}|1110.{9}|11110.{12}|111110.{18}|1111110.{25}|11111110.{56}|11111111.{64})"
)
# Token length -> (prefix bits, payload bits): the lengths are all different.
_WIDTHS = {5: (2, 3), 9: (3, 6), 13: (4, 9), 17: (5, 12), 24: (6, 18), 32: (7, 25), 64: (8, 56)}
_PATTERNS: dict[int, re.Pattern[str]] = {}


class _Values(dict[str, int]):
    """Token string -> signed value (``readVarbitInt``), filled on demand."""

    def __missing__(self, token: str) -> int:
        n = len(token)
        if n == 1:
            v = 0
        elif n == 72:  # 8 ones + 64 bits: a plain int64
            v = int(token[8:], 2)
            if v > _INT64_MAX:
                v -= 1 << 64
        else:
            prefix, bits = _WIDTHS[n]
            v = int(token[prefix:], 2)
            if v > 1 << (bits - 1):  # asymmetric two's complement
                v -= 1 << bits
        if len(self) >= MAX_TOKENS:
            self.clear()
        self[token] = v
        return v


_VALUES = _Values()


def _pattern(k: int) -> re.Pattern[str]:
    """A compiled pattern of ``k`` varbit tokens, each a group."""
    p = _PATTERNS.get(k)
    if p is None:
        p = _PATTERNS[k] = re.compile(_TOKEN * k, re.DOTALL)
    return p


def _wrap(values: list[int], lo: int, hi: int, fix: int) -> list[int]:
    """``values`` reduced into ``lo..hi`` modulo 2**64 (checked in bulk: rarely needed)."""
    if values and (min(values) < lo or max(values) > hi):
        return [((v - lo) & _MASK64) + lo if fix else v & _MASK64 for v in values]
    return values


@dataclass(frozen=True, slots=True)
class HistogramColumns:
    """A decoded ``HISTOGRAM`` chunk without stale markers, one tuple per field
    (bucket deltas: one tuple per histogram), as :func:`histograms_of` needs it."""

    layout: Layout
    header: CounterResetHeader
    counts: tuple[int, ...]
    sums: tuple[float, ...]
    zero_counts: tuple[int, ...]
    positive: tuple[tuple[int, ...], ...]  # positive_deltas of each histogram
    negative: tuple[tuple[int, ...], ...]
    timestamps: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.timestamps)


def decode_columns(data: bytes) -> HistogramColumns | None:
    """The columns of a ``HISTOGRAM`` chunk, or ``None`` when the chunk is not
    the common case (see the module docstring; an empty chunk is not either)."""
    if len(data) < 3 or not (data[0] or data[1]):
        return None
    count = (data[0] << 8) | data[1]
    header = CounterResetHeader(data[2] >> 6)
    size = len(data) * 8
    # The layout and the first sample's fields are near the start: only a
    # prefix is cut into the reader's words (the rest is read from ``bits``).
    r = BitReader(data[:_PREFIX], 24)
    try:  # the generic decoder raises the errors of a bad start
        layout = read_layout(r)
        npos = sum(s.length for s in layout.positive_spans)
        nb = npos + sum(s.length for s in layout.negative_spans)
        if nb > MAX_FAST_BUCKETS or nb > size - r.pos:
            return None
        t0 = r.varbit_int()
        cnt0 = r.varbit_uint()
        zcnt0 = r.varbit_uint()
        sum_bits = r.bits(64)
    except DecodeError:
        return None
    if r.pos > r.size or sum_bits == STALE_NAN_BITS:
        return None  # past the prefix (or the data): the generic path reads it all
    # The bit string, leading zeros kept (the 1 in front is cut off again).
    bits = bin(int.from_bytes(data, "big") | (1 << size))[3:]
    step = _pattern(nb + 3).match  # buckets of sample i, then t/count/zero count of i + 1
    p = r.pos
    lead = trail = 0  # Go's iterator starts with a zero window
    tokens: list[tuple[str | None, ...]] = []
    sums = [sum_bits]
    for _ in range(count - 1):
        mt = step(bits, p)
        if mt is None:
            return None
        tokens.append(mt.groups())
        p = mt.end()
        # The sum, XOR-coded: "0" the same bits, "10" + bits inside the
        # previous window, "11" + leading:5 + significant:6 + bits.
        if bits[p : p + 1] != "1":
            p += 1
        elif bits[p + 1 : p + 2] == "0":
            sig = 64 - lead - trail
            sum_bits ^= int(bits[p + 2 : p + 2 + sig] or "0", 2) << trail
            p += 2 + sig
        else:
            head = bits[p + 2 : p + 13]
            if len(head) < 11:
                return None
            lead = int(head[:5], 2)
            sig = int(head[5:], 2) or 64
            trail = 64 - lead - sig
            if trail < 0:
                return None
            sum_bits ^= int(bits[p + 13 : p + 13 + sig] or "0", 2) << trail
            p += 13 + sig
        if p > size or sum_bits == STALE_NAN_BITS:
            return None
        sums.append(sum_bits)
    last = _pattern(nb).match(bits, p)  # the last sample's buckets
    if last is None:
        return None
    tokens.append((*last.groups(), "0", "0", "0"))  # no next sample: dods of 0
    # Row i of ``vals``: nb bucket values of sample i (absolute for sample 0,
    # delta-of-deltas after it), then the dods of t, count, zero count of i + 1.
    vals = list(map(_VALUES.__getitem__, chain.from_iterable(tokens)))  # type: ignore[arg-type]
    width = nb + 3
    cols = [
        list(accumulate(accumulate(vals[k + width :: width]), initial=vals[k])) for k in range(nb)
    ]
    n1 = count - 1
    times = _wrap(
        list(accumulate(accumulate(vals[nb::width][:n1]), initial=t0)), _INT64_MIN, _INT64_MAX, 1
    )
    counts = _wrap(
        list(accumulate(accumulate(vals[nb + 1 :: width][:n1]), initial=cnt0)), 0, _MASK64, 0
    )
    zeros = _wrap(
        list(accumulate(accumulate(vals[nb + 2 :: width][:n1]), initial=zcnt0)), 0, _MASK64, 0
    )
    if cols and (min(map(min, cols)) < _INT64_MIN or max(map(max, cols)) > _INT64_MAX):
        cols = [_wrap(c, _INT64_MIN, _INT64_MAX, 1) for c in cols]
    return HistogramColumns(
        layout=layout,
        header=header,
        counts=tuple(counts),
        sums=struct.unpack(f"<{count}d", struct.pack(f"<{count}Q", *sums)),
        zero_counts=tuple(zeros),
        positive=tuple(zip(*cols[:npos], strict=True)) if npos else ((),) * count,
        negative=tuple(zip(*cols[npos:], strict=True)) if nb > npos else ((),) * count,
        timestamps=tuple(times),
    )


def histograms_of(c: HistogramColumns) -> list[m.Histogram]:
    """New :class:`~promwire.codec.messages.Histogram` objects for decoded columns
    (each call builds its own: callers may change them)."""
    layout = c.layout
    schema = layout.schema
    zt = layout.zero_threshold
    pspans = layout.positive_spans  # BucketSpan is frozen: lists share them safely
    nspans = layout.negative_spans
    hist = m.Histogram
    # Positional arguments, in the field order of Histogram (count_int,
    # count_float, sum, schema, zero_threshold, zero_count_int,
    # zero_count_float, negative_spans/deltas/counts, positive_spans/deltas/
    # counts, reset_hint, timestamp, custom_values): a keyword call costs ~70% more.
    return [
        hist(
            n,
            None,
            s,
            schema,
            zt,
            z,
            None,
            list(nspans),
            list(nd),
            [],
            list(pspans),
            list(pd),
            [],
            h,
            t,
            [],
        )
        for n, s, z, nd, pd, h, t in zip(
            c.counts,
            c.sums,
            c.zero_counts,
            c.negative,
            c.positive,
            chain((hint_at(c.header, 0),), repeat(hint_at(c.header, 1))),
            c.timestamps,
            strict=False,
        )
    ]


def decode_fast(data: bytes) -> list[m.Histogram] | None:
    """The histograms of a ``HISTOGRAM`` chunk, or ``None`` when the chunk is
    not the common case (see the module docstring)."""
    c = decode_columns(data)
    return None if c is None else histograms_of(c)
