"""The columnar benchmarks run and check what they time (no timing assertions).

``benchmarks.bench_columns`` checks decode_columns against decode on W1-W3
before timing and the sample count of every streamed read;
``benchmarks.bench_frames`` compares every frame with what it wrote, against
a real Prometheus 2.42. Both run here at a tiny size.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_bench_columns_quick() -> None:
    text = _run("benchmarks.bench_columns", "--quick", "--only", "W1,W3", "--streamed-series", "20")
    assert "| W1 |" in text and "| W3 |" in text
    # the receiver's batch decode takes W1 (one sample a series), not W3
    assert "| W3 | not this shape" in text
    assert [line for line in text.splitlines() if line.startswith("| W1 |") and "x |" in line]
    assert "| 15s exact constant | 2,000 |" in text


@pytest.mark.prometheus
def test_bench_frames_tiny(prometheus_bin: str) -> None:
    text = _run("benchmarks.bench_frames", "--series", "5", "--samples", "40", "--rounds", "1")
    for path in ("promwire read_dataframe (streamed)", "promwire read_dataframe (SAMPLES)"):
        assert f"{path}: 200 rows, 0 missing, 0 not written, 0 values differ" in text
    # JSON loses the stale marker (no point) and the NaN payload (plain NaN)
    assert (
        "query_range + MetricRangeDataFrame: 199 rows, 1 missing, 0 not written, 1 values differ"
        in text
    )
