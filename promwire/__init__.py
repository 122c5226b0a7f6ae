"""promwire: Prometheus remote write / remote read in pure Python.

The wire codec::

    from promwire import WriteRequest, decode, encode, snappy
    req = decode(WriteRequest, snappy.decompress(body))
    body = snappy.compress(encode(req))
"""

from __future__ import annotations

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

__all__ = [
    "STALE_NAN_BITS",
    "BucketSpan",
    "ChecksumError",
    "Chunk",
    "ChunkEncoding",
    "ChunkedReadResponse",
    "ChunkedSeries",
    "DecodeError",
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
    "ResetHint",
    "ResponseType",
    "Sample",
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
    "encode",
    "from_dict",
    "snappy",
    "to_dict",
]
