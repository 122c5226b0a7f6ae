"""The fault soak (scripts/soak.py) in its short CI form: one minute of scraping.

A real Prometheus remote-writes its own metrics and 300 synthetic gauges into a
promwire receiver that answers 500 to 20% of the writes (half of them after
committing) and is SIGKILLed and restarted half-way. Every sample in
Prometheus' TSDB must then be in the SQLite store exactly once, bit for bit.

Runs by default; deselect with ``pytest -m 'not soak'``. The long form is
documented in docs/soak.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.soak, pytest.mark.prometheus]

SOAK = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"


@pytest.mark.timeout(420)
def test_one_minute_soak_loses_and_duplicates_nothing(prometheus_bin: str, tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            *("--minutes", "1", "--fail-rate", "0.2", "--extra-series", "300"),
            *("--prometheus", prometheus_bin, "--workdir", str(tmp_path / "run")),
            *("--json", str(out), "--quiet"),
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    print(proc.stdout)  # the summary, shown with pytest -s
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(out.read_text())
    cmp = summary["comparison"]
    assert summary["ok"] is True
    assert (cmp["missing"], cmp["duplicates"], cmp["mismatched"], cmp["extra"]) == (0, 0, 0, 0)
    # The run really covered a minute of both targets: Prometheus' own series
    # plus the 300 synthetic ones, scraped every second.
    assert cmp["series"] > 300
    assert cmp["expected"] > 300 * 40
    assert cmp["matched"] == cmp["expected"]
    # The faults really happened: failures on both sides of the commit, resends
    # of committed batches, and one SIGKILL with a restart on the same db.
    requests = summary["receiver"]["requests"]
    assert requests.get("B", 0) > 0 and requests.get("A", 0) > 0
    assert requests.get("R", 0) > 0
    assert summary["receiver"]["starts"] == 2
    assert summary["kill_at_s"] is not None
    prom = summary["prometheus"]
    assert prom["prometheus_remote_storage_samples_retried_total"] > 0
    assert prom["prometheus_remote_storage_samples_failed_total"] == 0
    assert prom["prometheus_remote_storage_samples_dropped_total"] == 0
