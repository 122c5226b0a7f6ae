"""Snappy *block* (raw) format, the only compression remote write/read use.

Two backends do the work, with the same results (their compressed output is
byte-identical, and each inflates the other's):

* ``"cramjam"`` (Rust, fast) - the default whenever ``cramjam`` imports;
* ``"python"`` (:mod:`promwire.codec._snappy_py`, pure Python) - used when
  cramjam is not installed, so ``import promwire`` needs no compiled code.

The environment variable ``PROMWIRE_SNAPPY`` overrides the choice when
promwire is imported: ``PROMWIRE_SNAPPY=python`` forces the pure-Python
backend, ``PROMWIRE_SNAPPY=cramjam`` forces cramjam, unset/empty/``auto``
means cramjam if importable, else Python. :data:`BACKEND` names the backend
in use.

A value that cannot be followed (an unknown name, or ``cramjam`` when cramjam
is missing) does not break ``import promwire``: the automatic choice is used,
:data:`BACKEND_PROBLEM` says why, and the first :func:`compress` or
:func:`decompress` issues a :class:`SnappyBackendWarning`. The ``promwire``
command refuses to run instead (exit 2 for an unknown name, 4 for a missing
cramjam).

The framed ("streaming") snappy format is refused: both remote write specs
forbid it, and it is recognisable by its stream identifier.

The declared decompressed size (the varint preamble of a snappy block) is
checked against ``max_decompressed_size`` *before* anything is inflated, so a
48-byte body that declares gigabytes costs nothing.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

from ..errors import LimitExceeded, SnappyError
from . import _snappy_py
from .kept import kept_buffer
from .wire import read_varint

__all__ = [
    "BACKEND",
    "BACKENDS",
    "BACKEND_PROBLEM",
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    "ENV_VAR",
    "KEEP_BYTES",
    "SnappyBackendWarning",
    "compress",
    "compress_kept",
    "declared_size",
    "decompress",
]

#: Prometheus' own receive limit for the decoded body (32 MiB).
DEFAULT_MAX_DECOMPRESSED_SIZE = 32 * 1024 * 1024

_FRAMED_MAGIC = b"\xff\x06\x00\x00sNaPpY"

#: The environment variable read once, at import, to choose the backend.
ENV_VAR = "PROMWIRE_SNAPPY"
#: The backend names, fastest first.
BACKENDS = ("cramjam", "python")

_Inflate = Callable[[bytes, int], bytes]
_Deflate = Callable[[bytes | bytearray | memoryview], bytes]
#: cramjam's deflate and its compress-into-a-buffer, once cramjam was loaded.
_cramjam_deflate: _Deflate | None = None
_compress_into: Callable[[bytes | bytearray | memoryview, bytearray], int] | None = None


def _cramjam_codec() -> tuple[_Inflate, _Deflate]:
    import cramjam  # imported here so that promwire imports without it

    def inflate(data: bytes, size: int) -> bytes:
        try:
            return bytes(cramjam.snappy.decompress_raw(data))
        except Exception as exc:
            raise SnappyError(f"invalid snappy block: {exc}") from None

    def deflate(data: bytes | bytearray | memoryview) -> bytes:
        # cramjam reads any buffer: a bytearray answer is not copied first
        return bytes(cramjam.snappy.compress_raw(data))

    global _cramjam_deflate, _compress_into
    _cramjam_deflate = deflate
    _compress_into = cramjam.snappy.compress_raw_into
    return inflate, deflate


def _python_codec() -> tuple[_Inflate, _Deflate]:
    def inflate(data: bytes, size: int) -> bytes:
        return _snappy_py.decompress(data, max_size=size)

    def deflate(data: bytes | bytearray | memoryview) -> bytes:
        return _snappy_py.compress(bytes(data))

    return inflate, deflate


def _use_backend(name: str) -> str:
    """Switch the backend (for tests); returns the previous one's name.

    Raises ImportError if ``name`` is ``"cramjam"`` and cramjam is missing.
    """
    global BACKEND, _inflate, _deflate
    if name == "cramjam":
        codec = _cramjam_codec()
    elif name == "python":
        codec = _python_codec()
    else:
        raise ValueError(f"unknown snappy backend {name!r}; choose one of {BACKENDS}")
    previous = BACKEND
    _inflate, _deflate = codec
    BACKEND = name
    return previous


class SnappyBackendWarning(RuntimeWarning):
    """``PROMWIRE_SNAPPY`` named a backend that cannot be used; another one is."""


def _auto_backend() -> str:
    try:
        import cramjam  # noqa: F401
    except ImportError:
        return "python"
    return "cramjam"


def _choose_backend(value: str) -> tuple[str, str | None]:
    """The backend for the value of ``PROMWIRE_SNAPPY``, and why the value
    could not be followed (None when it was)."""
    choice = value.strip().lower()
    if choice in ("", "auto"):
        return _auto_backend(), None
    if choice == "python":
        return "python", None
    if choice == "cramjam":
        auto = _auto_backend()
        if auto == "cramjam":
            return "cramjam", None
        return auto, f"{ENV_VAR}=cramjam but cramjam is not installed (pip install cramjam)"
    return _auto_backend(), (
        f"{ENV_VAR}={value!r} is not a snappy backend: use one of {', '.join(BACKENDS)} or auto"
    )


def _warn_first(problem: str) -> None:
    """Make the first compress/decompress warn about ``problem`` (once)."""
    global _inflate, _deflate
    inflate, deflate = _inflate, _deflate

    def restore() -> None:
        global _inflate, _deflate
        if _inflate is warn_inflate:
            _inflate, _deflate = inflate, deflate
            warnings.warn(
                f"{problem}; using the {BACKEND} backend", SnappyBackendWarning, stacklevel=4
            )

    def warn_inflate(data: bytes, size: int) -> bytes:
        restore()
        return inflate(data, size)

    def warn_deflate(data: bytes | bytearray | memoryview) -> bytes:
        restore()
        return deflate(data)

    _inflate, _deflate = warn_inflate, warn_deflate


#: The backend in use, ``"cramjam"`` or ``"python"``.
BACKEND: str = ""
#: Why ``PROMWIRE_SNAPPY`` could not be followed at import (None if it was).
BACKEND_PROBLEM: str | None
_inflate: _Inflate
_deflate: _Deflate
_backend, BACKEND_PROBLEM = _choose_backend(os.environ.get(ENV_VAR, ""))
_use_backend(_backend)
if BACKEND_PROBLEM is not None:
    _warn_first(BACKEND_PROBLEM)


def declared_size(data: bytes | bytearray | memoryview) -> int:
    """The decompressed size a snappy block declares in its preamble."""
    buf = bytes(data[:10])
    if buf.startswith(_FRAMED_MAGIC[:4]):
        raise SnappyError("framed snappy stream: remote storage uses the snappy block format")
    try:
        size, _ = read_varint(buf, 0)
    except Exception:
        raise SnappyError("snappy block has no valid length preamble") from None
    if size >= 1 << 32:
        raise SnappyError(f"snappy block declares an impossible size ({size} bytes)")
    return size


def decompress(
    data: bytes | bytearray | memoryview,
    *,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
) -> bytes:
    """Inflate a snappy block, refusing one that declares more than the limit.

    Raises :class:`~promwire.errors.LimitExceeded` (status 400) when the
    declared size exceeds ``max_decompressed_size`` and
    :class:`~promwire.errors.SnappyError` for anything that is not a valid
    snappy block (including framed snappy and plain uncompressed protobuf).
    """
    if not data:
        raise SnappyError("empty body: a snappy block is at least one byte")
    size = declared_size(data)
    if size > max_decompressed_size:
        raise LimitExceeded(
            f"snappy block declares {size} bytes, over the limit of {max_decompressed_size}",
            status=400,
        )
    result = _inflate(bytes(data), size)  # bytes(b) is b itself: no copy
    if len(result) != size:
        raise SnappyError(f"snappy block declared {size} bytes but inflated to {len(result)}")
    return result


#: The most a thread keeps of the buffer :func:`compress_kept` compresses into (bytes).
KEEP_BYTES = 5 << 20


def compress_kept(data: bytes | bytearray | memoryview) -> bytes:
    """:func:`compress`, the block built in a buffer the thread keeps (up to
    :data:`KEEP_BYTES`) and copied out of it: with cramjam, a large answer's
    compression then reuses memory the process has instead of a fresh
    buffer each time (each of its pages a page fault on first touch). The
    same bytes as :func:`compress`; other backends, and blocks that could
    exceed the cap, go through :func:`compress`."""
    into = _compress_into
    if into is None or _deflate is not _cramjam_deflate:
        return compress(data)
    need = 32 + len(data) + len(data) // 6  # snappy's bound on a block's size
    if need > KEEP_BYTES:
        return compress(data)
    out = kept_buffer("snappy_block", need, KEEP_BYTES)
    n = into(data, out)
    with memoryview(out) as view:
        return view[:n].tobytes()


def compress(data: bytes | bytearray | memoryview) -> bytes:
    """Compress to a snappy block (raw format); ``b""`` gives ``b"\\x00"``.
    A ``bytearray`` or ``memoryview`` is read where it is, not copied first."""
    return _deflate(data)
