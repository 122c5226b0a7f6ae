"""Clients: the remote-write sender (:mod:`promwire.client.writer`), the durable
sender with its write-ahead log (:mod:`promwire.client.durable`, on
:mod:`promwire.client.wal`), the remote-read client
(:mod:`promwire.client.reader`) and copying between stores
(:mod:`promwire.client.migrate`).

Imports only the codec and chunk layers. The names below are imported on
first use (PEP 562), so ``import promwire.client.writer`` does not load the
others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "RemoteWriteClient": "promwire.client.writer",
    "AsyncRemoteWriteClient": "promwire.client.writer",
    "RemoteReadClient": "promwire.client.reader",
    "DurableWriter": "promwire.client.durable",
    "AsyncDurableWriter": "promwire.client.durable",
    "Migration": "promwire.client.migrate",
}

if TYPE_CHECKING:
    from .durable import AsyncDurableWriter, DurableWriter
    from .migrate import Migration
    from .reader import RemoteReadClient
    from .writer import AsyncRemoteWriteClient, RemoteWriteClient

__all__ = [
    "AsyncDurableWriter",
    "AsyncRemoteWriteClient",
    "DurableWriter",
    "Migration",
    "RemoteReadClient",
    "RemoteWriteClient",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promwire.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
