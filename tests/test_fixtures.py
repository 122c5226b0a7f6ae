"""Every real capture from Prometheus 2.42 decodes to what its sidecar says and re-encodes exactly.

The sidecars were written with an independent protobuf decoder; ``decoded``,
``peer_response_decoded`` and ``request_decoded`` are proto3 JSON, which is
what :func:`promwire.to_dict` produces. The rr_server SAMPLES responses only
have a summary (series count, labels, sample count, first and last sample).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from promwire import (
    DecodeError,
    PromwireError,
    ReadRequest,
    ReadResponse,
    WriteRequest,
    decode,
    encode,
    snappy,
    to_dict,
)
from promwire.testing import canonical
from tests.conftest import FIXTURES
from tests.oracle import ORACLE, from_oracle


def _files(pattern: str) -> list[Path]:
    return sorted(FIXTURES.glob(pattern))


def _sidecar(path: Path) -> dict[str, Any]:
    name = path.name.split(".")[0]
    data: dict[str, Any] = json.loads((path.parent / f"{name}.json").read_text())
    return data


def _raw(path: Path) -> bytes:
    return snappy.decompress(path.read_bytes())


RW = _files("rw_sender/*.bin")
RR_CLIENT = _files("rr_client/req_??.bin")
RR_SERVER_REQ = _files("rr_server/*.request.bin")
RR_SERVER_SAMPLES = _files("rr_server/*_samples.response.bin")
RR_SERVER_STREAMED = _files("rr_server/*_streamed.response.bin")


def test_fixture_inventory(fixtures_dir: Path) -> None:
    # The lists above are what the tests below run on; an empty one would pass vacuously.
    assert fixtures_dir == FIXTURES
    assert len(RW) == 6
    assert len(RR_CLIENT) == 8
    assert len(RR_SERVER_REQ) == 5
    assert len(RR_SERVER_SAMPLES) == 2
    assert len(RR_SERVER_STREAMED) == 3
    every_bin = set(_files("*/*.bin"))
    covered = set(RW) | set(RR_CLIENT) | set(RR_SERVER_REQ) | set(RR_SERVER_SAMPLES)
    covered |= set(RR_SERVER_STREAMED)
    covered |= {p.with_name(p.name.replace(".bin", ".response.bin")) for p in RR_CLIENT}
    assert every_bin == covered


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


@pytest.mark.parametrize("path", RW, ids=_ids(RW))
def test_remote_write_capture(path: Path) -> None:
    side = _sidecar(path)
    body = path.read_bytes()
    assert hashlib.sha256(body).hexdigest() == side["sha256"]
    raw = snappy.decompress(body)
    assert len(raw) == side["summary"]["uncompressed_len"]
    req = decode(WriteRequest, raw)
    assert to_dict(req, keep_nan_bits=False) == side["decoded"]  # protobuf's JSON
    summary = side["summary"]
    assert len(req.timeseries) == summary["series"]
    assert sum(len(ts.samples) for ts in req.timeseries) == summary["samples"]
    assert sum(len(ts.exemplars) for ts in req.timeseries) == summary["exemplars"]
    assert sum(len(ts.histograms) for ts in req.timeseries) == summary["histograms"]
    assert len(req.metadata) == summary["metadata"]
    assert encode(req) == raw


def test_remote_write_captures_cover_every_kind() -> None:
    reqs = [decode(WriteRequest, _raw(p)) for p in RW]
    assert any(ts.exemplars for r in reqs for ts in r.timeseries)
    hists = [h for r in reqs for ts in r.timeseries for h in ts.histograms]
    assert hists and all(h.count_int is not None or h.count_float is not None for h in hists)
    assert any(r.metadata and not r.timeseries for r in reqs)


@pytest.mark.parametrize("path", RR_CLIENT, ids=_ids(RR_CLIENT))
def test_remote_read_client_request(path: Path) -> None:
    side = _sidecar(path)
    body = path.read_bytes()
    assert hashlib.sha256(body).hexdigest() == side["sha256"]
    raw = snappy.decompress(body)
    req = decode(ReadRequest, raw)
    assert to_dict(req, keep_nan_bits=False) == side["decoded"]  # protobuf's JSON
    assert bool(req.accepted_response_types) == side["accepted_response_types_present"]
    assert encode(req) == raw


@pytest.mark.parametrize("path", RR_CLIENT, ids=_ids(RR_CLIENT))
def test_remote_read_peer_response(path: Path) -> None:
    side = _sidecar(path)
    response = path.with_name(side["peer_response_file"])
    raw = _raw(response)
    resp = decode(ReadResponse, raw)
    assert to_dict(resp) == side["peer_response_decoded"]
    assert encode(resp) == raw


@pytest.mark.parametrize("path", RR_SERVER_REQ, ids=_ids(RR_SERVER_REQ))
def test_remote_read_server_request(path: Path) -> None:
    side = _sidecar(path)
    body = path.read_bytes()
    assert len(body) == side["request_len"]
    raw = snappy.decompress(body)
    req = decode(ReadRequest, raw)
    assert to_dict(req) == side["request_decoded"]
    assert encode(req) == raw


def _json_float(v: Any) -> float:
    return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(v, v))


@pytest.mark.parametrize("path", RR_SERVER_SAMPLES, ids=_ids(RR_SERVER_SAMPLES))
def test_remote_read_server_samples_response(path: Path) -> None:
    side = _sidecar(path)
    body = path.read_bytes()
    assert len(body) == side["response_len"]
    raw = snappy.decompress(body)
    summary = side["response_decoded"]
    assert len(raw) == summary["uncompressed_len"]
    resp = decode(ReadResponse, raw)
    assert len(resp.results) == len(summary["results"])
    for result, expected in zip(resp.results, summary["results"], strict=True):
        assert len(result.timeseries) == expected["n_series"]
        assert sum(len(ts.samples) for ts in result.timeseries) == expected["n_samples_total"]
        for ts, exp in zip(result.timeseries, expected["series"], strict=False):
            assert {lb.name: lb.value for lb in ts.labels} == exp["labels"]
            assert [lb.name for lb in ts.labels] == sorted(exp["labels"])
            assert len(ts.samples) == exp["n_samples"]
            assert len(ts.histograms) == exp["n_histograms"]
            if not ts.samples:  # a native-histogram series asked for as SAMPLES: empty
                assert exp["first"] is None and exp["last"] is None
                continue
            first, last = ts.samples[0], ts.samples[-1]
            assert [first.timestamp, first.value] == [exp["first"][0], _json_float(exp["first"][1])]
            assert [last.timestamp, last.value] == [exp["last"][0], _json_float(exp["last"][1])]
            stamps = [s.timestamp for s in ts.samples]
            assert stamps == sorted(stamps)
    assert encode(resp) == raw


@pytest.mark.parametrize("path", RR_SERVER_STREAMED, ids=_ids(RR_SERVER_STREAMED))
def test_streamed_response_is_not_snappy(path: Path) -> None:
    # A STREAMED_XOR_CHUNKS answer is a sequence of frames, not a snappy block:
    # treating it as one must fail with a promwire error, not succeed or crash.
    side = _sidecar(path)
    body = path.read_bytes()
    assert len(body) == side["response_len"]
    assert side["response_headers"].get("Content-Encoding") is None
    with pytest.raises(PromwireError):
        snappy.decompress(body)
    # Nor is the raw stream one protobuf message: the frame headers break it.
    with pytest.raises(DecodeError):
        decode(ReadResponse, body)


SNAPPY_BODIES = RW + RR_CLIENT + RR_SERVER_REQ + RR_SERVER_SAMPLES
SNAPPY_BODIES += [p.with_name(p.name.replace(".bin", ".response.bin")) for p in RR_CLIENT]


@pytest.mark.parametrize("backend", snappy.BACKENDS)
def test_snappy_compress_reproduces_capture_bytes(backend: str) -> None:
    """Our snappy output is byte-identical to the captured bodies (Go's snappy for
    what Prometheus sent), on both backends."""
    previous = snappy._use_backend(backend)
    try:
        for path in SNAPPY_BODIES:
            body = path.read_bytes()
            assert snappy.compress(snappy.decompress(body)) == body, path.name
    finally:
        snappy._use_backend(previous)


@pytest.mark.parametrize(
    "path", RW + RR_CLIENT + RR_SERVER_REQ, ids=_ids(RW + RR_CLIENT + RR_SERVER_REQ)
)
def test_capture_decodes_like_upb(path: Path) -> None:
    cls = WriteRequest if path.parent.name == "rw_sender" else ReadRequest
    raw = _raw(path)
    pb = ORACLE[cls].FromString(raw)
    assert canonical(decode(cls, raw)) == canonical(from_oracle(cls, pb))
    assert pb.SerializeToString() == raw


@pytest.mark.parametrize("path", RR_SERVER_SAMPLES, ids=_ids(RR_SERVER_SAMPLES))
def test_samples_response_decodes_like_upb(path: Path) -> None:
    raw = _raw(path)
    pb = ORACLE[ReadResponse].FromString(raw)
    assert canonical(decode(ReadResponse, raw)) == canonical(from_oracle(ReadResponse, pb))


def test_capture_histogram_keeps_present_zero_oneof() -> None:
    """Prometheus writes zero_count_int = 0 explicitly (``30 00``): it must decode as
    present (0, not None) and be written back, or the bytes would differ."""
    path = FIXTURES / "rw_sender" / "A_03_with_exemplars_and_native_histogram.bin"
    raw = _raw(path)
    (h,) = [h for ts in decode(WriteRequest, raw).timeseries for h in ts.histograms]
    assert h.count_int is not None and h.count_float is None
    assert h.zero_count_int == 0 and h.zero_count_float is None
    assert b"\x30\x00" in encode(h)
    assert h.positive_spans[0].offset < 0  # sint32 zigzag seen for real
