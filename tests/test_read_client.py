"""RemoteReadClient against a scripted loopback server, and the selector parser."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire import (
    ChunkedReadResponse,
    ChunkedSeries,
    Label,
    LabelMatcher,
    LimitExceeded,
    MatchType,
    QueryResult,
    ReadRequest,
    ReadResponse,
    ResponseType,
    Sample,
    TimeSeries,
    UnsupportedMediaType,
    __version__,
    decode,
    encode,
    snappy,
)
from promwire.chunks.frames import encode_frame
from promwire.chunks.xor import encode_xor
from promwire.client.reader import (
    RemoteReadClient,
    RemoteReadError,
    SelectorError,
    format_selector,
    parse_selector,
)
from promwire.codec.messages import Chunk, ChunkEncoding
from promwire.errors import DecodeError
from tests.support.prometheus import free_port

Answer = tuple[int, dict[str, str], bytes]


class Server:
    def __init__(self) -> None:
        self.answer: Answer = (200, {}, b"")
        self.requests: list[tuple[dict[str, str], bytes]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.requests.append((dict(self.headers.items()), body))
                status, headers, payload = server.answer
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v1/read"

    def request(self, i: int = -1) -> ReadRequest:
        return decode(ReadRequest, snappy.decompress(self.requests[i][1]))


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    t = threading.Thread(target=s.httpd.serve_forever, args=(0.02,), daemon=True)
    t.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()


SAMPLES_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
STREAMED_HEADERS = {
    "Content-Type": "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
}


def _series(name: str, points: list[tuple[int, float]]) -> TimeSeries:
    return TimeSeries(labels=[Label("__name__", name)], samples=[Sample(v, t) for t, v in points])


def test_request_and_samples_answer(server: Server) -> None:
    ts = _series("up", [(1000, 1.0), (2000, 0.0)])
    body = snappy.compress(encode(ReadResponse(results=[QueryResult(timeseries=[ts])])))
    server.answer = (200, SAMPLES_HEADERS, body)
    client = RemoteReadClient(server.url, headers={"X-Scope-OrgID": "t1"})
    got = list(client.query('up{job="a",instance=~"x.*"}', 500, 2500))
    assert got == [ts]
    req = server.request()
    assert req.accepted_response_types == [ResponseType.STREAMED_XOR_CHUNKS, ResponseType.SAMPLES]
    [q] = req.queries
    assert (q.start_timestamp_ms, q.end_timestamp_ms) == (500, 2500)
    assert q.matchers == [
        LabelMatcher(MatchType.EQ, "__name__", "up"),
        LabelMatcher(MatchType.EQ, "job", "a"),
        LabelMatcher(MatchType.RE, "instance", "x.*"),
    ]
    h = server.requests[-1][0]
    assert h["Content-Encoding"] == "snappy" and h["Accept-Encoding"] == "snappy"
    assert h["Content-Type"] == "application/x-protobuf"
    assert h["X-Prometheus-Remote-Read-Version"] == "0.1.0"
    assert h["User-Agent"] == f"promwire/{__version__}"
    assert h["X-Scope-OrgID"] == "t1"


def test_error_status_checked_before_decompressing(server: Server) -> None:
    # A 500 with a plain-text body: must not be fed to snappy.
    server.answer = (500, {"Content-Type": "text/plain"}, b"query: context deadline exceeded\n")
    with pytest.raises(RemoteReadError) as info:
        list(RemoteReadClient(server.url).query("up", 0, 1))
    err = info.value
    assert err.status == 500 and err.retryable
    assert err.body == b"query: context deadline exceeded\n"
    assert "500" in str(err) and "context deadline exceeded" in str(err)
    # Even when the server claims snappy protobuf.
    server.answer = (400, SAMPLES_HEADERS, b"exceeded sample limit")
    with pytest.raises(RemoteReadError) as info:
        list(RemoteReadClient(server.url).query("up", 0, 1))
    assert info.value.status == 400 and not info.value.retryable


def test_unknown_content_type_and_encoding(server: Server) -> None:
    server.answer = (200, {"Content-Type": "text/html"}, b"<html>")
    with pytest.raises(UnsupportedMediaType, match="text/html"):
        list(RemoteReadClient(server.url).query("up", 0, 1))
    server.answer = (200, {**SAMPLES_HEADERS, "Content-Encoding": "gzip"}, b"\x1f\x8b")
    with pytest.raises(UnsupportedMediaType, match="gzip"):
        list(RemoteReadClient(server.url).query("up", 0, 1))


def test_size_limits(server: Server) -> None:
    big = ReadResponse(results=[QueryResult([_series("up", [(i, 1.0) for i in range(5000)])])])
    body = snappy.compress(encode(big))
    server.answer = (200, SAMPLES_HEADERS, body)
    with pytest.raises(LimitExceeded, match="max_response_size"):
        list(RemoteReadClient(server.url, max_response_size=len(body) - 1).query("up", 0, 1))
    assert len(list(RemoteReadClient(server.url, max_response_size=len(body)).query("up", 0, 1)))
    # The declared decompressed size is refused before inflating anything.
    server.answer = (200, SAMPLES_HEADERS, b"\xff\xff\xff\xff\x0f" + b"\x00" * 10)
    with pytest.raises(LimitExceeded, match="declares"):
        list(RemoteReadClient(server.url).query("up", 0, 1))


def test_result_count_must_match(server: Server) -> None:
    server.answer = (200, SAMPLES_HEADERS, snappy.compress(b""))  # 0 results for 1 query
    with pytest.raises(DecodeError, match="0 results for 1 queries"):
        list(RemoteReadClient(server.url).query("up", 0, 1))


def _frame(index: int, name: str, points: list[tuple[int, float]]) -> bytes:
    data = encode_xor([t for t, _ in points], [v for _, v in points])
    chunk = Chunk(points[0][0], points[-1][0], ChunkEncoding.XOR, data)
    msg = ChunkedReadResponse([ChunkedSeries([Label("__name__", name)], [chunk])], index)
    return encode_frame(encode(msg))


def test_streamed_answer(server: Server) -> None:
    a = [(1000 * i, float(i)) for i in range(10)]
    b = [(1000 * i, -float(i)) for i in range(5)]
    server.answer = (200, STREAMED_HEADERS, _frame(0, "a", a) + _frame(1, "b", b))
    client = RemoteReadClient(server.url)
    q = client.request_for("a", 2000, 7000)
    req = ReadRequest(queries=[q.queries[0], client.request_for("b", 0, 3000).queries[0]])
    req.accepted_response_types = [ResponseType.STREAMED_XOR_CHUNKS]
    got = list(client.read(req))
    # Chunks reach outside the asked range; the client keeps [start, end] only.
    assert got == [
        (0, _series("a", [p for p in a if 2000 <= p[0] <= 7000])),
        (1, _series("b", [p for p in b if p[0] <= 3000])),
    ]
    assert client.last_content_type == STREAMED_HEADERS["Content-Type"]


def test_streamed_frame_limit_and_truncation(server: Server) -> None:
    frame = _frame(0, "a", [(i, 1.0) for i in range(100)])
    server.answer = (200, STREAMED_HEADERS, frame)
    with pytest.raises(LimitExceeded):
        list(RemoteReadClient(server.url, max_frame_size=20).query("a", 0, 10**6))
    server.answer = (200, STREAMED_HEADERS, frame[:-3])
    with pytest.raises(DecodeError):
        list(RemoteReadClient(server.url).query("a", 0, 10**6))


def test_no_answer() -> None:
    client = RemoteReadClient(f"http://127.0.0.1:{free_port()}/api/v1/read", timeout=2)
    with pytest.raises(RemoteReadError, match="no answer") as info:
        list(client.query("up", 0, 1))
    assert info.value.status == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("up", [("__name__", MatchType.EQ, "up")]),
        ("  job:rate5m  ", [("__name__", MatchType.EQ, "job:rate5m")]),
        (
            'up{a="1", b!="2",c=~"3.*" , d!~`\\d+`,}',
            [
                ("__name__", MatchType.EQ, "up"),
                ("a", MatchType.EQ, "1"),
                ("b", MatchType.NEQ, "2"),
                ("c", MatchType.RE, "3.*"),
                ("d", MatchType.NRE, "\\d+"),
            ],
        ),
        ("{__name__=~'x|y'}", [("__name__", MatchType.RE, "x|y")]),
        ('{job="a\\"b\\n\\u00e9\\x41"}', [("job", MatchType.EQ, 'a"b\néA')]),
        (
            '{"my.metric", "a.b"="c"}',
            [("__name__", MatchType.EQ, "my.metric"), ("a.b", MatchType.EQ, "c")],
        ),
    ],
)
def test_parse_selector(text: str, expected: list[tuple[str, MatchType, str]]) -> None:
    assert parse_selector(text) == [LabelMatcher(t, n, v) for n, t, v in expected]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a name at position 0"),
        ("up{", "missing '}' at position 3"),
        ("up{job}", "expected one of = != =~ !~ at position 6"),
        ("up{job=x}", "expected a quoted string at position 7"),
        ('up{job="x}', "unterminated string at position 7"),
        ('up{job="x" instance="y"}', "expected ',' or '}' at position 11"),
        ('up{job="x"}[5m]', "unexpected '[' at position 11"),
        ('{job=""}', "does not match the empty string"),
        ('{job=~".*"}', "does not match the empty string"),
        ('up{a:b="x"}', "may not contain ':'"),
        ('up{job="\\q"}', "unknown escape \\q"),
        ("rate(up[5m])", "unexpected '('"),
    ],
)
def test_parse_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector(text)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError) and info.value.status == 400


names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(
            LabelMatcher,
            st.sampled_from(list(MatchType)),
            names,
            st.text(min_size=1, max_size=10),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_format_parse_roundtrip(matchers: list[LabelMatcher]) -> None:
    matchers.append(LabelMatcher(MatchType.EQ, "__name__", "m"))  # never all-empty-matching
    assert parse_selector(format_selector(matchers)) == matchers
