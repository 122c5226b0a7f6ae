"""benchmarks/bench_v2.py runs and cross-checks v2 against v1 (no timing assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_v2_runs_on_a_tiny_workload() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "benchmarks/bench_v2.py",
            "--series",
            "30",
            "--labels",
            "4",
            "--repeat",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert out.startswith("30 series x 4 labels x 1 samples")
    for line in ("v1 decode (cold", "v2 decode (wire only)", "ratio v2 wire / v1 cold:"):
        assert line in out
