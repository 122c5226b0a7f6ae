"""decode(encode(m)) gives back m, bit for bit, for every message class."""

from __future__ import annotations

import dataclasses
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from promwire import DecodeError, EncodeError, decode, encode
from promwire.codec import messages as m
from promwire.codec.decoder import cache_info, clear_caches, set_cache_limits
from promwire.codec.wire import double_bits
from promwire.testing import (
    MESSAGE_CLASSES,
    canonical,
    messages,
    mutations,
    prometheus_write_requests,
)
from tests.oracle import ORACLE, from_oracle, to_oracle

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=35, deadline=None)
@given(data=st.data())
def test_decode_encode_round_trip(cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(messages(cls))
    raw = encode(msg)
    back = decode(cls, raw)
    assert type(back) is cls
    assert canonical(back) == canonical(msg)
    # Encoding what was decoded gives the same bytes again.
    assert encode(back) == raw


# ------------------------------------------------- the decoder's hand-written fast paths
#
# decode() has hand-written paths for WriteRequest, TimeSeries and Label, with
# caches keyed by raw bytes. They must give exactly what protobuf's own parser
# gives, with the caches cold, warm, or disabled.


def _upb(cls: type[Any], raw: bytes) -> Any:
    return canonical(from_oracle(cls, ORACLE[cls].FromString(raw)))


@settings(max_examples=50, deadline=None)
@given(req=prometheus_write_requests())
def test_prometheus_shaped_requests_decode_like_upb(req: m.WriteRequest) -> None:
    raw = encode(req)
    assert raw == to_oracle(req).SerializeToString()
    assert canonical(decode(m.WriteRequest, raw)) == canonical(req)
    # Again: now every label and label block is a cache hit.
    assert canonical(decode(m.WriteRequest, raw)) == _upb(m.WriteRequest, raw)
    for ts in req.timeseries:
        one = encode(ts)
        assert canonical(decode(m.TimeSeries, one)) == canonical(ts)


@settings(max_examples=25, deadline=None)
@given(req=prometheus_write_requests())
def test_caches_disabled_give_the_same(req: m.WriteRequest) -> None:
    raw = encode(req)
    warm = canonical(decode(m.WriteRequest, raw))
    try:
        set_cache_limits(pairs_bytes=0, blocks_bytes=0)
        assert canonical(decode(m.WriteRequest, raw)) == warm
        assert cache_info()["pairs"] == 0 and cache_info()["blocks"] == 0
        set_cache_limits(pairs_bytes=350, blocks_bytes=1000)  # constant eviction
        assert canonical(decode(m.WriteRequest, raw)) == warm
        assert canonical(decode(m.WriteRequest, raw)) == warm
    finally:
        set_cache_limits()
    clear_caches()
    assert canonical(decode(m.WriteRequest, raw)) == warm


@settings(max_examples=40, deadline=None)
@given(req=prometheus_write_requests(), data=st.data())
def test_damaged_prometheus_requests_decode_like_upb_or_fail(
    req: m.WriteRequest, data: st.DataObject
) -> None:
    raw = encode(req)
    decode(m.WriteRequest, raw)  # warm the caches with the intact labels
    bad = data.draw(mutations(raw))
    try:
        got = decode(m.WriteRequest, bad)
    except DecodeError:
        return
    assert canonical(got) == _upb(m.WriteRequest, bad)  # accepted: upb accepts it too


def test_fixed_shape_sample_runs() -> None:
    """Runs of 18-byte samples (6-byte timestamps) interrupted by other shapes."""
    t0 = 1_795_582_339_377
    shapes = [
        [m.Sample(float(i), t0 + i) for i in range(5)],
        [m.Sample(1.0, t0), m.Sample(2.0, 1 << 42), m.Sample(3.0, t0 + 1), m.Sample(4.0, t0 + 2)],
        [m.Sample(1.0, t0), m.Sample(0.0, t0 + 1), m.Sample(2.0, t0 + 2)],  # 0.0 not written
        [
            m.Sample(1.0, t0),
            m.Sample(2.0, -t0),
            m.Sample(3.0, (1 << 35) - 1),
            m.Sample(4.0, 1 << 35),
        ],
        [m.Sample(-0.0, t0), m.Sample(float("inf"), t0 + 1)],
    ]
    for samples in shapes:
        ts = m.TimeSeries([m.Label("__name__", "x")], samples)
        raw = encode(ts)
        assert canonical(decode(m.TimeSeries, raw)) == canonical(ts) == _upb(m.TimeSeries, raw)
        req = encode(m.WriteRequest([ts, ts]))
        assert canonical(decode(m.WriteRequest, req).timeseries) == [canonical(ts)] * 2


def test_six_byte_varint_edges() -> None:
    """Values at the edges of the 6-byte varint table path, incl. a non-minimal 6-byte varint."""
    label = bytes.fromhex("0a 07 0a 01 61 12 02 6263".replace(" ", ""))
    for ts_varint, expected in [
        ("80 80 80 80 80 01", 1 << 35),
        ("ff ff ff ff ff 7f", (1 << 42) - 1),
        ("81 80 80 80 80 00", 1),  # non-minimal: same value
        ("80 80 80 80 80 00", 0),
    ]:
        sample = bytes.fromhex(("12 10 09 000000000000f03f 10 " + ts_varint).replace(" ", ""))
        series = label + sample
        for _ in range(2):  # cold, then with the label block cached
            req = decode(m.WriteRequest, bytes([0x0A, len(series)]) + series)
            assert req.timeseries[0].samples == [m.Sample(1.0, expected)]
            assert req.timeseries[0].labels == [m.Label("a", "bc")]
        run = decode(m.TimeSeries, label + sample * 3)
        assert run.samples == [m.Sample(1.0, expected)] * 3


# ------------------------------------------------------------- promwire.testing itself


def test_strategies_cover_every_message_class() -> None:
    classes = {
        obj
        for obj in vars(m).values()
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == m.__name__
    }
    assert classes == set(MESSAGE_CLASSES)
    with pytest.raises(TypeError):
        messages(dict)


def _hist_bits(h: m.Histogram) -> set[int]:
    return {double_bits(x) for x in (h.sum, h.zero_threshold, *h.positive_counts)}


# What the strategies must be able to produce: (message class, property).
_REACH: dict[str, tuple[type, Callable[[Any], bool]]] = {
    "count_float_zero": (
        m.Histogram,
        lambda h: h.count_float is not None and double_bits(h.count_float) == 0,
    ),
    "count_int_zero": (m.Histogram, lambda h: h.count_int == 0),
    "count_absent": (m.Histogram, lambda h: h.count_int is None and h.count_float is None),
    "stale_nan": (m.Histogram, lambda h: m.STALE_NAN_BITS in _hist_bits(h)),
    "neg_zero": (m.Histogram, lambda h: 1 << 63 in _hist_bits(h)),
    "unknown_enum": (m.MetricMetadata, lambda mm: not isinstance(mm.type, m.MetricType)),
    "hints_none": (m.Query, lambda q: q.hints is None),
    "hints_empty": (m.Query, lambda q: q.hints == m.ReadHints()),
    "negative_int64": (m.Query, lambda q: q.start_timestamp_ms < 0),
}


@pytest.mark.parametrize("name", sorted(_REACH))
def test_strategies_reach_the_interesting_values(name: str) -> None:
    # One search per property (hypothesis.find raises NoSuchExample when the
    # strategy never produces it), so no property depends on what one shared
    # random exploration happened to draw.
    cls, wanted = _REACH[name]
    find(
        messages(cls),
        wanted,
        settings=settings(max_examples=2000, deadline=None, derandomize=True, database=None),
    )


_BLOCK_HYPOTHESIS = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "hypothesis" or name.startswith("hypothesis."):
            raise ImportError("No module named 'hypothesis' (blocked)")
        return None
sys.meta_path.insert(0, Block())
for name in [n for n in sys.modules if n.startswith("hypothesis")]:
    del sys.modules[name]
"""


def test_promwire_never_imports_hypothesis() -> None:
    code = (
        "import sys, pkgutil, importlib, promwire\n"
        "def walk(path, prefix):\n"
        "    for mod in pkgutil.iter_modules(path, prefix):\n"
        "        if mod.name.startswith('promwire.testing'):\n"
        "            continue\n"
        "        try:\n"
        "            module = importlib.import_module(mod.name)\n"
        "        except ImportError as exc:  # an optional dependency missing here\n"
        "            assert 'hypothesis' not in str(exc), mod.name\n"
        "            continue\n"
        "        if mod.ispkg:\n"
        "            walk(module.__path__, mod.name + '.')\n"
        "walk(promwire.__path__, 'promwire.')\n"
        "assert 'promwire.server.handlers.write' in sys.modules\n"
        "assert not [n for n in sys.modules if n.startswith('hypothesis')], 'hypothesis imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_testing_without_hypothesis_is_a_clear_import_error() -> None:
    code = _BLOCK_HYPOTHESIS + (
        "import promwire\n"
        "try:\n"
        "    import promwire.testing\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('imported without hypothesis')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True
    )
    assert "hypothesis" in out.stdout
    assert "pip install hypothesis" in out.stdout


def test_module_docstring_example_runs() -> None:
    """The usage example in promwire.testing's docstring works as written."""
    import promwire.testing as testing

    doc = testing.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n``messages", 1)[0]
    code = "\n".join(line[4:] for line in block.splitlines())

    class MyStorage:
        def __init__(self) -> None:
            self.kept: m.WriteRequest | None = None

        def write(self, req: m.WriteRequest) -> None:
            self.kept = req

        def dump(self) -> m.WriteRequest | None:
            return self.kept

    namespace: dict[str, Any] = {"MyStorage": MyStorage}
    exec(compile(code, "promwire.testing docstring", "exec"), namespace)
    test = namespace["test_my_storage_keeps_what_it_is_given"]
    settings(max_examples=10, deadline=None)(test)()


def test_encoder_sample_fast_path_edges_match_upb() -> None:
    """The 18-byte sample record path: timestamp edges of the 6-byte varint, special values."""
    specials = [1.0, -0.0, 0.0, float("inf"), float("nan"), 5e-324]
    specials += [float.fromhex("0x1.0000000000002p-1022")]
    stamps = [(1 << 35) - 1, 1 << 35, (1 << 42) - 1, 1 << 42, 0, -1, -(1 << 35)]
    samples = [m.Sample(v, t) for v in specials for t in stamps]
    stale = struct.unpack("<d", struct.pack("<Q", m.STALE_NAN_BITS))[0]
    samples += [m.Sample(stale, 1 << 40), m.Sample(1, 1 << 40)]  # an int value: general path
    ts = m.TimeSeries([m.Label("a", "b")], samples)
    raw = encode(ts)
    assert raw == to_oracle(ts).SerializeToString()
    assert canonical(decode(m.TimeSeries, raw)) == canonical(ts)
    with pytest.raises(EncodeError):
        encode(m.TimeSeries(samples=[m.Sample(1.0, 1 << 63)]))
    with pytest.raises(EncodeError):
        encode(m.TimeSeries(samples=[m.Sample(1.0, float(1 << 40))]))  # type: ignore[arg-type]


def test_concurrent_first_use_of_varint_tables() -> None:
    """Threads that decode and encode at once while the lazily built varint tables are
    cold (a threaded server's first requests) must all get the right answer.

    The tables were once filled in place by ``list.extend(generator)``: a second thread
    saw them half-built (IndexError) or both threads filled them (interleaved, wrong
    timestamps ever after).
    """
    import threading

    decode_module = sys.modules["promwire.codec.decoder"]
    encode_module = sys.modules["promwire.codec.encoder"]
    t0 = 1_795_582_339_377
    reqs = [
        m.WriteRequest(
            [
                m.TimeSeries(
                    [m.Label("__name__", f"m{(i * k) % 7}"), m.Label("job", f"j{k % 3}")],
                    [m.Sample(float(i + k), t0 + i * 1000 + k)],
                )
                for i in range(40)
            ]
        )
        for k in range(4)
    ]
    raws = [encode(r) for r in reqs]
    expected = [canonical(r) for r in reqs]
    errors: list[str] = []

    def work(k: int) -> None:
        try:
            for _ in range(30):
                if encode(reqs[k]) != raws[k]:
                    errors.append(f"encode {k}")
                if canonical(decode(m.WriteRequest, raws[k])) != expected[k]:
                    errors.append(f"decode {k}")
        except Exception as exc:  # any escape is a failure too
            errors.append(f"{k}: {exc!r}")

    old = sys.getswitchinterval()
    try:
        sys.setswitchinterval(1e-4)  # switch threads often
        for _ in range(3):
            # cold start: empty tables, as in a fresh process
            decode_module._pair_table.clear()
            encode_module._pair_more.clear()
            encode_module._pair_last.clear()
            threads = [threading.Thread(target=work, args=(k,)) for k in range(len(raws))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[:5]
    assert len(decode_module._pair_table) == 1 << 16
    assert len(encode_module._pair_more) == len(encode_module._pair_last) == 1 << 14


def test_concurrent_decodes_with_tiny_caches() -> None:
    """Threads decoding different requests while tiny caches are emptied under them."""
    import threading

    t0 = 1_795_582_339_377
    reqs = [
        m.WriteRequest(
            [
                m.TimeSeries(
                    [m.Label("__name__", f"m{(i * k) % 7}"), m.Label("job", f"j{k % 3}")],
                    [m.Sample(float(i + k), t0 + i)],
                )
                for i in range(40)
            ]
        )
        for k in range(4)
    ]
    raws = [encode(r) for r in reqs]
    expected = [canonical(r) for r in reqs]
    errors: list[str] = []
    set_cache_limits(pairs_bytes=900, blocks_bytes=2000)  # a few entries
    try:

        def work(k: int) -> None:
            for _ in range(100):
                if canonical(decode(m.WriteRequest, raws[k])) != expected[k]:
                    errors.append(f"thread {k}")
                    return

        threads = [threading.Thread(target=work, args=(k,)) for k in range(len(raws))]
        old = sys.getswitchinterval()
        sys.setswitchinterval(1e-4)  # switch threads often
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            sys.setswitchinterval(old)
    finally:
        set_cache_limits()
    assert not errors
