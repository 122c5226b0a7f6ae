"""Keeping the event loop free in the async handlers.

Sync storage methods run in a worker thread (``asyncio.to_thread``); decode
steps run inline for small bodies and in a worker thread from
``_OFFLOAD_BYTES`` on.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


#: Bodies from this size on are decoded in a worker thread by the async handlers.
_OFFLOAD_BYTES = 64 * 1024


async def _off_loop(size: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a decode step inline for small bodies, in a worker thread for big ones.

    Decoding a few MiB takes tens of milliseconds the event loop would spend
    deaf to other connections; for small bodies the thread hop costs more
    than the decode.
    """
    if size < _OFFLOAD_BYTES:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)


async def _call(method: Callable[..., Any], *args: Any) -> Any:
    """Await an async storage method; run a sync one in a worker thread."""
    if inspect.iscoroutinefunction(method):
        return await method(*args)
    result = await asyncio.to_thread(method, *args)
    if inspect.isawaitable(result):  # a sync-looking callable that returned a coroutine
        result = await result
    return result
