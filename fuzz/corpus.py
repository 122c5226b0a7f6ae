"""Seed inputs for the fuzz targets, built from the Prometheus 2.42 captures.

Every kind of input a target can ask for (``Target.seeds``):

* ``payload`` - uncompressed protobuf: every snappy capture inflated, the
  v2 form of every captured write request, and each message class' empty
  encoding;
* ``snappy`` - the captured snappy bodies as sent, and the payloads compressed;
* ``stream`` - captured streamed remote-read answers (framed, not snappy);
* ``chunked`` - the single ``ChunkedReadResponse`` messages in those frames;
* ``xor`` - the XOR chunks inside them;
* ``histogram`` / ``float-histogram`` - the integer histogram chunks inside
  them, and float histogram chunks promwire encodes from their histograms
  (Prometheus 2.42 writes float histograms only from remote write);
* ``text`` - write requests in promwire's text form;
* ``json`` - write requests in proto3 JSON.
* ``regex`` - a label-matcher regex, a NUL byte, and a value to match.

The captures live in ``../shared/fixtures/prometheus-2.42`` next to the
repository (``PROMWIRE_FIXTURES`` overrides the path).
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import promwire
from promwire import snappy
from promwire.codec.fields import SCHEMAS
from promwire.errors import PromwireError

__all__ = ["FIXTURES", "REGEX_SEEDS", "seeds"]

#: (pattern, value) pairs covering the RE2 syntax, for the ``regex`` targets.
REGEX_SEEDS = (
    ("(a+)+b", "a" * 40),
    ("([a-z_]+)+!", "node_cpu_seconds_total"),
    ("api|web.*", "web-1"),
    ("(?i)K\\p{Greek}+\\pL", "\u212a\u03b1βx"),
    ("[[:alpha:]][^\\d\\s]{2,5}\\b.", "abc_d!"),
    ("(?s:.)*\\Q.*\\E(?m:^x$)\\z", "a\n.*\nx"),
    ("\\x{41}\\101[\\x00-\\x{10FFFF}]?(?U)a*?", "AAa"),
    ("(?P<name>a{2,3}|b{0,}|c{1})*\\A", "aab"),
    ("a)|(b", "xb"),
    ("\\1(?=a)(?<=b)\\C{1001}", ""),
)

FIXTURES = Path(
    os.environ.get(
        "PROMWIRE_FIXTURES",
        Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "prometheus-2.42",
    )
)


@cache
def _captures() -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """(snappy bodies, other bodies) among the captures, in a stable order."""
    compressed, other = [], []
    for path in sorted(FIXTURES.glob("*/*.bin")):
        raw = path.read_bytes()
        try:
            snappy.decompress(raw)
        except PromwireError:
            other.append(raw)
        else:
            compressed.append(raw)
    if not compressed:
        raise FileNotFoundError(f"no snappy captures under {FIXTURES}")
    return tuple(compressed), tuple(other)


def _write_requests() -> list[promwire.WriteRequest]:
    out = []
    for body in _captures()[0]:
        try:
            out.append(promwire.decode(promwire.WriteRequest, snappy.decompress(body)))
        except PromwireError:
            continue
    # Only the real remote-write bodies hold series or metadata as a WriteRequest.
    return [r for r in out if r.timeseries or r.metadata]


def _frames(stream: bytes) -> list[bytes]:
    from promwire.chunks import frames

    try:
        return list(frames.iter_frames([stream]))
    except PromwireError:
        return []


@cache
def _histogram_seeds(floats: bool) -> list[bytes]:
    """Histogram chunks of the captures; float ones re-encoded from them."""
    from promwire.chunks.float_histogram import encode_float_histogram_chunk
    from promwire.chunks.histogram import decode_histogram_chunk

    out: list[bytes] = []
    for message in seeds("chunked"):
        response = promwire.decode(promwire.ChunkedReadResponse, message)
        for series in response.chunked_series:
            for chunk in series.chunks:
                if int(chunk.type) != promwire.ChunkEncoding.HISTOGRAM:
                    continue
                if not floats:
                    out.append(chunk.data)
                    continue
                hs = decode_histogram_chunk(chunk.data)[:30]
                for h in hs:
                    h.count_float = float(h.count_int or 0)
                    h.zero_count_float = float(h.zero_count_int or 0)
                    h.count_int = h.zero_count_int = None
                    total = 0
                    for d in h.positive_deltas:
                        total += d
                        h.positive_counts.append(float(total))
                    h.positive_deltas = []
                out.append(encode_float_histogram_chunk(hs, header=0))
    out += [b"\x00\x00\x00", b"\x00\x01\x00"]
    return out


def seeds(kind: str) -> tuple[bytes, ...]:
    """The seed inputs of one kind (see the module docstring)."""
    compressed, other = _captures()
    out: list[bytes] = []
    if kind == "payload":
        out += [snappy.decompress(b) for b in compressed]
        try:
            from promwire import v2

            out += [promwire.encode(v2.from_v1(r)) for r in _write_requests()]
        except ImportError:
            pass
        out += [promwire.encode(cls()) for cls in SCHEMAS]
        out += [b"", b"\x00", b"\x08\x01", b"\x0a\x00"]
    elif kind == "snappy":
        out += list(compressed)
        out += [snappy.compress(p) for p in seeds("payload")]
    elif kind == "stream":
        out += [b for b in other if _frames(b)]
    elif kind == "chunked":
        out += [f for b in seeds("stream") for f in _frames(b)]
    elif kind == "xor":
        for message in seeds("chunked"):
            response = promwire.decode(promwire.ChunkedReadResponse, message)
            out += [c.data for s in response.chunked_series for c in s.chunks]
        out += [b"\x00\x00", b"\x00\x01"]
    elif kind in ("histogram", "float-histogram"):
        out += _histogram_seeds(kind == "float-histogram")
    elif kind == "text":
        from promwire.codec import textform as textformat

        for request in _write_requests():
            lines = [line for ts in request.timeseries for line in textformat.format_series(ts)]
            if lines:
                out.append("\n".join(lines).encode())
        out.append(b'# TYPE up gauge\nup{job="node",instance="a:1"} 1 1700000000000\n')
    elif kind == "json":
        out += [json.dumps(promwire.to_dict(r)).encode() for r in _write_requests()]
        out.append(b'{"timeseries": [{"labels": [{"name": "a", "value": "b"}]}]}')
    elif kind == "regex":
        out += [p.encode() + b"\x00" + v.encode() for p, v in REGEX_SEEDS]
    else:
        raise ValueError(f"unknown seed kind {kind!r}")
    return tuple(dict.fromkeys(out))  # unique, order kept


def describe() -> dict[str, Any]:
    """How many seeds of each kind there are (for the runner's report)."""
    kinds = (
        "payload",
        "snappy",
        "stream",
        "chunked",
        "xor",
        "histogram",
        "float-histogram",
        "text",
        "json",
        "regex",
    )
    return {k: len(seeds(k)) for k in kinds}
