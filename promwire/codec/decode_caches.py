"""The decoder's caches, each bounded by bytes, and their settings.

Label pairs, whole label blocks, ``BucketSpan``\\ s and ``MetricMetadata``
repeat from request to request, so the decoder keeps what it built, keyed by
the raw wire bytes (a hit is exactly what a fresh decode would build):

* ``pairs``:    bytes of one ``Label`` message -> the ``Label`` (frozen, shared)
* ``blocks``:   bytes of a series' run of label records -> ``tuple[Label, ...]``
* ``spans``:    bytes of one ``BucketSpan`` -> the ``BucketSpan``
* ``metadata``: bytes of one ``MetricMetadata`` -> its four field values

Each cache has a byte budget. An entry is charged an upper bound of the memory
it keeps alive: its key, the objects it holds, the characters of their
strings (up to 4 bytes per UTF-8 byte when the key is not ASCII) and a dict
slot; a block is charged for its labels as well, even when the pair cache
holds them too. An insert that would go over the budget first empties the
cache, which then refills with what is hot. An entry whose key is longer than
the cache's per-entry cap is never stored (decoded, used, not kept), and a
block is only stored when each of its labels is within the pair cap: no
cache ever holds a label longer than ``max_pair_bytes``. Since the default
``max_label_bytes`` of the receiver (64 KiB) is far above it, a label
refused for its length is never cached. A block is also only stored when
it is a valid label set (:mod:`promwire.codec.labelset`), so the decoder
can tell a receiver which series need that check: those whose labels did
not come whole from this cache.

Lookups (hits) take no lock: dict get/set are atomic under the GIL. Inserts
(misses only) take one lock so that the byte counts stay exact.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from . import messages as m
from .labelset import label_set_problem

__all__ = [
    "DEFAULT_BUDGETS",
    "DEFAULT_ENTRY_CAPS",
    "cache_info",
    "clear_caches",
    "set_cache_limits",
]

#: Byte budget of each cache (0 disables a cache). 105 MiB in total at most.
DEFAULT_BUDGETS: dict[str, int] = {
    "pairs": 32 * 1024 * 1024,
    "blocks": 64 * 1024 * 1024,
    "spans": 1 * 1024 * 1024,
    "metadata": 8 * 1024 * 1024,
}
#: Largest key (wire bytes of one entry) each cache stores; longer ones are never cached.
#: A span is two varints (at most 12 bytes when well formed).
DEFAULT_ENTRY_CAPS: dict[str, int] = {
    "pairs": 1024,
    "blocks": 16 * 1024,
    "spans": 32,
    "metadata": 4096,
}

_pairs: dict[bytes, m.Label] = {}
_blocks: dict[bytes, tuple[m.Label, ...]] = {}
_spans: dict[bytes, m.BucketSpan] = {}
_metadata_fields: dict[bytes, tuple[Any, str, str, str]] = {}
_CACHES: dict[str, dict[bytes, Any]] = {
    "pairs": _pairs,
    "blocks": _blocks,
    "spans": _spans,
    "metadata": _metadata_fields,
}

_budget = dict(DEFAULT_BUDGETS)
_cap = dict(DEFAULT_ENTRY_CAPS)
_used = dict.fromkeys(_CACHES, 0)
_lock = threading.Lock()

# Fixed parts of an entry's cost: the key's bytes header, a dict slot (index
# and entry, with the table's slack), the objects around the strings.
_KEY = sys.getsizeof(b"")
_SLOT = 64
_STR = sys.getsizeof("")
_LABEL = sys.getsizeof(m.Label("", "")) + 2 * _STR
_PAIR_FIXED = _KEY + _SLOT + _LABEL
_BLOCK_FIXED = _KEY + _SLOT + sys.getsizeof(())
_SPAN_COST = _KEY + _SLOT + sys.getsizeof(m.BucketSpan()) + 2 * sys.getsizeof(1 << 40)
_METADATA_FIXED = _KEY + _SLOT + sys.getsizeof((0, "", "", "")) + 3 * _STR


def _sized(key: bytes) -> int:
    """The key's bytes plus what the strings decoded from it can take.

    A string takes 1 byte per character when ASCII, at most 4 otherwise, and
    has at most as many characters as its UTF-8 bytes.
    """
    return 2 * len(key) if key.isascii() else 5 * len(key)


def _charge(name: str, cache: dict[bytes, Any], cost: int) -> bool:
    """Account ``cost`` more bytes to cache ``name``; the caller holds ``_lock``.

    False when the entry alone is over the budget (not to be stored); a cache
    that would go over its budget is emptied first.
    """
    budget = _budget[name]
    if cost > budget:
        return False
    used = _used[name] + cost
    if used > budget:
        cache.clear()
        used = cost
    _used[name] = used
    return True


def _admit(name: str, cache: dict[bytes, Any], key: bytes, value: Any, cost: int) -> None:
    """Store ``key -> value`` charged ``cost`` bytes, emptying the cache first if it is full."""
    with _lock:
        if key not in cache and _charge(name, cache, cost):
            cache[key] = value


def remember_pair(key: bytes, label: m.Label) -> None:
    """Offer one decoded label to the pair cache (the caller has checked ``max_pair_bytes``)."""
    remember_pairs([(key, label)])


def _store_pairs(missed: list[tuple[bytes, m.Label]]) -> None:
    """The pair inserts of :func:`remember_pairs`; the caller holds ``_lock``."""
    for key, label in missed:
        if _charge("pairs", _pairs, _PAIR_FIXED + _sized(key)):
            _pairs[key] = label


def remember_pairs(missed: list[tuple[bytes, m.Label]]) -> None:
    """Offer decoded labels (each within ``max_pair_bytes``) to the pair cache, one lock for all.

    A key two threads both missed is charged twice (an over-count, never an
    under-count).
    """
    with _lock:
        _store_pairs(missed)


def remember_block(
    key: bytes | None, block: tuple[m.Label, ...], missed: list[tuple[bytes, m.Label]] | None
) -> None:
    """Offer a decoded label block and the pairs it missed (``None``: none).

    ``key`` is ``None`` when the block is not to be cached (it holds a label
    over ``max_pair_bytes``). A block is only kept when it is a valid label
    set (:mod:`promwire.codec.labelset`: a label with a value, no name
    twice), so a cached block needs no check when it is found again. One
    lock for the block and its pairs: this runs on every block miss.
    """
    if key is None or len(key) > _cap["blocks"] or label_set_problem(block) is not None:
        if missed:
            remember_pairs(missed)
        return
    cost = _BLOCK_FIXED + _sized(key) + len(block) * (8 + _LABEL)
    with _lock:
        if missed:
            _store_pairs(missed)
        if _charge("blocks", _blocks, cost):
            _blocks[key] = block


def remember_span(key: bytes, span: m.BucketSpan) -> None:
    if len(key) <= _cap["spans"]:
        _admit("spans", _spans, key, span, _SPAN_COST + len(key))


def remember_metadata(key: bytes, fields: tuple[Any, str, str, str]) -> None:
    if len(key) <= _cap["metadata"]:
        _admit("metadata", _metadata_fields, key, fields, _METADATA_FIXED + _sized(key))


def _check(what: str, value: int) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{what} must be an int >= 0, got {value!r}")
    return value


def set_cache_limits(
    *,
    pairs_bytes: int = DEFAULT_BUDGETS["pairs"],
    blocks_bytes: int = DEFAULT_BUDGETS["blocks"],
    spans_bytes: int = DEFAULT_BUDGETS["spans"],
    metadata_bytes: int = DEFAULT_BUDGETS["metadata"],
    max_pair_bytes: int = DEFAULT_ENTRY_CAPS["pairs"],
    max_block_bytes: int = DEFAULT_ENTRY_CAPS["blocks"],
    max_metadata_bytes: int = DEFAULT_ENTRY_CAPS["metadata"],
) -> None:
    """Set the byte budget of each decoder cache and the largest entry each stores.

    ``*_bytes`` bound the memory a cache keeps (``0`` disables it);
    ``max_*_bytes`` bound the wire size of one entry: a label (name and value
    with their tags), a series' label block, a ``MetricMetadata``. Longer
    ones are decoded but never kept. Arguments left out get their defaults
    back. Empties the caches.
    """
    budgets = {
        "pairs": _check("pairs_bytes", pairs_bytes),
        "blocks": _check("blocks_bytes", blocks_bytes),
        "spans": _check("spans_bytes", spans_bytes),
        "metadata": _check("metadata_bytes", metadata_bytes),
    }
    caps = {
        "pairs": _check("max_pair_bytes", max_pair_bytes),
        "blocks": _check("max_block_bytes", max_block_bytes),
        "spans": DEFAULT_ENTRY_CAPS["spans"],
        "metadata": _check("max_metadata_bytes", max_metadata_bytes),
    }
    with _lock:
        _budget.update(budgets)
        _cap.update(caps)
    clear_caches()


def clear_caches() -> None:
    """Empty the decoder's caches (a cold start, e.g. for benchmarks)."""
    with _lock:
        for name, cache in _CACHES.items():
            cache.clear()
            _used[name] = 0


def cache_info() -> dict[str, int]:
    """Per cache ``<name>`` (pairs, blocks, spans, metadata): entries, bytes, budget, entry cap.

    Keys: ``<name>`` (entries), ``<name>_bytes`` (accounted bytes, never over
    the budget), ``<name>_budget``, ``<name>_max_entry``; ``total_bytes`` and
    ``total_budget``.
    """
    with _lock:
        info: dict[str, int] = {}
        for name, cache in _CACHES.items():
            info[name] = len(cache)
            info[f"{name}_bytes"] = _used[name]
            info[f"{name}_budget"] = _budget[name]
            info[f"{name}_max_entry"] = _cap[name]
        info["total_bytes"] = sum(_used.values())
        info["total_budget"] = sum(_budget.values())
    return info
