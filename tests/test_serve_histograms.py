"""`promwire serve` streams the native histograms it stores as histogram chunks.

The same histogram series the live Prometheus test writes (gaps, new and
vanishing buckets, negative buckets, a schema change, a counter reset, a stale
marker; integer, float and gauge) go into a real `promwire serve` through
the write client; a streamed read (STREAMED_XOR_CHUNKS only) gives them back
in HISTOGRAM / FLOAT_HISTOGRAM chunks, equal to what was written, beside a
float series' XOR chunks, and cut to the query's range.
"""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path

from promwire import (
    ChunkEncoding,
    Label,
    LabelMatcher,
    MatchType,
    Query,
    Sample,
    TimeSeries,
    WriteRequest,
)
from promwire.chunks.streamed import decode_series_histograms, iter_chunked_series
from promwire.client.reader import RemoteReadClient
from promwire.client.writer import RemoteWriteClient
from tests.support.serve_process import serve_process
from tests.test_histogram_live import N, _gauge, _read_raw, _same, _series


def test_serve_streams_stored_histograms_as_histogram_chunks(tmp_path: Path) -> None:
    rng = random.Random(14)
    start = int(time.time() * 1000) - 2_000_000
    written = {
        "pw_hist_int": _series(rng, start, is_float=False),
        "pw_hist_float": _series(rng, start + 17, is_float=True),
        "pw_hist_gauge": _gauge(rng, start + 5),
    }
    floats = [Sample(float(i), start + 1000 * i) for i in range(300)]
    with serve_process(tmp_path / "db", "uvicorn") as served:
        url = f"http://127.0.0.1:{served.port}"
        with RemoteWriteClient(url + "/api/v1/write") as client:
            for i in range(0, N, 50):
                series = [
                    TimeSeries(labels=[Label("__name__", name)], histograms=hs[i : i + 50])
                    for name, hs in written.items()
                    if hs[i : i + 50]
                ]
                if floats[i : i + 50]:
                    series.append(
                        TimeSeries([Label("__name__", "pw_floats")], samples=floats[i : i + 50])
                    )
                assert client.send(WriteRequest(series)).status == 204

        end = max(hs[-1].timestamp for hs in written.values()) + 1
        query = Query(start, end, [LabelMatcher(MatchType.RE, "__name__", "pw_.*")])
        got = {s.labels[0].value: s for _, s in iter_chunked_series(_read_raw(url, query))}
        assert sorted(got) == ["pw_floats", "pw_hist_float", "pw_hist_gauge", "pw_hist_int"]
        assert {c.type for c in got["pw_floats"].chunks} == {ChunkEncoding.XOR}
        assert {c.type for c in got["pw_hist_int"].chunks} == {ChunkEncoding.HISTOGRAM}
        assert {c.type for c in got["pw_hist_float"].chunks} == {ChunkEncoding.FLOAT_HISTOGRAM}
        for name, want in written.items():
            chunks = got[name].chunks
            assert len(chunks) > 1  # cut by size, schema change and counter reset
            assert all(a.max_time_ms < b.min_time_ms for a, b in itertools.pairwise(chunks))
            decoded = decode_series_histograms(got[name])
            assert len(decoded) == len(want)
            assert all(_same(g, w) for g, w in zip(decoded, want, strict=True)), name

        # the read client asks for streamed first and cuts to the range
        lo, hi = written["pw_hist_int"][40].timestamp, written["pw_hist_int"][160].timestamp
        reader = RemoteReadClient(url + "/api/v1/read")
        [series] = list(reader.query("pw_hist_int", lo, hi))
        assert reader.last_content_type is not None
        assert reader.last_content_type.startswith("application/x-streamed-protobuf")
        want = written["pw_hist_int"][40:161]
        assert all(_same(g, w) for g, w in zip(series.histograms, want, strict=True))
        assert len(series.histograms) == len(want)
