"""A deterministic, dependency-free mutation fuzzer (no coverage needed).

:func:`fuzz_target` runs one target: first its seeds, then mutants of a
growing corpus. Without coverage feedback it keeps two kinds of mutants as
new parents: inputs that are *accepted* (valid but different) and inputs
refused with an error message not seen before (they reached new checks).
With the same ``seed`` and ``max_inputs`` a run is exactly reproducible.

Mutations are byte-level and protobuf-aware: bit flips, "interesting" bytes
(varint continuation, wire types, snappy tags), inserted varints and field
tags, deleted/duplicated/swapped ranges, truncation, length bytes nudged by
one, and splices with other corpus entries.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from .targets import Crash, Target, check

__all__ = ["Mutator", "Stats", "fuzz_target"]

_INTERESTING_BYTES = (0x00, 0x01, 0x02, 0x03, 0x07, 0x08, 0x0A, 0x7F, 0x80, 0xF0, 0xFC, 0xFE, 0xFF)
_INTERESTING_INTS = (
    0, 1, 2, 59, 60, 63, 64, 127, 128, 255, 256, 2047, 2048, 65535, 65536,
    (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1,
)  # fmt: skip


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class Mutator:
    """Turns one input into a nearby one, reproducibly for a given ``rng``."""

    def __init__(self, rng: random.Random, *, max_len: int = 1 << 16) -> None:
        self.rng = rng
        self.max_len = max_len

    def mutate(self, data: bytes, other: bytes) -> bytes:
        rng = self.rng
        buf = bytearray(data)
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
            self._one(buf, other)
        del buf[self.max_len :]
        return bytes(buf)

    def _one(self, buf: bytearray, other: bytes) -> None:
        rng = self.rng
        n = len(buf)
        op = rng.randrange(12)
        if n == 0 or op == 0:  # insert random bytes
            at = rng.randint(0, n)
            buf[at:at] = rng.randbytes(rng.choice((1, 1, 2, 4, 8)))
        elif op == 1:  # flip a bit
            buf[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 2:  # an interesting byte
            buf[rng.randrange(n)] = rng.choice(_INTERESTING_BYTES)
        elif op == 3:  # a varint of an interesting value, inserted or overwriting
            at = rng.randrange(n)
            v = _varint(rng.choice(_INTERESTING_INTS) + rng.choice((-1, 0, 0, 1)) & (2**64 - 1))
            if rng.random() < 0.5:
                buf[at:at] = v
            else:
                buf[at : at + len(v)] = v
        elif op == 4:  # a protobuf field tag: field 1..20, any wire type
            at = rng.randint(0, n)
            buf[at:at] = _varint(rng.randint(1, 20) << 3 | rng.randrange(8))
        elif op == 5:  # delete a range
            at = rng.randrange(n)
            del buf[at : at + rng.choice((1, 1, 2, 4, 16, 64))]
        elif op == 6:  # duplicate a range somewhere else
            at = rng.randrange(n)
            chunk = buf[at : at + rng.choice((1, 2, 4, 16, 64, 256))]
            to = rng.randint(0, n)
            buf[to:to] = chunk
        elif op == 7:  # truncate
            del buf[rng.randrange(n) :]
        elif op == 8:  # nudge a byte by one (a length or a count off by one)
            at = rng.randrange(n)
            buf[at] = (buf[at] + rng.choice((-1, 1))) & 0xFF
        elif op == 9 and other:  # splice: our head, the other input's tail
            a, b = rng.randrange(n), rng.randrange(len(other))
            buf[a:] = other[b:]
        elif op == 10 and other:  # insert a piece of the other input
            b = rng.randrange(len(other))
            at = rng.randint(0, n)
            buf[at:at] = other[b : b + rng.choice((1, 4, 16, 64))]
        else:  # swap two ranges' worth of bytes
            a, b = rng.randrange(n), rng.randrange(n)
            k = rng.choice((1, 2, 4, 8))
            x, y = bytes(buf[a : a + k]), bytes(buf[b : b + k])
            buf[b : b + len(y)] = x[: len(y)]
            buf[a : a + len(x)] = y[: len(x)]


@dataclass
class Stats:
    """What one target's run did."""

    target: str
    inputs: int = 0
    accepted: int = 0
    refused: int = 0
    corpus: int = 0
    refusal_kinds: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    crashes: dict[str, Crash] = field(default_factory=dict)  # one per distinct bug

    @property
    def crash_count(self) -> int:
        return len(self.crashes)


def fuzz_target(
    target: Target,
    seeds: tuple[bytes, ...],
    *,
    seed: int = 0,
    max_inputs: int | None = None,
    seconds: float | None = None,
    max_len: int = 1 << 16,
    max_corpus: int = 4000,
    crash_dir: Path | None = None,
) -> Stats:
    """Fuzz ``target`` until ``max_inputs`` inputs have run or ``seconds`` have passed."""
    if max_inputs is None and seconds is None:
        raise ValueError("give max_inputs or seconds")
    rng = random.Random(f"{seed}:{target.name}")
    mutator = Mutator(rng, max_len=max_len)
    stats = Stats(target.name)
    corpus: list[bytes] = list(seeds) or [b""]
    seen_inputs = set(corpus)
    seen_refusals: set[str] = set()
    start = time.perf_counter()
    deadline = None if seconds is None else start + seconds
    pending = list(corpus)  # seeds run as they are, first

    while True:
        if max_inputs is not None and stats.inputs >= max_inputs:
            break
        if deadline is not None and time.perf_counter() >= deadline:
            break
        data = pending.pop(0) if pending else mutator.mutate(rng.choice(corpus), rng.choice(corpus))
        t0 = time.perf_counter()
        try:
            refusal = check(target, data)
        except Crash as crash:
            refusal = None
            if crash.key not in stats.crashes:
                stats.crashes[crash.key] = crash
                if crash_dir is not None:
                    _save(crash_dir, crash)
            keep = False
        else:
            if refusal is None:
                stats.accepted += 1
                keep = True
            else:
                stats.refused += 1
                keep = refusal not in seen_refusals
                seen_refusals.add(refusal)
        elapsed = time.perf_counter() - t0
        stats.slowest = max(stats.slowest, elapsed)
        stats.inputs += 1
        if keep and data not in seen_inputs and len(corpus) < max_corpus:
            seen_inputs.add(data)
            corpus.append(data)

    stats.seconds = time.perf_counter() - start
    stats.corpus = len(corpus)
    stats.refusal_kinds = len(seen_refusals)
    return stats


def _save(crash_dir: Path, crash: Crash) -> None:
    crash_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(crash.data).hexdigest()[:16]
    stem = f"{crash.target.replace(':', '_').replace('.', '_')}-{digest}"
    (crash_dir / f"{stem}.bin").write_bytes(crash.data)
    (crash_dir / f"{stem}.txt").write_text(crash.format())
