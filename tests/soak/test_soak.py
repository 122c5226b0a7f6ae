"""The fault soak (scripts/soak.py) in its short CI form: one minute of scraping.

A real Prometheus remote-writes its own metrics and 300 synthetic gauges into a
promwire receiver that answers 500 to 20% of the writes (half of them after
committing) and is SIGKILLed and restarted half-way. Every sample in
Prometheus' TSDB must then be in the SQLite store exactly once, bit for bit.

Runs by default; deselect with ``pytest -m 'not soak'``. The long form is
documented in docs/soak.md.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from promwire import STALE_NAN_BITS
from promwire.chunks.xor import decode_xor_bits, encode_xor_bits
from promwire.stores.sqlite import SQLiteStorage
from promwire.stores.sqlite_blocks import block_span, unseal
from promwire.stores.sqlite_chunks import chunk_count, chunk_mint

pytestmark = [pytest.mark.soak, pytest.mark.prometheus]

SOAK = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("promwire_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


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

    # The comparison is not vacuous: damage the kept store (one row deleted,
    # one value changed, one sample Prometheus never had added), reopen the
    # kept Prometheus TSDB without scrape jobs, compare again: all three show.
    soak = load_soak()
    db = tmp_path / "run" / "soak.db"
    damage(db, soak, summary["window_ms"])
    prom = soak.Prometheus(prometheus_bin, tmp_path / "run" / "prom")
    prom.start("global: {scrape_interval: 1s}\nscrape_configs: []\n")
    try:
        start_ms, end_ms = summary["window_ms"]
        damaged = soak.compare(prom, db, start_ms, end_ms, 60)
    finally:
        prom.stop()
    assert (damaged.missing, damaged.mismatched, damaged.extra) == (1, 1, 1)
    assert damaged.expected == cmp["expected"]


def damage(db: Path, soak: ModuleType, window_ms: list[int]) -> None:
    """One sample deleted and one value changed inside a stored chunk of the
    compared window (the chunk decoded, edited and encoded again), and one
    sample Prometheus never had added as a chunk of its own."""
    SQLiteStorage(db).close()  # closing flushes the head: every sample is in a chunk
    start_ms, end_ms = window_ms
    with sqlite3.connect(db) as conn:
        # Closing also sealed them into packs: take them all back to the chunks table.
        span = block_span(conn)
        assert span is not None
        everyone = {int(sid): span[0] for (sid,) in conn.execute("SELECT id FROM series")}
        assert unseal(conn, everyone, span) > 0
        assert conn.execute("SELECT count(*) FROM blocks").fetchone() == (0,)
        rows = [
            ((sid, maxt), sid, data)
            for sid, maxt, data in conn.execute(
                "SELECT series_id, maxt, data FROM chunks WHERE maxt >= ? ORDER BY series_id, maxt",
                (start_ms,),
            )
            if chunk_mint(data) < end_ms and chunk_count(data) >= 4
        ]

        def inside(t: int) -> bool:
            return start_ms + 2000 <= t < end_ms - 2000

        # A chunk with two neighbouring non-stale samples well inside the window.
        cid, sid, ts, bits, i = next(
            (cid, sid, ts, bits, i)
            for cid, sid, data in rows
            for ts, bits in [decode_xor_bits(data)]
            for i in range(1, len(ts) - 2)
            if inside(ts[i]) and inside(ts[i + 1]) and STALE_NAN_BITS not in bits[i : i + 2]
        )
        target = soak.float_bits(1234.5678)
        changed = target if bits[i + 1] != target else 0x1234
        ts = ts[:i] + ts[i + 1 :]  # sample i deleted
        bits = [*bits[:i], changed, *bits[i + 2 :]]  # sample i + 1 altered
        conn.execute(
            "UPDATE chunks SET maxt = ?, data = ? WHERE series_id = ? AND maxt = ?",
            (ts[-1], encode_xor_bits(ts, bits), *cid),
        )
        conn.execute(
            "INSERT INTO chunks(series_id, maxt, data) VALUES (?, 1, ?)",
            (sid, encode_xor_bits([1], [0])),
        )
