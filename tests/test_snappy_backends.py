"""Both snappy backends (cramjam and pure Python) through the public API.

Every test taking the ``backend`` fixture runs once per backend, the way
msgpack tests its C extension and its fallback: ``promwire.snappy`` is
switched for the duration of the test and switched back afterwards.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import cramjam
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import promwire
from promwire import LimitExceeded, SnappyError, WriteRequest, snappy
from promwire.codec.wire import varint
from tests.support.snappy_blocks import short_extra_length_literal

REPO = Path(__file__).resolve().parent.parent

SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(params=snappy.BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = snappy._use_backend(request.param)
    try:
        assert request.param == snappy.BACKEND
        yield request.param
    finally:
        snappy._use_backend(previous)


def with_backend(name: str, fn, *args):  # type: ignore[no-untyped-def]
    previous = snappy._use_backend(name)
    try:
        return fn(*args)
    finally:
        snappy._use_backend(previous)


def snappy_fixtures(fixtures_dir: Path) -> list[bytes]:
    """Every snappy body among the captures (streamed read answers are not snappy)."""
    bodies = []
    for path in sorted(fixtures_dir.glob("*/*.bin")):
        raw = path.read_bytes()
        try:
            cramjam.snappy.decompress_raw(raw)
        except Exception:
            continue
        bodies.append(raw)
    assert len(bodies) > 20
    return bodies


# Data that compresses in interesting ways: runs, repeats at short and long
# distances (overlapping copies, 1- and 2-byte offsets), and plain noise.
repetitive = st.builds(
    lambda unit, times, noise: (unit * times)[:200_000] + noise,
    st.binary(min_size=1, max_size=40),
    st.integers(1, 3000),
    st.binary(max_size=50),
)
data_strategy = st.one_of(st.binary(max_size=3000), repetitive)


def random_bytes(n: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(n)


# --------------------------------------------------------------- round trips


@SETTINGS
@given(data=data_strategy)
def test_round_trip(backend: str, data: bytes) -> None:
    block = snappy.compress(data)
    assert snappy.declared_size(block) == len(data)
    assert snappy.decompress(block, max_decompressed_size=len(data)) == data


@SETTINGS
@given(data=data_strategy)
def test_each_backend_inflates_the_others_output(data: bytes) -> None:
    by_cramjam = with_backend("cramjam", snappy.compress, data)
    by_python = with_backend("python", snappy.compress, data)
    assert with_backend("python", snappy.decompress, by_cramjam) == data
    assert with_backend("cramjam", snappy.decompress, by_python) == data
    # Same algorithm, same parameters: the blocks are byte-identical.
    assert by_python == by_cramjam


def test_fixtures_cross_backend(fixtures_dir: Path) -> None:
    for body in snappy_fixtures(fixtures_dir):
        expected = bytes(cramjam.snappy.decompress_raw(body))
        assert with_backend("python", snappy.decompress, body) == expected
        assert with_backend("cramjam", snappy.decompress, body) == expected
        recompressed = with_backend("python", snappy.compress, expected)
        assert recompressed == bytes(cramjam.snappy.compress_raw(expected))
        assert with_backend("cramjam", snappy.decompress, recompressed) == expected


def test_accepts_bytearray_and_memoryview(backend: str) -> None:
    data = b"remote write " * 100
    block = snappy.compress(bytearray(data))
    assert snappy.compress(memoryview(data)) == block
    assert snappy.decompress(bytearray(block)) == data
    assert snappy.decompress(memoryview(block)) == data


def test_empty_input(backend: str) -> None:
    assert snappy.compress(b"") == b"\x00"
    assert snappy.decompress(b"\x00") == b""
    with pytest.raises(SnappyError):
        snappy.decompress(b"")


def test_highly_repetitive_input(backend: str) -> None:
    for data in (bytes(1 << 20), b'up{job="node"} 1\n' * 50_000):
        block = snappy.compress(data)
        # 64-byte copies of 3 bytes each, per 64 KiB block: about 21x smaller.
        assert len(block) < len(data) // 20
        assert snappy.decompress(block) == data


def test_incompressible_input(backend: str) -> None:
    data = random_bytes(300_000)
    block = snappy.compress(data)
    # Snappy's worst-case bound; in practice only literal headers are added.
    assert len(data) < len(block) <= 32 + len(data) + len(data) // 6
    assert snappy.decompress(block) == data


def test_literal_and_copy_encodings_of_every_width(backend: str) -> None:
    # Hand-built: literals with 0-4 extra length bytes, and copies with 1-,
    # 2- and 4-byte offsets (the compressors never emit 4-byte offsets).
    body = bytearray()
    expected = bytearray()
    literals = (
        (5, bytes([4 << 2])),
        (200, bytes([60 << 2, 199])),
        (300, bytes([61 << 2, 43, 1])),
        (70_000, bytes([62 << 2]) + (69_999).to_bytes(3, "little")),
        (10, bytes([63 << 2]) + (9).to_bytes(4, "little")),
    )
    for n, header in literals:
        chunk = random_bytes(n, seed=n)
        body += header + chunk
        expected += chunk
    body += bytes([(1 << 5) | (3 << 2) | 1, 0x10])  # copy1: len 7, offset 0x110
    expected += expected[-0x110 : -0x110 + 7]
    body += bytes([(9 << 2) | 2]) + (1000).to_bytes(2, "little")  # copy2: len 10
    expected += expected[-1000:-990]
    body += bytes([(63 << 2) | 3]) + (70_000).to_bytes(4, "little")  # copy4: len 64
    expected += expected[-70_000:-69_936]
    body += bytes([(19 << 2) | 2, 3, 0])  # overlapping copy: len 20, offset 3
    for _ in range(20):
        expected.append(expected[-3])
    block = varint(len(expected)) + bytes(body)
    assert snappy.decompress(block) == bytes(expected)


# -------------------------------------------------------------------- limits


def test_declared_size_limit(backend: str) -> None:
    data = b"x" * 1000
    block = snappy.compress(data)
    assert snappy.decompress(block, max_decompressed_size=1000) == data
    with pytest.raises(LimitExceeded) as info:
        snappy.decompress(block, max_decompressed_size=999)
    assert info.value.status == 400


def snappy_bomb() -> bytes:
    """48 bytes declaring 2.7 GB: one literal byte, then maximal copies of it."""
    bomb = varint(2_700_000_000) + b"\x00a" + bytes([(63 << 2) | 2, 1, 0]) * 13 + b"\x1d\x01"
    assert len(bomb) == 48
    return bomb


def test_snappy_bomb_refused_before_inflating(backend: str) -> None:
    bomb = snappy_bomb()
    assert snappy.declared_size(bomb) == 2_700_000_000
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded):
            snappy.decompress(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024  # nothing near the declared size was allocated


def test_output_longer_than_declared(backend: str) -> None:
    # Declares 100 bytes, then copies far more: refused, not inflated.
    block = varint(100) + b"\x00a" + bytes([(63 << 2) | 2, 1, 0]) * 1000
    with pytest.raises(SnappyError):
        snappy.decompress(block)


def test_output_shorter_than_declared(backend: str) -> None:
    block = snappy.compress(b"hello world, hello world")
    short = varint(30) + block[1:]
    with pytest.raises(SnappyError):
        snappy.decompress(short)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\x05" + bytes([(1 << 2) | 1, 0]) + b"abcde", id="copy-before-any-output"),
        pytest.param(b"\x08\x00a" + bytes([(3 << 2) | 1, 0]), id="copy1-offset-0"),
        pytest.param(b"\x08\x00a" + bytes([(6 << 2) | 2, 0, 0]), id="copy2-offset-0"),
        pytest.param(b"\x08\x00a" + bytes([(6 << 2) | 3, 0, 0, 0, 0]), id="copy4-offset-0"),
        pytest.param(b"\x08\x00a" + bytes([(3 << 2) | 1, 2]), id="copy1-offset-beyond"),
        pytest.param(b"\x08\x00a" + bytes([(6 << 2) | 2, 9, 0]), id="copy2-offset-beyond"),
        pytest.param(b"\x08\x00a" + bytes([(6 << 2) | 3, 2, 0, 0, 0]), id="copy4-offset-beyond"),
        pytest.param(b"\x08\x00a" + bytes([(3 << 2) | 1]), id="copy1-truncated"),
        pytest.param(b"\x08\x00a" + bytes([(6 << 2) | 2, 1]), id="copy2-truncated"),
        pytest.param(b"\x08\x00a" + bytes([(6 << 2) | 3, 1, 0]), id="copy4-truncated"),
        pytest.param(b"\x08" + bytes([7 << 2]) + b"abc", id="literal-truncated"),
        pytest.param(b"\x08" + bytes([61 << 2, 1]), id="literal-length-truncated"),
        pytest.param(b"\x80", id="preamble-truncated"),
        pytest.param(b"\xff\xff\xff\xff\x7f", id="preamble-over-32-bits"),
        pytest.param(b"\xff\x06\x00\x00sNaPpY", id="framed-snappy"),
        pytest.param(b"\x0a\x05\x0a\x03\x0a\x01a", id="uncompressed-protobuf"),
    ],
)
def test_corrupted_blocks(backend: str, body: bytes) -> None:
    with pytest.raises(SnappyError):
        snappy.decompress(body)


@st.composite
def damaged_blocks(draw: st.DrawFn) -> bytes:
    buf = bytearray(snappy.compress(draw(data_strategy)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(buf) - 1, 0)))
        op = draw(st.sampled_from(("flip", "truncate", "insert", "set")))
        if op == "insert" or not buf:
            buf[at:at] = draw(st.binary(min_size=1, max_size=6))
        elif op == "flip":
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del buf[at:]
        else:
            buf[at] = draw(st.sampled_from((0x00, 0x01, 0x02, 0x03, 0xF0, 0xFC, 0xFE, 0xFF)))
    return bytes(buf)


@SETTINGS
@given(body=damaged_blocks())
def test_damaged_blocks_raise_only_snappy_errors(backend: str, body: bytes) -> None:
    try:
        out = snappy.decompress(body, max_decompressed_size=1 << 20)
    except (SnappyError, LimitExceeded):
        return
    assert len(out) == snappy.declared_size(body)


@SETTINGS
@given(body=damaged_blocks())
@example(body=bytes.fromhex("01f00000"))  # hypothesis found it in CI: the known difference
def test_backends_agree_on_damaged_blocks(body: bytes) -> None:
    def outcome(name: str) -> object:
        try:
            return with_backend(name, snappy.decompress, body)
        except LimitExceeded:
            return "limit"
        except SnappyError:
            return "invalid"

    if short_extra_length_literal(body):
        # The one known difference (tests/test_snappy.py): Go and the python
        # backend decode it, cramjam refuses it.
        assert outcome("cramjam") == "invalid"
        return
    assert outcome("python") == outcome("cramjam")


# ------------------------------------------------------ without cramjam at all

BLOCK_CRAMJAM = """
import sys
class _NoCramjam:
    def find_spec(self, name, path=None, target=None):
        if name == "cramjam" or name.startswith("cramjam."):
            raise ImportError("cramjam blocked by the test")
        return None
sys.meta_path.insert(0, _NoCramjam())
"""


def run_python(code: str, env_value: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop(snappy.ENV_VAR, None)
    if env_value is not None:
        env[snappy.ENV_VAR] = env_value
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )


def test_import_and_decode_without_cramjam(fixtures_dir: Path) -> None:
    fixture = fixtures_dir / "rw_sender" / "A_01_first_request.bin"
    code = (
        BLOCK_CRAMJAM
        + f"""
import json
import promwire
from promwire import WriteRequest, decode, snappy, to_dict
assert "cramjam" not in sys.modules
body = open({str(fixture)!r}, "rb").read()
req = decode(WriteRequest, snappy.decompress(body))
wire = promwire.encode(req)
assert snappy.decompress(snappy.compress(wire)) == wire
# Every module of the package imports without cramjam too.
import importlib, pkgutil
for module in pkgutil.walk_packages(promwire.__path__, "promwire."):
    importlib.import_module(module.name)
assert "cramjam" not in sys.modules
print(json.dumps({{"backend": snappy.BACKEND, "request": to_dict(req)}}))
"""
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["backend"] == "python"
    expected = promwire.decode(WriteRequest, snappy.decompress(fixture.read_bytes()))
    assert result["request"] == promwire.to_dict(expected)
    assert len(expected.timeseries) > 0


def test_env_var_forces_python() -> None:
    proc = run_python("import promwire, sys; print(promwire.snappy.BACKEND)", "python")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "python"


def test_default_is_cramjam_when_importable() -> None:
    proc = run_python("import promwire; print(promwire.snappy.BACKEND)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "cramjam"


ROUND_TRIP = """
import warnings
warnings.simplefilter("error", promwire.snappy.SnappyBackendWarning)
try:
    promwire.snappy.compress(b"x")
except promwire.snappy.SnappyBackendWarning as w:
    print("warned:", w)
print(promwire.snappy.decompress(promwire.snappy.compress(b"abc" * 9)) == b"abc" * 9)
"""


def test_env_var_forcing_missing_cramjam_falls_back_with_a_warning() -> None:
    code = BLOCK_CRAMJAM + "import promwire\nprint(promwire.snappy.BACKEND)\n" + ROUND_TRIP
    proc = run_python(code, "cramjam")
    assert proc.returncode == 0, proc.stderr
    backend, warned, ok = proc.stdout.splitlines()
    assert backend == "python"
    assert warned.startswith("warned: PROMWIRE_SNAPPY=cramjam but cramjam is not installed")
    assert ok == "True"


def test_env_var_with_unknown_value_falls_back_with_a_warning() -> None:
    code = "import promwire\nprint(promwire.snappy.BACKEND_PROBLEM)\n" + ROUND_TRIP
    proc = run_python(code, "zstd")
    assert proc.returncode == 0, proc.stderr
    problem, warned, ok = proc.stdout.splitlines()
    assert problem == (
        "PROMWIRE_SNAPPY='zstd' is not a snappy backend: use one of cramjam, python or auto"
    )
    assert warned == f"warned: {problem}; using the cramjam backend"
    assert ok == "True"


def test_env_var_warning_comes_once() -> None:
    code = (
        "import warnings, promwire\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    for _ in range(3):\n"
        "        promwire.snappy.decompress(promwire.snappy.compress(b'abc'))\n"
        "print(len(seen), seen[0].category.__name__)\n"
    )
    proc = run_python(code, "bogus")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "SnappyBackendWarning"]


def test_valid_env_var_has_no_problem() -> None:
    proc = run_python("import promwire; print(promwire.snappy.BACKEND_PROBLEM)", "python")
    assert proc.stdout.strip() == "None" and not proc.stderr


def test_python_backend_checks_the_limit_itself() -> None:
    # promwire.snappy checks the declared size first; the pure-Python
    # decompressor, used on its own, refuses it as well before inflating.
    from promwire.codec import _snappy_py

    bomb = snappy_bomb()
    with pytest.raises(LimitExceeded):
        _snappy_py.decompress(bomb, max_size=snappy.DEFAULT_MAX_DECOMPRESSED_SIZE)
    block = _snappy_py.compress(b"abc" * 100)
    assert _snappy_py.decompress(block, max_size=300) == b"abc" * 100
    with pytest.raises(LimitExceeded):
        _snappy_py.decompress(block, max_size=299)
    with pytest.raises(SnappyError):
        _snappy_py.decompress(b"\xff\xff\xff\xff\xff\x01", max_size=1 << 40)
