"""Native histograms through a real Prometheus 2.42, both ways.

Integer, float and gauge histograms (gaps and jitter, negative buckets,
schema changes, counter resets, buckets appearing and disappearing, a stale
marker) go in through promwire's RemoteWriteClient; a streamed remote read
brings Prometheus' HISTOGRAM / FLOAT_HISTOGRAM chunks back. promwire must:

* decode them to what was written (and to what PromQL's query_range shows);
* re-encode every chunk byte for byte;
* cut the written series into the same chunks Prometheus' head cut.
"""

from __future__ import annotations

import json
import math
import random
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import promwire
from promwire import (
    BucketSpan,
    ChunkEncoding,
    Histogram,
    Label,
    LabelMatcher,
    MatchType,
    Query,
    ReadRequest,
    ResetHint,
    ResponseType,
    TimeSeries,
    WriteRequest,
)
from promwire.chunks.float_histogram import (
    decode_float_histogram_chunk,
    encode_float_histogram_chunk,
)
from promwire.chunks.histogram import decode_histogram_chunk, encode_histogram_chunk
from promwire.chunks.histogram_cut import cut_histogram_chunks
from promwire.chunks.histogram_layout import STALE_NAN_BITS, CounterResetHeader, chunk_header
from promwire.chunks.streamed import STREAMED_CONTENT_TYPE, iter_chunked_series
from promwire.client.reader import RemoteReadClient
from promwire.client.writer import RemoteWriteClient
from tests.support.prometheus import PrometheusProcess

pytestmark = pytest.mark.prometheus

FLAGS = ["--web.enable-remote-write-receiver", "--enable-feature=native-histograms"]
CONFIG = "global:\n  scrape_interval: 1h\n"
STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
CHUNK_RANGE_MS = 7_200_000  # the head's chunk range (2h blocks)
N = 400  # histograms per series


def _spans(indices: list[int]) -> list[BucketSpan]:
    spans: list[BucketSpan] = []
    last = 0
    for i, idx in enumerate(indices):
        if i and idx == last + 1:
            spans[-1] = BucketSpan(spans[-1].offset, spans[-1].length + 1)
        else:
            spans.append(BucketSpan(idx if i == 0 else idx - last - 1, 1))
        last = idx
    return spans


def _histogram(
    t: int,
    pos: dict[int, float],
    neg: dict[int, float],
    zero: float,
    schema: int,
    *,
    is_float: bool,
    hint: ResetHint = ResetHint.UNKNOWN,
) -> Histogram:
    pk, nk = sorted(pos), sorted(neg)
    total = sum(pos.values()) + sum(neg.values()) + zero
    h = Histogram(
        sum=total * 0.37 - 5.0,
        schema=schema,
        zero_threshold=2.0**-128 if schema != 1 else 0.001,
        positive_spans=_spans(pk),
        negative_spans=_spans(nk),
        timestamp=t,
        reset_hint=hint,
    )
    if is_float:
        h.count_float, h.zero_count_float = float(total), float(zero)
        h.positive_counts = [float(pos[k]) for k in pk]
        h.negative_counts = [float(neg[k]) for k in nk]
    else:
        h.count_int, h.zero_count_int = int(total), int(zero)
        for keys, side, out in ((pk, pos, h.positive_deltas), (nk, neg, h.negative_deltas)):
            prev = 0
            for k in keys:
                out.append(int(side[k]) - prev)
                prev = int(side[k])
    return h


def _series(rng: random.Random, start: int, *, is_float: bool) -> list[Histogram]:
    """A counter histogram with everything that makes the head cut or recode."""
    pos = {0: 1.0, 1: 0.0, 2: 3.0, 5: 1.0}
    neg = {0: 2.0, 3: 1.0}
    zero = 1.0
    schema = 3
    t = start
    out = []
    step = 0.25 if is_float else 1
    for i in range(N):
        t += rng.choice([1000] * 8 + [3000, 7000]) + rng.randint(-40, 40)  # gaps and jitter
        if i == 30:
            pos[8] = 0.0  # a new bucket: the chunk is recoded
        if i == 60:
            neg[-2] = 0.0  # a new negative bucket
        if i == 260:  # after >= 240 samples: the head has cut once for size
            schema = 1  # schema change: a new chunk
        if i == 300:  # counter reset
            pos = dict.fromkeys(pos, 0.0)
            neg = dict.fromkeys(neg, 0.0)
            zero = 0.0
        if i == 340:
            del pos[5]  # a bucket disappears: counter reset
        if i == 370 and not is_float:
            out.append(Histogram(count_int=0, sum=STALE, timestamp=t))  # stale marker
            continue
        for side in (pos, neg):
            for k in side:
                side[k] += rng.choice([0, 1, 2, 5, 1000, 250_000]) * step
        zero += rng.randint(0, 3) * step
        out.append(_histogram(t, pos, neg, zero, schema, is_float=is_float))
    return out


def _gauge(rng: random.Random, start: int, *, is_float: bool = False) -> list[Histogram]:
    """A gauge histogram: buckets go down, come and go - only in the first 60.

    Prometheus 2.42 re-encodes the open head chunk for a read with the
    counter checks, and fails the read if a gauge bucket goes down there;
    the open chunk (at most 240 samples) must not reach back that far.
    """
    out = []
    t = start
    for i in range(N):
        t += 1000
        if i < 60:
            pos = {
                k: float(rng.randint(0, 9)) for k in range(rng.randint(-2, 1), rng.randint(2, 5))
            }
        else:
            pos = {k: float(i) for k in range(0, 4)}
        # 2.42 takes a histogram as a float one only with a count above zero.
        zero = 1 if is_float else 0
        out.append(_histogram(t, pos, {}, zero, 0, is_float=is_float, hint=ResetHint.GAUGE))
    return out


def _is_stale(h: Histogram) -> bool:
    return struct.pack("<d", h.sum) == struct.pack("<d", STALE)


def _buckets(h: Histogram) -> list[tuple[int, int, float]]:
    """(side, index, count) of non-empty buckets: side -1 negative, +1 positive."""
    from promwire.chunks.histogram_layout import bucket_indices

    out = []
    for sign, spans, deltas, counts in (
        (-1, h.negative_spans, h.negative_deltas, h.negative_counts),
        (1, h.positive_spans, h.positive_deltas, h.positive_counts),
    ):
        values: list[float] = list(counts)
        if not h.is_float:
            total = 0
            for d in deltas:
                total += d
                values.append(float(total))
        out += [(sign, i, v) for i, v in zip(bucket_indices(spans), values, strict=True) if v]
    return out


def _same(got: Histogram, want: Histogram) -> bool:
    if _is_stale(want):
        return _is_stale(got)
    return (
        got.timestamp == want.timestamp
        and (got.count_int, got.count_float) == (want.count_int, want.count_float)
        and (got.zero_count_int or got.zero_count_float or 0)
        == (want.zero_count_int or want.zero_count_float or 0)
        and got.sum == want.sum
        and got.schema == want.schema
        and got.zero_threshold == want.zero_threshold
        and _buckets(got) == _buckets(want)
    )


def _bound(index: int, schema: int) -> float:
    return float(2.0 ** (index * 2.0**-schema))


def _promql_buckets(h: Histogram) -> list[tuple[float, float, float]]:
    """(lower, upper, count) in the order Prometheus' JSON lists them."""
    out = []
    for sign, i, v in _buckets(h):
        if sign < 0:
            out.append((-_bound(i, h.schema), -_bound(i - 1, h.schema), v))
    out.sort()
    zero = float(h.zero_count_int if h.zero_count_float is None else h.zero_count_float or 0)
    if zero:
        out.append((-h.zero_threshold, h.zero_threshold, zero))
    out += [
        (_bound(i - 1, h.schema), _bound(i, h.schema), v) for sign, i, v in _buckets(h) if sign > 0
    ]
    return out


def _read_raw(url: str, query: Query) -> bytes:
    request = ReadRequest(
        queries=[query], accepted_response_types=[ResponseType.STREAMED_XOR_CHUNKS]
    )
    req = urllib.request.Request(
        url + "/api/v1/read",
        data=promwire.snappy.compress(promwire.encode(request)),
        method="POST",
        headers={
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Read-Version": "0.1.0",
        },
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"] == STREAMED_CONTENT_TYPE
        body: bytes = r.read()
    return body


@pytest.fixture(scope="module")
def prom(
    prometheus_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusProcess]:
    workdir: Path = tmp_path_factory.mktemp("prom-hist")
    with PrometheusProcess(CONFIG, workdir, flags=FLAGS) as p:
        yield p


def test_native_histograms_round_trip_through_prometheus(prom: PrometheusProcess) -> None:
    rng = random.Random(18)
    start = int(time.time() * 1000) - 2_000_000
    written = {
        "pw_hist_int": _series(rng, start, is_float=False),
        "pw_hist_float": _series(rng, start + 17, is_float=True),
        "pw_hist_gauge": _gauge(rng, start + 5),
        "pw_hist_fgauge": _gauge(rng, start + 9, is_float=True),
    }
    with RemoteWriteClient(prom.url + "/api/v1/write") as client:
        for i in range(0, N, 50):
            request = WriteRequest(
                timeseries=[
                    TimeSeries(labels=[Label("__name__", name)], histograms=hs[i : i + 50])
                    for name, hs in written.items()
                    if hs[i : i + 50]
                ]
            )
            assert client.send(request).status == 204

    end = max(hs[-1].timestamp for hs in written.values()) + 1
    query = Query(start, end, [LabelMatcher(MatchType.RE, "__name__", "pw_hist_.*")])
    body = _read_raw(prom.url, query)
    got = {
        dict((lb.name, lb.value) for lb in s.labels)["__name__"]: s
        for _, s in iter_chunked_series(body)
    }
    assert sorted(got) == sorted(written)

    for name, series in got.items():
        chunks = series.chunks
        floats = name in ("pw_hist_float", "pw_hist_fgauge")
        kind = ChunkEncoding.FLOAT_HISTOGRAM if floats else ChunkEncoding.HISTOGRAM
        assert {c.type for c in chunks} == {kind}
        gauge = name in ("pw_hist_gauge", "pw_hist_fgauge")
        assert len(chunks) >= (2 if gauge else 5)
        decoded: list[Histogram] = []
        for c in chunks:
            if c.type == ChunkEncoding.HISTOGRAM:
                hs = decode_histogram_chunk(c.data)
                again = encode_histogram_chunk(hs, header=chunk_header(c.data))
            else:
                hs = decode_float_histogram_chunk(c.data)
                again = encode_float_histogram_chunk(hs, header=chunk_header(c.data))
            assert again == c.data, f"{name}: chunk at {c.min_time_ms} re-encodes differently"
            assert (hs[0].timestamp, hs[-1].timestamp) == (c.min_time_ms, c.max_time_ms)
            decoded += hs
        want = written[name]
        assert len(decoded) == len(want)
        bad = [i for i, (g, w) in enumerate(zip(decoded, want, strict=True)) if not _same(g, w)]
        assert not bad, (name, bad[:3], decoded[bad[0]], want[bad[0]])

        # The head's cuts: same chunks, same bytes. Prometheus re-encodes the
        # open head chunk for a read and loses its header (UNKNOWN); closed
        # chunks keep theirs.
        mine = cut_histogram_chunks(want, chunk_range_ms=CHUNK_RANGE_MS)
        assert [(c.min_time_ms, c.max_time_ms, c.type, c.data[3:]) for c in mine] == [
            (c.min_time_ms, c.max_time_ms, c.type, c.data[3:]) for c in chunks
        ], name
        assert [c.data[:3] for c in mine[:-1]] == [c.data[:3] for c in chunks[:-1]], name
        assert chunk_header(chunks[-1].data) == CounterResetHeader.UNKNOWN
        headers = {chunk_header(c.data) for c in mine}
        if gauge:
            assert headers == {CounterResetHeader.GAUGE}
            # Closed chunks say GAUGE; the open one, re-encoded by 2.42, says
            # nothing more than a counter chunk would.
            n_open = int.from_bytes(chunks[-1].data[:2], "big")
            assert {h.reset_hint for h in decoded[:-n_open]} == {ResetHint.GAUGE}
            assert [h.reset_hint for h in decoded[-n_open:]] == [ResetHint.UNKNOWN] + [
                ResetHint.NO
            ] * (n_open - 1)
        else:
            # schema change (unknown), counter resets, stale marker, cut by size
            assert {CounterResetHeader.UNKNOWN, CounterResetHeader.COUNTER_RESET} <= headers
            assert CounterResetHeader.NOT_COUNTER_RESET in headers
            assert decoded[0].reset_hint == ResetHint.UNKNOWN

    # promwire's streamed read client gives the same histograms, cut to the range.
    lo, hi = written["pw_hist_int"][40].timestamp, written["pw_hist_int"][160].timestamp
    client = RemoteReadClient(prom.url + "/api/v1/read")
    [series] = list(client.query("pw_hist_int", lo, hi))
    assert client.last_content_type is not None
    assert client.last_content_type.startswith("application/x-streamed-protobuf")
    assert [h.timestamp for h in series.histograms] == [
        h.timestamp for h in written["pw_hist_int"][40:161]
    ]
    assert all(
        _same(g, w) for g, w in zip(series.histograms, written["pw_hist_int"][40:161], strict=True)
    )

    # `promwire read` prints them (text: comment lines; JSON: the messages).
    cli = [sys.executable, "-m", "promwire", "read", prom.url + "/api/v1/read", "pw_hist_float"]
    span = ["--start", str(start), "--end", str(end)]
    text = subprocess.run([*cli, *span], capture_output=True, check=True, timeout=60)
    lines = text.stdout.decode().splitlines()
    assert len(lines) == N
    assert all(ln.startswith("# histogram pw_hist_float {count=") for ln in lines)
    assert f"1 series, 0 samples, {N} histograms".encode() in text.stderr
    as_json = subprocess.run(
        [*cli, *span, "-o", "json"], capture_output=True, check=True, timeout=60
    )
    doc = json.loads(as_json.stdout)
    [printed] = doc["results"][0]["timeseries"]
    assert [int(h["timestamp"]) for h in printed["histograms"]] == [
        h.timestamp for h in written["pw_hist_float"]
    ]

    # PromQL's query_range shows the same histograms at every step.
    for name, hs in written.items():
        _compare_query_range(prom, name, hs)


def _compare_query_range(prom: PrometheusProcess, name: str, hs: list[Histogram]) -> None:
    first = hs[0].timestamp // 1000 + 1
    last = hs[-1].timestamp // 1000
    data = prom.api("/api/v1/query_range", query=name, start=first, end=last, step="1s")
    [result] = data["result"]
    points = {round(float(t) * 1000): v for t, v in result["histograms"]}
    checked = 0
    j = 0
    for step_ms in range(first * 1000, last * 1000 + 1, 1000):
        while j + 1 < len(hs) and hs[j + 1].timestamp <= step_ms:
            j += 1
        h = hs[j]
        if _is_stale(h) or step_ms - h.timestamp > 300_000:
            assert step_ms not in points
            continue
        value = points[step_ms]
        count = h.count_float if h.is_float else h.count_int
        assert float(value["count"]) == count and float(value["sum"]) == h.sum
        want = _promql_buckets(h)
        buckets = [(float(b[1]), float(b[2]), float(b[3])) for b in value.get("buckets", [])]
        assert len(buckets) == len(want), (name, step_ms)
        for (lo, up, c), (wlo, wup, wc) in zip(buckets, want, strict=True):
            assert (
                c == wc
                and math.isclose(lo, wlo, rel_tol=1e-9)
                and math.isclose(up, wup, rel_tol=1e-9)
            )
        checked += 1
    assert checked >= len(hs) - 5  # every histogram seen at least once (gaps repeat them)


def test_xor_chunks_reencode_byte_identically(prom: PrometheusProcess) -> None:
    # Short series of random values: some chunks end with a whole-bytes
    # write on a byte boundary, after which Go's bstream leaves an empty
    # byte (always so for one-sample chunks). promwire's XOR encoder must
    # write the same bytes.
    from promwire import Sample
    from promwire.chunks.xor import decode_xor, encode_xor

    rng = random.Random(42)
    start = int(time.time() * 1000) - 600_000
    series = []
    for i in range(400):
        n = rng.choice([1, 1, 2, 3, 5, 8])
        t = start + rng.randint(0, 1000)
        samples = []
        for _ in range(n):
            t += rng.choice([1000, 15000, 15001, 60000])
            bits = rng.getrandbits(64) & ~(0x7FF << 52) | (rng.randint(1, 0x7FE) << 52)
            value = struct.unpack("<d", struct.pack("<Q", bits))[0]
            samples.append(Sample(rng.choice([value, 1.0, float(i), value * 2]), t))
        series.append(TimeSeries(labels=[Label("__name__", f"pw_xor_{i}")], samples=samples))
    with RemoteWriteClient(prom.url + "/api/v1/write") as client:
        assert client.send(WriteRequest(timeseries=series)).status == 204
    query = Query(start, start + 600_000, [LabelMatcher(MatchType.RE, "__name__", "pw_xor_.*")])
    got = list(iter_chunked_series(_read_raw(prom.url, query)))
    assert len(got) == 400
    trailing = 0
    for _, s in got:
        for chunk in s.chunks:
            ts, vs = decode_xor(chunk.data)
            assert encode_xor(ts, vs) == chunk.data
            trailing += chunk.data[-1] == 0 and len(ts) > 1
    assert trailing  # the multi-sample case occurred, not only single samples
