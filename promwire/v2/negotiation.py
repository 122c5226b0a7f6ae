"""HTTP-level pieces of remote write 2.0: picking the message type, the ``*-Written`` headers.

No I/O here: a receiver passes in the ``Content-Type`` header value and gets
back which message to decode, and turns counts into response headers.

``parse_content_type`` follows Prometheus' receiver (PROTOCOL.md §3.2 step 4)
with one deliberate leniency: whitespace around each ``;``-separated part is
ignored, so ``application/x-protobuf; proto=io.prometheus.write.v2.Request``
selects v2. Prometheus does not trim parameters and silently reads that
header as v1, which would make a v2 body decode as an *empty* v1 request
(fields 1-3 of ``Request`` are reserved) and lose every sample without an
error. Nothing else is relaxed: the media type, the parameter key ``proto``
and its value compare exactly (case-sensitive), and every parameter must be
``key=value`` with exactly one ``=``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from ..errors import UnsupportedMediaType

__all__ = [
    "CONTENT_TYPE_V1",
    "CONTENT_TYPE_V2",
    "EXEMPLARS_WRITTEN",
    "HISTOGRAMS_WRITTEN",
    "MEDIA_TYPE",
    "PROTO_V1",
    "PROTO_V2",
    "SAMPLES_WRITTEN",
    "count_request",
    "parse_content_type",
    "written_headers",
]

MEDIA_TYPE = "application/x-protobuf"
PROTO_V1 = "prometheus.WriteRequest"
PROTO_V2 = "io.prometheus.write.v2.Request"
#: What a v1 sender puts in Content-Type (the bare media type, for 1.x receivers).
CONTENT_TYPE_V1 = MEDIA_TYPE
#: What a v2 sender puts in Content-Type (no space after ``;``, as Prometheus sends).
CONTENT_TYPE_V2 = f"{MEDIA_TYPE};proto={PROTO_V2}"

SAMPLES_WRITTEN = "X-Prometheus-Remote-Write-Samples-Written"
HISTOGRAMS_WRITTEN = "X-Prometheus-Remote-Write-Histograms-Written"
EXEMPLARS_WRITTEN = "X-Prometheus-Remote-Write-Exemplars-Written"

_PROTOS: dict[str, Literal["v1", "v2"]] = {PROTO_V1: "v1", PROTO_V2: "v2"}


def parse_content_type(value: str | None) -> Literal["v1", "v2"]:
    """Which remote write message a ``Content-Type`` header announces: ``"v1"`` or ``"v2"``.

    A missing or empty header means v1. Raises
    :class:`~promwire.errors.UnsupportedMediaType` (HTTP 415) for another
    media type, a malformed parameter, or a ``proto`` naming another message.
    The first ``proto`` parameter decides; other parameters are ignored.
    """
    if value is None:
        return "v1"
    parts = [p.strip() for p in value.strip().split(";")]
    if parts == [""]:
        return "v1"
    if parts[0] != MEDIA_TYPE:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {value!r}: expected {MEDIA_TYPE!r} "
            f"(optionally with ;proto={PROTO_V1} or ;proto={PROTO_V2})"
        )
    for param in parts[1:]:
        if param.count("=") != 1:
            raise UnsupportedMediaType(
                f"malformed Content-Type parameter {param!r} in {value!r}: expected key=value"
            )
    for param in parts[1:]:
        key, _, proto = param.partition("=")
        if key == "proto":
            version = _PROTOS.get(proto)
            if version is None:
                raise UnsupportedMediaType(
                    f"unsupported remote write message {proto!r} in Content-Type: "
                    f"expected {PROTO_V1!r} or {PROTO_V2!r}"
                )
            return version
    return "v1"


def written_headers(samples: int, histograms: int, exemplars: int) -> list[tuple[str, str]]:
    """The three ``X-Prometheus-Remote-Write-*-Written`` response headers (decimal counts).

    Remote write 2.0 requires them on every 2xx and 4xx answer to a v2
    request, counting what *was* stored (partial writes included); Prometheus
    sends all three as ``0`` with a 5xx. Do not send them for v1 requests.
    """
    for name, n in (("samples", samples), ("histograms", histograms), ("exemplars", exemplars)):
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"{name}: expected a non-negative int, got {n!r}")
    return [
        (SAMPLES_WRITTEN, str(samples)),
        (HISTOGRAMS_WRITTEN, str(histograms)),
        (EXEMPLARS_WRITTEN, str(exemplars)),
    ]


def count_request(request: Any) -> tuple[int, int, int]:
    """``(samples, histograms, exemplars)`` carried by a v2 ``Request`` or a v1 ``WriteRequest``.

    Both have ``timeseries`` whose items have ``samples``, ``histograms`` and
    ``exemplars`` lists; metadata is not counted (the protocol has no header
    for it).
    """
    series: Iterable[Any] = request.timeseries
    s = h = e = 0
    for ts in series:
        s += len(ts.samples)
        h += len(ts.histograms)
        e += len(ts.exemplars)
    return s, h, e
