"""Remote read client: ask a ``/api/v1/read`` endpoint for series.

::

    from promwire.client.reader import RemoteReadClient
    client = RemoteReadClient("http://127.0.0.1:9090/api/v1/read")
    for series in client.query('up{job="node",instance=~"a.*"}', start_ms, end_ms):
        print(series.labels, len(series.samples))

The client asks for ``[STREAMED_XOR_CHUNKS, SAMPLES]`` (Prometheus' own order)
and handles whichever the server picks, dispatching on the answer's
Content-Type. The streamed form needs :mod:`promwire.chunks.streamed` (imported when
a streamed answer arrives); ask for SAMPLES only with
``response_types=[ResponseType.SAMPLES]``.

Order of checks on an answer (each guards the next):

1. the status: anything but 200 raises :class:`RemoteReadError` with the first
   1024 bytes of the body as text - a 500 carries plain text, never snappy;
2. the Content-Type: streamed frames, snappy protobuf, or an error;
3. the size: at most ``max_response_size`` bytes are read from the socket,
   and a snappy body's *declared* decompressed size must not exceed
   ``max_decompressed_size`` before anything is inflated; a streamed frame may
   not declare more than ``max_frame_size`` bytes;
4. the content: a SAMPLES answer must hold one result per query.

Selectors use PromQL's syntax (:func:`parse_selector`)::

    parse_selector('http_requests_total{code=~"5..",method!="GET"}')
"""

from __future__ import annotations

import http.client
import importlib
import ssl
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from ..codec import snappy
from ..codec.columnar import decode_read_columns
from ..codec.columns import SeriesColumns
from ..codec.decoder import decode
from ..codec.encoder import encode
from ..codec.messages import (
    LabelMatcher,
    MatchType,
    Query,
    ReadHints,
    ReadRequest,
    ReadResponse,
    ResponseType,
    TimeSeries,
)
from ..errors import DecodeError, LimitExceeded, UnsupportedMediaType
from .writer import ERROR_BODY_LIMIT, ClientError, _auth_header, _check_headers, _Endpoint
from .writer import user_agent as _user_agent

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_RESPONSE_SIZE",
    "STREAMED_CONTENT_TYPE",
    "RemoteReadClient",
    "RemoteReadError",
    "SelectorError",
    "format_selector",
    "parse_selector",
]

#: Bytes read from the socket for one answer, at most (compressed or streamed).
DEFAULT_MAX_RESPONSE_SIZE = 256 * 1024 * 1024
#: Largest decompressed SAMPLES answer accepted (from the snappy preamble).
DEFAULT_MAX_DECOMPRESSED_SIZE = 512 * 1024 * 1024
#: Prometheus' ``chunked_read_limit`` default.
DEFAULT_MAX_FRAME_SIZE = 50_000_000

#: Prometheus matches this as a prefix of the answer's Content-Type.
STREAMED_CONTENT_TYPE = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
_READ_CHUNK = 65536

if TYPE_CHECKING:
    import pandas
    import pyarrow


class RemoteReadError(ClientError):
    """A remote read failed: non-200 answer, wrong content type, or no answer.

    ``status`` is the HTTP status (0 if none arrived), ``body`` the first 1024
    bytes of the answer.
    """


class SelectorError(DecodeError):
    """A selector string is not valid PromQL selector syntax."""


# --------------------------------------------------------------------- selector

_OPS = {"=": MatchType.EQ, "!=": MatchType.NEQ, "=~": MatchType.RE, "!~": MatchType.NRE}
_OP_TEXT = {v: k for k, v in _OPS.items()}
_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", "'": "'", '"': '"', "`": "`",
}  # fmt: skip


def _is_name_start(c: str) -> bool:
    return c == "_" or c == ":" or ("a" <= c <= "z") or ("A" <= c <= "Z")


def _is_name_char(c: str) -> bool:
    return _is_name_start(c) or ("0" <= c <= "9")


class _SelectorParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str, pos: int | None = None) -> SelectorError:
        at = self.pos if pos is None else pos
        return SelectorError(f"selector {self.text!r}: {what} at position {at}")

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def name(self, *, metric: bool) -> str:
        start = self.pos
        if not _is_name_start(self.peek()):
            raise self.fail("expected a name")
        while self.pos < len(self.text) and _is_name_char(self.text[self.pos]):
            self.pos += 1
        name = self.text[start : self.pos]
        if not metric and ":" in name:
            raise self.fail(f"label name {name!r} may not contain ':'", start)
        return name

    def string(self) -> str:
        quote = self.peek()
        if quote not in ("'", '"', "`"):
            raise self.fail("expected a quoted string")
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise self.fail("unterminated string", start)
            c = self.text[self.pos]
            self.pos += 1
            if c == quote:
                return "".join(out)
            if c == "\\" and quote != "`":  # raw strings (backticks) have no escapes
                out.append(self.escape())
            elif c == "\n" and quote != "`":
                raise self.fail("line break inside a string", self.pos - 1)
            else:
                out.append(c)

    def escape(self) -> str:
        if self.pos >= len(self.text):
            raise self.fail("unterminated escape")
        c = self.text[self.pos]
        self.pos += 1
        if c in _ESCAPES:
            return _ESCAPES[c]
        digits = {"x": 2, "u": 4, "U": 8}.get(c)
        if digits is not None:
            hexpart = self.text[self.pos : self.pos + digits]
            if len(hexpart) != digits or any(h not in "0123456789abcdefABCDEF" for h in hexpart):
                raise self.fail(f"\\{c} needs {digits} hex digits", self.pos - 2)
            self.pos += digits
            return chr(int(hexpart, 16))
        if "0" <= c <= "7":
            octal = self.text[self.pos - 1 : self.pos + 2]
            if len(octal) != 3 or any(o not in "01234567" for o in octal):
                raise self.fail("octal escape needs 3 digits", self.pos - 2)
            self.pos += 2
            return chr(int(octal, 8))
        raise self.fail(f"unknown escape \\{c}", self.pos - 2)

    def op(self) -> MatchType:
        two = self.text[self.pos : self.pos + 2]
        if two in ("!=", "=~", "!~"):
            self.pos += 2
            return _OPS[two]
        if two[:1] == "=":
            self.pos += 1
            return MatchType.EQ
        raise self.fail("expected one of = != =~ !~")

    def parse(self) -> list[LabelMatcher]:
        matchers: list[LabelMatcher] = []
        self.skip_ws()
        if self.peek() != "{":
            metric = self.name(metric=True)
            matchers.append(LabelMatcher(MatchType.EQ, "__name__", metric))
            self.skip_ws()
        if self.peek() == "{":
            self.pos += 1
            self.skip_ws()
            while self.peek() != "}":
                if not self.peek():
                    raise self.fail("missing '}'")
                if self.peek() in ("'", '"', "`"):
                    # Prometheus 3 UTF-8 syntax: a quoted name, alone = metric name,
                    # or followed by an operator = label name.
                    name_pos = self.pos
                    name = self.string()
                    self.skip_ws()
                    if self.peek() in (",", "}"):
                        matchers.append(LabelMatcher(MatchType.EQ, "__name__", name))
                    else:
                        if not name:
                            raise self.fail("empty label name", name_pos)
                        matchers.append(self.matcher_rest(name))
                else:
                    matchers.append(self.matcher_rest(self.name(metric=False)))
                self.skip_ws()
                if self.peek() == ",":
                    self.pos += 1
                    self.skip_ws()
                elif self.peek() != "}":
                    raise self.fail("expected ',' or '}'")
            self.pos += 1
            self.skip_ws()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.text[self.pos]!r}")
        if not matchers:
            raise self.fail("a selector needs at least one matcher", 0)
        if all(_matches_empty(m) for m in matchers):
            raise self.fail(
                "a selector needs at least one matcher that does not match the empty string", 0
            )
        return matchers

    def matcher_rest(self, name: str) -> LabelMatcher:
        self.skip_ws()
        op = self.op()
        self.skip_ws()
        value = self.string()
        return LabelMatcher(op, name, value)


def _matches_empty(m: LabelMatcher) -> bool:
    """Whether ``m`` matches a series lacking the label (Prometheus refuses
    selectors made only of those: they would select everything)."""
    import re

    if m.type == MatchType.EQ:
        return m.value == ""
    if m.type == MatchType.NEQ:
        return m.value != ""
    try:
        full = re.fullmatch(m.value, "") is not None
    except re.error:
        return False  # not a Python regex (Go RE2 syntax): let the server judge
    return full if m.type == MatchType.RE else not full


def parse_selector(selector: str) -> list[LabelMatcher]:
    """Parse a PromQL series selector into label matchers.

    Accepts ``metric``, ``metric{...}``, ``{...}``; matchers ``name op "value"``
    with ``=``, ``!=``, ``=~``, ``!~``; values in double, single or back
    quotes with Go escapes; trailing commas; Prometheus 3's quoted names
    (``{"my.metric", "a.b"="c"}``). Range ``[5m]``, ``offset`` and functions
    are not part of a selector. Raises :class:`SelectorError` (a
    :class:`~promwire.errors.DecodeError`) naming the position of the problem.
    """
    return _SelectorParser(selector).parse()


def format_selector(matchers: Iterable[LabelMatcher]) -> str:
    """The PromQL text of ``matchers`` (inverse of :func:`parse_selector`)."""
    parts = []
    for m in matchers:
        value = m.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{m.name}{_OP_TEXT[MatchType(m.type)]}"{value}"')
    return "{" + ",".join(parts) + "}"


# ------------------------------------------------------------------------ client


@dataclass(slots=True)
class _Answer:
    status: int
    headers: dict[str, str]
    response: http.client.HTTPResponse
    conn: http.client.HTTPConnection


class RemoteReadClient:
    """Blocking remote read client (standard library only).

    Keyword arguments (all optional):

    ``timeout``
        seconds for connecting and for each socket read (60).
    ``headers``, ``basic_auth``, ``bearer_token``
        as for :class:`~promwire.client.writer.RemoteWriteClient`; reserved header
        names raise ``ValueError``.
    ``response_types``
        accepted response types in order of preference
        (``[STREAMED_XOR_CHUNKS, SAMPLES]``).
    ``max_response_size``
        bytes read from the socket per answer (256 MiB); more raises
        :class:`~promwire.errors.LimitExceeded`.
    ``max_decompressed_size``
        largest declared decompressed SAMPLES answer (512 MiB).
    ``max_frame_size``
        largest declared streamed frame (50 000 000, Prometheus' default).
    ``on_unsupported``
        a streamed answer with chunks promwire cannot decode (XOR2, the
        ``*_ST`` encodings, unknown numbers): ``"raise"`` (default,
        :class:`~promwire.errors.UnsupportedChunkEncoding`) or ``"skip"``
        them. Native histogram chunks (HISTOGRAM, FLOAT_HISTOGRAM) are
        decoded into ``histograms``, as a SAMPLES answer carries them.

    One connection per request: a streamed answer is consumed lazily, so the
    client cannot share a connection between concurrently iterated queries.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
        bearer_token: str | None = None,
        response_types: Sequence[ResponseType] = (
            ResponseType.STREAMED_XOR_CHUNKS,
            ResponseType.SAMPLES,
        ),
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        on_unsupported: Literal["raise", "skip"] = "raise",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        if not response_types:
            raise ValueError("response_types must not be empty")
        self.endpoint = _Endpoint.parse(url)
        self.url = url
        self.timeout = timeout
        self.response_types = list(response_types)
        self.max_response_size = max_response_size
        self.max_decompressed_size = max_decompressed_size
        self.max_frame_size = max_frame_size
        self.on_unsupported = on_unsupported
        self.ssl_context = ssl_context
        self._extra = _check_headers(headers)
        self._auth = _auth_header(basic_auth, bearer_token)
        #: The Content-Type of the last answer (useful to see which form the server chose).
        self.last_content_type: str | None = None

    def __enter__(self) -> RemoteReadClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def request_for(
        self,
        selector: str | Sequence[LabelMatcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: ReadHints | None = None,
    ) -> ReadRequest:
        """The :class:`~promwire.codec.messages.ReadRequest` :meth:`query` sends."""
        matchers = parse_selector(selector) if isinstance(selector, str) else list(selector)
        if not matchers:
            raise ValueError("a query needs at least one matcher")
        if end_ms < start_ms:
            raise ValueError(f"end_ms ({end_ms}) is before start_ms ({start_ms})")
        query = Query(start_timestamp_ms=start_ms, end_timestamp_ms=end_ms, matchers=matchers)
        query.hints = hints
        return ReadRequest(queries=[query], accepted_response_types=list(self.response_types))

    def query(
        self,
        selector: str | Sequence[LabelMatcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: ReadHints | None = None,
    ) -> Iterator[TimeSeries]:
        """Series matching ``selector`` in ``[start_ms, end_ms]`` (inclusive).

        ``selector`` is PromQL text or a list of
        :class:`~promwire.codec.messages.LabelMatcher`. Each yielded series carries
        ``samples`` and ``histograms`` (decoded from histogram chunks in a
        streamed answer). The request is sent when iteration starts.
        """
        request = self.request_for(selector, start_ms, end_ms, hints=hints)
        for _, series in self.read(request):
            yield series

    def read(self, request: ReadRequest) -> Iterator[tuple[int, TimeSeries]]:
        """Send any ReadRequest; yields ``(query_index, series)`` in answer order."""
        body = snappy.compress(encode(request))
        answer = self._post(body)
        ranges = [(q.start_timestamp_ms, q.end_timestamp_ms) for q in request.queries]
        try:
            yield from self._series(answer, ranges)
        finally:
            answer.conn.close()

    # -- HTTP

    def _post(self, body: bytes) -> _Answer:
        ep = self.endpoint
        conn: http.client.HTTPConnection
        if ep.scheme == "https":
            conn = http.client.HTTPSConnection(
                ep.host, ep.port, timeout=self.timeout, context=self.ssl_context
            )
        else:
            conn = http.client.HTTPConnection(ep.host, ep.port, timeout=self.timeout)
        headers = dict(self._extra)
        headers.update(
            {
                "Content-Encoding": "snappy",
                "Accept-Encoding": "snappy",
                "Content-Type": "application/x-protobuf",
                "User-Agent": _user_agent(),
                "X-Prometheus-Remote-Read-Version": "0.1.0",
            }
        )
        if self._auth is not None:
            headers["Authorization"] = self._auth
        try:
            conn.request("POST", ep.target, body=body, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise RemoteReadError(
                f"{self.url}: no answer ({type(exc).__name__}: {exc})", retryable=True
            ) from exc
        return _Answer(resp.status, {k: v for k, v in resp.getheaders()}, resp, conn)

    def _header(self, answer: _Answer, name: str) -> str:
        lname = name.lower()
        return next((v for k, v in answer.headers.items() if k.lower() == lname), "")

    def _series(
        self, answer: _Answer, ranges: list[tuple[int, int]]
    ) -> Iterator[tuple[int, TimeSeries]]:
        resp = answer.response
        if answer.status != 200:
            # Status first: an error answer is plain text, not snappy.
            text = resp.read(ERROR_BODY_LIMIT)
            raise RemoteReadError(
                f"{self.url}: remote read answered {answer.status}: "
                f"{text.decode('utf-8', 'replace').strip() or '(empty body)'}",
                status=answer.status,
                body=text,
                retryable=answer.status >= 500,
                headers=answer.headers,
            )
        content_type = self._header(answer, "Content-Type")
        self.last_content_type = content_type
        media = content_type.split(";", 1)[0].strip().lower()
        if media == "application/x-streamed-protobuf":
            yield from self._streamed(answer, content_type, ranges)
        elif media in ("application/x-protobuf", ""):
            yield from self._samples(answer, len(ranges))
        else:
            raise UnsupportedMediaType(
                f"{self.url}: remote read answered Content-Type {content_type!r}; expected "
                "application/x-protobuf or application/x-streamed-protobuf"
            )

    def _chunks(self, resp: http.client.HTTPResponse) -> Iterator[bytes]:
        """The answer body in pieces, stopping at ``max_response_size``."""
        total = 0
        while True:
            try:
                piece = resp.read1(_READ_CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise RemoteReadError(
                    f"{self.url}: connection failed while reading the answer: {exc}",
                    status=200,
                    retryable=True,
                ) from exc
            if not piece:
                return
            total += len(piece)
            if total > self.max_response_size:
                raise LimitExceeded(
                    f"{self.url}: answer exceeds max_response_size={self.max_response_size} bytes"
                )
            yield piece

    def _samples(self, answer: _Answer, n_queries: int) -> Iterator[tuple[int, TimeSeries]]:
        encoding = self._header(answer, "Content-Encoding").strip().lower()
        if encoding not in ("", "snappy"):
            raise UnsupportedMediaType(
                f"{self.url}: remote read answered Content-Encoding {encoding!r}; expected snappy"
            )
        body = b"".join(self._chunks(answer.response))
        raw = snappy.decompress(body, max_decompressed_size=self.max_decompressed_size)
        response = decode(ReadResponse, raw)
        if len(response.results) != n_queries:
            raise DecodeError(
                f"{self.url}: remote read answered {len(response.results)} results "
                f"for {n_queries} queries"
            )
        for index, result in enumerate(response.results):
            for series in result.timeseries:
                yield index, series

    def _streamed(
        self, answer: _Answer, content_type: str, ranges: list[tuple[int, int]]
    ) -> Iterator[tuple[int, TimeSeries]]:
        try:
            # Imported by name: promwire.chunks.streamed is optional for this module.
            streamed = importlib.import_module("promwire.chunks.streamed")
        except ImportError as exc:
            raise UnsupportedMediaType(
                f"{self.url}: server chose a streamed answer ({content_type}) but "
                f"promwire.chunks.streamed is not available ({exc}); ask for SAMPLES only"
            ) from exc
        chunks: Iterable[bytes] = self._chunks(answer.response)
        reader = streamed.read_streamed_response
        frames = reader(
            chunks, max_frame_size=self.max_frame_size, on_unsupported=self.on_unsupported
        )
        for index, series in frames:
            if not 0 <= index < len(ranges):
                raise DecodeError(
                    f"{self.url}: streamed frame for query {index}, but only "
                    f"{len(ranges)} were asked"
                )
            # Whole chunks travel, so they may reach outside the query's
            # range: keep only [start, end] (inclusive, like Prometheus).
            start, end = ranges[index]
            series.samples = [s for s in series.samples if start <= s.timestamp <= end]
            if series.histograms:
                series.histograms = [h for h in series.histograms if start <= h.timestamp <= end]
            yield int(index), series

    # -- columns, pandas, Arrow

    def read_columns(self, request: ReadRequest) -> Iterator[tuple[int, SeriesColumns]]:
        """:meth:`read` yielding ``(query_index, SeriesColumns)``: samples in arrays.

        A streamed answer is decoded straight into ``array('q')`` timestamps
        and ``array('d')`` values (no object per sample) and cut to each
        query's range; a SAMPLES answer is decoded into columns too
        (:func:`promwire.codec.columnar.decode_read_columns`, histograms
        kept). The same checks and errors as :meth:`read`.
        """
        body = snappy.compress(encode(request))
        answer = self._post(body)
        ranges = [(q.start_timestamp_ms, q.end_timestamp_ms) for q in request.queries]
        try:
            content_type = self._header(answer, "Content-Type")
            media = content_type.split(";", 1)[0].strip().lower()
            if answer.status == 200 and media == "application/x-streamed-protobuf":
                self.last_content_type = content_type
                yield from self._streamed_columns(answer, ranges)
            elif answer.status == 200 and media in ("application/x-protobuf", ""):
                self.last_content_type = content_type
                yield from self._samples_columns(answer, len(ranges))
            else:  # an error status or an unknown Content-Type: read()'s checks raise
                for _ in self._series(answer, ranges):
                    pass
        finally:
            answer.conn.close()

    def _samples_columns(
        self, answer: _Answer, n_queries: int
    ) -> Iterator[tuple[int, SeriesColumns]]:
        encoding = self._header(answer, "Content-Encoding").strip().lower()
        if encoding not in ("", "snappy"):
            raise UnsupportedMediaType(
                f"{self.url}: remote read answered Content-Encoding {encoding!r}; expected snappy"
            )
        body = b"".join(self._chunks(answer.response))
        raw = snappy.decompress(body, max_decompressed_size=self.max_decompressed_size)
        results = decode_read_columns(raw)
        if len(results) != n_queries:
            raise DecodeError(
                f"{self.url}: remote read answered {len(results)} results for {n_queries} queries"
            )
        for index, result in enumerate(results):
            for series in result:
                yield index, series

    def _streamed_columns(
        self, answer: _Answer, ranges: list[tuple[int, int]]
    ) -> Iterator[tuple[int, SeriesColumns]]:
        streamed = importlib.import_module("promwire.chunks.streamed")
        for index, series in streamed.iter_chunked_series(
            self._chunks(answer.response), max_frame_size=self.max_frame_size
        ):
            if not 0 <= index < len(ranges):
                raise DecodeError(
                    f"{self.url}: streamed frame for query {index}, but only "
                    f"{len(ranges)} were asked"
                )
            start, end = ranges[index]
            columns: SeriesColumns = streamed.decode_series_columns(
                series, start_ms=start, end_ms=end, on_unsupported=self.on_unsupported
            )
            yield int(index), columns

    def read_dataframe(self, request: ReadRequest, **options: Any) -> pandas.DataFrame:
        """The answer to ``request`` as a long-form ``pandas.DataFrame`` (the ``pandas`` extra).

        One row per sample: a column per label name, ``timestamp`` and
        ``value``; see :func:`promwire.client.frames.to_dataframe` for the
        layout and ``options``.
        """
        from . import frames

        return frames.to_dataframe(self.read_columns(request), **options)

    def read_arrow(self, request: ReadRequest, **options: Any) -> pyarrow.Table:
        """The answer to ``request`` as a long-form ``pyarrow.Table`` (the ``arrow`` extra).

        See :func:`promwire.client.frames.to_arrow`.
        """
        from . import frames

        return frames.to_arrow(self.read_columns(request), **options)
