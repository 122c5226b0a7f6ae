"""decode_write_request: the same request as decode(), plus the largest series' size."""

from __future__ import annotations

from pathlib import Path

import pytest

import promwire as p
from promwire.codec.decoder import decode_write_request
from promwire.testing import canonical


def _captures(fixtures_dir: Path) -> list[bytes]:
    files = sorted(fixtures_dir.glob("rw_sender/*.bin"))
    return [p.snappy.decompress(f.read_bytes()) for f in files]


def test_matches_decode_and_reports_the_largest_series(fixtures_dir: Path) -> None:
    for raw in _captures(fixtures_dir):
        request, biggest = decode_write_request(raw)
        assert canonical(request) == canonical(p.decode(p.WriteRequest, raw))  # NaN-safe
        sizes = [len(p.encode(ts)) for ts in request.timeseries]
        if request.metadata:
            # after the series come other fields: the bound covers the rest of the body
            assert biggest >= max(sizes, default=0)
        else:
            assert biggest == max(sizes, default=0)
        for ts in request.timeseries:
            for label in ts.labels:
                assert len(label.name.encode()) <= biggest
                assert len(label.value.encode()) <= biggest


def test_a_long_label_makes_its_series_the_largest() -> None:
    long_value = "x" * 70_000
    req = p.WriteRequest(
        [
            p.TimeSeries([p.Label("__name__", "a")], [p.Sample(1.0, 1795582338992)]),
            p.TimeSeries([p.Label("__name__", long_value)], [p.Sample(2.0, 1795582338992)]),
        ]
    )
    decoded, biggest = decode_write_request(p.encode(req))
    assert decoded == req
    assert biggest == len(p.encode(req.timeseries[1])) > 70_000


def test_errors_are_decode_errors() -> None:
    with pytest.raises(p.DecodeError):
        decode_write_request(b"\x0a\x05\x0a")
