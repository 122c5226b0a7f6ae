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
  series/samples/labels or too long a label, an invalid label set or native
  histogram (:mod:`promwire.codec.validation`); storage errors map through
  their ``.status`` (400/429/500), any other storage exception is a 500.
* remote write 2.0 answers (every answer once the Content-Type named v2)
  carry ``X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written``.
  Series with bad refs, invalid labels (no ``__name__`` included), without
  samples and histograms or with both, and samples/histograms going back in
  time, invalid histograms or exemplars without a timestamp are rejected one
  by one; the rest is stored and the answer is 400 listing the
  problems, with the counts of what was written (a partial write). A 5xx or
  429 means nothing was kept (all three counts 0), so a retry is safe.
  Remote write 1.0 answers never carry those headers.
* read: the first of the request's ``accepted_response_types`` promwire
  supports wins (none listed means SAMPLES). SAMPLES: 200 with
  ``Content-Type: application/x-protobuf`` and ``Content-Encoding: snappy``
  carrying a snappy ``ReadResponse``; 400 when the request holds more than
  ``max_read_queries`` queries, the answer exceeds ``max_read_samples`` or
  the storage checks more than ``max_read_series`` series against the
  matchers (both counted while the storage works); 503 when the storage
  works longer than ``max_read_seconds``.
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

Layout: :mod:`.common` (limit defaults, :class:`Response`, text and error
answers, header checks), :mod:`.write` (the write path),
:mod:`.write_limits` (series/sample/label limits of a write),
:mod:`.v2checks` (remote write 2.0 receiver rules), :mod:`.read` (the read
path and SAMPLES answers), :mod:`.stream` (streamed read bodies and
:func:`prime_response`), :mod:`.offload` (worker threads for the async
handlers). Everything public is re-exported here.
"""

from __future__ import annotations

from ...chunks.streamed import DEFAULT_MAX_BYTES_IN_FRAME, STREAMED_CONTENT_TYPE
from .common import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    DEFAULT_MAX_LABEL_BYTES,
    DEFAULT_MAX_LABELS_PER_SERIES,
    DEFAULT_MAX_READ_QUERIES,
    DEFAULT_MAX_READ_SAMPLES,
    DEFAULT_MAX_READ_SECONDS,
    DEFAULT_MAX_READ_SERIES,
    DEFAULT_MAX_SAMPLES,
    DEFAULT_MAX_SERIES,
    MAX_LISTED_PROBLEMS,
    PROTOBUF,
    SUPPORTED_RESPONSE_TYPES,
    SUPPORTED_WRITE_PROTOS,
    Response,
    error_response,
    text_response,
)
from .read import handle_read, handle_read_async, negotiate_response_type, prepare_read
from .stream import aprime_response, prime_response
from .v2checks import check_v2_request
from .write import handle_write, handle_write_async, prepare_write, refused_write_headers

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_BYTES_IN_FRAME",
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    "DEFAULT_MAX_LABELS_PER_SERIES",
    "DEFAULT_MAX_LABEL_BYTES",
    "DEFAULT_MAX_READ_QUERIES",
    "DEFAULT_MAX_READ_SAMPLES",
    "DEFAULT_MAX_READ_SECONDS",
    "DEFAULT_MAX_READ_SERIES",
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
