"""The golden table: messages and their exact wire bytes, derived by hand from PROTOCOL.md.

Each hex string was worked out from the rules of PROTOCOL.md §0-§1 (tags,
varints, zigzag, little-endian doubles, packing, presence) - the comment on a
case says how. ``CASES`` are canonical encodings: they drive both the encoder
test (``encode(msg) == bytes``) and the decoder test (``decode(cls, bytes) ==
msg``, floats compared by bits). ``DECODE_ONLY`` are valid encodings promwire
never emits (reordered, duplicated, unpacked, with unknown fields); they only
drive the decoder. The tests also hold protobuf's own implementation to both
tables, so a wrong hand derivation cannot hide.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from promwire.codec.messages import (
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


def _f(bits: int) -> float:
    """The double with IEEE-754 bit pattern ``bits`` (struct keeps NaN payloads)."""
    return float(struct.unpack("<d", bits.to_bytes(8, "little"))[0])


STALE_NAN = _f(0x7FF0000000000002)
PROM_NAN = _f(0x7FF8000000000001)
NEG_ZERO = _f(0x8000000000000000)
INF = _f(0x7FF0000000000000)

# Little-endian doubles used below.
D_1 = "000000000000f03f"  # 1.0 = 0x3ff0000000000000
D_0_5 = "000000000000e03f"  # 0.5 = 0x3fe0000000000000
D_1_5 = "000000000000f83f"  # 1.5 = 0x3ff8000000000000
D_2 = "0000000000000040"  # 2.0 = 0x4000000000000000
D_0 = "0000000000000000"
D_NEG_ZERO = "0000000000000080"
D_STALE = "020000000000f07f"  # 0x7ff0000000000002
D_PROM_NAN = "010000000000f87f"  # 0x7ff8000000000001
D_INF = "000000000000f07f"

NEG1_VARINT = "ffffffffffffffffff01"  # -1 as int64/int32-enum: 64 one bits -> 10 bytes
NAME = "5f5f6e616d655f5f"  # "__name__"


@dataclass(frozen=True)
class Case:
    """``message`` is encoded as exactly ``hex`` (spaces ignored)."""

    name: str
    message: Any
    hex: str

    @property
    def raw(self) -> bytes:
        return bytes.fromhex(self.hex.replace(" ", ""))


CASES: list[Case] = [
    # ---------------------------------------------------------------- PROTOCOL.md §2.2
    Case(
        "rw1_minimal_example_s2.2",
        WriteRequest(
            timeseries=[
                TimeSeries(
                    labels=[Label("__name__", "up"), Label("job", "x")],
                    samples=[Sample(1.0, 1000)],
                )
            ]
        ),
        f"0a 28 0a 0e 0a 08 {NAME} 12 02 7570 0a 08 0a 03 6a6f62 12 01 78 12 0c 09 {D_1} 10 e8 07",
    ),
    # ------------------------------------------------------------------ empties
    Case("empty_write_request", WriteRequest(), ""),
    Case("empty_sample_in_series_12_00", TimeSeries(samples=[Sample()]), "12 00"),
    Case("empty_label_in_series_0a_00", TimeSeries(labels=[Label()]), "0a 00"),
    Case(
        "empty_series_and_metadata_kept",
        WriteRequest(timeseries=[TimeSeries(), TimeSeries()], metadata=[MetricMetadata()]),
        "0a 00 0a 00 1a 00",
    ),
    Case(
        "read_response_empty_results",
        ReadResponse(results=[QueryResult(), QueryResult()]),
        "0a 00 0a 00",
    ),
    # ------------------------------------------------------------------ Sample
    # int64 negatives: two's complement as uint64 -> ten 7-bit groups.
    Case("sample_negative_timestamp_10_bytes", Sample(0.0, -1), f"10 {NEG1_VARINT}"),
    # -2**63 = bit 63 only: nine 0x80 groups then 0x01.
    Case("sample_int64_min", Sample(timestamp=-(1 << 63)), "10 80808080808080808001"),
    Case("sample_int64_max", Sample(timestamp=(1 << 63) - 1), "10 ffffffffffffffff7f"),
    # -1000 = 0xfffffffffffffc18: low group 0x18|0x80, then 0x78|0x80 (bits 7-13 of ..fc18)
    Case("sample_pre_epoch_timestamp", Sample(timestamp=-1000), "10 98 f8 ff ff ff ff ff ff ff 01"),
    Case("sample_neg_zero_written", Sample(NEG_ZERO, 0), f"09 {D_NEG_ZERO}"),
    Case("sample_stale_nan_bits", Sample(STALE_NAN, 1), f"09 {D_STALE} 10 01"),
    Case("sample_prometheus_nan", Sample(PROM_NAN, 2), f"09 {D_PROM_NAN} 10 02"),
    Case("sample_inf", Sample(INF, 0), f"09 {D_INF}"),
    # a capture's timestamp: 6 groups of 7 bits (41 significant bits), low group first
    Case(
        "sample_real_timestamp",
        Sample(2.0, 1795582339377),
        f"09 {D_2} 10 " + "b1 d2 b0 88 a1 34",
    ),
    # ------------------------------------------------------------------ Label
    Case("label_utf8", Label("é", "日"), "0a 02 c3a9 12 03 e697a5"),
    Case("label_nul_char", Label("\x00", ""), "0a 01 00"),
    # 200-byte value: length 200 = 0xc8 -> varint c8 01
    Case("label_two_byte_length", Label("a", "x" * 200), "0a 01 61 12 c8 01 " + "78" * 200),
    # ------------------------------------------------------------------ Exemplar
    Case("exemplar_no_labels", Exemplar([], 1.0, 2), f"11 {D_1} 18 02"),
    Case(
        "exemplar_trace_id",
        Exemplar([Label("trace_id", "ab")], 0.5, 1),
        f"0a 0e 0a 08 74726163655f6964 12 02 6162 11 {D_0_5} 18 01",
    ),
    # ------------------------------------------------------------------ BucketSpan (sint32)
    Case("span_negative_offset_zigzag", BucketSpan(-2, 3), "08 03 10 03"),
    Case("span_offset_int32_min", BucketSpan(-(1 << 31), 0), "08 ffffffff0f"),
    Case("span_offset_int32_max", BucketSpan((1 << 31) - 1, 0), "08 feffffff0f"),
    Case("span_length_uint32_max", BucketSpan(0, (1 << 32) - 1), "10 ffffffff0f"),
    Case("span_default_is_empty", BucketSpan(), ""),
    # ------------------------------------------------------------------ Histogram
    Case("histogram_count_float_zero_present", Histogram(count_float=0.0), f"11 {D_0}"),
    Case("histogram_count_int_zero_present", Histogram(count_int=0), "08 00"),
    Case("histogram_zero_count_int_zero_present", Histogram(zero_count_int=0), "30 00"),
    Case("histogram_zero_count_float_zero_present", Histogram(zero_count_float=0.0), f"39 {D_0}"),
    Case("histogram_all_absent", Histogram(), ""),
    Case("histogram_count_uint64_max", Histogram(count_int=(1 << 64) - 1), f"08 {NEG1_VARINT}"),
    Case("histogram_schema_minus4_zigzag", Histogram(schema=-4), "20 07"),
    Case("histogram_schema_custom_minus53", Histogram(schema=-53), "20 69"),  # 2*53-1 = 105
    Case("histogram_schema_8", Histogram(schema=8), "20 10"),
    Case("histogram_sum_stale", Histogram(sum=STALE_NAN), f"19 {D_STALE}"),
    Case("histogram_sum_neg_zero", Histogram(sum=NEG_ZERO), f"19 {D_NEG_ZERO}"),
    # zigzag: 1->2, -1->1, 0->0, 64->128 (= 80 01); packed: one LEN record of 5 bytes
    Case(
        "histogram_packed_positive_deltas",
        Histogram(positive_deltas=[1, -1, 0, 64]),
        "62 05 02 01 00 80 01",
    ),
    Case(
        "histogram_packed_negative_deltas_int64_min",
        Histogram(negative_deltas=[-(1 << 63)]),
        "4a 0a " + NEG1_VARINT,  # zigzag(-2**63) = 2**64-1
    ),
    Case(
        "histogram_packed_negative_counts",
        Histogram(negative_counts=[1.0, 0.0]),
        f"52 10 {D_1} {D_0}",
    ),
    Case(
        "histogram_packed_positive_counts_nan",
        Histogram(positive_counts=[STALE_NAN]),
        f"6a 08 {D_STALE}",
    ),
    Case(
        "histogram_custom_values_field16_82_01", Histogram(custom_values=[0.5]), f"82 01 08 {D_0_5}"
    ),
    Case("histogram_reset_hint_gauge", Histogram(reset_hint=ResetHint.GAUGE), "70 03"),
    Case("histogram_reset_hint_unknown_number", Histogram(reset_hint=9), "70 09"),
    Case("histogram_negative_timestamp", Histogram(timestamp=-1), f"78 {NEG1_VARINT}"),
    Case("histogram_empty_span_kept", Histogram(positive_spans=[BucketSpan()]), "5a 00"),
    Case(
        "histogram_integer_full",
        Histogram(
            count_int=3,
            sum=1.5,
            schema=0,
            zero_count_int=1,
            positive_spans=[BucketSpan(0, 2)],
            positive_deltas=[1, 1],
            reset_hint=ResetHint.NO,
            timestamp=5,
        ),
        f"08 03 19 {D_1_5} 30 01 5a 02 10 02 62 02 02 02 70 02 78 05",
    ),
    Case(
        "histogram_float_full",
        Histogram(
            count_float=2.0,
            sum=0.5,
            schema=-1,
            zero_threshold=0.5,
            zero_count_float=0.0,
            negative_spans=[BucketSpan(-1, 1)],
            negative_counts=[1.0],
            positive_spans=[BucketSpan(1, 1)],
            positive_counts=[1.0],
            reset_hint=ResetHint.YES,
            timestamp=1000,
        ),
        f"11 {D_2} 19 {D_0_5} 20 01 29 {D_0_5} 39 {D_0} 42 04 08 01 10 01"
        f" 52 08 {D_1} 5a 04 08 02 10 01 6a 08 {D_1} 70 01 78 e8 07",
    ),
    Case(
        "histogram_custom_buckets",
        Histogram(
            count_int=1,
            schema=-53,
            positive_spans=[BucketSpan(0, 1)],
            positive_deltas=[1],
            custom_values=[0.5, 1.0],
        ),
        f"08 01 20 69 5a 02 10 01 62 01 02 82 01 10 {D_0_5} {D_1}",
    ),
    Case(
        "series_with_histogram",
        TimeSeries(labels=[Label("a", "b")], histograms=[Histogram(count_int=0)]),
        "0a 06 0a 01 61 12 01 62 22 02 08 00",
    ),
    # ------------------------------------------------------------------ MetricMetadata
    Case(
        "metadata_counter",
        MetricMetadata(MetricType.COUNTER, "x", "h", "s"),
        "08 01 12 01 78 22 01 68 2a 01 73",  # field 3 unused: help is 22, unit 2a
    ),
    Case("metadata_gaugehistogram_4", MetricMetadata(MetricType.GAUGEHISTOGRAM), "08 04"),
    Case("metadata_summary_5", MetricMetadata(MetricType.SUMMARY), "08 05"),
    Case("metadata_info_6", MetricMetadata(MetricType.INFO), "08 06"),
    Case("metadata_stateset_7", MetricMetadata(MetricType.STATESET), "08 07"),
    Case("metadata_unknown_enum_99", MetricMetadata(99), "08 63"),
    Case("metadata_negative_enum", MetricMetadata(-1), f"08 {NEG1_VARINT}"),
    Case(
        "write_request_metadata_only",
        WriteRequest(metadata=[MetricMetadata(MetricType.GAUGE, "up")]),
        "1a 06 08 02 12 02 7570",
    ),
    # ------------------------------------------------------------------ remote read
    Case(
        "label_matcher_re",
        LabelMatcher(MatchType.RE, "a", ".*"),
        "08 02 12 01 61 1a 02 2e2a",
    ),
    Case("label_matcher_eq_default_type_omitted", LabelMatcher(MatchType.EQ, "a", ""), "12 01 61"),
    Case("label_matcher_unknown_type", LabelMatcher(7, "", ""), "08 07"),
    # 15000 = 0x3a98 -> 98 75; 300000 = 0x493e0 -> e0 a7 12
    Case(
        "read_hints_full",
        ReadHints(
            step_ms=15000,
            func="rate",
            start_ms=1,
            end_ms=2,
            grouping=["a", ""],
            by=True,
            range_ms=300000,
        ),
        "08 98 75 12 04 72617465 18 01 20 02 2a 01 61 2a 00 30 01 38 e0 a7 12",
    ),
    Case("query_hints_present_empty_22_00", Query(hints=ReadHints()), "22 00"),
    Case("query_hints_absent", Query(hints=None), ""),
    Case(
        "query_full",
        Query(
            start_timestamp_ms=1000,
            end_timestamp_ms=2000,
            matchers=[LabelMatcher(MatchType.EQ, "__name__", "up")],
            hints=ReadHints(start_ms=1000, end_ms=2000),
        ),
        f"08 e8 07 10 d0 0f 1a 0e 12 08 {NAME} 1a 02 7570 22 06 18 e8 07 20 d0 0f",
    ),
    Case("query_negative_start", Query(start_timestamp_ms=-1), f"08 {NEG1_VARINT}"),
    Case(
        "read_request_accepted_types_12_02_01_00",
        ReadRequest(
            accepted_response_types=[ResponseType.STREAMED_XOR_CHUNKS, ResponseType.SAMPLES]
        ),
        "12 02 01 00",
    ),
    Case(
        "read_request_unknown_and_negative_types",
        ReadRequest(accepted_response_types=[5, -1]),
        f"12 0b 05 {NEG1_VARINT}",
    ),
    Case(
        "read_request_query_and_types",
        ReadRequest(queries=[Query(end_timestamp_ms=1)], accepted_response_types=[0]),
        "0a 02 10 01 12 01 00",
    ),
    Case(
        "read_response_one_series",
        ReadResponse(results=[QueryResult([TimeSeries([Label("a", "")], [Sample(1.0, 1)])])]),
        f"0a 14 0a 12 0a 03 0a 01 61 12 0b 09 {D_1} 10 01",
    ),
    # ------------------------------------------------------------------ chunks
    Case("chunk_xor", Chunk(1, 2, ChunkEncoding.XOR, b"\x00\x01"), "08 01 10 02 18 01 22 02 0001"),
    Case("chunk_encoding_xor2_4", Chunk(type=ChunkEncoding.XOR2), "18 04"),
    Case("chunk_encoding_histogram_st_5", Chunk(type=ChunkEncoding.HISTOGRAM_ST), "18 05"),
    Case(
        "chunk_encoding_float_histogram_st_6",
        Chunk(type=ChunkEncoding.FLOAT_HISTOGRAM_ST),
        "18 06",
    ),
    Case("chunk_encoding_unknown_7", Chunk(type=7), "18 07"),
    Case("chunk_negative_times", Chunk(-1, -1), f"08 {NEG1_VARINT} 10 {NEG1_VARINT}"),
    Case(
        "chunked_series",
        ChunkedSeries([Label("a", "b")], [Chunk(0, 0, ChunkEncoding.XOR, b"")]),
        "0a 06 0a 01 61 12 01 62 12 02 18 01",
    ),
    Case("chunked_read_response_query_index", ChunkedReadResponse([], 3), "10 03"),
    Case(
        "chunked_read_response_index_zero_omitted",
        ChunkedReadResponse([ChunkedSeries()], 0),
        "0a 00",
    ),
    Case(
        "chunked_read_response_negative_index",
        ChunkedReadResponse([], -2),
        "10 fe ff ff ff ff ff ff ff ff 01",
    ),
]


@dataclass(frozen=True)
class DecodeCase:
    """Valid but non-canonical ``hex`` that must decode to ``message``."""

    name: str
    cls: type[Any]
    hex: str
    message: Any

    @property
    def raw(self) -> bytes:
        return bytes.fromhex(self.hex.replace(" ", ""))


DECODE_ONLY: list[DecodeCase] = [
    DecodeCase("fields_reversed", Sample, f"10 e8 07 09 {D_1}", Sample(1.0, 1000)),
    DecodeCase("duplicate_scalar_last_wins", Sample, "10 01 10 02", Sample(0.0, 2)),
    DecodeCase("zero_written_explicitly", Sample, f"09 {D_0} 10 00", Sample()),
    DecodeCase("non_minimal_varint", Sample, "10 80 80 00", Sample()),
    DecodeCase(
        "oneof_last_member_wins",
        Histogram,
        f"08 05 11 {D_1}",
        Histogram(count_float=1.0),
    ),
    DecodeCase("oneof_back_to_int", Histogram, f"11 {D_1} 08 00", Histogram(count_int=0)),
    DecodeCase(
        "packed_split_in_two_records",
        Histogram,
        "62 01 02 62 01 01",
        Histogram(positive_deltas=[1, -1]),
    ),
    DecodeCase(
        "unpacked_deltas",
        Histogram,
        "60 02 60 01",
        Histogram(positive_deltas=[1, -1]),
    ),
    DecodeCase(
        "unpacked_custom_values",
        Histogram,
        f"81 01 {D_0_5} 81 01 {D_1}",
        Histogram(custom_values=[0.5, 1.0]),
    ),
    DecodeCase("packed_empty_record", Histogram, "6a 00", Histogram()),
    DecodeCase(
        "mixed_packed_unpacked",
        Histogram,
        f"69 {D_1} 6a 08 {D_2}",
        Histogram(positive_counts=[1.0, 2.0]),
    ),
    DecodeCase(
        "accepted_types_unpacked",
        ReadRequest,
        "10 01 10 00",
        ReadRequest(accepted_response_types=[1, 0]),
    ),
    DecodeCase(
        "cortex_fields_2_and_1000_skipped",
        WriteRequest,
        "10 01 c0 3e 01 0a 00",
        WriteRequest(timeseries=[TimeSeries()]),
    ),
    DecodeCase(
        "metadata_between_series",
        WriteRequest,
        "0a 00 1a 02 08 01 0a 05 0a 03 0a 01 61",
        WriteRequest(
            timeseries=[TimeSeries(), TimeSeries([Label("a", "")])],
            metadata=[MetricMetadata(MetricType.COUNTER)],
        ),
    ),
    DecodeCase(
        "metadata_first",
        WriteRequest,
        "1a 00 0a 00",
        WriteRequest(timeseries=[TimeSeries()], metadata=[MetricMetadata()]),
    ),
    DecodeCase(
        "one_sample_series_then_unknown_field",
        WriteRequest,
        f"0a 17 0a 03 0a 01 61 12 10 09 {D_1} 10 b1 d2 b0 88 a1 34 c0 3e 01",
        WriteRequest([TimeSeries([Label("a", "")], [Sample(1.0, 1795582339377)])]),
    ),
    DecodeCase(
        "label_name_twice_last_wins",
        TimeSeries,
        "0a 06 0a 01 61 0a 01 62",
        TimeSeries([Label("b", "")]),
    ),
    DecodeCase(
        "label_value_before_name",
        TimeSeries,
        "0a 06 12 01 62 0a 01 61",
        TimeSeries([Label("a", "b")]),
    ),
    DecodeCase(
        "wrong_wire_type_for_known_field_is_unknown",
        Sample,
        f"08 05 09 {D_1} 11 {D_2}",  # field 1 as varint, field 2 as I64: skipped
        Sample(1.0, 0),
    ),
    DecodeCase(
        "unknown_fields_every_wire_type",
        Sample,
        f"18 96 01 21 {D_1} 2a 03 616263 35 01020304 09 {D_1}",
        Sample(1.0, 0),
    ),
    DecodeCase(
        "unknown_field_large_number",
        TimeSeries,
        "f8 ff ff ff 0f 01 12 00",  # field 2**29-1 (the largest), varint
        TimeSeries(samples=[Sample()]),
    ),
    DecodeCase(
        "series_samples_before_labels",
        TimeSeries,
        f"12 0b 09 {D_1} 10 01 0a 03 0a 01 61",
        TimeSeries([Label("a", "")], [Sample(1.0, 1)]),
    ),
    DecodeCase(
        "series_labels_interleaved",
        TimeSeries,
        "0a 03 0a 01 61 12 00 0a 03 0a 01 62",
        TimeSeries([Label("a", ""), Label("b", "")], [Sample()]),
    ),
    DecodeCase(
        "sample_in_series_with_unknown_field",
        TimeSeries,
        f"12 0f 09 {D_1} 10 01 18 01 20 02",
        TimeSeries(samples=[Sample(1.0, 1)]),
    ),
    DecodeCase(
        "sample_timestamp_before_value",
        TimeSeries,
        f"12 0b 10 01 09 {D_1}",
        TimeSeries(samples=[Sample(1.0, 1)]),
    ),
    DecodeCase(
        "hints_twice_merged",
        Query,
        "22 02 08 01 22 02 18 02",
        Query(hints=ReadHints(step_ms=1, start_ms=2)),
    ),
    DecodeCase("bool_varint_2_is_true", ReadHints, "30 02", ReadHints(by=True)),
    # uint32 and int32 enums keep the low 32 bits of a wider varint
    DecodeCase("uint32_truncated", BucketSpan, "10 81 80 80 80 10", BucketSpan(0, 1)),
    DecodeCase("enum_truncated_to_int32", MetricMetadata, "08 81 80 80 80 10", MetricMetadata(1)),
    DecodeCase("enum_negative_5_byte", MetricMetadata, "08 ff ff ff ff 0f", MetricMetadata(-1)),
    DecodeCase(
        "sint32_from_10_byte_varint_keeps_low_32_bits",
        BucketSpan,
        f"08 {NEG1_VARINT}",  # low 32 bits 0xffffffff -> zigzag -> -2**31
        BucketSpan(-(1 << 31), 0),
    ),
    DecodeCase(
        "bool_from_10_byte_varint", ReadHints, "30 80808080808080808001", ReadHints(by=True)
    ),
    DecodeCase(
        "run_of_fixed_shape_samples_then_other",
        TimeSeries,
        f"12 10 09 {D_1} 10 b1 d2 b0 88 a1 34 12 10 09 {D_2} 10 b1 d2 b0 88 a1 34 12 02 10 01",
        TimeSeries(
            samples=[Sample(1.0, 1795582339377), Sample(2.0, 1795582339377), Sample(0.0, 1)]
        ),
    ),
    DecodeCase(
        "varint_tenth_byte_high_bits_dropped",
        Sample,
        "10 ff ff ff ff ff ff ff ff ff 7f",
        Sample(0.0, -1),
    ),
]
