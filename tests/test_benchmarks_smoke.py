"""Smoke test of the benchmark suite: a correctness cross-check, no timing assertions.

The workload generators are deterministic and shaped as documented, and every
peer (protobuf upb, protobuf's python backend, betterproto, pure-protobuf)
decodes the same bytes to the same content as promwire and encodes the same
content, on tiny workloads. Runs in a few seconds.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import cramjam
import pytest

from benchmarks import report, runner, workloads
from benchmarks.peers import betterproto_peer, promwire_peer, protobuf_peer, pure_protobuf_peer
from benchmarks.timing import Budget, Cell, measure_interleaved
from benchmarks.workloads import STALE_NAN, Workload, canonical, difference

ROOT = Path(__file__).resolve().parent.parent
PEERS = [protobuf_peer, betterproto_peer, pure_protobuf_peer]


def tiny_workloads() -> list[Workload]:
    out = [
        Workload("W1", "tiny label heavy", [workloads.label_heavy(40, seed=7)]),
        Workload("W3", "tiny sample heavy", [workloads.sample_heavy(2, 60)]),
        Workload(
            "W4",
            "tiny exemplars + histograms",
            [workloads.with_exemplars_and_histograms(24, histogram_every=2)],
        ),
        Workload("W5", "tiny high cardinality", [workloads.high_cardinality(20)]),
    ]
    # A stale marker must survive every hop the suite checks.
    labels, _, _, _ = out[0].contents[0][0][0]
    out[0].contents[0] = (
        ((labels, ((STALE_NAN, 1_717_200_000_000),), (), ()), *out[0].contents[0][0][1:]),
        (),
    )
    out += workloads.captures()
    runner.attach_bodies(out, protobuf_peer)
    return out


@pytest.fixture(scope="module")
def tiny() -> list[Workload]:
    return tiny_workloads()


# ------------------------------------------------------------------- generators


def test_generators_are_deterministic() -> None:
    assert workloads.label_heavy(50) == workloads.label_heavy(50)
    assert workloads.with_exemplars_and_histograms(30) == workloads.with_exemplars_and_histograms(
        30
    )
    assert workloads.label_heavy(50, seed=1) != workloads.label_heavy(50, seed=2)


def test_label_heavy_shape_and_repetition() -> None:
    series, metadata = workloads.label_heavy(500)
    assert metadata == ()
    assert len(series) == 500
    label_sets = [s[0] for s in series]
    assert len(set(label_sets)) == 500  # distinct series
    for labels in label_sets:
        names = [n for n, _ in labels]
        assert names == sorted(names) and "__name__" in names
        assert 8 <= len(labels) <= 12
    pairs = [p for labels in label_sets for p in labels]
    # Scrape-like: label pairs repeat massively across series.
    assert len(set(pairs)) < len(pairs) / 10
    assert all(len(s[1]) == 1 and not s[2] and not s[3] for s in series)


def test_high_cardinality_labels_rarely_repeat() -> None:
    series, _ = workloads.high_cardinality(300)
    pairs = [p for s in series for p in s[0]]
    assert len(set(pairs)) > 0.85 * len(pairs)


def test_sample_heavy_and_histogram_shapes() -> None:
    series, _ = workloads.sample_heavy(3, 100)
    assert [len(s[1]) for s in series] == [100, 100, 100]
    stamps = [t for _, t in series[0][1]]
    assert stamps == sorted(stamps)
    series, _ = workloads.with_exemplars_and_histograms(40, histogram_every=4)
    assert all(len(s[2]) == 1 for s in series)
    hists = [h for s in series for h in s[3]]
    assert len(hists) == 10
    for h in hists:
        count_int, count_float = h[0], h[1]
        assert (count_int is None) != (count_float is None)  # exactly one oneof member
        spans, deltas, counts = h[10], h[11], h[12]
        assert sum(length for _, length in spans) == len(deltas or counts)


def test_captures_split_series_and_metadata_bodies() -> None:
    caps = {w.name: w for w in workloads.captures()}
    assert set(caps) == {"captures", "captures-meta"}
    runner.attach_bodies(list(caps.values()), protobuf_peer)
    assert all(c[0] and not c[1] for c in caps["captures"].contents)
    assert all(c[1] and not c[0] for c in caps["captures-meta"].contents)


def test_canonical_compares_floats_by_bits() -> None:
    a = (((("a", "b"),), ((STALE_NAN, 1),), (), ()),), ()
    b = (((("a", "b"),), ((float("nan"), 1),), (), ()),), ()
    c = (((("a", "b"),), ((-0.0, 1),), (), ()),), ()
    d = (((("a", "b"),), ((0.0, 1),), (), ()),), ()
    assert canonical(a) != canonical(b)
    assert canonical(c) != canonical(d)
    assert "NaN payloads" in difference(b, a)
    assert difference(a, a) == ""
    assert difference(d, c).startswith("series 0 differs")


# ---------------------------------------------------------------- cross-checks


def test_every_peer_decodes_the_same_content_as_promwire(tiny: list[Workload]) -> None:
    for w in tiny:
        for body in w.bodies:
            ours = canonical(promwire_peer.content(promwire_peer.decode(body)))
            for peer in PEERS:
                theirs = canonical(peer.content(peer.decode(body)))
                assert theirs == ours, f"{peer.NAME} on {w.name}"
            # and the walkers visit every series
            assert promwire_peer.walk(promwire_peer.decode(body)) == len(ours[0])


def test_every_peer_encodes_the_same_content(tiny: list[Workload]) -> None:
    for w in tiny:
        for content in w.contents:
            want = canonical(content)
            for peer in [promwire_peer, *PEERS]:
                body = peer.encode(peer.build(content))
                got = canonical(promwire_peer.content(promwire_peer.decode(body)))
                assert got == want, f"{peer.NAME} on {w.name}"


def test_promwire_encoding_is_byte_identical_to_upb(tiny: list[Workload]) -> None:
    for w in tiny:
        for content in w.contents:
            ours = bytes(
                cramjam.snappy.decompress_raw(promwire_peer.encode(promwire_peer.build(content)))
            )
            assert ours == protobuf_peer.serialize(protobuf_peer.build(content)), w.name


def test_runtime_descriptors_match_the_wire(tiny: list[Workload]) -> None:
    # The upb classes built from descriptors really are proto3 with packed
    # sint64 deltas and an int64 timestamp: check one encoding by hand.
    assert protobuf_peer.backend() == "upb"
    H = protobuf_peer.CLASSES["Histogram"]
    raw = H(count_float=0.0, positive_deltas=[-1, 2], timestamp=-1).SerializeToString()
    assert raw == (
        b"\x11"
        + struct.pack("<d", 0.0)  # oneof member written although zero
        + b"\x62\x02\x01\x04"  # packed zigzag
        + b"\x78"
        + b"\xff" * 9
        + b"\x01"  # negative int64: 10-byte varint
    )


def test_suite_harness_runs_and_reports(tiny: list[Workload]) -> None:
    budget = Budget(0.0, 1)
    results, note = runner.run_fast(promwire_peer, protobuf_peer, tiny, budget)
    for peer in (betterproto_peer, pure_protobuf_peer):
        results += runner.run_peer(peer, tiny, budget, reference=protobuf_peer)
    assert not [r for r in results if r.note.startswith("WRONG")]
    got = {(r.workload, r.op, r.library) for r in results}
    for w in tiny:
        for lib in ("promwire", "protobuf-upb", "betterproto", "pure-protobuf"):
            assert (w.name, "decode", lib) in got
            assert (w.name, "encode", lib) in got
        assert (w.name, "decode", "promwire cold") in got
        assert (w.name, "build+encode", "protobuf-upb") in got
    if not note:  # promwire.server.handlers.handle_write exists
        assert all((w.name, "handler", "promwire") in got for w in tiny)
    text = report.render(results, tiny, header=["# t"], memory=[], notes=[note] if note else [])
    assert "| W1 |" in text and "**Targets**" in text
    checked = [t for t in report.targets(results, tiny) if "protobuf-python" not in t["peer"]]
    assert checked and all(t["ratio"] is not None for t in checked)


def test_interleaved_cells_respect_minimum_and_ceiling() -> None:
    calls: list[str] = []
    cells = [Cell("a", lambda: calls.append("a")), Cell("b", lambda: calls.append("b"))]
    measure_interleaved(cells, Budget(0.0, 3))
    # Cheap cells run their minimum (capped by max_repeats), alternating.
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert [c.stats.n for c in cells] == [3, 3]


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def test_protobuf_python_backend_decodes_the_same_content(
    tiny: list[Workload], tmp_path: Path
) -> None:
    job = {
        "workloads": [(w.name, w.description, w.contents, w.bodies) for w in tiny],
        "budget": (0.0, 1),
    }
    (tmp_path / "job.pickle").write_bytes(pickle.dumps(job))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.pyproto_worker", "job.pickle", "out.json"],
        cwd=tmp_path,
        env=_child_env(PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads((tmp_path / "out.json").read_text())
    assert "(python)" in out["version"]
    decoded = {r["workload"]: r for r in out["results"] if r["op"] == "decode"}
    assert set(decoded) == {w.name for w in tiny}
    for r in out["results"]:
        assert r["stats"] is not None, r["note"]
    # The python backend decodes every field right except NaN payloads: it
    # turns Prometheus' stale marker (and Go's NaN) into a plain NaN.
    assert "NaN payloads lost" in decoded["W1"]["note"]
    assert decoded["W3"]["note"] == "" and decoded["W4"]["note"] == ""


def test_memory_child_reports_rss(tiny: list[Workload], tmp_path: Path) -> None:
    body = tmp_path / "w1.bin"
    body.write_bytes(tiny[0].bodies[0])
    for lib in ("promwire", "protobuf"):
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", lib, str(body)],
            env=_child_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        data = json.loads(proc.stdout)
        assert data["baseline_kib"] > 0 and data["peak_delta_kib"] >= 0


def test_handler_row_is_skipped_when_handle_write_is_absent(
    tiny: list[Workload], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes the import fail as if the module were missing.
    monkeypatch.setitem(sys.modules, "promwire.server.handlers", None)
    results, note = runner.run_fast(promwire_peer, protobuf_peer, tiny[:1], Budget(0.0, 1))
    assert "handler row skipped" in note
    assert not [r for r in results if r.op == "handler"]
    assert [r for r in results if r.op == "decode" and r.library == "promwire"]


def test_a_peer_that_raises_is_reported_not_timed(tiny: list[Workload]) -> None:
    class Broken:
        NAME = "broken"
        content = staticmethod(promwire_peer.content)
        walk = staticmethod(promwire_peer.walk)
        build = staticmethod(promwire_peer.build)
        encode = staticmethod(promwire_peer.encode)

        @staticmethod
        def decode(body: bytes) -> object:
            raise ValueError("boom")

    results = runner.run_peer(Broken, tiny[:1], Budget(0.0, 1), reference=protobuf_peer)  # type: ignore[arg-type]
    dec = [r for r in results if r.op == "decode"]
    assert len(dec) == 1 and dec[0].stats is None and "ValueError: boom" in dec[0].note
    assert [r for r in results if r.op == "encode" and r.stats is not None]
