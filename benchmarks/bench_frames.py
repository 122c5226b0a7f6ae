"""A range into a pandas DataFrame: promwire remote read vs query_range JSON.

Against one real Prometheus 2.42 (the ``prometheus`` binary on PATH, started
here on a free port with a temporary data dir), filled by remote write with
``--series`` series of ``--samples`` samples each, 15 s apart, values random
doubles with full 17-digit precision. Then, for the same selector and range:

* **promwire**: ``RemoteReadClient.read_dataframe`` (remote read, streamed
  XOR chunks, Prometheus' default answer) and with ``SAMPLES`` answers;
* **prometheus-api-client**: ``PrometheusConnect.custom_query_range`` (the
  ``/api/v1/query_range`` JSON, ``step`` = the sample interval and samples on
  the step grid, so every sample is returned as is) into its
  ``MetricRangeDataFrame`` - what Python users do today.

Times are wall-clock per full query (server work included), median of
interleaved rounds; the client's own CPU time (this process) is shown beside
them, the rest is Prometheus' work and waiting. Exactness: every frame is
compared sample by sample (labels, millisecond timestamp, float bits) with
what was written.

Run: ``python3 -m benchmarks.bench_frames [--series 200 --samples 1440 --rounds 5]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from promwire import Label, ResponseType, Sample, TimeSeries
from promwire.client.reader import RemoteReadClient
from promwire.client.writer import RemoteWriteClient

STEP_MS = 15_000
NAN_PAYLOAD = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000ABC))[0]
STALE = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise SystemExit("prometheus binary not found")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1h\n")
        self.log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-remote-write-receiver",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit("prometheus did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _data(n_series: int, n_samples: int, end_ms: int) -> tuple[int, list[TimeSeries]]:
    rng = random.Random(16)
    start = end_ms - (n_samples - 1) * STEP_MS
    series = []
    for i in range(n_series):
        labels = [
            Label("__name__", "bench_frame"),
            Label("instance", f"host-{i:04d}:9100"),
            Label("job", "node"),
            Label("region", f"r{i % 3}"),
        ]
        samples = [Sample(rng.uniform(-1e6, 1e6), start + k * STEP_MS) for k in range(n_samples)]
        series.append(TimeSeries(labels, samples))
    # What JSON cannot carry: a NaN with a payload and a stale marker (series 0)
    series[0].samples[5] = Sample(NAN_PAYLOAD, series[0].samples[5].timestamp)
    series[0].samples[6] = Sample(STALE, series[0].samples[6].timestamp)
    return start, series


def _fill(url: str, series: list[TimeSeries], n_samples: int) -> None:
    """Write in time slices (Prometheus' head only takes samples near its newest time)."""
    slice_len = 120
    with RemoteWriteClient(url + "/api/v1/write") as client:
        for a in range(0, n_samples, slice_len):
            client.send_series(
                [TimeSeries(ts.labels, ts.samples[a : a + slice_len]) for ts in series]
            )


def _key(labels: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def _rows_from_df(df: Any, label_names: list[str]) -> dict[Any, float]:
    """(label set, timestamp ms) -> value, from a long-form frame with a timestamp column."""
    import numpy as np

    ts = df["timestamp"]
    if hasattr(ts, "dt"):
        ts_ns = ts.dt.tz_localize(None) if ts.dt.tz is not None else ts
        ns = ts_ns.to_numpy().astype("datetime64[ns]").view(np.int64)
    else:
        ns = np.asarray(ts)
    out: dict[Any, float] = {}
    labels = df[label_names].astype(str).to_numpy()
    values = df["value"].to_numpy(dtype=np.float64)
    for row, t, v in zip(labels, ns, values, strict=True):
        ms, rest = divmod(int(t), 1_000_000)
        key = (tuple(zip(label_names, row, strict=True)), ms if rest == 0 else (ms, rest))
        out[key] = v
    return out


def _compare(name: str, got: dict[Any, float], want: dict[Any, float]) -> str:
    missing = len(set(want) - set(got))
    extra = len(set(got) - set(want))
    bits = struct.Struct("<d").pack
    differ = sum(1 for k, v in got.items() if k in want and bits(v) != bits(want[k]))
    return (
        f"{name}: {len(got)} rows, {missing} missing, {extra} not written, {differ} values differ"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--samples", type=int, default=1440, help="per series, 15 s apart")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)

    from prometheus_api_client import MetricRangeDataFrame, PrometheusConnect

    now_ms = (int(time.time() * 1000) - 120_000) // STEP_MS * STEP_MS
    start_ms, series = _data(args.series, args.samples, now_ms)
    end_ms = now_ms
    total = args.series * args.samples
    with tempfile.TemporaryDirectory(prefix="promwire-bench-frames-") as tmp:
        prom = Prometheus(Path(tmp))
        try:
            t0 = time.perf_counter()
            _fill(prom.url, series, args.samples)
            print(f"wrote {total:,} samples in {time.perf_counter() - t0:.1f} s")
            reader = RemoteReadClient(prom.url + "/api/v1/read")
            samples_reader = RemoteReadClient(
                prom.url + "/api/v1/read", response_types=[ResponseType.SAMPLES]
            )
            request = reader.request_for("bench_frame", start_ms, end_ms)
            pc = PrometheusConnect(url=prom.url, disable_ssl=True)
            start_dt = dt.datetime.fromtimestamp(start_ms / 1000, dt.timezone.utc)
            end_dt = dt.datetime.fromtimestamp(end_ms / 1000, dt.timezone.utc)

            def promwire_streamed() -> Any:
                return reader.read_dataframe(request)

            def promwire_samples() -> Any:
                return samples_reader.read_dataframe(request)

            def api_client() -> Any:
                data = pc.custom_query_range("bench_frame", start_dt, end_dt, step="15s")
                return MetricRangeDataFrame(data).reset_index()

            cells = {
                "promwire read_dataframe (streamed)": promwire_streamed,
                "promwire read_dataframe (SAMPLES)": promwire_samples,
                "prometheus-api-client query_range + MetricRangeDataFrame": api_client,
            }
            times: dict[str, list[float]] = {k: [] for k in cells}
            cpu: dict[str, list[float]] = {k: [] for k in cells}
            frames: dict[str, Any] = {}
            for _ in range(args.rounds):
                for name, fn in cells.items():
                    t0 = time.perf_counter()
                    c0 = time.process_time()
                    frames[name] = fn()
                    cpu[name].append(time.process_time() - c0)
                    times[name].append(time.perf_counter() - t0)
        finally:
            prom.stop()

    names = ["__name__", "instance", "job", "region"]
    want = {
        (tuple((lb.name, lb.value) for lb in ts.labels), s.timestamp): s.value
        for ts in series
        for s in ts.samples
    }
    base = statistics.median(times["prometheus-api-client query_range + MetricRangeDataFrame"])
    print(f"\n{args.series} series x {args.samples} samples = {total:,} samples, one range")
    print("| path | median s | client CPU s | samples/s | vs query_range JSON |")
    print("|---|---:|---:|---:|---:|")
    for name, ts_ in times.items():
        med = statistics.median(ts_)
        mc = statistics.median(cpu[name])
        print(f"| {name} | {med:.3f} | {mc:.3f} | {total / med / 1e6:.2f} M | {base / med:.1f}x |")
    print()
    for name, df in frames.items():
        print(_compare(name, _rows_from_df(df, names), want))
    print(f"load average: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
