"""The decoder's shortcuts agree with upb, cold and warm.

promwire.decode takes shortcuts that depend on what its caches hold (a
series whose label block is cached and whose only sample is an 18-byte or a
9-byte record is decoded without scanning its labels). Every path must give
what upb gives for the same bytes, whatever the cache state.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings

import promwire as p
from promwire.decode import clear_caches, set_cache_limits
from promwire.testing import canonical, prometheus_write_requests
from tests.oracle import ORACLE, from_oracle

NOW = 1795582338992


def _upb(raw: bytes) -> p.WriteRequest:
    result: p.WriteRequest = from_oracle(p.WriteRequest, ORACLE[p.WriteRequest].FromString(raw))
    return result


def _shapes() -> bytes:
    """One request holding every sample shape the shortcuts look for, and near misses."""
    labels = [p.Label("__name__", "m"), p.Label("job", "j")]
    series = [
        p.TimeSeries(labels, [p.Sample(1.5, NOW)]),  # 12 10 09 <8> 10 <6>
        p.TimeSeries(labels, [p.Sample(0.0, NOW)]),  # 12 07 10 <6>
        p.TimeSeries(labels, [p.Sample(-0.0, NOW)]),  # value written: 18 bytes
        p.TimeSeries(labels, [p.Sample(2.5, 5)]),  # short timestamp
        p.TimeSeries(labels, [p.Sample(0.0, 5)]),
        p.TimeSeries(labels, [p.Sample(2.5, -NOW)]),  # 10-byte varint
        p.TimeSeries(labels, [p.Sample(2.5, 1 << 42)]),  # 7-byte varint
        p.TimeSeries(labels, [p.Sample(1.0, NOW), p.Sample(0.0, NOW + 1), p.Sample(2.0, NOW + 2)]),
        p.TimeSeries(
            labels, [p.Sample(1.0, NOW)], [p.Exemplar([p.Label("trace_id", "t")], 1.0, NOW)]
        ),
        p.TimeSeries(labels, [], [], [p.Histogram(count_int=0, zero_count_int=0, timestamp=NOW)]),
        p.TimeSeries([p.Label("__name__", "x" * 200)], [p.Sample(3.0, NOW)]),  # 2-byte lengths
        p.TimeSeries([], [p.Sample(3.0, NOW)]),
    ]
    return p.encode(p.WriteRequest(series))


@pytest.fixture
def small_caches() -> Iterator[None]:
    yield
    set_cache_limits()


def _captures(fixtures_dir: Path) -> list[bytes]:
    files = sorted(fixtures_dir.glob("rw_sender/*.bin"))
    return [p.snappy.decompress(f.read_bytes()) for f in files]


def test_cold_warm_and_uncached_decodes_agree_with_upb(fixtures_dir: Path) -> None:
    for raw in [_shapes(), *_captures(fixtures_dir)]:
        want = canonical(_upb(raw))
        clear_caches()
        assert canonical(p.decode(p.WriteRequest, raw)) == want  # cold
        assert canonical(p.decode(p.WriteRequest, raw)) == want  # warm: shortcuts taken
        set_cache_limits(pairs=0, blocks=0)
        assert canonical(p.decode(p.WriteRequest, raw)) == want  # no caches at all
        set_cache_limits()


@settings(max_examples=60, deadline=None)
@given(prometheus_write_requests())
def test_prometheus_shaped_requests_decode_twice_like_upb(req: p.WriteRequest) -> None:
    raw = p.encode(req)
    want = canonical(_upb(raw))
    assert canonical(p.decode(p.WriteRequest, raw)) == want
    assert canonical(p.decode(p.WriteRequest, raw)) == want


def test_tiny_caches_keep_results_exact(small_caches: None, fixtures_dir: Path) -> None:
    set_cache_limits(pairs=3, blocks=2)
    for raw in _captures(fixtures_dir) * 2:
        assert canonical(p.decode(p.WriteRequest, raw)) == canonical(_upb(raw))
