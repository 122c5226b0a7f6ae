"""Durations and sizes as ``promwire serve`` flags write them: ``15d``, ``10GB``.

Durations take Prometheus' units (``ms``, ``s``, ``m``, ``h``, ``d``, ``w``,
``y`` = 365 days), one or several (``1h30m``); sizes take ``B``, ``KB``,
``MB``, ``GB``, ``TB``, ``PB``, ``EB`` (powers of 1024, as Prometheus'
``--storage.tsdb.retention.size`` does; ``KiB`` ... spellings too). A bad value
raises ``ValueError`` with a short message.
"""

from __future__ import annotations

import re

from ..codec import textform

__all__ = ["parse_duration", "parse_size"]

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGTPE]?)(I?B)?", re.IGNORECASE)
_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as ``15d`` or ``1h30m`` (> 0)."""
    ms = textform.parse_duration(text)
    if ms is None or ms <= 0:
        raise ValueError(f"not a duration: {text[:40]!r} (e.g. 15d, 12h, 1h30m)")
    return ms / 1000


def parse_size(text: str) -> int:
    """Bytes in a size such as ``10GB`` or ``512MB`` (> 0)."""
    found = _SIZE.fullmatch(text.strip())
    if found is None or float(found.group(1)) <= 0:
        raise ValueError(f"not a size: {text[:40]!r} (e.g. 10GB, 512MB)")
    return int(float(found.group(1)) * 1024 ** _POWERS[found.group(2).upper()])
