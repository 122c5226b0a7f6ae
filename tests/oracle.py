"""An independent protobuf implementation of Prometheus' prompb types, built at runtime.

The descriptors of ``prompb/types.proto`` and ``prompb/remote.proto`` are
written out here field by field (names, numbers, types, oneofs as in the
.proto files) with ``descriptor_pb2``, registered in a private descriptor pool
and turned into message classes by ``message_factory``: no protoc, no
generated code. The classes are protobuf's own (upb backend), so they are an
oracle for what the wire bytes of each message must be.

``to_oracle(msg)`` copies a promwire message into the matching oracle message;
``from_oracle(pb)`` copies back. ``ORACLE[cls]`` is the oracle class of a
promwire class. ``variant_classes(...)`` builds alternative schemas (unpacked
repeated scalars, Cortex' extra WriteRequest fields) to test decoding of
encodings promwire never emits.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal import api_implementation

import promwire.codec.messages as m
from promwire.codec.fields import SCHEMAS, Kind
from promwire.codec.wire import LEN, read_varint, skip_field

FDP = descriptor_pb2.FieldDescriptorProto

IMPLEMENTATION = api_implementation.Type()

# Field kinds -> protobuf descriptor types.
T_INT64 = FDP.TYPE_INT64
T_UINT64 = FDP.TYPE_UINT64
T_UINT32 = FDP.TYPE_UINT32
T_SINT32 = FDP.TYPE_SINT32
T_SINT64 = FDP.TYPE_SINT64
T_BOOL = FDP.TYPE_BOOL
T_ENUM = FDP.TYPE_ENUM
T_DOUBLE = FDP.TYPE_DOUBLE
T_STRING = FDP.TYPE_STRING
T_BYTES = FDP.TYPE_BYTES
T_MSG = FDP.TYPE_MESSAGE

OPT = "optional"
REP = "repeated"

# (name, number, type, label, type_name or None, oneof name or None)
Field = tuple[str, int, int, str, str | None, str | None]

# The .proto files, transcribed. Enum type names are relative to the package.
ENUMS: dict[str, list[tuple[str, int]]] = {
    "MetricMetadata.MetricType": [
        ("UNKNOWN", 0),
        ("COUNTER", 1),
        ("GAUGE", 2),
        ("HISTOGRAM", 3),
        ("GAUGEHISTOGRAM", 4),
        ("SUMMARY", 5),
        ("INFO", 6),
        ("STATESET", 7),
    ],
    "Histogram.ResetHint": [("UNKNOWN", 0), ("YES", 1), ("NO", 2), ("GAUGE", 3)],
    "LabelMatcher.Type": [("EQ", 0), ("NEQ", 1), ("RE", 2), ("NRE", 3)],
    "ReadRequest.ResponseType": [("SAMPLES", 0), ("STREAMED_XOR_CHUNKS", 1)],
    "Chunk.Encoding": [
        ("UNKNOWN", 0),
        ("XOR", 1),
        ("HISTOGRAM", 2),
        ("FLOAT_HISTOGRAM", 3),
        ("XOR2", 4),
        ("HISTOGRAM_ST", 5),
        ("FLOAT_HISTOGRAM_ST", 6),
    ],
}

MESSAGES: dict[str, list[Field]] = {
    # types.proto
    "MetricMetadata": [
        ("type", 1, T_ENUM, OPT, "MetricMetadata.MetricType", None),
        ("metric_family_name", 2, T_STRING, OPT, None, None),
        ("help", 4, T_STRING, OPT, None, None),
        ("unit", 5, T_STRING, OPT, None, None),
    ],
    "Sample": [
        ("value", 1, T_DOUBLE, OPT, None, None),
        ("timestamp", 2, T_INT64, OPT, None, None),
    ],
    "Exemplar": [
        ("labels", 1, T_MSG, REP, "Label", None),
        ("value", 2, T_DOUBLE, OPT, None, None),
        ("timestamp", 3, T_INT64, OPT, None, None),
    ],
    "Histogram": [
        ("count_int", 1, T_UINT64, OPT, None, "count"),
        ("count_float", 2, T_DOUBLE, OPT, None, "count"),
        ("sum", 3, T_DOUBLE, OPT, None, None),
        ("schema", 4, T_SINT32, OPT, None, None),
        ("zero_threshold", 5, T_DOUBLE, OPT, None, None),
        ("zero_count_int", 6, T_UINT64, OPT, None, "zero_count"),
        ("zero_count_float", 7, T_DOUBLE, OPT, None, "zero_count"),
        ("negative_spans", 8, T_MSG, REP, "BucketSpan", None),
        ("negative_deltas", 9, T_SINT64, REP, None, None),
        ("negative_counts", 10, T_DOUBLE, REP, None, None),
        ("positive_spans", 11, T_MSG, REP, "BucketSpan", None),
        ("positive_deltas", 12, T_SINT64, REP, None, None),
        ("positive_counts", 13, T_DOUBLE, REP, None, None),
        ("reset_hint", 14, T_ENUM, OPT, "Histogram.ResetHint", None),
        ("timestamp", 15, T_INT64, OPT, None, None),
        ("custom_values", 16, T_DOUBLE, REP, None, None),
    ],
    "BucketSpan": [
        ("offset", 1, T_SINT32, OPT, None, None),
        ("length", 2, T_UINT32, OPT, None, None),
    ],
    "TimeSeries": [
        ("labels", 1, T_MSG, REP, "Label", None),
        ("samples", 2, T_MSG, REP, "Sample", None),
        ("exemplars", 3, T_MSG, REP, "Exemplar", None),
        ("histograms", 4, T_MSG, REP, "Histogram", None),
    ],
    "Label": [("name", 1, T_STRING, OPT, None, None), ("value", 2, T_STRING, OPT, None, None)],
    "Labels": [("labels", 1, T_MSG, REP, "Label", None)],
    "LabelMatcher": [
        ("type", 1, T_ENUM, OPT, "LabelMatcher.Type", None),
        ("name", 2, T_STRING, OPT, None, None),
        ("value", 3, T_STRING, OPT, None, None),
    ],
    "ReadHints": [
        ("step_ms", 1, T_INT64, OPT, None, None),
        ("func", 2, T_STRING, OPT, None, None),
        ("start_ms", 3, T_INT64, OPT, None, None),
        ("end_ms", 4, T_INT64, OPT, None, None),
        ("grouping", 5, T_STRING, REP, None, None),
        ("by", 6, T_BOOL, OPT, None, None),
        ("range_ms", 7, T_INT64, OPT, None, None),
    ],
    "Chunk": [
        ("min_time_ms", 1, T_INT64, OPT, None, None),
        ("max_time_ms", 2, T_INT64, OPT, None, None),
        ("type", 3, T_ENUM, OPT, "Chunk.Encoding", None),
        ("data", 4, T_BYTES, OPT, None, None),
    ],
    "ChunkedSeries": [
        ("labels", 1, T_MSG, REP, "Label", None),
        ("chunks", 2, T_MSG, REP, "Chunk", None),
    ],
    # remote.proto
    "WriteRequest": [
        ("timeseries", 1, T_MSG, REP, "TimeSeries", None),
        ("metadata", 3, T_MSG, REP, "MetricMetadata", None),
    ],
    "ReadRequest": [
        ("queries", 1, T_MSG, REP, "Query", None),
        ("accepted_response_types", 2, T_ENUM, REP, "ReadRequest.ResponseType", None),
    ],
    "ReadResponse": [("results", 1, T_MSG, REP, "QueryResult", None)],
    "Query": [
        ("start_timestamp_ms", 1, T_INT64, OPT, None, None),
        ("end_timestamp_ms", 2, T_INT64, OPT, None, None),
        ("matchers", 3, T_MSG, REP, "LabelMatcher", None),
        ("hints", 4, T_MSG, OPT, "ReadHints", None),
    ],
    "QueryResult": [("timeseries", 1, T_MSG, REP, "TimeSeries", None)],
    "ChunkedReadResponse": [
        ("chunked_series", 1, T_MSG, REP, "ChunkedSeries", None),
        ("query_index", 2, T_INT64, OPT, None, None),
    ],
}

# Cortex' copy of WriteRequest has two more fields (PROTOCOL.md §1.1, §6.1).
CORTEX_ENUMS = {"WriteRequest.SourceEnum": [("API", 0), ("RULE", 1)]}
CORTEX_FIELDS: list[Field] = [
    ("source", 2, T_ENUM, OPT, "WriteRequest.SourceEnum", None),
    ("skip_label_name_validation", 1000, T_BOOL, OPT, None, None),
]


def file_descriptor(
    package: str,
    messages: dict[str, list[Field]],
    enums: dict[str, list[tuple[str, int]]],
    *,
    unpacked: bool = False,
    reserved: dict[str, list[tuple[int, int]]] | None = None,
    filename: str | None = None,
) -> descriptor_pb2.FileDescriptorProto:
    """A proto3 file descriptor: messages (fields, oneofs, nested enums, reserved ranges).

    ``unpacked`` declares repeated numeric fields ``[packed = false]``.
    """
    fd = descriptor_pb2.FileDescriptorProto(
        name=filename or f"{package.replace('.', '/')}.proto", package=package, syntax="proto3"
    )
    for msg_name, fields in messages.items():
        mp = fd.message_type.add(name=msg_name)
        oneofs: list[str] = []
        for name, number, ftype, label, type_name, oneof in fields:
            f = mp.field.add(name=name, number=number, type=ftype)  # type: ignore[arg-type]
            f.label = FDP.LABEL_REPEATED if label == REP else FDP.LABEL_OPTIONAL
            if type_name is not None:
                f.type_name = f".{package}.{type_name}"
            if oneof is not None:
                if oneof not in oneofs:
                    oneofs.append(oneof)
                    mp.oneof_decl.add(name=oneof)
                f.oneof_index = oneofs.index(oneof)
            if unpacked and label == REP and ftype not in (T_MSG, T_STRING, T_BYTES):
                f.options.packed = False
        for start, end in (reserved or {}).get(msg_name, []):
            mp.reserved_range.add(start=start, end=end)
        for enum_name, values in enums.items():
            owner, _, short = enum_name.partition(".")
            if owner == msg_name:
                ep = mp.enum_type.add(name=short)
                for vname, vnum in values:
                    ep.value.add(name=vname, number=vnum)
    return fd


def build_classes(fd: descriptor_pb2.FileDescriptorProto) -> dict[str, Any]:
    """upb message classes of every message in ``fd``, by name (a private pool each)."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    find = pool.FindMessageTypeByName
    return {
        mp.name: message_factory.GetMessageClass(find(f"{fd.package}.{mp.name}"))
        for mp in fd.message_type
    }


#: Oracle classes by proto message name.
CLASSES = build_classes(file_descriptor("prometheus", MESSAGES, ENUMS))
#: Same messages, repeated numeric fields declared ``[packed = false]``.
UNPACKED = build_classes(file_descriptor("prometheus_unpacked", MESSAGES, ENUMS, unpacked=True))
#: WriteRequest as Cortex declares it (extra fields 2 and 1000).
CORTEX = build_classes(
    file_descriptor(
        "cortexpb",
        {**MESSAGES, "WriteRequest": MESSAGES["WriteRequest"] + CORTEX_FIELDS},
        {**ENUMS, **CORTEX_ENUMS},
    )
)

#: promwire class -> oracle class.
ORACLE: dict[type[Any], Any] = {
    cls: CLASSES[cls.__name__] for cls in SCHEMAS if cls.__module__ == m.__name__
}


def fill(pb: Any, msg: Any) -> Any:
    """Copy promwire message ``msg`` into the (empty) oracle message ``pb``; return ``pb``."""
    for spec in SCHEMAS[type(msg)]:
        v = getattr(msg, spec.name)
        if spec.repeated:
            if spec.kind == Kind.MESSAGE:
                container = getattr(pb, spec.name)
                for item in v:
                    fill(container.add(), item)
            else:
                getattr(pb, spec.name).extend(int(x) if spec.kind == Kind.ENUM else x for x in v)
        elif v is None:
            continue
        elif spec.kind == Kind.MESSAGE:
            sub = getattr(pb, spec.name)
            sub.SetInParent()  # present even when empty
            fill(sub, v)
        else:
            setattr(pb, spec.name, int(v) if spec.kind == Kind.ENUM else v)
    return pb


def to_oracle(msg: Any, classes: dict[str, Any] | None = None) -> Any:
    """The oracle message with the same content as promwire message ``msg``."""
    return fill((classes or CLASSES)[type(msg).__name__](), msg)


def from_oracle(cls: type[Any], pb: Any) -> Any:
    """The promwire message of class ``cls`` with the content of oracle message ``pb``."""
    kw: dict[str, Any] = {}
    for spec in SCHEMAS[cls]:
        if spec.repeated:
            items = list(getattr(pb, spec.name))
            if spec.kind == Kind.MESSAGE:
                kw[spec.name] = [from_oracle(spec.message, x) for x in items]
            else:
                kw[spec.name] = items
        elif spec.oneof is not None or spec.kind == Kind.MESSAGE:
            if pb.HasField(spec.name):
                v = getattr(pb, spec.name)
                kw[spec.name] = from_oracle(spec.message, v) if spec.kind == Kind.MESSAGE else v
            else:
                kw[spec.name] = None
        else:
            kw[spec.name] = getattr(pb, spec.name)
    return cls(**kw)


def has_group(cls: type[Any], buf: bytes, pos: int, end: int) -> bool:
    """Whether ``buf[pos:end]``, which upb parsed as ``cls``, holds a group (wire type 3/4)."""
    specs = {s.number: s for s in SCHEMAS[cls]}
    while pos < end:
        t, pos = read_varint(buf, pos)
        wt = t & 7
        if wt in (3, 4):
            return True
        spec = specs.get(t >> 3)
        if wt == LEN and spec is not None and spec.kind == Kind.MESSAGE:
            n, pos = read_varint(buf, pos)
            if has_group(spec.message, buf, pos, pos + n):
                return True
            pos += n
        else:
            pos = skip_field(buf, pos, end, wt)
    return False
