"""The stores' bounded read caches: weight and entry bounds, oldest first."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire.stores.fifo_cache import FifoCache


def test_oldest_entries_go_first_until_the_weight_fits() -> None:
    cache: FifoCache[str, int] = FifoCache(10)
    for key, weight in [("a", 4), ("b", 4), ("c", 2)]:
        cache.put(key, weight, weight)
    assert (cache.held_keys(), cache.weight) == (["a", "b", "c"], 10)
    cache.put("d", 5, 5)  # a and b must go: 2 + 5 fits only without both
    assert (cache.held_keys(), cache.weight) == (["c", "d"], 7)
    assert cache.get("a") is None and cache.get("d") == 5 and "c" in cache
    cache.put("c", 1, 1)  # replaced: its old weight is given back, it is newest now
    assert (cache.held_keys(), cache.weight) == (["d", "c"], 6)
    cache.put("huge", 0, 11)  # heavier than the whole bound: not kept, nothing dropped
    assert (cache.held_keys(), cache.weight) == (["d", "c"], 6)
    cache.clear()
    assert (len(cache), cache.weight) == (0, 0)


def test_the_entry_bound_and_zero_bounds() -> None:
    cache: FifoCache[int, int] = FifoCache(1 << 20, max_entries=3)
    for k in range(5):
        cache.put(k, k)
    assert cache.held_keys() == [2, 3, 4]
    for none in (FifoCache[int, int](0), FifoCache[int, int](10, max_entries=0)):
        none.put(1, 1)
        assert len(none) == 0
    with pytest.raises(ValueError):
        FifoCache(-1)


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 6)), max_size=60))
@settings(max_examples=300, deadline=None)
def test_bounds_hold_and_the_weight_is_the_sum(puts: list[tuple[int, int]]) -> None:
    cache: FifoCache[int, int] = FifoCache(12, max_entries=4)
    model: dict[int, int] = {}  # what must be there: a model of the rule
    for key, weight in puts:
        cache.put(key, weight, weight)
        if weight <= 12:
            model.pop(key, None)
            while model and (sum(model.values()) + weight > 12 or len(model) >= 4):
                del model[next(iter(model))]
            model[key] = weight
        assert cache.held_keys() == list(model)
        assert cache.weight == sum(model.values()) <= 12 and len(cache) <= 4


def test_threads_putting_at_once_keep_the_bounds() -> None:
    cache: FifoCache[int, int] = FifoCache(100, max_entries=50)

    def put(base: int) -> None:
        for k in range(2000):
            cache.put(base + k, k, k % 5)

    threads = [threading.Thread(target=put, args=(i * 10_000,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) <= 50 and cache.weight <= 100
    assert cache.weight == sum((k % 10_000) % 5 for k in cache.held_keys())
