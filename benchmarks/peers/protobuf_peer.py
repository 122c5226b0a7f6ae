"""Peer: Google's protobuf runtime, message classes built at run time.

No protoc and no generated ``_pb2`` files: the ``prometheus`` package of
``prompb/types.proto`` and ``prompb/remote.proto`` is described with
``descriptor_pb2.FileDescriptorProto`` (proto3, so repeated numbers are packed,
and the histogram oneofs ``count``/``zero_count``), loaded into a private
``DescriptorPool`` and turned into classes with ``message_factory``.

Which backend runs (upb or pure Python) is chosen by protobuf at import time
from ``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION``; :func:`backend` says which.
"""

from __future__ import annotations

from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal import api_implementation

from . import plain

F = descriptor_pb2.FieldDescriptorProto

_T = {
    "double": F.TYPE_DOUBLE,
    "int64": F.TYPE_INT64,
    "uint64": F.TYPE_UINT64,
    "uint32": F.TYPE_UINT32,
    "sint32": F.TYPE_SINT32,
    "sint64": F.TYPE_SINT64,
    "bool": F.TYPE_BOOL,
    "string": F.TYPE_STRING,
    "bytes": F.TYPE_BYTES,
}


def backend() -> str:
    """``'upb'``, ``'python'`` or ``'cpp'``: protobuf's active implementation."""
    return str(api_implementation.Type())


def _message(
    file: descriptor_pb2.FileDescriptorProto,
    name: str,
    fields: list[tuple[str, int, str, bool]],
    *,
    enums: dict[str, list[tuple[str, int]]] | None = None,
    oneofs: dict[str, str] | None = None,
) -> None:
    """Add message ``name``; a field is (name, number, type or .message/.enum, repeated)."""
    msg = file.message_type.add(name=name)
    for enum_name, values in (enums or {}).items():
        e = msg.enum_type.add(name=enum_name)
        for vname, number in values:
            e.value.add(name=vname, number=number)
    oneof_names: list[str] = []
    for group in (oneofs or {}).values():
        if group not in oneof_names:
            oneof_names.append(group)
            msg.oneof_decl.add(name=group)
    for fname, number, ftype, repeated in fields:
        f = msg.field.add(name=fname, number=number, json_name=_json_name(fname))
        f.label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
        if ftype in _T:
            f.type = _T[ftype]
        elif ftype.startswith("enum:"):
            f.type = F.TYPE_ENUM
            f.type_name = ftype[5:]
        else:
            f.type = F.TYPE_MESSAGE
            f.type_name = ftype
        if oneofs and fname in oneofs:
            f.oneof_index = oneof_names.index(oneofs[fname])


def _json_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _files() -> list[descriptor_pb2.FileDescriptorProto]:
    types = descriptor_pb2.FileDescriptorProto(
        name="prometheus/types.proto", package="prometheus", syntax="proto3"
    )
    _message(
        types,
        "MetricMetadata",
        [
            ("type", 1, "enum:.prometheus.MetricMetadata.MetricType", False),
            ("metric_family_name", 2, "string", False),
            ("help", 4, "string", False),
            ("unit", 5, "string", False),
        ],
        enums={
            "MetricType": [
                ("UNKNOWN", 0),
                ("COUNTER", 1),
                ("GAUGE", 2),
                ("HISTOGRAM", 3),
                ("GAUGEHISTOGRAM", 4),
                ("SUMMARY", 5),
                ("INFO", 6),
                ("STATESET", 7),
            ]
        },
    )
    _message(types, "Sample", [("value", 1, "double", False), ("timestamp", 2, "int64", False)])
    _message(
        types,
        "Exemplar",
        [
            ("labels", 1, ".prometheus.Label", True),
            ("value", 2, "double", False),
            ("timestamp", 3, "int64", False),
        ],
    )
    _message(
        types,
        "Histogram",
        [
            ("count_int", 1, "uint64", False),
            ("count_float", 2, "double", False),
            ("sum", 3, "double", False),
            ("schema", 4, "sint32", False),
            ("zero_threshold", 5, "double", False),
            ("zero_count_int", 6, "uint64", False),
            ("zero_count_float", 7, "double", False),
            ("negative_spans", 8, ".prometheus.BucketSpan", True),
            ("negative_deltas", 9, "sint64", True),
            ("negative_counts", 10, "double", True),
            ("positive_spans", 11, ".prometheus.BucketSpan", True),
            ("positive_deltas", 12, "sint64", True),
            ("positive_counts", 13, "double", True),
            ("reset_hint", 14, "enum:.prometheus.Histogram.ResetHint", False),
            ("timestamp", 15, "int64", False),
            ("custom_values", 16, "double", True),
        ],
        enums={"ResetHint": [("UNKNOWN", 0), ("YES", 1), ("NO", 2), ("GAUGE", 3)]},
        oneofs={
            "count_int": "count",
            "count_float": "count",
            "zero_count_int": "zero_count",
            "zero_count_float": "zero_count",
        },
    )
    _message(types, "BucketSpan", [("offset", 1, "sint32", False), ("length", 2, "uint32", False)])
    _message(
        types,
        "TimeSeries",
        [
            ("labels", 1, ".prometheus.Label", True),
            ("samples", 2, ".prometheus.Sample", True),
            ("exemplars", 3, ".prometheus.Exemplar", True),
            ("histograms", 4, ".prometheus.Histogram", True),
        ],
    )
    _message(types, "Label", [("name", 1, "string", False), ("value", 2, "string", False)])
    _message(types, "Labels", [("labels", 1, ".prometheus.Label", True)])
    _message(
        types,
        "LabelMatcher",
        [
            ("type", 1, "enum:.prometheus.LabelMatcher.Type", False),
            ("name", 2, "string", False),
            ("value", 3, "string", False),
        ],
        enums={"Type": [("EQ", 0), ("NEQ", 1), ("RE", 2), ("NRE", 3)]},
    )
    _message(
        types,
        "ReadHints",
        [
            ("step_ms", 1, "int64", False),
            ("func", 2, "string", False),
            ("start_ms", 3, "int64", False),
            ("end_ms", 4, "int64", False),
            ("grouping", 5, "string", True),
            ("by", 6, "bool", False),
            ("range_ms", 7, "int64", False),
        ],
    )
    _message(
        types,
        "Chunk",
        [
            ("min_time_ms", 1, "int64", False),
            ("max_time_ms", 2, "int64", False),
            ("type", 3, "enum:.prometheus.Chunk.Encoding", False),
            ("data", 4, "bytes", False),
        ],
        enums={
            "Encoding": [
                ("UNKNOWN", 0),
                ("XOR", 1),
                ("HISTOGRAM", 2),
                ("FLOAT_HISTOGRAM", 3),
                ("XOR2", 4),
                ("HISTOGRAM_ST", 5),
                ("FLOAT_HISTOGRAM_ST", 6),
            ]
        },
    )
    _message(
        types,
        "ChunkedSeries",
        [("labels", 1, ".prometheus.Label", True), ("chunks", 2, ".prometheus.Chunk", True)],
    )

    remote = descriptor_pb2.FileDescriptorProto(
        name="prometheus/remote.proto",
        package="prometheus",
        syntax="proto3",
        dependency=["prometheus/types.proto"],
    )
    _message(
        remote,
        "WriteRequest",
        [
            ("timeseries", 1, ".prometheus.TimeSeries", True),
            ("metadata", 3, ".prometheus.MetricMetadata", True),
        ],
    )
    remote.message_type[-1].reserved_range.add(start=2, end=3)
    _message(
        remote,
        "ReadRequest",
        [
            ("queries", 1, ".prometheus.Query", True),
            ("accepted_response_types", 2, "enum:.prometheus.ReadRequest.ResponseType", True),
        ],
        enums={"ResponseType": [("SAMPLES", 0), ("STREAMED_XOR_CHUNKS", 1)]},
    )
    _message(remote, "ReadResponse", [("results", 1, ".prometheus.QueryResult", True)])
    _message(
        remote,
        "Query",
        [
            ("start_timestamp_ms", 1, "int64", False),
            ("end_timestamp_ms", 2, "int64", False),
            ("matchers", 3, ".prometheus.LabelMatcher", True),
            ("hints", 4, ".prometheus.ReadHints", False),
        ],
    )
    _message(remote, "QueryResult", [("timeseries", 1, ".prometheus.TimeSeries", True)])
    _message(
        remote,
        "ChunkedReadResponse",
        [
            ("chunked_series", 1, ".prometheus.ChunkedSeries", True),
            ("query_index", 2, "int64", False),
        ],
    )
    return [types, remote]


def _build_classes() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()
    for fdp in _files():
        pool.Add(fdp)
    names = [
        "MetricMetadata",
        "Sample",
        "Exemplar",
        "Histogram",
        "BucketSpan",
        "TimeSeries",
        "Label",
        "Labels",
        "LabelMatcher",
        "ReadHints",
        "Chunk",
        "ChunkedSeries",
        "WriteRequest",
        "ReadRequest",
        "ReadResponse",
        "Query",
        "QueryResult",
        "ChunkedReadResponse",
    ]
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"prometheus.{n}"))
        for n in names
    }


CLASSES = _build_classes()
WriteRequest = CLASSES["WriteRequest"]

# ------------------------------------------------------------------ peer interface

NAME = f"protobuf-{backend()}"
_decompress = cramjam.snappy.decompress_raw
_compress = cramjam.snappy.compress_raw


def version() -> str:
    import google.protobuf

    return f"protobuf {google.protobuf.__version__} ({backend()})"


def parse(body: bytes) -> Any:
    """Decompress and parse (upb parses lazily: fields become Python objects on access)."""
    req = WriteRequest()
    req.ParseFromString(bytes(_decompress(body)))
    return req


decode = parse


def walk(req: Any) -> int:
    """Read every field of a decoded WriteRequest into Python values."""
    n = 0
    for ts in req.timeseries:
        for lb in ts.labels:
            _ = lb.name
            _ = lb.value
        for s in ts.samples:
            _ = s.value
            _ = s.timestamp
        for e in ts.exemplars:
            for lb in e.labels:
                _ = lb.name
                _ = lb.value
            _ = e.value
            _ = e.timestamp
        for h in ts.histograms:
            _walk_histogram(h)
        n += 1
    for md in req.metadata:
        _ = md.type
        _ = md.metric_family_name
        _ = md.help
        _ = md.unit
    return n


def _walk_histogram(h: Any) -> None:
    which = h.WhichOneof("count")
    _ = getattr(h, which) if which else None
    _ = h.sum
    _ = h.schema
    _ = h.zero_threshold
    which = h.WhichOneof("zero_count")
    _ = getattr(h, which) if which else None
    for sp in h.negative_spans:
        _ = sp.offset
        _ = sp.length
    _ = list(h.negative_deltas)
    _ = list(h.negative_counts)
    for sp in h.positive_spans:
        _ = sp.offset
        _ = sp.length
    _ = list(h.positive_deltas)
    _ = list(h.positive_counts)
    _ = h.reset_hint
    _ = h.timestamp
    _ = list(h.custom_values)


def _oneof(h: Any, group: str, int_name: str, float_name: str) -> tuple[Any, Any]:
    which = h.WhichOneof(group)
    return (
        getattr(h, int_name) if which == int_name else None,
        getattr(h, float_name) if which == float_name else None,
    )


def _oneofs(h: Any) -> tuple[Any, Any, Any, Any]:
    return (
        *_oneof(h, "count", "count_int", "count_float"),
        *_oneof(h, "zero_count", "zero_count_int", "zero_count_float"),
    )


def content(req: Any) -> tuple[Any, Any]:
    """The plain content (see :mod:`benchmarks.workloads`) of a decoded WriteRequest."""
    return plain.content(req, _oneofs)


def build(plain: tuple[Any, Any]) -> Any:
    """A WriteRequest holding ``plain``, built the idiomatic way (``add()``)."""
    series, metadata = plain
    req = WriteRequest()
    add_ts = req.timeseries.add
    for labels, samples, exemplars, hists in series:
        ts = add_ts()
        add_label = ts.labels.add
        for name, value in labels:
            add_label(name=name, value=value)
        add_sample = ts.samples.add
        for value, t in samples:
            add_sample(value=value, timestamp=t)
        for elabels, value, t in exemplars:
            e = ts.exemplars.add(value=value, timestamp=t)
            for name, lvalue in elabels:
                e.labels.add(name=name, value=lvalue)
        for h in hists:
            _add_histogram(ts.histograms.add(), h)
    for mtype, name, help_, unit in metadata:
        req.metadata.add(type=mtype, metric_family_name=name, help=help_, unit=unit)
    return req


def _add_histogram(m: Any, h: tuple[Any, ...]) -> None:
    (ci, cf, sum_, schema, zt, zi, zf, nsp, nd, nc, psp, pd, pc, rh, ts, cv) = h
    if ci is not None:
        m.count_int = ci
    if cf is not None:
        m.count_float = cf
    m.sum = sum_
    m.schema = schema
    m.zero_threshold = zt
    if zi is not None:
        m.zero_count_int = zi
    if zf is not None:
        m.zero_count_float = zf
    for off, length in nsp:
        m.negative_spans.add(offset=off, length=length)
    m.negative_deltas.extend(nd)
    m.negative_counts.extend(nc)
    for off, length in psp:
        m.positive_spans.add(offset=off, length=length)
    m.positive_deltas.extend(pd)
    m.positive_counts.extend(pc)
    m.reset_hint = rh
    m.timestamp = ts
    m.custom_values.extend(cv)


def serialize(req: Any) -> bytes:
    """Uncompressed protobuf bytes (the reference encoding for the other peers)."""
    return bytes(req.SerializeToString())


def encode(req: Any) -> bytes:
    """Serialize and snappy-compress."""
    return bytes(_compress(req.SerializeToString()))
