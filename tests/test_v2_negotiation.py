"""Content-Type negotiation, *-Written headers and counting for remote write 2.0."""

from __future__ import annotations

import pytest

from promwire import UnsupportedMediaType, WriteRequest, v2
from promwire.codec import messages as m

V1 = "v1"
V2 = "v2"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # canonical forms
        (None, V1),
        ("", V1),
        ("application/x-protobuf", V1),
        ("application/x-protobuf;proto=prometheus.WriteRequest", V1),
        ("application/x-protobuf;proto=io.prometheus.write.v2.Request", V2),
        (v2.CONTENT_TYPE_V2, V2),
        (v2.CONTENT_TYPE_V1, V1),
        # whitespace: trimmed around the value and around each part (Prometheus
        # only trims the whole value and would read the spaced v2 form as v1)
        ("  application/x-protobuf  ", V1),
        ("application/x-protobuf; proto=io.prometheus.write.v2.Request", V2),
        ("application/x-protobuf ;\tproto=io.prometheus.write.v2.Request ", V2),
        # other parameters are ignored; the first proto decides
        ("application/x-protobuf;charset=utf-8", V1),
        ("application/x-protobuf;a=b;proto=io.prometheus.write.v2.Request", V2),
        (
            "application/x-protobuf;proto=io.prometheus.write.v2.Request;proto=prometheus.WriteRequest",
            V2,
        ),
        (
            "application/x-protobuf;proto=prometheus.WriteRequest;proto=io.prometheus.write.v2.Request",
            V1,
        ),
        # the key must be exactly "proto"
        ("application/x-protobuf;Proto=io.prometheus.write.v2.Request", V1),
    ],
)
def test_parse_content_type(value: str | None, expected: str) -> None:
    assert v2.parse_content_type(value) == expected


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        # unknown or differently spelled message
        (
            "application/x-protobuf;proto=io.prometheus.write.v3.Request",
            "unsupported remote write message",
        ),
        ("application/x-protobuf;proto=", "unsupported remote write message ''"),
        (
            "application/x-protobuf;proto=IO.PROMETHEUS.WRITE.V2.REQUEST",
            "unsupported remote write message",
        ),
        # wrong media type (compared exactly, as Prometheus does)
        ("application/json", "unsupported Content-Type 'application/json'"),
        ("application/protobuf;proto=io.prometheus.write.v2.Request", "unsupported Content-Type"),
        ("Application/X-Protobuf", "unsupported Content-Type"),
        ("text/plain;proto=io.prometheus.write.v2.Request", "unsupported Content-Type"),
        ("   ;proto=io.prometheus.write.v2.Request", "unsupported Content-Type"),
        # malformed parameters
        ("application/x-protobuf;", "malformed Content-Type parameter ''"),
        ("application/x-protobuf;proto", "malformed Content-Type parameter 'proto'"),
        ("application/x-protobuf;proto==io.prometheus.write.v2.Request", "malformed"),
        ("application/x-protobuf;a=b=c;proto=io.prometheus.write.v2.Request", "malformed"),
        # a malformed parameter after the deciding one still fails (all are checked)
        ("application/x-protobuf;proto=io.prometheus.write.v2.Request;junk", "malformed"),
    ],
)
def test_parse_content_type_rejects(value: str, needle: str) -> None:
    with pytest.raises(UnsupportedMediaType) as exc:
        v2.parse_content_type(value)
    assert needle in str(exc.value)
    assert exc.value.status == 415


def test_written_headers() -> None:
    assert v2.written_headers(3, 0, 12) == [
        ("X-Prometheus-Remote-Write-Samples-Written", "3"),
        ("X-Prometheus-Remote-Write-Histograms-Written", "0"),
        ("X-Prometheus-Remote-Write-Exemplars-Written", "12"),
    ]
    big = (1 << 63) - 1
    assert v2.written_headers(big, 0, 0)[0] == (v2.SAMPLES_WRITTEN, str(big))
    for bad in (-1, 1.0, True):
        with pytest.raises(ValueError):
            v2.written_headers(bad, 0, 0)  # type: ignore[arg-type]


def test_count_request_v1_and_v2() -> None:
    req = v2.Request(
        symbols=[""],
        timeseries=[
            v2.TimeSeries(samples=[v2.Sample(), v2.Sample()], exemplars=[v2.Exemplar()]),
            v2.TimeSeries(histograms=[v2.Histogram()] * 3),
            v2.TimeSeries(metadata=v2.Metadata()),
        ],
    )
    assert v2.count_request(req) == (2, 3, 1)
    assert v2.count_request(v2.to_v1(req)) == (2, 3, 1)
    assert v2.count_request(WriteRequest(metadata=[m.MetricMetadata()])) == (0, 0, 0)
    assert v2.count_request(v2.Request()) == (0, 0, 0)
