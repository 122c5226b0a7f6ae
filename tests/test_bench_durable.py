"""benchmarks/bench_durable.py runs and checks what the receiver holds (no timing assertions)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.serve_process import REPO


def test_bench_durable_runs_on_a_tiny_workload() -> None:
    argv = [sys.executable, "-m", "benchmarks.bench_durable", "--samples", "2000"]
    argv += ["--down", "0.2", "--receivers", "serve"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=REPO)
    # Each cell asserts that promwire serve holds exactly the appended samples.
    assert done.returncode == 0, done.stderr
    rows = [ln for ln in done.stdout.splitlines() if ln.startswith("| serve |")]
    assert [r.split("|")[2].strip() for r in rows] == ["live", "backlog"]
