"""promwire: Prometheus remote write / remote read in pure Python.

The wire codec::

    from promwire import WriteRequest, decode, encode, snappy
    req = decode(WriteRequest, snappy.decompress(body))
    body = snappy.compress(encode(req))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .codec import snappy
from .codec.decoder import decode
from .codec.encoder import encode
from .codec.jsonform import from_dict, to_dict
from .codec.messages import (
    STALE_NAN_BITS,
    BucketSpan,
    Chunk,
    ChunkedReadResponse,
    ChunkedSeries,
    ChunkEncoding,
    Exemplar,
    Histogram,
    Label,
    LabelMatcher,
    MatchType,
    MetricMetadata,
    MetricType,
    Query,
    QueryResult,
    ReadHints,
    ReadRequest,
    ReadResponse,
    ResetHint,
    ResponseType,
    Sample,
    TimeSeries,
    WriteRequest,
)
from .errors import (
    ChecksumError,
    DecodeError,
    EncodeError,
    FrameError,
    LimitExceeded,
    MethodNotAllowed,
    PromwireError,
    SnappyError,
    StorageError,
    StorageOverloaded,
    StorageRejected,
    TruncatedStreamError,
    UnsupportedChunkEncoding,
    UnsupportedMediaType,
)

__version__ = "0.1.0"

# The layers above the codec are imported on first use, so ``import promwire``
# costs no more than the codec: ``promwire.SQLiteStorage`` loads sqlite3,
# ``promwire.RemoteWriteClient`` http.client, and so on (PEP 562).
_LAZY = {
    "RemoteWriteClient": "promwire.client.writer",
    "AsyncRemoteWriteClient": "promwire.client.writer",
    "DurableWriter": "promwire.client.durable",
    "AsyncDurableWriter": "promwire.client.durable",
    "RemoteReadClient": "promwire.client.reader",
    "SQLiteStorage": "promwire.stores.sqlite",
    "handle_write": "promwire.server.handlers",
    "handle_read": "promwire.server.handlers",
    "decode_columns": "promwire.codec.columnar",
    "encode_columns": "promwire.codec.columnar",
    "SeriesColumns": "promwire.codec.columns",
}

if TYPE_CHECKING:
    from .client.durable import AsyncDurableWriter, DurableWriter
    from .client.reader import RemoteReadClient
    from .client.writer import AsyncRemoteWriteClient, RemoteWriteClient
    from .codec.columnar import decode_columns, encode_columns
    from .codec.columns import SeriesColumns
    from .server.handlers import handle_read, handle_write
    from .stores.sqlite import SQLiteStorage


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promwire' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "STALE_NAN_BITS",
    "AsyncDurableWriter",
    "AsyncRemoteWriteClient",
    "BucketSpan",
    "ChecksumError",
    "Chunk",
    "ChunkEncoding",
    "ChunkedReadResponse",
    "ChunkedSeries",
    "DecodeError",
    "DurableWriter",
    "EncodeError",
    "Exemplar",
    "FrameError",
    "Histogram",
    "Label",
    "LabelMatcher",
    "LimitExceeded",
    "MatchType",
    "MethodNotAllowed",
    "MetricMetadata",
    "MetricType",
    "PromwireError",
    "Query",
    "QueryResult",
    "ReadHints",
    "ReadRequest",
    "ReadResponse",
    "RemoteReadClient",
    "RemoteWriteClient",
    "ResetHint",
    "ResponseType",
    "SQLiteStorage",
    "Sample",
    "SeriesColumns",
    "SnappyError",
    "StorageError",
    "StorageOverloaded",
    "StorageRejected",
    "TimeSeries",
    "TruncatedStreamError",
    "UnsupportedChunkEncoding",
    "UnsupportedMediaType",
    "WriteRequest",
    "__version__",
    "decode",
    "decode_columns",
    "encode",
    "encode_columns",
    "from_dict",
    "handle_read",
    "handle_write",
    "snappy",
    "to_dict",
]
