"""``python3 -m promwire decode FILE`` on every real Prometheus 2.42 capture.

The JSON printed must match what the capture's sidecar says the bytes hold
(the sidecars were written with an independent protobuf decoder). Nothing
tells the CLI what a file is: it detects snappy vs stream and the message type.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES

REPO = Path(__file__).resolve().parent.parent


def _decode(path: Path, *extra: str) -> tuple[Any, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "promwire", "decode", str(path), *extra],
        capture_output=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout), proc.stderr.decode()


def _files(pattern: str) -> list[Path]:
    found = sorted(FIXTURES.glob(pattern))
    assert found, f"no fixtures match {pattern}"
    return found


def _plain_nan(value: Any) -> Any:
    """The CLI's JSON with "NaN:0x..." written "NaN", as the sidecars (protobuf) write it."""
    if isinstance(value, str) and value.startswith("NaN:0x"):
        return "NaN"
    if isinstance(value, list):
        return [_plain_nan(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_nan(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("path", _files("rw_sender/*.bin"), ids=lambda p: p.name)
def test_write_requests(path: Path) -> None:
    sidecar = json.loads(path.with_suffix(".json").read_text())
    doc, err = _decode(path)
    assert _plain_nan(doc) == sidecar["decoded"]
    assert ": write, snappy" in err


@pytest.mark.parametrize("path", _files("rr_client/req_??.bin"), ids=lambda p: p.name)
def test_read_client_requests_and_peer_answers(path: Path) -> None:
    sidecar = json.loads(path.with_suffix(".json").read_text())
    doc, err = _decode(path)
    assert doc == sidecar["decoded"]
    assert ": read-request, snappy" in err
    answer, _ = _decode(path.parent / sidecar["peer_response_file"])
    assert answer == sidecar["peer_response_decoded"]


@pytest.mark.parametrize("path", _files("rr_server/*.request.bin"), ids=lambda p: p.name)
def test_read_server_requests(path: Path) -> None:
    sidecar = json.loads(path.with_name(path.name.replace(".request.bin", ".json")).read_text())
    doc, _ = _decode(path)
    assert doc == sidecar["request_decoded"]


def _labels(labels: list[dict[str, str]]) -> dict[str, str]:
    return {lb["name"]: lb["value"] for lb in labels}


@pytest.mark.parametrize("path", _files("rr_server/*samples.response.bin"), ids=lambda p: p.name)
def test_read_server_samples_answers(path: Path) -> None:
    sidecar = json.loads(path.with_name(path.name.replace(".response.bin", ".json")).read_text())
    want = sidecar["response_decoded"]
    doc, err = _decode(path)
    assert f"{want['uncompressed_len']} bytes" in err and "read-response" in err
    assert len(doc["results"]) == len(want["results"])
    for got, exp in zip(doc["results"], want["results"], strict=True):
        series = got.get("timeseries", [])
        assert len(series) == exp["n_series"]
        assert sum(len(ts.get("samples", [])) for ts in series) == exp["n_samples_total"]
        # The sidecar lists the first series only (``series_truncated_to``).
        assert 0 < len(exp["series"]) <= len(series)
        for ts, ets in zip(series, exp["series"], strict=False):
            assert _labels(ts["labels"]) == ets["labels"]
            samples = ts.get("samples", [])
            assert len(samples) == ets["n_samples"]
            assert len(ts.get("histograms", [])) == ets["n_histograms"]
            if samples:
                first, last = samples[0], samples[-1]
                # proto3 JSON leaves out zeros: a missing value is 0.0.
                assert [int(first["timestamp"]), first.get("value", 0.0)] == ets["first"]
                assert [int(last["timestamp"]), last.get("value", 0.0)] == ets["last"]


@pytest.mark.parametrize("path", _files("rr_server/*streamed.response.bin"), ids=lambda p: p.name)
def test_read_server_streamed_answers(path: Path) -> None:
    sidecar = json.loads(path.with_name(path.name.replace(".response.bin", ".json")).read_text())
    want = sidecar["response_decoded"]
    doc, err = _decode(path)
    assert f"{want['frames']} frames" in err
    frames = doc["frames"]
    assert len(frames) == want["frames"]
    # One ChunkedSeries per frame in 2.42, and no series split over frames here.
    series = [(int(f.get("query_index", "0")), s) for f in frames for s in f["chunked_series"]]
    assert len(series) == want["n_series"]
    assert len(want["series"]) == min(len(series), want.get("series_truncated_to", len(series)))
    for (index, got), exp in zip(series, want["series"], strict=False):
        assert index == exp["query_index"]
        assert _labels(got["labels"]) == exp["labels"]
        assert len(got["chunks"]) == len(exp["chunks"])
        for chunk, echunk in zip(got["chunks"], exp["chunks"], strict=True):
            data = base64.b64decode(chunk["data"])
            assert chunk["type"] == echunk["type"]
            assert int(chunk["min_time_ms"]) == echunk["min_time_ms"]
            assert int(chunk["max_time_ms"]) == echunk["max_time_ms"]
            assert len(data) == echunk["data_len"]
            assert int.from_bytes(data[:2], "big") == echunk["n_samples_header"]
