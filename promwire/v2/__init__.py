"""Remote write 2.0 (``io.prometheus.write.v2``): messages, symbol table, conversion, negotiation.

Importing this package registers the v2 field tables, so the generic codec
works on v2 messages::

    from promwire import decode, encode, snappy
    from promwire import v2

    if v2.parse_content_type(headers.get("Content-Type")) == "v2":
        req = decode(v2.Request, snappy.decompress(body))
        v2.validate(req)                # refs in range, or DecodeError naming the series
        write_request = v2.to_v1(req)   # resolved labels, the v1 view storages know
"""

from __future__ import annotations

from . import columnar as _columnar  # noqa: F401  (registers decode_columns(raw, Request))
from . import fastdecode as _fastdecode  # noqa: F401  (registers the hot TimeSeries decoder)
from . import fields as _schema  # noqa: F401  (registers the field tables)
from .convert import from_v1, histogram_to_v1, histogram_to_v2, to_v1
from .messages import (
    BucketSpan,
    Exemplar,
    Histogram,
    Metadata,
    MetricType,
    Request,
    ResetHint,
    Sample,
    TimeSeries,
)
from .negotiation import (
    CONTENT_TYPE_V1,
    CONTENT_TYPE_V2,
    EXEMPLARS_WRITTEN,
    HISTOGRAMS_WRITTEN,
    SAMPLES_WRITTEN,
    count_request,
    parse_content_type,
    written_headers,
)
from .symbols import SymbolTable, describe_series, resolve_labels, series_error, validate

__all__ = [
    "CONTENT_TYPE_V1",
    "CONTENT_TYPE_V2",
    "EXEMPLARS_WRITTEN",
    "HISTOGRAMS_WRITTEN",
    "SAMPLES_WRITTEN",
    "BucketSpan",
    "Exemplar",
    "Histogram",
    "Metadata",
    "MetricType",
    "Request",
    "ResetHint",
    "Sample",
    "SymbolTable",
    "TimeSeries",
    "count_request",
    "describe_series",
    "from_v1",
    "histogram_to_v1",
    "histogram_to_v2",
    "parse_content_type",
    "resolve_labels",
    "series_error",
    "to_v1",
    "validate",
    "written_headers",
]
