"""``serve --malloc-keep``: freed memory stays with glibc's allocator for the
next request instead of being faulted in again."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

from promwire.server.malloc import keep_freed_memory
from promwire.server.runner import add_serve_options, serve_options

_FAULTS = textwrap.dedent(
    """
    import resource, sys
    from promwire.server.malloc import keep_freed_memory
    took = keep_freed_memory(int(sys.argv[1]))
    pieces = [bytes([i]) * 1000 for i in range(256)] * 2  # 512 KB in pieces
    b"".join(pieces)  # warm up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):  # what a streamed read does: join a message, frame it, drop both
        message = b"".join(pieces)
        frame = b"".join((b"head", message))
        del message, frame
    print(took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _faults(keep: int) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS, str(keep)], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_kept_memory_spares_the_page_faults_of_each_large_join() -> None:
    took, kept = _faults(8 << 20)
    assert took
    untouched, default = _faults(0)
    assert not untouched
    # By default the two freed blocks go back to the system: ~250 faults a read.
    assert default > 200 * 100, default
    assert kept < 200, kept


def test_the_flag_takes_a_size_or_zero_and_refuses_the_rest() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_serve_options(parser)
    assert serve_options(parser.parse_args([]))["malloc_keep"] == 8 << 20
    assert serve_options(parser.parse_args(["--malloc-keep", "0"]))["malloc_keep"] == 0
    assert serve_options(parser.parse_args(["--malloc-keep", "32MiB"]))["malloc_keep"] == 32 << 20
    with pytest.raises(SystemExit):
        parser.parse_args(["--malloc-keep", "lots"])
    with pytest.raises(ValueError):
        keep_freed_memory(-1)
