"""Framework-agnostic remote write / remote read handlers (no I/O).

A web framework hands over the raw request body and headers; a handler
decodes, calls the storage and returns a :class:`Response` for the framework
to send::

    resp = handle_write(body, headers, storage)
    return framework.Response(resp.body, status=resp.status, headers=resp.headers)

HTTP behaviour (PROTOCOL.md §3-4):

* write: the ``Content-Type`` picks the message (:func:`promwire.v2.parse_content_type`,
  the one parser): none, bare ``application/x-protobuf`` or
  ``;proto=prometheus.WriteRequest`` is remote write 1.0,
  ``;proto=io.prometheus.write.v2.Request`` is 2.0, anything else (or a
  message the storage's ``accepted_protocols`` leaves out) is 415. A space
  after ``;`` is tolerated, which Prometheus does not do (it would read
  ``; proto=io.prometheus.write.v2.Request`` as 1.0 and store nothing).
  204 with an empty body on success (never a body on 204: Go's client
  would misread the next response on the connection); 415 for a
  Content-Encoding other than ``snappy``; 413 when the body exceeds
  ``max_body_size``; 400 with a text/plain message for bad snappy or
  protobuf, a declared decoded size over the limit, too many
  series/samples/labels or too long a label; storage errors map through
  their ``.status`` (400/429/500), any other storage exception is a 500.
* remote write 2.0 answers (every answer once the Content-Type named v2)
  carry ``X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written``.
  Series with bad refs, without samples and histograms or with both, and
  samples/histograms going back in time or exemplars without a timestamp are
  rejected one by one; the rest is stored and the answer is 400 listing the
  problems, with the counts of what was written (a partial write). A 5xx or
  429 means nothing was kept (all three counts 0), so a retry is safe.
  Remote write 1.0 answers never carry those headers.
* read: the first of the request's ``accepted_response_types`` promwire
  supports wins (none listed means SAMPLES). SAMPLES: 200 with
  ``Content-Type: application/x-protobuf`` and ``Content-Encoding: snappy``
  carrying a snappy ``ReadResponse``; 400 when the request holds more than
  ``max_read_queries`` queries or the answer exceeds ``max_read_samples``.
  STREAMED_XOR_CHUNKS: 200 with
  ``Content-Type: application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse``,
  no Content-Encoding, and a *lazy* body of frames (see :func:`handle_read`
  and :func:`prime_response`). 400 when no accepted response type is
  supported.

Header names are matched case-insensitively. Where promwire is more lenient
than Prometheus it says so next to the check (Content-Encoding compared
case-insensitively; whitespace around ``;`` parameters tolerated).

The async handlers accept a sync or an async storage: a sync storage's
methods run in a worker thread (``asyncio.to_thread``) so they never block
the event loop; bodies of 64 KiB or more are also decoded in a worker thread.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import operator
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import Any, TypeVar

from . import snappy, v2
from .decode import decode, decode_write_request
from .encode import encode
from .errors import (
    DecodeError,
    LimitExceeded,
    PromwireError,
    StorageError,
    StorageOverloaded,
    UnsupportedMediaType,
)
from .messages import (
    ChunkedSeries,
    Query,
    QueryResult,
    ReadRequest,
    ReadResponse,
    ResponseType,
    TimeSeries,
    WriteRequest,
)
from .storage import DEFAULT_ACCEPTED_PROTOCOLS, RequestContext, WriteOutcome
from .streamed import DEFAULT_MAX_BYTES_IN_FRAME, STREAMED_CONTENT_TYPE, stream_chunked_response

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_BYTES_IN_FRAME",
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    "DEFAULT_MAX_LABELS_PER_SERIES",
    "DEFAULT_MAX_LABEL_BYTES",
    "DEFAULT_MAX_READ_QUERIES",
    "DEFAULT_MAX_READ_SAMPLES",
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_MAX_SERIES",
    "MAX_LISTED_PROBLEMS",
    "PROTOBUF",
    "STREAMED_CONTENT_TYPE",
    "SUPPORTED_RESPONSE_TYPES",
    "SUPPORTED_WRITE_PROTOS",
    "Response",
    "aprime_response",
    "check_v2_request",
    "error_response",
    "handle_read",
    "handle_read_async",
    "handle_write",
    "handle_write_async",
    "negotiate_response_type",
    "prepare_read",
    "prepare_write",
    "prime_response",
    "refused_write_headers",
    "text_response",
]

log = logging.getLogger("promwire")
T = TypeVar("T")

#: Largest request body accepted (compressed), as Prometheus: 32 MiB.
DEFAULT_MAX_BODY_SIZE = 32 * 1024 * 1024
#: Largest decoded size a snappy body may declare, as Prometheus: 32 MiB.
DEFAULT_MAX_DECOMPRESSED_SIZE = snappy.DEFAULT_MAX_DECOMPRESSED_SIZE
#: Most series one write request may hold. Prometheus sends at most
#: ``max_samples_per_send`` series per request (default 2000; 500 in 2.42).
DEFAULT_MAX_SERIES = 1_000_000
#: Most data points (samples + histograms + exemplars) one write request may hold.
DEFAULT_MAX_SAMPLES = 1_000_000
#: Most labels one series of a write request may carry. Prometheus has no such
#: limit; Grafana Mimir's default refuses more than 30, so this never refuses
#: a real series while bounding the per-series work of sorting labels and
#: building keys.
DEFAULT_MAX_LABELS_PER_SERIES = 1000
#: Longest label name or value of a written series, in UTF-8 bytes. Prometheus
#: has no such limit; Grafana Mimir (2048 characters) and VictoriaMetrics
#: (4 KiB) are far stricter, so this only stops strings no storage should
#: have to index.
DEFAULT_MAX_LABEL_BYTES = 64 * 1024
#: Most queries one read request may hold (each one a storage scan).
#: Prometheus sends one query per request.
DEFAULT_MAX_READ_QUERIES = 1000
#: Most samples (+ histograms) one SAMPLES read response may carry, as Prometheus'
#: ``--storage.remote.read-sample-limit`` default. Streamed answers have no such
#: limit (as in Prometheus): their memory does not grow with the answer.
DEFAULT_MAX_READ_SAMPLES = 50_000_000
#: Most problems a partial-write (400) answer lists one by one; the rest are counted.
MAX_LISTED_PROBLEMS = 20

PROTOBUF = "application/x-protobuf"
#: Remote write messages the handlers can take ("v1": ``prometheus.WriteRequest``,
#: "v2": ``io.prometheus.write.v2.Request``); a storage narrows them with
#: ``accepted_protocols`` (see :mod:`promwire.storage`).
SUPPORTED_WRITE_PROTOS: tuple[str, ...] = DEFAULT_ACCEPTED_PROTOCOLS
#: Response types handle_read can produce.
SUPPORTED_RESPONSE_TYPES: tuple[ResponseType, ...] = (
    ResponseType.SAMPLES,
    ResponseType.STREAMED_XOR_CHUNKS,
)

_TEXT = ("Content-Type", "text/plain; charset=utf-8")
_NO_WRITES = v2.written_headers(0, 0, 0)


@dataclass(frozen=True, slots=True)
class Response:
    """What to send back. ``body`` is ``bytes`` or an iterable of ``bytes`` to stream."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes | Iterable[bytes] | AsyncIterator[bytes] = b""


def text_response(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A plain-text response (``message`` plus a newline)."""
    return Response(status, [_TEXT, *headers], (message.rstrip("\n") + "\n").encode())


def error_response(exc: BaseException, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """Turn an exception into a response: promwire errors by ``.status``, others 500."""
    extra: list[tuple[str, str]] = list(headers)
    if isinstance(exc, PromwireError):
        if isinstance(exc, StorageOverloaded) and exc.retry_after is not None:
            # Retry-After takes whole seconds; round up so the sender never comes back early.
            extra.append(("Retry-After", str(max(0, math.ceil(exc.retry_after)))))
        return text_response(exc.status, exc.message, extra)
    log.error("storage raised an unexpected exception", exc_info=exc)
    return text_response(500, f"internal storage error: {type(exc).__name__}: {exc}", extra)


def _no_content(headers: Iterable[tuple[str, str]] = ()) -> Response:
    # A fresh header list each time: callers may append to it.
    return Response(204, list(headers), b"")


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _check_encoding(value: str | None) -> None:
    # A missing Content-Encoding is tolerated and the body still read as snappy
    # (Prometheus does the same). Compared case-insensitively (older Prometheus did).
    if value is not None and value.strip().lower() != "snappy":
        raise UnsupportedMediaType(
            f"unsupported Content-Encoding {value!r}: only 'snappy' (block format) is accepted"
        )


def _check_body_size(body: bytes, max_body_size: int) -> None:
    if len(body) > max_body_size:
        raise LimitExceeded(
            f"request body is {len(body)} bytes, over the limit of {max_body_size}", status=413
        )


# ---------------------------------------------------------------------------- write


def _write_version(headers: Mapping[str, str], accepted: Iterable[str]) -> str:
    """The message version, ``v1`` or ``v2``, from the Content-Type.

    415 when the Content-Type is unknown or names a message the storage does
    not accept.
    """
    version = v2.parse_content_type(headers.get("content-type"))
    accepted = tuple(accepted)
    if version not in accepted:
        raise UnsupportedMediaType(
            f"this receiver does not accept remote write {version} "
            f"({v2.negotiation.PROTO_V2 if version == 'v2' else v2.negotiation.PROTO_V1}); "
            f"accepted: {', '.join(accepted) or 'none'}"
        )
    return version


def _decode_write(
    body: bytes,
    h: Mapping[str, str],
    version: str,
    *,
    max_body_size: int,
    max_decompressed_size: int,
    max_series: int,
    max_samples: int,
    max_labels_per_series: int = DEFAULT_MAX_LABELS_PER_SERIES,
    max_label_bytes: int = DEFAULT_MAX_LABEL_BYTES,
) -> WriteRequest | v2.Request:
    _check_encoding(h.get("content-encoding"))
    _check_body_size(body, max_body_size)
    raw = snappy.decompress(body, max_decompressed_size=max_decompressed_size)
    if version == "v2":
        request_v2 = decode(v2.Request, raw)
        _check_write_counts(request_v2, max_series, max_samples)
        _check_v2_labels(request_v2, max_labels_per_series, max_label_bytes)
        return request_v2
    # The decoder also reports the largest series record: labels need a look
    # only when it is over max_label_bytes.
    request, biggest_series = decode_write_request(raw)
    _check_write_counts(request, max_series, max_samples)
    _check_v1_labels(request.timeseries, max_labels_per_series, max_label_bytes, biggest_series)
    return request


def prepare_write(
    body: bytes,
    headers: Mapping[str, str],
    *,
    accepted_protocols: Iterable[str] = SUPPORTED_WRITE_PROTOS,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
    max_series: int = DEFAULT_MAX_SERIES,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    max_labels_per_series: int = DEFAULT_MAX_LABELS_PER_SERIES,
    max_label_bytes: int = DEFAULT_MAX_LABEL_BYTES,
) -> WriteRequest | v2.Request:
    """Validate headers and decode a write body, raising a promwire error on bad input.

    Returns a v1 ``WriteRequest`` or a ``promwire.v2.Request`` as the
    Content-Type says (refs of a v2 request are not checked yet: see
    :func:`check_v2_request`). Header checks run before the body is touched,
    so a request with a wrong Content-Type gets 415 even when its body is
    also broken (Prometheus would decode first and answer 400). The limits
    are those of :func:`handle_write`.
    """
    h = _lower(headers)
    version = _write_version(h, accepted_protocols)
    return _decode_write(
        body,
        h,
        version,
        max_body_size=max_body_size,
        max_decompressed_size=max_decompressed_size,
        max_series=max_series,
        max_samples=max_samples,
        max_labels_per_series=max_labels_per_series,
        max_label_bytes=max_label_bytes,
    )


def _check_write_counts(
    request: WriteRequest | v2.Request, max_series: int, max_samples: int
) -> None:
    if len(request.timeseries) > max_series:
        raise LimitExceeded(
            f"request holds {len(request.timeseries)} series, "
            f"over the limit of {max_series} (max_series)",
            status=400,
        )
    points = sum(v2.count_request(request))
    if points > max_samples:
        raise LimitExceeded(
            f"request holds {points} samples/histograms/exemplars, "
            f"over the limit of {max_samples} (max_samples)",
            status=400,
        )


# The label checks below run on every write, so their common case is a few
# C-level passes (map/max over attrgetter) instead of a Python loop; the loop
# that finds and names the culprit only runs once a limit is known to be hit.
_labels_of = operator.attrgetter("labels")
_labels_refs_of = operator.attrgetter("labels_refs")
_name_of = operator.attrgetter("name")
_value_of = operator.attrgetter("value")


def _too_many_labels(what: str, count: int, limit: int) -> LimitExceeded:
    return LimitExceeded(
        f"{what} has {count} labels, over the limit of {limit} (max_labels_per_series)",
        status=400,
    )


def _utf8_len(text: str) -> int:
    # Decoded strings are valid UTF-8 (the decoder checks), so this never fails.
    return len(text.encode("utf-8", "surrogatepass"))


def _label_too_long(what: str, kind: str, text: str, limit: int) -> LimitExceeded:
    shown = text[:40] + "..." if len(text) > 40 else text
    return LimitExceeded(
        f"{what}: label {kind} {shown!r} is {_utf8_len(text)} bytes, "
        f"over the limit of {limit} (max_label_bytes)",
        status=400,
    )


def _describe_v1(series: TimeSeries, index: int) -> str:
    name = next((lb.value for lb in series.labels if lb.name == "__name__"), None)
    shown = repr(name[:80]) if name is not None else "without __name__"
    return f"series #{index} ({shown}, {len(series.labels)} labels)"


def _check_v1_labels(
    series: list[TimeSeries], max_labels: int, max_bytes: int, raw_size: int
) -> None:
    """Refuse (400) a v1 request with too many labels in a series or too long a label.

    Exemplar labels are not counted (Prometheus' own storage caps them).
    ``raw_size`` bounds every label's size (the largest series record, or
    the decoded body's size): only above the limit are labels measured.
    """
    if not series:
        return
    if max(map(len, map(_labels_of, series))) > max_labels:
        index, ts = next((i, ts) for i, ts in enumerate(series) if len(ts.labels) > max_labels)
        raise _too_many_labels(_describe_v1(ts, index), len(ts.labels), max_labels)
    if raw_size <= max_bytes:
        return
    labels = list(chain.from_iterable(map(_labels_of, series)))
    if not labels:
        return
    # len() counts code points and UTF-8 needs 1 to 4 bytes for each: a string
    # of at most max_bytes // 4 code points always fits, only longer ones are
    # measured in bytes.
    fits = max_bytes // 4
    if (
        max(map(len, map(_name_of, labels))) <= fits
        and max(map(len, map(_value_of, labels))) <= fits
    ):
        return
    for index, ts in enumerate(series):
        for lb in ts.labels:
            for kind, text in (("name", lb.name), ("value", lb.value)):
                if len(text) > fits and _utf8_len(text) > max_bytes:
                    raise _label_too_long(_describe_v1(ts, index), kind, text, max_bytes)


def _check_v2_labels(request: v2.Request, max_labels: int, max_bytes: int) -> None:
    """:func:`_check_v1_labels` for remote write 2.0: counts from ``labels_refs``,
    lengths from the symbol table (each string once). A refused request is
    refused whole, with nothing written (not a partial write)."""
    series = request.timeseries
    symbols = request.symbols
    if not series:
        return
    if max(map(len, map(_labels_refs_of, series))) > 2 * max_labels + 1:
        for index, ts in enumerate(series):
            if len(ts.labels_refs) // 2 > max_labels:
                what = v2.describe_series(symbols, ts, index)
                raise _too_many_labels(what, len(ts.labels_refs) // 2, max_labels)
    fits = max_bytes // 4
    if not symbols or max(map(len, symbols)) <= fits:
        return
    # A long symbol may be help text of metadata: only label refs count.
    long = {i for i, text in enumerate(symbols) if len(text) > fits and _utf8_len(text) > max_bytes}
    if not long:
        return
    for index, ts in enumerate(series):
        refs = ts.labels_refs
        for position, ref in enumerate(refs):
            if ref in long:
                kind = "value" if position % 2 else "name"
                what = f"series #{index}"
                raise _label_too_long(what, kind, symbols[ref], max_bytes)


def _in_time_order(
    points: list[Any], what: str, problems: list[str], name: Callable[[], str]
) -> list[Any]:
    """The points a series may keep: each not older than the one before.

    A point older than the last kept one is out of order; one at the same
    timestamp is kept when equal (a harmless duplicate, as Prometheus counts
    it) and refused when different ("duplicate sample for timestamp").
    ``name`` makes the series' name for a message (only built when needed).
    """
    if len(points) < 2:
        return points
    stamps = [p.timestamp for p in points]
    if all(map(operator.lt, stamps, stamps[1:])):  # the usual case, checked in C
        return points
    kept = [points[0]]
    for p in points[1:]:
        last = kept[-1]
        if p.timestamp > last.timestamp:
            kept.append(p)
        elif p.timestamp < last.timestamp:
            problems.append(
                f"{name()}: out-of-order {what} at {p.timestamp} after {last.timestamp}"
            )
        elif _same_point(p, last):
            kept.append(p)
        else:
            problems.append(f"{name()}: duplicate {what} for timestamp {p.timestamp} (other value)")
    return kept


def _same_point(a: Any, b: Any) -> bool:
    if isinstance(a, v2.Sample):
        # Compare bits, not floats: NaN != NaN, and stale markers are NaNs.
        return bool(encode(a) == encode(b))
    return bool(a == b)


def check_v2_request(request: v2.Request) -> tuple[v2.Request, list[str]]:
    """Split a decoded v2 request into what may be stored and the problems of the rest.

    Checks the receiver-side rules of remote write 2.0 (PROTOCOL.md §2.1):

    * a non-empty symbol table must start with ``""`` - otherwise the whole
      request is refused (:class:`~promwire.errors.DecodeError`, a 400 with
      nothing written);
    * per series: refs in range and ``labels_refs`` of even length, no empty
      or repeated label name, at least one sample or histogram, not both - a
      failing series is left out whole;
    * per point: samples and histograms in time order (see
      :func:`_in_time_order`), exemplars with a timestamp - a failing point is
      left out, the rest of its series kept.

    Returns the request to store (same symbol table, kept series only) and
    one message per problem, naming the series.
    """
    symbols = request.symbols
    if symbols and symbols[0] != "":
        raise DecodeError(f"symbols[0] must be the empty string, got {symbols[0]!r}")
    problems: list[str] = []
    kept: list[v2.TimeSeries] = []
    for index, series in enumerate(request.timeseries):
        ref_problem = v2.series_error(symbols, series, index)
        if ref_problem is not None:
            problems.append(ref_problem)
            continue
        name = partial(v2.describe_series, symbols, series, index)
        label_names = [symbols[r] for r in series.labels_refs[::2]]
        if "" in label_names:
            problems.append(f"{name()}: empty label name")
            continue
        if len(set(label_names)) != len(label_names):
            problems.append(f"{name()}: repeated label name")
            continue
        if not series.samples and not series.histograms:
            problems.append(f"{name()}: no samples and no histograms")
            continue
        if series.samples and series.histograms:
            problems.append(f"{name()}: both samples and histograms (send two series)")
            continue
        before = len(problems)
        samples = _in_time_order(series.samples, "sample", problems, name)
        histograms = _in_time_order(series.histograms, "histogram", problems, name)
        exemplars = series.exemplars
        if any(e.timestamp == 0 for e in exemplars):
            exemplars = [e for e in exemplars if e.timestamp != 0]
            missing = len(series.exemplars) - len(exemplars)
            problems.append(f"{name()}: {missing} exemplar(s) without a timestamp")
        if len(problems) != before:
            series = v2.TimeSeries(
                labels_refs=series.labels_refs,
                samples=samples,
                histograms=histograms,
                exemplars=exemplars,
                metadata=series.metadata,
            )
        kept.append(series)
    if len(kept) == len(request.timeseries) and not problems:
        return request, problems
    return v2.Request(symbols=symbols, timeseries=kept), problems


def _partial_write_text(
    problems: list[str], sent: tuple[int, int, int], written: tuple[int, int, int]
) -> str:
    rejected = ", ".join(
        f"{s - w} {what}"
        for what, s, w in zip(("samples", "histograms", "exemplars"), sent, written, strict=True)
    )
    lines = [f"remote write 2.0: partial write, rejected {rejected}; {len(problems)} problem(s):"]
    lines += problems[:MAX_LISTED_PROBLEMS]
    if len(problems) > MAX_LISTED_PROBLEMS:
        lines.append(f"... and {len(problems) - MAX_LISTED_PROBLEMS} more")
    return "\n".join(lines)


def _v2_answer(
    sent: v2.Request, problems: list[str], outcome: WriteOutcome | None, stored: v2.Request
) -> Response:
    if outcome is None:
        written = v2.count_request(stored)
    else:
        written = (outcome.samples, outcome.histograms, outcome.exemplars)
        problems = problems + list(outcome.problems)
    headers = v2.written_headers(*written)
    if problems:
        return text_response(
            400, _partial_write_text(problems, v2.count_request(sent), written), headers
        )
    return _no_content(headers)


def _v2_storage_call(storage: Any, stored: v2.Request) -> tuple[Callable[..., Any], Any]:
    """The storage method and argument for a checked v2 request."""
    write_v2 = getattr(storage, "write_v2", None)
    if write_v2 is not None:
        return write_v2, stored
    return storage.write, v2.to_v1(stored, sort_labels=True)


def _check_outcome(result: Any) -> WriteOutcome | None:
    if result is None or isinstance(result, WriteOutcome):
        return result
    raise StorageError(f"write_v2 returned {type(result).__name__}, expected WriteOutcome or None")


def _context(ctx: Any, headers: Mapping[str, str]) -> Any:
    return RequestContext(headers=_lower(headers)) if ctx is None else ctx


def _accepted(storage: Any) -> Iterable[str]:
    return getattr(storage, "accepted_protocols", SUPPORTED_WRITE_PROTOS)


def handle_write(
    body: bytes,
    headers: Mapping[str, str],
    storage: Any,
    ctx: Any = None,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
    max_series: int = DEFAULT_MAX_SERIES,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    max_labels_per_series: int = DEFAULT_MAX_LABELS_PER_SERIES,
    max_label_bytes: int = DEFAULT_MAX_LABEL_BYTES,
) -> Response:
    """Handle a remote write request (1.0 or 2.0) with a synchronous storage.

    ``ctx`` is passed to the storage as is; ``None`` makes a
    :class:`~promwire.storage.RequestContext` holding the (lower-cased) headers.
    Limits, each answered before the storage is called (so nothing is
    stored): ``max_body_size`` (compressed bytes, 413),
    ``max_decompressed_size`` (declared decoded bytes, 400, checked before
    inflating), ``max_series`` and ``max_samples`` (samples + histograms +
    exemplars) per request, ``max_labels_per_series`` and ``max_label_bytes``
    (UTF-8 bytes of one label name or value) per series (400). A v2 request
    goes to the storage's ``write_v2`` when it has one, else converted to
    ``write``; see the module docstring for answers.
    """
    h = _lower(headers)
    extra: list[tuple[str, str]] = []
    try:
        version = _write_version(h, _accepted(storage))
    except Exception as exc:
        return error_response(exc, _NO_WRITES if _names_v2(h) else ())
    try:
        if version == "v2":
            extra = _NO_WRITES
        request = _decode_write(
            body,
            h,
            version,
            max_body_size=max_body_size,
            max_decompressed_size=max_decompressed_size,
            max_series=max_series,
            max_samples=max_samples,
            max_labels_per_series=max_labels_per_series,
            max_label_bytes=max_label_bytes,
        )
        if isinstance(request, WriteRequest):
            storage.write(_context(ctx, headers), request)
            return _no_content()
        stored, problems = check_v2_request(request)
        outcome = None
        if stored.timeseries:
            method, arg = _v2_storage_call(storage, stored)
            outcome = _check_outcome(method(_context(ctx, headers), arg))
        return _v2_answer(request, problems, outcome, stored)
    except Exception as exc:
        return error_response(exc, extra)


def _names_v2(h: Mapping[str, str]) -> bool:
    """Whether a Content-Type names v2 even if this receiver refuses it (for the 0 counts)."""
    try:
        return v2.parse_content_type(h.get("content-type")) == "v2"
    except UnsupportedMediaType:
        return False


def refused_write_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """Headers for a write refused before the handler ran (e.g. an adapter's 413).

    The three Written counts, all 0, when the request's Content-Type names
    remote write 2.0 (2.0 answers always carry them); nothing for 1.0.
    """
    return list(_NO_WRITES) if _names_v2(_lower(headers)) else []


async def handle_write_async(
    body: bytes,
    headers: Mapping[str, str],
    storage: Any,
    ctx: Any = None,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
    max_series: int = DEFAULT_MAX_SERIES,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    max_labels_per_series: int = DEFAULT_MAX_LABELS_PER_SERIES,
    max_label_bytes: int = DEFAULT_MAX_LABEL_BYTES,
) -> Response:
    """:func:`handle_write` for an async or sync storage (sync runs in a thread)."""
    h = _lower(headers)
    extra: list[tuple[str, str]] = []
    try:
        version = _write_version(h, _accepted(storage))
    except Exception as exc:
        return error_response(exc, _NO_WRITES if _names_v2(h) else ())
    try:
        if version == "v2":
            extra = _NO_WRITES
        request = await _off_loop(
            len(body),
            _decode_write,
            body,
            h,
            version,
            max_body_size=max_body_size,
            max_decompressed_size=max_decompressed_size,
            max_series=max_series,
            max_samples=max_samples,
            max_labels_per_series=max_labels_per_series,
            max_label_bytes=max_label_bytes,
        )
        if isinstance(request, WriteRequest):
            await _call(storage.write, _context(ctx, headers), request)
            return _no_content()
        stored, problems = await _off_loop(len(body), check_v2_request, request)
        outcome = None
        if stored.timeseries:
            method, arg = await _off_loop(len(body), _v2_storage_call, storage, stored)
            outcome = _check_outcome(await _call(method, _context(ctx, headers), arg))
        return _v2_answer(request, problems, outcome, stored)
    except Exception as exc:
        return error_response(exc, extra)


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


# ----------------------------------------------------------------------------- read


def negotiate_response_type(
    accepted: Iterable[ResponseType | int],
    supported: Iterable[ResponseType] = SUPPORTED_RESPONSE_TYPES,
) -> ResponseType:
    """The first accepted response type this server supports (PROTOCOL.md §4.2).

    An empty list means SAMPLES (older clients, Prometheus 2.42 included, send
    none). A non-empty list with nothing supported is a 400.
    """
    accepted = list(accepted)
    supported = tuple(supported)
    if not accepted:
        return ResponseType.SAMPLES
    for rtype in accepted:
        if rtype in supported:
            return ResponseType(rtype)
    names = ", ".join(_type_name(t) for t in accepted)
    raise UnsupportedMediaType(
        f"none of the accepted response types ({names}) is supported; "
        f"supported: {', '.join(t.name for t in supported)}",
        status=400,
    )


def _type_name(rtype: ResponseType | int) -> str:
    try:
        return ResponseType(rtype).name
    except ValueError:
        return str(rtype)


def prepare_read(
    body: bytes,
    headers: Mapping[str, str],
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
    max_read_queries: int = DEFAULT_MAX_READ_QUERIES,
    supported: Iterable[ResponseType] = SUPPORTED_RESPONSE_TYPES,
) -> tuple[ReadRequest, ResponseType]:
    """Validate and decode a read body; return it with the negotiated response type.

    Prometheus' server ignores the request headers; promwire refuses a
    Content-Encoding other than snappy and a media type other than
    ``application/x-protobuf`` (415), accepting both when absent (parameters
    after ``;`` are ignored).
    """
    h = _lower(headers)
    _check_encoding(h.get("content-encoding"))
    content_type = h.get("content-type")
    if content_type is not None and content_type.strip():
        media = content_type.split(";", 1)[0].strip().lower()
        if media != PROTOBUF:
            raise UnsupportedMediaType(
                f"unsupported Content-Type {content_type!r}: expected {PROTOBUF!r}"
            )
    _check_body_size(body, max_body_size)
    raw = snappy.decompress(body, max_decompressed_size=max_decompressed_size)
    request = decode(ReadRequest, raw)
    if len(request.queries) > max_read_queries:
        raise LimitExceeded(
            f"read request holds {len(request.queries)} queries, "
            f"over the limit of {max_read_queries} (max_read_queries)",
            status=400,
        )
    return request, negotiate_response_type(request.accepted_response_types, supported)


def _samples_response(
    request: ReadRequest, response: ReadResponse, max_read_samples: int
) -> Response:
    if len(response.results) != len(request.queries):
        # The client pairs results with queries by position: a mismatch is a storage bug.
        raise StorageError(
            f"storage answered {len(response.results)} results for {len(request.queries)} queries"
        )
    total = sum(
        len(ts.samples) + len(ts.histograms) for r in response.results for ts in r.timeseries
    )
    if total > max_read_samples:
        raise LimitExceeded(
            f"exceeded sample limit: response would hold {total} samples, "
            f"over the limit of {max_read_samples}",
            status=400,
        )
    return Response(
        200,
        [("Content-Type", PROTOBUF), ("Content-Encoding", "snappy")],
        snappy.compress(encode(response)),
    )


# Streamed read ------------------------------------------------------------------


def _labels_key(series: TimeSeries | ChunkedSeries) -> tuple[tuple[str, str], ...]:
    # Prometheus orders label sets pairwise by (name, value), then by length:
    # exactly how tuples of sorted pairs compare.
    return tuple(sorted((lb.name, lb.value) for lb in series.labels))


class _Dropped:
    """Counts series whose native histograms a streamed answer had to leave out."""

    __slots__ = ("series",)

    def __init__(self) -> None:
        self.series = 0

    def floats_only(
        self, items: Iterable[TimeSeries | ChunkedSeries]
    ) -> Iterator[TimeSeries | ChunkedSeries]:
        # promwire has no histogram chunk encoder: a TimeSeries' histograms
        # cannot become chunks, so the series is sent with its float samples only.
        for series in items:
            if isinstance(series, TimeSeries) and series.histograms:
                self.series += 1
                series = TimeSeries(labels=series.labels, samples=series.samples)
            yield series

    def warn(self) -> None:
        if self.series:
            log.warning(
                "streamed remote read: native histograms of %d series left out "
                "(no histogram chunk encoder; ask for SAMPLES to get them)",
                self.series,
            )


def _sorted_result(result: QueryResult) -> list[TimeSeries]:
    return sorted(result.timeseries, key=_labels_key)


def _query_series(storage: Any, ctx: Any, query: Query) -> Iterable[TimeSeries | ChunkedSeries]:
    chunks = getattr(storage, "process_query_chunks", None)
    if chunks is not None:
        items: Iterable[TimeSeries | ChunkedSeries] = chunks(ctx, query)
        return items
    return _sorted_result(storage.process_query(ctx, query))


def _stream_error(exc: BaseException) -> bytes:
    """What is appended to a stream that fails after its first frame.

    Like Prometheus: the status (200) is already sent, so the error text goes
    into the body, where a reader sees an unreadable frame (a bad length or a
    CRC mismatch) and fails the read instead of taking a cut answer as whole.
    """
    log.error("streamed remote read failed after the first frame", exc_info=exc)
    message = exc.message if isinstance(exc, PromwireError) else f"{type(exc).__name__}: {exc}"
    return f"promwire: streamed remote read failed: {message}\n".encode()


def _stream_frames(
    storage: Any,
    ctx: Any,
    request: ReadRequest,
    max_bytes_in_frame: int,
    samples_per_chunk: int,
) -> Iterator[bytes]:
    """The frames of a streamed answer, computed as they are pulled.

    Raises when the first frame cannot be made (the caller can still answer
    with an error status); after that, an error ends the body with a text
    message (see :func:`_stream_error`).
    """
    dropped = _Dropped()
    results = (
        (index, dropped.floats_only(_query_series(storage, ctx, query)))
        for index, query in enumerate(request.queries)
    )
    started = False
    try:
        for frame in stream_chunked_response(
            results, max_bytes_in_frame=max_bytes_in_frame, samples_per_chunk=samples_per_chunk
        ):
            started = True
            yield frame
    except Exception as exc:
        if not started:
            raise
        yield _stream_error(exc)
    finally:
        dropped.warn()


def _frames_of(
    index: int, series: TimeSeries | ChunkedSeries, max_bytes_in_frame: int, samples_per_chunk: int
) -> list[bytes]:
    return list(
        stream_chunked_response(
            [(index, [series])],
            max_bytes_in_frame=max_bytes_in_frame,
            samples_per_chunk=samples_per_chunk,
        )
    )


async def _aquery_series(
    storage: Any, ctx: Any, query: Query
) -> AsyncIterator[TimeSeries | ChunkedSeries]:
    chunks = getattr(storage, "process_query_chunks", None)
    if chunks is None:
        for series in _sorted_result(await _call(storage.process_query, ctx, query)):
            yield series
        return
    items = chunks(ctx, query)
    if inspect.isawaitable(items):
        items = await items
    if isinstance(items, AsyncIterator):
        async for series in items:
            yield series
    else:
        for series in items:
            yield series


async def _astream_frames(
    storage: Any,
    ctx: Any,
    request: ReadRequest,
    max_bytes_in_frame: int,
    samples_per_chunk: int,
) -> AsyncIterator[bytes]:
    """:func:`_stream_frames` for an async storage: series pulled on the loop,
    each series framed on its own (frames never span series, so this is the
    same byte stream); series of many samples are framed in a worker thread."""
    dropped = _Dropped()
    started = False
    try:
        for index, query in enumerate(request.queries):
            async for item in _aquery_series(storage, ctx, query):
                for series in dropped.floats_only([item]):
                    size = (
                        len(series.samples)
                        if isinstance(series, TimeSeries)
                        else len(series.chunks)
                    )
                    if size > 4 * samples_per_chunk:
                        frames = await asyncio.to_thread(
                            _frames_of, index, series, max_bytes_in_frame, samples_per_chunk
                        )
                    else:
                        frames = _frames_of(index, series, max_bytes_in_frame, samples_per_chunk)
                    for frame in frames:
                        started = True
                        yield frame
    except Exception as exc:
        if not started:
            raise
        yield _stream_error(exc)
    finally:
        dropped.warn()


def _is_async_storage(storage: Any) -> bool:
    chunks = getattr(storage, "process_query_chunks", None)
    if chunks is not None:
        return inspect.isasyncgenfunction(chunks) or inspect.iscoroutinefunction(chunks)
    return inspect.iscoroutinefunction(getattr(storage, "process_query", None))


def _streamed_headers() -> list[tuple[str, str]]:
    # No Content-Encoding: the frames are not snappy-compressed.
    return [("Content-Type", STREAMED_CONTENT_TYPE)]


def prime_response(response: Response) -> Response:
    """Compute the first piece of a streamed body before anything is sent.

    A streamed read's body is lazy: the storage is first called when the
    body is iterated. Call this before sending the status line so that a
    failure up to the first frame becomes an ordinary error response
    (4xx/5xx text) instead of a broken 200. Bodies that are ``bytes`` come
    back unchanged; an empty stream becomes an empty body (zero frames is a
    valid answer). The adapters in :mod:`promwire.asgi` and
    :mod:`promwire.wsgi` do this.
    """
    body = response.body
    if isinstance(body, bytes | bytearray | memoryview):
        return response
    if isinstance(body, AsyncIterator):
        raise TypeError("an async body needs aprime_response")
    it = iter(body)
    try:
        first = next(it, None)
    except Exception as exc:
        return error_response(exc)
    if first is None:
        return Response(response.status, response.headers, b"")
    return Response(response.status, response.headers, _resume(first, it))


def _resume(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest  # closing this generator closes ``rest`` too


async def aprime_response(response: Response) -> Response:
    """:func:`prime_response` for the async adapters: async bodies are pulled on
    the loop, sync ones in a worker thread (pulling may block on a storage)."""
    body = response.body
    if isinstance(body, bytes | bytearray | memoryview):
        return response
    if not isinstance(body, AsyncIterator):
        return await asyncio.to_thread(prime_response, response)
    try:
        first = await anext(body, None)
    except Exception as exc:
        return error_response(exc)
    if first is None:
        return Response(response.status, response.headers, b"")
    return Response(response.status, response.headers, _aresume(first, body))


async def _aresume(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for piece in rest:
            yield piece
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()


def handle_read(
    body: bytes,
    headers: Mapping[str, str],
    storage: Any,
    ctx: Any = None,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
    max_read_queries: int = DEFAULT_MAX_READ_QUERIES,
    max_read_samples: int = DEFAULT_MAX_READ_SAMPLES,
    max_bytes_in_frame: int = DEFAULT_MAX_BYTES_IN_FRAME,
    samples_per_chunk: int = 120,
) -> Response:
    """Handle a remote read request with a synchronous storage.

    Limits: ``max_body_size`` (413), ``max_decompressed_size`` (400),
    ``max_read_queries`` (queries per request, 400, checked before the
    storage is called) and ``max_read_samples``, the most samples a SAMPLES
    answer may carry (400). A streamed answer has no sample limit (its memory
    does not grow with it); ``max_bytes_in_frame`` bounds its frames.

    A request preferring ``STREAMED_XOR_CHUNKS`` gets a 200 whose body is a
    lazy iterator of frames: nothing is asked of the storage until it is
    iterated. Each query's series (from ``process_query_chunks`` when the
    storage has it, else ``process_query``, sorted by label set) become
    frames of one series each, at most ``max_bytes_in_frame`` bytes of chunks
    per frame plus one chunk (Prometheus' rule), float samples cut into XOR
    chunks of ``samples_per_chunk``. Native histograms of a ``TimeSeries``
    are left out with a log warning (no histogram chunk encoder). Pass the
    response through :func:`prime_response` before sending it so a failure
    before the first frame becomes an error status; a failure after it ends
    the body with a text message, as Prometheus does.
    """
    try:
        request, rtype = prepare_read(
            body,
            headers,
            max_body_size=max_body_size,
            max_decompressed_size=max_decompressed_size,
            max_read_queries=max_read_queries,
        )
        if rtype == ResponseType.STREAMED_XOR_CHUNKS:
            if max_bytes_in_frame <= 0:
                raise ValueError("max_bytes_in_frame must be > 0")
            frames = _stream_frames(
                storage, _context(ctx, headers), request, max_bytes_in_frame, samples_per_chunk
            )
            return Response(200, _streamed_headers(), frames)
        response = storage.read(_context(ctx, headers), request)
        return _samples_response(request, response, max_read_samples)
    except Exception as exc:
        return error_response(exc)


async def handle_read_async(
    body: bytes,
    headers: Mapping[str, str],
    storage: Any,
    ctx: Any = None,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
    max_read_queries: int = DEFAULT_MAX_READ_QUERIES,
    max_read_samples: int = DEFAULT_MAX_READ_SAMPLES,
    max_bytes_in_frame: int = DEFAULT_MAX_BYTES_IN_FRAME,
    samples_per_chunk: int = 120,
) -> Response:
    """:func:`handle_read` for an async or sync storage (sync runs in a thread).

    A streamed body is an async iterator for an async storage and a plain
    iterator for a sync one (the ASGI adapter pulls it in a worker thread);
    pass it through :func:`aprime_response` before sending.
    """
    try:
        request, rtype = await _off_loop(
            len(body),
            prepare_read,
            body,
            headers,
            max_body_size=max_body_size,
            max_decompressed_size=max_decompressed_size,
            max_read_queries=max_read_queries,
        )
        ctx = _context(ctx, headers)
        if rtype == ResponseType.STREAMED_XOR_CHUNKS:
            if max_bytes_in_frame <= 0:
                raise ValueError("max_bytes_in_frame must be > 0")
            args = (storage, ctx, request, max_bytes_in_frame, samples_per_chunk)
            frames: Iterator[bytes] | AsyncIterator[bytes] = (
                _astream_frames(*args) if _is_async_storage(storage) else _stream_frames(*args)
            )
            return Response(200, _streamed_headers(), frames)
        response = await _call(storage.read, ctx, request)
        return _samples_response(request, response, max_read_samples)
    except Exception as exc:
        return error_response(exc)
