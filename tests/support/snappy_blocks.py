"""Facts about snappy blocks that the backend tests share."""

from __future__ import annotations

__all__ = ["short_extra_length_literal"]


def short_extra_length_literal(body: bytes) -> bool:
    """Whether the block holds a literal whose length takes extra bytes (tag
    60..63) with fewer than 4 bytes after its tag: snap loads 4 bytes there."""
    pos = 0
    while pos < len(body) and body[pos] & 0x80:  # the declared length's varint
        pos += 1
    pos += 1
    while pos < len(body):
        tag = body[pos]
        kind, x = tag & 3, tag >> 2
        if kind == 0:
            if x >= 60:
                if len(body) - pos - 1 < 4:
                    return True
                extra = x - 59
                x = int.from_bytes(body[pos + 1 : pos + 1 + extra], "little")
                pos += extra
            pos += 1 + x + 1
        else:
            pos += (2, 3, 5)[kind - 1]
    return False
