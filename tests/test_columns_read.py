"""Reading into columns, pandas and Arrow: XOR chunks, streamed bodies, the read client.

The end-to-end part reads from a real Prometheus 2.42 and writes frames back
into a real ``promwire serve``; everything is compared by float bits.
"""

from __future__ import annotations

import asyncio
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promwire as p
from promwire.chunks.streamed import (
    aread_streamed_columns,
    decode_series,
    decode_series_columns,
    read_streamed_columns,
    read_streamed_response,
    stream_chunked_response,
)
from promwire.chunks.xor import cut_chunks, decode_xor, decode_xor_columns, encode_xor
from promwire.client import frames
from promwire.client.reader import RemoteReadClient, RemoteReadError
from promwire.client.writer import RemoteWriteClient
from promwire.errors import UnsupportedChunkEncoding
from tests.support.prometheus import PrometheusProcess
from tests.support.serve_process import serve_process

NOW = 1795582338992
STALE = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
PAYLOAD_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000ABC))[0]


def _bits(values: Any) -> bytes:
    return struct.pack(f"<{len(values)}d", *values)


def _key(labels: Any) -> tuple[tuple[str, str], ...]:
    return tuple((lb.name, lb.value) for lb in labels)


# ------------------------------------------------------------------ XOR and frames

doubles = st.integers(0, (1 << 64) - 1).map(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0])


@settings(max_examples=100, deadline=None)
@given(
    start=st.integers(-(1 << 40), 1 << 42),
    steps=st.lists(st.integers(0, 1 << 20), max_size=200),
    values=st.lists(st.one_of(doubles, st.sampled_from([0.0, 1.0, STALE])), max_size=201),
)
def test_xor_columns_equal_decode_xor(start: int, steps: list[int], values: list[float]) -> None:
    ts = [start]
    for s in steps:
        ts.append(ts[-1] + s)
    n = min(len(ts), len(values))
    chunk = encode_xor(ts[:n], values[:n])
    want_ts, want_vs = decode_xor(chunk)
    got_ts, got_vs = decode_xor_columns(chunk)
    assert got_ts.typecode == "q" and got_vs.typecode == "d"
    assert list(got_ts) == want_ts
    assert got_vs.tobytes() == _bits(want_vs)


def _series(n: int, start: int = NOW, labels: tuple[str, ...] = ("a",)) -> p.TimeSeries:
    values = [float(i) * 0.5 for i in range(n)]
    if n > 3:
        values[1], values[2] = STALE, PAYLOAD_NAN
    return p.TimeSeries(
        [p.Label("__name__", "m"), *(p.Label("i", x) for x in labels)],
        [p.Sample(v, start + 1000 * i) for i, v in enumerate(values)],
    )


def _chunked(ts: p.TimeSeries) -> p.ChunkedSeries:
    return p.ChunkedSeries(ts.labels, cut_chunks(ts.samples))


@pytest.mark.parametrize("window", [(None, None), (NOW + 5_000, NOW + 300_000), (NOW - 9, NOW - 1)])
def test_series_columns_equal_decode_series(window: tuple[int | None, int | None]) -> None:
    chunked = _chunked(_series(500))
    lo, hi = window
    ts, vs = decode_series(chunked, start_ms=lo, end_ms=hi)
    sc = decode_series_columns(chunked, start_ms=lo, end_ms=hi)
    assert list(sc.timestamps) == ts and sc.values.tobytes() == _bits(vs)
    assert sc.labels == tuple(chunked.labels)


def test_overlapping_chunks_merge_like_decode_series() -> None:
    a = _chunked(_series(300))
    b = _chunked(_series(50, NOW + 100_500))  # overlaps the middle of a
    both = p.ChunkedSeries(a.labels, a.chunks + b.chunks)
    ts, vs = decode_series(both)
    sc = decode_series_columns(both)
    assert list(sc.timestamps) == ts and sc.values.tobytes() == _bits(vs)


def test_unsupported_chunks_raise_or_skip() -> None:
    chunked = _chunked(_series(10))
    chunked.chunks.append(p.Chunk(0, 1, p.ChunkEncoding.XOR2, b"\x00\x01"))
    with pytest.raises(UnsupportedChunkEncoding):
        decode_series_columns(chunked)
    sc = decode_series_columns(chunked, on_unsupported="skip")
    assert len(sc.timestamps) == 10


def test_read_streamed_columns_equal_read_streamed_response() -> None:
    results = [(0, [_series(400, labels=(x,)) for x in "abc"]), (1, [_series(7)])]
    body = b"".join(stream_chunked_response(results, max_bytes_in_frame=300))
    want = list(read_streamed_response(body, start_ms=NOW + 3000, end_ms=NOW + 200_000))
    got = list(read_streamed_columns(body, start_ms=NOW + 3000, end_ms=NOW + 200_000))
    assert [i for i, _ in got] == [i for i, _ in want]
    for (_, sc), (_, ts) in zip(got, want, strict=True):
        assert list(sc.labels) == ts.labels
        assert list(sc.timestamps) == [s.timestamp for s in ts.samples]
        assert sc.values.tobytes() == _bits([s.value for s in ts.samples])


def test_async_streamed_columns_equal_sync() -> None:
    results = [(0, [_series(300, labels=(x,)) for x in "ab"])]
    body = b"".join(stream_chunked_response(results, max_bytes_in_frame=200))

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 777):  # split anywhere
            yield body[i : i + 777]

    async def collect() -> list[tuple[int, p.SeriesColumns]]:
        return [item async for item in aread_streamed_columns(pieces(), end_ms=NOW + 100_000)]

    got = asyncio.run(collect())
    want = list(read_streamed_columns(body, end_ms=NOW + 100_000))
    assert [(i, sc.labels, sc.timestamps, sc.values.tobytes()) for i, sc in got] == [
        (i, sc.labels, sc.timestamps, sc.values.tobytes()) for i, sc in want
    ]


# ------------------------------------------------------------------ frames, no network


def _columns() -> list[p.SeriesColumns]:
    out = []
    for ts in (_series(20, labels=("x",)), _series(5, labels=("y",))):
        out.append(p.decode_columns(p.encode(p.WriteRequest([ts])))[0])
    extra = p.decode_columns(p.encode(p.WriteRequest([_series(3)])))[0]
    extra.labels = (p.Label("__name__", "other"), p.Label("zone", "z1"))  # other label names
    out.append(extra)
    return out


def _as_dict(series: list[p.SeriesColumns]) -> dict[Any, tuple[list[int], bytes]]:
    return {_key(sc.labels): (list(sc.timestamps), sc.values.tobytes()) for sc in series}


@pytest.mark.parametrize("timestamps", ["datetime", "ms"])
def test_dataframe_layout_and_round_trip(timestamps: Any) -> None:
    cols = _columns()
    df = frames.to_dataframe(cols, timestamps=timestamps)
    assert list(df.columns) == ["__name__", "i", "zone", "timestamp", "value"]
    assert len(df) == 28
    assert str(df["timestamp"].dtype) == (
        "datetime64[ms, UTC]" if timestamps == "datetime" else "int64"
    )
    assert df["i"].isna().sum() == 3 and df["zone"].isna().sum() == 25
    assert df["value"].to_numpy().tobytes() == b"".join(sc.values.tobytes() for sc in cols)
    assert _as_dict(frames.from_dataframe(df)) == _as_dict(cols)
    # the timestamp as the index, as prometheus-api-client's MetricRangeDataFrame has it
    assert _as_dict(frames.from_dataframe(df.set_index("timestamp"))) == _as_dict(cols)


@pytest.mark.parametrize("timestamps", ["datetime", "ms"])
def test_arrow_layout_and_round_trip(timestamps: Any) -> None:
    import pyarrow as pa

    cols = _columns()
    table = frames.to_arrow(cols, timestamps=timestamps)
    assert table.column_names == ["__name__", "i", "zone", "timestamp", "value"]
    assert table.schema.field("i").type == pa.dictionary(pa.int32(), pa.string())
    assert table["zone"].null_count == 25
    assert table["value"].combine_chunks().buffers()[1].to_pybytes() == b"".join(
        sc.values.tobytes() for sc in cols
    )
    assert _as_dict(frames.from_arrow(table)) == _as_dict(cols)
    # and the same table through pandas (what a user with both may do)
    assert _as_dict(frames.from_dataframe(table.to_pandas())) == _as_dict(cols)


def test_empty_frames_round_trip_to_no_series() -> None:
    assert frames.from_dataframe(frames.to_dataframe([])) == []
    assert frames.from_arrow(frames.to_arrow([])) == []


def test_label_named_like_a_data_column_is_refused() -> None:
    sc = p.SeriesColumns((p.Label("value", "x"),))
    with pytest.raises(ValueError, match="value_column"):
        frames.to_arrow([sc])
    df = frames.to_dataframe([sc], value_column="v")
    assert list(df.columns) == ["value", "timestamp", "v"]


# ------------------------------------------------------------------ real servers

CONFIG = "global:\n  scrape_interval: 1h\n"


@pytest.fixture(scope="module")
def prom(
    prometheus_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusProcess]:
    workdir: Path = tmp_path_factory.mktemp("prom")
    with PrometheusProcess(CONFIG, workdir, flags=["--web.enable-remote-write-receiver"]) as pr:
        with RemoteWriteClient(pr.url + "/api/v1/write") as client:
            client.send_series(_written(_BASE))
        yield pr


_BASE = (int(time.time() * 1000) - 900_000) // 1000 * 1000


def _written(base: int) -> list[p.TimeSeries]:
    out = []
    for k, inst in enumerate(["a:1", "a:2", "b:1"]):
        values = [float(i * i) / 7 + k for i in range(400)]
        values[10] = STALE
        values[11] = PAYLOAD_NAN
        labels = [p.Label("__name__", "pw_cols"), p.Label("instance", inst), p.Label("job", "r")]
        if k == 2:
            labels.append(p.Label("zone", "z"))
        out.append(
            p.TimeSeries(labels, [p.Sample(v, base + 1500 * i) for i, v in enumerate(values)])
        )
    return out


@pytest.mark.parametrize(
    "types",
    [[p.ResponseType.SAMPLES], [p.ResponseType.STREAMED_XOR_CHUNKS]],
    ids=["samples", "streamed"],
)
def test_read_columns_frames_against_prometheus(
    prom: PrometheusProcess, types: list[p.ResponseType], tmp_path: Path
) -> None:
    base = _BASE
    reader = RemoteReadClient(prom.url + "/api/v1/read", response_types=types)
    request = reader.request_for("pw_cols", base + 20_000, base + 500_000)
    want = {_key(ts.labels): ts.samples for _, ts in reader.read(request)}
    assert len(want) == 3
    got = list(reader.read_columns(request))
    assert {_key(sc.labels) for _, sc in got} == set(want)
    for _, sc in got:
        samples = want[_key(sc.labels)]
        assert list(sc.timestamps) == [s.timestamp for s in samples]
        assert sc.values.tobytes() == _bits([s.value for s in samples])  # stale marker kept
    cols = [sc for _, sc in got]
    df = reader.read_dataframe(request)
    assert df["value"].to_numpy().tobytes() == b"".join(sc.values.tobytes() for sc in cols)
    assert _as_dict(frames.from_dataframe(df)) == _as_dict(cols)
    table = reader.read_arrow(request)
    assert _as_dict(frames.from_arrow(table)) == _as_dict(cols)

    # Write the frame back, into a real promwire serve, and read it again.
    with serve_process(tmp_path / "db.sqlite", None) as served:
        url = f"http://127.0.0.1:{served.port}/api/v1"
        with RemoteWriteClient(url + "/write") as client:
            client.send_frame(table if types[0] == p.ResponseType.SAMPLES else df)
        back = RemoteReadClient(url + "/read", response_types=types)
        again = [sc for _, sc in back.read_columns(request)]
    assert _as_dict(again) == _as_dict(cols)


def test_client_use_does_not_import_pandas_or_arrow(prom: PrometheusProcess) -> None:
    """Importing promwire and using both clients loads neither extra (nor numpy)."""
    script = textwrap.dedent(
        f"""
        import sys, time
        import promwire
        from promwire import Label, Sample, TimeSeries
        now = int(time.time() * 1000)
        with promwire.RemoteWriteClient({prom.url!r} + "/api/v1/write") as c:
            c.send_series([TimeSeries([Label("__name__", "pw_lazy")], [Sample(1.0, now)])])
        r = promwire.RemoteReadClient({prom.url!r} + "/api/v1/read")
        req = r.request_for("pw_lazy", now - 1000, now + 1000)
        assert len(list(r.read(req))) == 1
        assert len(list(r.read_columns(req))) == 1
        promwire.decode_columns(promwire.encode(promwire.WriteRequest()))
        loaded = sorted(m for m in ("pandas", "pyarrow", "numpy") if m in sys.modules)
        print(loaded)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_read_columns_error_answers(prom: PrometheusProcess) -> None:
    reader = RemoteReadClient(prom.url + "/api/v1/no-such-endpoint")
    request = reader.request_for("up", 0, 1)
    with pytest.raises(RemoteReadError) as info:
        list(reader.read_columns(request))
    assert info.value.status == 404
