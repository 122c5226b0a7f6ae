"""Buffers a thread keeps from one answer to the next.

A large temporary buffer is memory the allocator hands back to the kernel
and takes again, every page of it a page fault on first touch (about 600 of
them, a few ms in a VM, for a 40,000-sample SAMPLES answer). The encoders of
an answer write into a buffer their thread keeps instead
(:mod:`promwire.codec.read_columns`, :func:`promwire.codec.snappy.compress_kept`).
"""

from __future__ import annotations

import threading

__all__ = ["kept_buffer"]

_local = threading.local()


def kept_buffer(name: str, size: int, cap: int) -> bytearray:
    """A ``bytearray`` of at least ``size`` bytes that the calling thread keeps
    under ``name`` (callers ask for ``size <= cap``): grown when too small, to
    twice its length or ``size``, never past ``cap``. Its contents are the
    last caller's; it is overwritten by the next call on the thread."""
    buf: bytearray | None = getattr(_local, name, None)
    if buf is None or len(buf) < size:
        buf = bytearray(min(cap, max(size, 2 * len(buf or b""))))
        setattr(_local, name, buf)
    return buf
