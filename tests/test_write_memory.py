"""Memory of the write path: what a request leaves behind once it is answered.

A refused request must leave nothing: its labels are neither cached by the
decoder nor kept anywhere else. ``promwire serve`` (both servers) gets 20
requests each carrying one 30 MiB label value (refused, max_label_bytes) and
its RSS must stay within a bound afterwards; the decoder's caches must stay
within their byte budgets whatever they are fed.
"""

from __future__ import annotations

import gc
import http.client
import re
import subprocess
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from promwire import Label, Sample, TimeSeries, WriteRequest, decode, encode, snappy
from promwire.codec.decode_caches import DEFAULT_BUDGETS
from promwire.codec.decoder import cache_info, clear_caches, decode_write_request, set_cache_limits
from promwire.codec.messages import BucketSpan, Histogram, MetricMetadata, MetricType
from promwire.codec.wire import varint
from promwire.server.handlers.common import DEFAULT_MAX_DECOMPRESSED_SIZE
from tests.support.serve_process import serve_process

MiB = 1024 * 1024
#: How far ``promwire serve``'s RSS may rise over its baseline after the 20 refused
#: requests (docs/robustness.md, "Memory bounds of a write"): one request's
#: decode is ~2 x 30 MiB at its peak, which the allocator may keep for the next one.
RSS_BOUND = 150 * MiB


def _record(field: int, payload: bytes) -> bytes:
    return bytes([field << 3 | 2]) + varint(len(payload)) + payload


def _label(name: bytes, value: bytes) -> bytes:
    return _record(1, _record(1, name) + _record(2, value))


def _body(value: bytes) -> bytes:
    """A snappy v1 write body: one series ``up{big=<value>}`` with one sample.

    Built from wire bytes, so no encoder cache of the test process holds the value.
    """
    sample = _record(2, b"\x09" + b"\x00" * 7 + b"\x3f" + b"\x10\x80\xa0\xd6\xea\xbc\x31")
    series = _label(b"__name__", b"up") + _label(b"big", value) + sample
    return snappy.compress(_record(1, series))


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _post(port: int, body: bytes) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(
            "POST",
            "/api/v1/write",
            body,
            {
                "Content-Type": "application/x-protobuf",
                "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            },
        )
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


@contextmanager
def _serve(db: Path, server: str) -> Iterator[tuple[int, subprocess.Popen[str], list[str]]]:
    with serve_process(db, server) as served:
        yield served.port, served.proc, served.lines


@pytest.mark.parametrize("server", ["uvicorn", "wsgiref"])
def test_refused_huge_labels_leave_no_memory_behind(tmp_path: Path, server: str) -> None:
    # 30 MiB values, distinct per request (a repeat would be a cache hit); the
    # last one as long as the 32 MiB decompressed limit allows: still refused
    # by max_label_bytes, not by the size checks that come before it.
    longest = DEFAULT_MAX_DECOMPRESSED_SIZE - 64
    sizes = [30 * MiB] * 19 + [longest]
    with _serve(tmp_path / "db", server) as (port, proc, lines):
        assert _post(port, _body(b"ok"))[0] == 204
        baseline = _rss(proc.pid)
        lines_before = len(lines)
        for i, size in enumerate(sizes):
            value = bytes([0x61 + i % 26]) * (size - 1) + bytes([0x30 + i // 26])
            body = _body(value)
            assert len(body) < 32 * MiB  # under max_body_size: snappy shrinks runs
            status, text = _post(port, body)
            assert status == 400, text
            assert "max_label_bytes" in text and len(text) < 300
        grown = _rss(proc.pid) - baseline
        assert grown < RSS_BOUND, f"RSS grew {grown / MiB:.0f} MiB over {server}"
        assert _post(port, _body(b"still fine"))[0] == 204
        # one short log line per refusal (the reason with at most a 40-character
        # preview of the value), nothing more of the values echoed
        logged = lines[lines_before:]
        assert len(logged) <= len(sizes) + 2
        assert all(len(line) < 500 for line in logged), logged
        assert not any(re.search(r"(.)\1{64}", line) for line in logged), logged[:2]


# ------------------------------------------------------------------- cache budgets


@pytest.fixture
def small_budgets() -> Iterator[None]:
    set_cache_limits(
        pairs_bytes=64 * 1024,
        blocks_bytes=128 * 1024,
        spans_bytes=4096,
        metadata_bytes=32 * 1024,
        max_pair_bytes=1024,
        max_block_bytes=4096,
        max_metadata_bytes=2048,
    )
    try:
        yield
    finally:
        set_cache_limits()


def _request(k: int, size: int, text: str) -> bytes:
    """A request of distinct labels around ``size`` characters (``text`` repeated)."""
    value = (text * (size // len(text) + 1))[:size] + str(k)
    series = [
        TimeSeries(
            [Label("__name__", f"m{k}_{j}"), Label("v", value), Label("w", value[: size // 2])],
            [Sample(1.0, 1_700_000_000_000 + j)],
            histograms=[Histogram(count_int=1, positive_spans=[BucketSpan(k, j + 1)])]
            if j == 0
            else [],
        )
        for j in range(4)
    ]
    md = [MetricMetadata(MetricType.COUNTER, f"m{k}", value, "seconds")]
    return encode(WriteRequest(series, md))


_TEXTS = ["abcdefgh", "é", "日本", "a😀"]  # 1 to 4 bytes a character in a str


@pytest.mark.parametrize("text", _TEXTS)
def test_cache_bytes_stay_within_budgets(small_budgets: None, text: str) -> None:
    clear_caches()
    seen_max = dict.fromkeys(DEFAULT_BUDGETS, 0)
    for k in range(300):
        size = [10, 100, 300, 700, 2000, 100_000][k % 6]
        raw = _request(k, size, text)
        assert decode(WriteRequest, raw) == decode(WriteRequest, raw)  # miss, then hit
        info = cache_info()
        for name in DEFAULT_BUDGETS:
            assert info[f"{name}_bytes"] <= info[f"{name}_budget"], (name, info)
            seen_max[name] = max(seen_max[name], info[f"{name}_bytes"])
        assert info["total_bytes"] <= info["total_budget"]
    # every cache was filled (and emptied) along the way
    assert seen_max["pairs"] > 32 * 1024 and seen_max["blocks"] > 64 * 1024, seen_max


@pytest.mark.parametrize("text", _TEXTS)
def test_cache_accounting_bounds_the_real_memory(small_budgets: None, text: str) -> None:
    """What the caches hold, measured by tracemalloc, is within what they account."""
    clear_caches()
    raws = [_request(k, [20, 200, 600][k % 3], text) for k in range(40)]
    gc.collect()
    tracemalloc.start()
    try:
        for raw in raws:
            decode(WriteRequest, raw)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        accounted = cache_info()["total_bytes"]
        clear_caches()
        gc.collect()
        released = held - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert accounted > 0
    assert released <= accounted, (released, accounted)


def test_a_long_label_is_never_cached() -> None:
    """Defaults: a label over the pair cap (1 KiB), or a block holding one, is not kept."""
    set_cache_limits()
    for size in (1100, 70_000, 3 * MiB):
        clear_caches()
        raw = snappy.decompress(_body(b"x" * size))
        request, biggest = decode_write_request(raw)
        assert request.timeseries[0].labels[1].value == "x" * size
        assert biggest > size
        info = cache_info()
        assert info["pairs"] == 1  # __name__="up" only
        assert info["blocks"] == 0
        assert info["total_bytes"] < 1024
    clear_caches()
    raw = snappy.decompress(_body(b"x" * 900))  # under the cap: kept
    decode_write_request(raw)
    assert cache_info()["pairs"] == 2 and cache_info()["blocks"] == 1


def test_cache_limits_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="pairs_bytes"):
        set_cache_limits(pairs_bytes=-1)
    with pytest.raises(ValueError, match="max_block_bytes"):
        set_cache_limits(max_block_bytes=1.5)  # type: ignore[arg-type]
    set_cache_limits()
    assert cache_info()["total_budget"] == sum(DEFAULT_BUDGETS.values())
