"""CRC-32C: check value, RFC 3720 vectors, pure Python vs google_crc32c."""

from __future__ import annotations

import os

import google_crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire.chunks import checksum as mod
from promwire.chunks.checksum import (
    IMPLEMENTATION,
    crc32c,
    crc32c_of_pieces,
    crc32c_pure,
    crc32c_update_pure,
)


def test_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c_pure(b"123456789") == 0xE3069283
    assert crc32c(b"") == crc32c_pure(b"") == 0


def test_rfc3720_vectors() -> None:
    # iSCSI (RFC 3720, B.4) test patterns, 32 bytes each.
    vectors = {
        bytes(32): 0x8A9136AA,
        b"\xff" * 32: 0x62A8AB43,
        bytes(range(32)): 0x46DD794E,
        bytes(range(31, -1, -1)): 0x113FDB5C,
    }
    for data, expected in vectors.items():
        assert crc32c_pure(data) == expected
        assert crc32c(data) == expected
        # long enough to take the 16-bytes-per-step path too
        assert crc32c_pure(data * 20) == google_crc32c.value(data * 20)


def test_pure_matches_google_on_every_length_and_alignment() -> None:
    blob = os.urandom(1200)
    for n in range(0, 600, 7):
        for offset in (0, 1, 5):
            piece = blob[offset : offset + n]
            assert crc32c_pure(piece) == google_crc32c.value(piece), (n, offset)
    big = os.urandom(1 << 20)
    assert crc32c_pure(big) == google_crc32c.value(big)
    assert crc32c_pure(memoryview(big)[3:]) == google_crc32c.value(big[3:])
    assert crc32c_pure(bytearray(big[:999])) == google_crc32c.value(big[:999])


def test_incremental_update() -> None:
    data = os.urandom(5000)
    crc = 0xFFFFFFFF
    for i in range(0, 5000, 333):
        crc = crc32c_update_pure(crc, data[i : i + 333])
    assert crc ^ 0xFFFFFFFF == google_crc32c.value(data)


def test_google_crc32c_is_used_when_installed() -> None:
    # The test extras install google-crc32c with its C extension.
    assert google_crc32c.implementation == "c"
    assert IMPLEMENTATION == "google_crc32c"
    assert mod._native is not None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=700))
def test_pure_equals_native(data: bytes) -> None:
    assert crc32c_pure(data) == google_crc32c.value(data) == crc32c(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=600), max_size=8))
def test_pieces_checksum_as_their_concatenation(pieces: list[bytes]) -> None:
    whole = b"".join(pieces)
    assert crc32c_of_pieces(pieces) == google_crc32c.value(whole) == crc32c_pure(whole)
    # and without the C extension: the pure register carried across pieces
    saved = mod._native_extend
    mod._native_extend = None
    try:
        assert crc32c_of_pieces(pieces) == google_crc32c.value(whole)
    finally:
        mod._native_extend = saved
