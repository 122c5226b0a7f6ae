"""Benchmark promwire's XOR chunk codec and CRC-32C against straightforward baselines.

    python3 benchmarks/bench_xor.py [--samples N] [--repeat R] [--baseline REV]

Prints decode and encode samples/s for promwire.chunks.xor and for the bit-by-bit
reference below (the textbook Gorilla codec, one bit per step, written from
PROTOCOL.md section 5), on fixed-seed workloads of 120-sample chunks, plus
CRC-32C MB/s for the pure-Python implementation and google_crc32c. With
``--baseline REV`` (a git revision, e.g. ``main``) the codec of that revision is
timed too, alternately with the current one in the same process.

The reference codec is also the independent oracle of tests/test_xor.py.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MASK64 = (1 << 64) - 1


# ----------------------------------------------------------------------------- reference codec


class BitWriter:
    """Go's ``bstream`` writer, bit by bit: ``count`` free bits in the last byte.

    As in Go, :meth:`byte` always appends the byte after the one it fills,
    and :meth:`bits` writes whole bytes through it: a stream whose last
    write was whole bytes on a byte boundary ends with one empty byte.
    """

    def __init__(self) -> None:
        self.out = bytearray()
        self.count = 0

    def bit(self, b: int) -> None:
        if self.count == 0:
            self.out.append(0)
            self.count = 8
        if b:
            self.out[-1] |= 1 << (self.count - 1)
        self.count -= 1

    def bits(self, value: int, n: int) -> None:
        while n >= 8:
            self.byte((value >> (n - 8)) & 0xFF)
            n -= 8
        for i in range(n - 1, -1, -1):
            self.bit((value >> i) & 1)

    def byte(self, b: int) -> None:
        if self.count == 0:
            self.out.append(0)
            self.count = 8
        self.out[-1] |= b >> (8 - self.count)
        self.out.append((b << self.count) & 0xFF)


class BitReader:
    """Bits read MSB-first, one at a time; EOF raises EOFError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            raise EOFError("truncated")
        b = (self.data[byte] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return b

    def bits(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | self.bit()
        return v

    def uvarint(self) -> int:
        result = shift = 0
        while True:
            b = self.bits(8)
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result & MASK64
            shift += 7


def _int64(u: int) -> int:
    u &= MASK64
    return u - (1 << 64) if u >> 63 else u


def _uvarint_bytes(u: int) -> list[int]:
    out = []
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return out


def _clz64(x: int) -> int:
    for n, i in enumerate(range(63, -1, -1)):
        if (x >> i) & 1:
            return n
    return 64


def _ctz64(x: int) -> int:
    for i in range(64):
        if (x >> i) & 1:
            return i
    return 64


def ref_encode(timestamps: Sequence[int], bits: Sequence[int]) -> bytes:
    """Reference XOR encoder (value bit patterns in, chunk bytes out)."""
    w = BitWriter()
    t_prev = v_prev = delta_prev = 0
    lead_w, trail_w = 0xFF, 0
    for i, (t, v) in enumerate(zip(timestamps, bits, strict=True)):
        if i == 0:
            for b in _uvarint_bytes(((t << 1) ^ (t >> 63)) & MASK64):
                w.byte(b)
            w.bits(v, 64)
        else:
            delta = (t - t_prev) & MASK64
            if i == 1:
                for b in _uvarint_bytes(delta):
                    w.byte(b)
            else:
                dod = _int64(delta - delta_prev)
                if dod == 0:
                    w.bit(0)
                else:
                    for prefix, plen, n in ((0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)):
                        if -((1 << (n - 1)) - 1) <= dod <= 1 << (n - 1):
                            w.bits(prefix, plen)
                            w.bits(dod & ((1 << n) - 1), n)
                            break
                    else:
                        w.bits(0b1111, 4)
                        w.bits(dod & MASK64, 64)
            x = v ^ v_prev
            if x == 0:
                w.bit(0)
            else:
                w.bit(1)
                lead, trail = min(_clz64(x), 31), _ctz64(x)
                if lead_w != 0xFF and lead >= lead_w and trail >= trail_w:
                    w.bit(0)
                    w.bits(x >> trail_w, 64 - lead_w - trail_w)
                else:
                    lead_w, trail_w = lead, trail
                    w.bit(1)
                    w.bits(lead, 5)
                    sig = 64 - lead - trail
                    w.bits(sig & 0x3F, 6)
                    w.bits(x >> trail, sig)
            delta_prev = delta
        t_prev, v_prev = t, v
    return len(timestamps).to_bytes(2, "big") + bytes(w.out)


def ref_decode(data: bytes) -> tuple[list[int], list[int]]:
    """Reference XOR decoder (chunk bytes in, timestamps and value bit patterns out)."""
    count = int.from_bytes(data[:2], "big")
    r = BitReader(data[2:])
    ts: list[int] = []
    vs: list[int] = []
    t = v = delta = 0
    lead = trail = 0
    for i in range(count):
        if i == 0:
            u = r.uvarint()
            t = (u >> 1) ^ -(u & 1)
            v = r.bits(64)
        else:
            if i == 1:
                delta = r.uvarint()
            else:
                prefix = 0
                for _ in range(4):
                    b = r.bit()
                    prefix = (prefix << 1) | b
                    if not b:
                        break
                n = {0b0: 0, 0b10: 14, 0b110: 17, 0b1110: 20, 0b1111: 64}[prefix]
                dod = r.bits(n) if n else 0
                if 0 < n < 64 and dod > 1 << (n - 1):
                    dod -= 1 << n
                delta = (delta + dod) & MASK64
            t = _int64(t + delta)
            if r.bit():
                if r.bit():
                    lead = r.bits(5)
                    sig = r.bits(6) or 64
                    trail = 64 - lead - sig
                    if trail < 0:
                        raise ValueError("bad window")
                v ^= r.bits(64 - lead - trail) << trail
        ts.append(t)
        vs.append(v)
    return ts, vs


# ----------------------------------------------------------------------------- workload


def workload(
    n: int, *, interval: int = 15_000, jitter: int = 5, kind: str = "gauge", seed: int = 1
) -> tuple[list[int], list[float]]:
    """Scrape-like samples: ``interval`` ms apart, +-``jitter`` ms, values of ``kind``.

    * ``gauge``: per sample 40 % unchanged, 40 % a small 2-decimal step, 20 %
      an integer jump - a mix of the three value-block kinds;
    * ``counter``: 30 % of scrapes add 1..10 to an integer counter;
    * ``constant``: always 1.0 (``up``).
    """
    rng = random.Random(seed)
    ts: list[int] = []
    vs: list[float] = []
    t = 1_700_000_000_000
    v = 100.0
    for _ in range(n):
        t += interval + (rng.randint(-jitter, jitter) if jitter else 0)
        r = rng.random()
        if kind == "constant":
            v = 1.0
        elif kind == "counter":
            if r < 0.3:
                v += rng.randint(1, 10)
        elif r < 0.4:
            pass
        elif r < 0.8:
            v = round(v + rng.uniform(-1, 1), 2)
        else:
            v = float(int(v) + rng.randint(1, 20))
        ts.append(t)
        vs.append(v)
    return ts, vs


def _rate(fn: Callable[[], object], n: int, repeat: int) -> float:
    """Items per second of CPU time (process time: robust on a shared machine), best of runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return n / max(best, 1e-9)


# Prometheus snaps scrape timestamps that jitter by <= 2 ms to the
# exact interval (prometheus/prometheus#7976, 2020), so "exact" is the usual shape
# of real chunks; the jittered ones put a dod block in every sample.
WORKLOADS = {
    "15s+-5ms gauge": {"interval": 15_000, "jitter": 5, "kind": "gauge"},
    "15s+-2ms counter": {"interval": 15_000, "jitter": 2, "kind": "counter"},
    "15s exact gauge": {"interval": 15_000, "jitter": 0, "kind": "gauge"},
    "1s exact counter": {"interval": 1_000, "jitter": 0, "kind": "counter"},
    "15s exact constant": {"interval": 15_000, "jitter": 0, "kind": "constant"},
}


def load_baseline(rev: str) -> ModuleType:
    """promwire/chunks/xor.py as of git revision ``rev``, imported beside the current one."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{rev}:promwire/chunks/xor.py"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    name = "promwire.chunks._xor_baseline"
    module = ModuleType(name)
    module.__package__ = "promwire.chunks"
    module.__file__ = f"{rev}:promwire/chunks/xor.py"
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def bench_workload(
    name: str, n: int, ref_n: int, repeat: int, baseline: ModuleType | None = None
) -> None:
    from promwire.chunks import xor
    from promwire.chunks.xor import decode_xor, encode_xor, floats_to_bits

    per = 120
    ts, vs = workload(n, **WORKLOADS[name])  # type: ignore[arg-type]
    spans = [(i, i + per) for i in range(0, n, per)]
    chunks = [encode_xor(ts[a:b], vs[a:b]) for a, b in spans]
    bits_per_sample = sum(map(len, chunks)) * 8 / n
    ref_spans = spans[: ref_n // per]
    bits = floats_to_bits(vs)
    for k, (a, b) in enumerate(ref_spans):
        assert ref_encode(ts[a:b], bits[a:b]) == chunks[k], "reference and promwire disagree"

    def dec() -> None:
        for c in chunks:
            decode_xor(c)

    def enc() -> None:
        for a, b in spans:
            encode_xor(ts[a:b], vs[a:b])

    def ref_dec() -> None:
        for c in chunks[: len(ref_spans)]:
            ref_decode(c)

    def ref_enc() -> None:
        for a, b in ref_spans:
            ref_encode(ts[a:b], bits[a:b])

    nr = len(ref_spans) * per
    d, e = _rate(dec, n, repeat), _rate(enc, n, repeat)
    rd, re_ = _rate(ref_dec, nr, 1), _rate(ref_enc, nr, 1)
    print(
        f"{name:<20} {bits_per_sample:5.1f}  decode {d / 1e6:5.2f} M/s (ref {rd / 1e6:.3f}, "
        f"{d / rd:3.0f}x)  encode {e / 1e6:5.2f} M/s (ref {re_ / 1e6:.3f}, {e / re_:3.0f}x)"
    )
    if baseline is None:
        return
    # Current vs baseline, timed alternately (a burst of load hits both), on
    # the entry points the stores and readers use: decode_xor_bits (SQLite
    # reads), decode_xor_columns (streamed reads into columns) and the
    # chunk encoder SQLite's compaction calls (_encode_prefix, 1024-byte cap).
    bits_spans = [(ts[a:b], bits[a:b]) for a, b in spans]
    # A STREAMED_XOR_CHUNKS body of the same samples, 1,000 per series, read
    # into columns as bench_columns does; the baseline's chunk decoder is put
    # in the reader's module for its turn.
    from promwire.chunks import streamed
    from promwire.codec.messages import Label, Sample, TimeSeries

    series = [
        TimeSeries(
            [Label("__name__", "bench"), Label("i", str(i))],
            [Sample(v, t) for t, v in zip(ts[i : i + 1000], vs[i : i + 1000], strict=True)],
        )
        for i in range(0, n, 1000)
    ]
    body = b"".join(streamed.stream_chunked_response([(0, series)]))

    def read_columns(mod: ModuleType) -> None:
        streamed.decode_xor_columns = mod.decode_xor_columns  # type: ignore[attr-defined]
        try:
            for _ in streamed.read_streamed_columns(body):
                pass
        finally:
            streamed.decode_xor_columns = xor.decode_xor_columns  # type: ignore[attr-defined]

    for label, entry in (
        ("decode_xor_bits", lambda mod: [mod.decode_xor_bits(c) for c in chunks]),
        ("decode_xor_columns", lambda mod: [mod.decode_xor_columns(c) for c in chunks]),
        ("read_streamed_columns", read_columns),
        (
            "encode (compaction)",
            lambda mod: [mod._encode_prefix(t, b, 0, per, 8192) for t, b in bits_spans],
        ),
    ):
        best = {"baseline": float("inf"), "current": float("inf")}
        for _ in range(repeat):
            for key, mod in (("baseline", baseline), ("current", xor)):
                start = time.process_time()
                entry(mod)
                best[key] = min(best[key], time.process_time() - start)
        old, new = n / best["baseline"] / 1e6, n / best["current"] / 1e6
        print(f"{'':<27}{label:<22} baseline {old:6.2f} M/s  now {new:6.2f} M/s  {new / old:4.2f}x")


def main() -> None:
    from promwire.chunks import checksum as crc

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--ref-samples", type=int, default=24_000, help="the reference is slow")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--baseline",
        metavar="REV",
        help="also time promwire/chunks/xor.py of this git revision, interleaved (e.g. main)",
    )
    args = ap.parse_args()
    baseline = load_baseline(args.baseline) if args.baseline else None

    n = args.samples - args.samples % 120
    print(f"python {sys.version.split()[0]}; {n} samples per workload in 120-sample chunks;")
    print("rates in samples per CPU second (best of --repeat); bits/sample = chunk size")
    print(f"{'workload':<20} bits")
    for name in WORKLOADS:
        bench_workload(name, n, min(args.ref_samples, n), args.repeat, baseline)

    blob = os.urandom(4 << 20)
    crc.crc32c_pure(blob[:4096])  # build the tables outside the timing
    pure = _rate(lambda: crc.crc32c_pure(blob), len(blob), args.repeat) / 1e6
    print(f"crc32c  pure          {pure:8.1f} MB/s")
    try:
        import google_crc32c
    except ImportError:
        print("crc32c  google_crc32c not installed")
    else:
        native = _rate(lambda: google_crc32c.value(blob), len(blob), args.repeat * 5) / 1e6
        print(f"crc32c  google_crc32c {native:8.1f} MB/s ({google_crc32c.implementation})")
    print(f"promwire.chunks.checksum.crc32c uses: {crc.IMPLEMENTATION}")


if __name__ == "__main__":
    main()
