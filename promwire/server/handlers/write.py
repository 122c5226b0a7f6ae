"""The remote write path: Content-Type negotiation, decoding, partial writes.

:func:`prepare_write` checks headers and decodes a body (with the limits of
:mod:`promwire.server.handlers.write_limits`); :func:`handle_write` and
:func:`handle_write_async` also call the storage and build the answer,
including the ``X-Prometheus-Remote-Write-*-Written`` headers and the 400
listing the problems of a partial remote write 2.0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from ... import v2
from ...codec import snappy
from ...codec.decoder import decode, decode_write_request
from ...codec.messages import WriteRequest
from ...codec.validation import check_histograms
from ...errors import StorageError, UnsupportedMediaType
from ...stores.protocol import WriteOutcome
from .columnar import (
    ColumnarWrite,
    decode_v1_columns,
    store_columns,
    store_columns_async,
    v2_columns,
)
from .common import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    DEFAULT_MAX_LABEL_BYTES,
    DEFAULT_MAX_LABELS_PER_SERIES,
    DEFAULT_MAX_SAMPLES,
    DEFAULT_MAX_SERIES,
    MAX_LISTED_PROBLEMS,
    SUPPORTED_WRITE_PROTOS,
    Response,
    _check_body_size,
    _check_encoding,
    _context,
    _lower,
    _no_content,
    error_response,
    text_response,
)
from .offload import _call, _off_loop
from .v2checks import check_v2_request
from .write_limits import (
    _check_v1_label_sets,
    _check_v1_labels,
    _check_v2_labels,
    _check_write_counts,
)

_NO_WRITES = v2.written_headers(0, 0, 0)


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
    columns: bool = False,
) -> WriteRequest | v2.Request | ColumnarWrite:
    _check_encoding(h.get("content-encoding"))
    _check_body_size(body, max_body_size)
    raw = snappy.decompress(body, max_decompressed_size=max_decompressed_size)
    if version == "v2":
        request_v2 = decode(v2.Request, raw)
        _check_write_counts(request_v2, max_series, max_samples)
        _check_v2_labels(request_v2, max_labels_per_series, max_label_bytes)
        return request_v2
    if columns:  # the storage takes columns: no per-sample objects
        return decode_v1_columns(
            raw,
            max_series=max_series,
            max_samples=max_samples,
            max_labels_per_series=max_labels_per_series,
            max_label_bytes=max_label_bytes,
        )
    # The decoder also reports the largest series record: labels need a look
    # only when it is over max_label_bytes.
    unchecked: list[int] = []
    request, biggest_series = decode_write_request(raw, unchecked=unchecked)
    _check_write_counts(request, max_series, max_samples)
    _check_v1_labels(request.timeseries, max_labels_per_series, max_label_bytes, biggest_series)
    _check_v1_label_sets(request.timeseries, unchecked)
    check_histograms(request.timeseries)  # native histograms as Prometheus validates them
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
    return cast("WriteRequest | v2.Request", request)  # columns=False: never a ColumnarWrite


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
    if _takes_columns(storage):
        return storage.write_columns, v2_columns(stored)
    return storage.write, v2.to_v1(stored, sort_labels=True)


def _check_outcome(result: Any) -> WriteOutcome | None:
    if result is None or isinstance(result, WriteOutcome):
        return result
    raise StorageError(f"write_v2 returned {type(result).__name__}, expected WriteOutcome or None")


def _takes_columns(storage: Any) -> bool:
    """Whether the storage has the optional ``write_columns`` member."""
    return getattr(storage, "write_columns", None) is not None


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
    :class:`~promwire.stores.protocol.RequestContext` holding the (lower-cased) headers.
    Limits, each answered before the storage is called (so nothing is
    stored): ``max_body_size`` (compressed bytes, 413),
    ``max_decompressed_size`` (declared decoded bytes, 400, checked before
    inflating), ``max_series`` and ``max_samples`` (samples + histograms +
    exemplars) per request, ``max_labels_per_series`` and ``max_label_bytes``
    (UTF-8 bytes of one label name or value) per series (400). A v2 request
    goes to the storage's ``write_v2`` when it has one, else converted to
    ``write``; see the :mod:`promwire.server.handlers` docstring for answers.
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
            columns=_takes_columns(storage),
        )
        if isinstance(request, ColumnarWrite):
            store_columns(storage, _context(ctx, headers), request)
            return _no_content()
        if isinstance(request, WriteRequest):
            storage.write(_context(ctx, headers), request)
            return _no_content()
        stored, problems = check_v2_request(request)
        outcome = None
        if stored.timeseries:
            method, arg = _v2_storage_call(storage, stored)
            if isinstance(arg, ColumnarWrite):
                store_columns(storage, _context(ctx, headers), arg)
            else:
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
            columns=_takes_columns(storage),
        )
        if isinstance(request, ColumnarWrite):
            await store_columns_async(storage, _context(ctx, headers), request)
            return _no_content()
        if isinstance(request, WriteRequest):
            await _call(storage.write, _context(ctx, headers), request)
            return _no_content()
        stored, problems = await _off_loop(len(body), check_v2_request, request)
        outcome = None
        if stored.timeseries:
            method, arg = await _off_loop(len(body), _v2_storage_call, storage, stored)
            if isinstance(arg, ColumnarWrite):
                await store_columns_async(storage, _context(ctx, headers), arg)
            else:
                outcome = _check_outcome(await _call(method, _context(ctx, headers), arg))
        return _v2_answer(request, problems, outcome, stored)
    except Exception as exc:
        return error_response(exc, extra)
