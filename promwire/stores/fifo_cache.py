"""A bounded cache that forgets its oldest entries first, for the stores' read caches.

Every read cache of the SQLite store keeps a pure function of its key (chunk
bytes decoded, a head group encoded), so an entry is never stale and needs no
invalidation, only a bound. :class:`FifoCache` holds at most ``max_weight``
of its values' weights (entries, histograms, bytes: the caller says what one
weighs) and at most ``max_entries`` entries, dropping the oldest first.
Lookups take no lock (one ``dict.get``, atomic under the GIL); writers share
one. docs/storage.md lists the caches and their bounds.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["FifoCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class FifoCache(Generic[K, V]):
    """At most ``max_weight`` of weight in at most ``max_entries`` entries
    (``None``: no bound on their number), oldest dropped first; thread-safe.
    A value heavier than ``max_weight`` is not kept, and ``max_weight`` 0
    keeps nothing."""

    __slots__ = ("_entries", "_lock", "max_entries", "max_weight", "weight")

    def __init__(self, max_weight: int, max_entries: int | None = None) -> None:
        if max_weight < 0 or (max_entries is not None and max_entries < 0):
            raise ValueError("a cache's bounds must be >= 0")
        self.max_weight = max_weight
        self.max_entries = max_entries
        #: the weight held now
        self.weight = 0
        self._entries: dict[K, tuple[V, int]] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        hit = self._entries.get(key)
        return None if hit is None else hit[0]

    def put(self, key: K, value: V, weight: int = 1) -> None:
        """Keep ``value`` under ``key`` (replacing what was there), making room."""
        if weight > self.max_weight or self.max_entries == 0:
            return
        with self._lock:
            entries = self._entries
            old = entries.pop(key, None)
            if old is not None:
                self.weight -= old[1]
            while entries and (
                self.weight + weight > self.max_weight
                or (self.max_entries is not None and len(entries) >= self.max_entries)
            ):
                self.weight -= entries.pop(next(iter(entries)))[1]
            entries[key] = (value, weight)
            self.weight += weight

    def held_keys(self) -> list[K]:
        """The keys held, oldest first."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.weight = 0

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
