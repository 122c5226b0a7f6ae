"""promwire.server.handlers: HTTP semantics of remote write/read without any server."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire import (
    Label,
    LabelMatcher,
    MatchType,
    PromwireError,
    Query,
    QueryResult,
    ReadRequest,
    ReadResponse,
    Sample,
    StorageError,
    StorageOverloaded,
    StorageRejected,
    TimeSeries,
    WriteRequest,
    decode,
    encode,
    snappy,
)
from promwire.server.handlers import (
    Response,
    handle_read,
    handle_read_async,
    handle_write,
    handle_write_async,
    prepare_write,
)
from promwire.stores.protocol import AsyncBaseStorage, BaseStorage, RequestContext
from promwire.testing import mutated_encodings

RW_HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}


def series(name: str, *points: tuple[int, float], **labels: str) -> TimeSeries:
    lbls = [Label("__name__", name), *(Label(k, v) for k, v in sorted(labels.items()))]
    return TimeSeries(labels=lbls, samples=[Sample(v, t) for t, v in points])


def write_body(*ts: TimeSeries) -> bytes:
    return snappy.compress(encode(WriteRequest(timeseries=list(ts))))


def read_body(*queries: Query, accepted: list[int] | None = None) -> bytes:
    return snappy.compress(
        encode(ReadRequest(queries=list(queries), accepted_response_types=accepted or []))
    )


class Recorder(BaseStorage):
    """Keeps every request; answers queries with one series named after the query."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.writes: list[WriteRequest] = []
        self.contexts: list[Any] = []
        self.threads: list[int] = []
        self.fail = fail

    def write(self, ctx: Any, request: WriteRequest) -> None:
        self.threads.append(threading.get_ident())
        if self.fail is not None:
            raise self.fail
        self.contexts.append(ctx)
        self.writes.append(request)

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        self.threads.append(threading.get_ident())
        if self.fail is not None:
            raise self.fail
        return QueryResult([series("q", (query.start_timestamp_ms, float(query.end_timestamp_ms)))])


def text(resp: Response) -> str:
    assert isinstance(resp.body, bytes)
    assert ("Content-Type", "text/plain; charset=utf-8") in resp.headers
    return resp.body.decode()


# ---------------------------------------------------------------------------- write


def test_write_success_is_204_with_empty_body_and_data_reaches_storage() -> None:
    store = Recorder()
    ts = series("up", (1000, 1.0), (2000, 0.0), job="a")
    resp = handle_write(write_body(ts), RW_HEADERS, store)
    assert (resp.status, resp.body, resp.headers) == (204, b"", [])
    assert store.writes == [WriteRequest(timeseries=[ts])]
    ctx = store.contexts[0]
    assert isinstance(ctx, RequestContext)
    assert ctx.headers["content-type"] == "application/x-protobuf"  # lower-cased names


def test_custom_context_is_passed_through() -> None:
    store = Recorder()
    marker = object()
    assert handle_write(write_body(), RW_HEADERS, store, marker).status == 204
    assert store.contexts == [marker]


def test_real_prometheus_batches_are_accepted(fixtures_dir: Path) -> None:
    store = Recorder()
    for path in sorted((fixtures_dir / "rw_sender").glob("*.bin")):
        resp = handle_write(path.read_bytes(), RW_HEADERS, store)
        assert resp.status == 204, text(resp)
    kinds = [
        (len(r.timeseries), sum(len(t.exemplars) for t in r.timeseries), len(r.metadata))
        for r in store.writes
    ]
    assert any(ex > 0 for _, ex, _ in kinds)
    assert any(n == 0 and md > 0 for n, _, md in kinds)  # metadata-only requests


@pytest.mark.parametrize(
    "headers",
    [
        {},  # both missing: v1 snappy, as Prometheus
        {"content-type": "application/x-protobuf"},
        {"CONTENT-ENCODING": "snappy", "content-TYPE": "application/x-protobuf"},
        {"Content-Encoding": "SNAPPY"},
        {"Content-Type": "application/x-protobuf;proto=prometheus.WriteRequest"},
        {"Content-Type": "application/x-protobuf; proto=prometheus.WriteRequest"},
        {"Content-Type": " application/x-protobuf ; proto=prometheus.WriteRequest "},
        {"Content-Type": "application/x-protobuf;charset=x;proto=prometheus.WriteRequest"},
    ],
)
def test_accepted_header_variants(headers: dict[str, str]) -> None:
    store = Recorder()
    assert handle_write(write_body(series("up", (1, 1.0))), headers, store).status == 204
    assert len(store.writes) == 1


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        ({"Content-Encoding": "gzip"}, "Content-Encoding"),
        ({"Content-Encoding": "identity"}, "Content-Encoding"),
        ({"Content-Type": "application/json"}, "Content-Type"),
        ({"Content-Type": "application/x-protobuf-x"}, "Content-Type"),
        ({"Content-Type": "application/x-protobuf;proto"}, "parameter"),
        ({"Content-Type": "application/x-protobuf;a=b=c"}, "parameter"),
        # One parser (promwire.v2.parse_content_type): media type and proto value are
        # compared exactly, as Prometheus does; quotes are not stripped.
        ({"Content-Type": "Application/X-Protobuf"}, "Content-Type"),
        ({"Content-Type": 'application/x-protobuf;proto="prometheus.WriteRequest"'}, "message"),
        ({"Content-Type": "application/x-protobuf;proto=prometheus.ReadRequest"}, "Read"),
    ],
)
def test_unsupported_media_is_415(headers: dict[str, str], needle: str) -> None:
    store = Recorder()
    resp = handle_write(write_body(series("up", (1, 1.0))), headers, store)
    assert resp.status == 415
    assert needle in text(resp)
    assert store.writes == []


def test_first_proto_parameter_decides() -> None:
    body = write_body(series("up", (1, 1.0)))
    ct = "application/x-protobuf;proto=prometheus.WriteRequest;proto=other"
    assert isinstance(prepare_write(body, {"Content-Type": ct}), WriteRequest)


def test_v1_only_storage_refuses_v2_with_415() -> None:
    store = Recorder()
    store.accepted_protocols = ("v1",)
    body = write_body(series("up", (1, 1.0)))
    ct = {"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}
    resp = handle_write(body, ct, store)
    assert resp.status == 415
    assert "does not accept remote write v2" in text(resp)
    # It named v2, so it carries the three counts, all 0.
    assert ("X-Prometheus-Remote-Write-Samples-Written", "0") in resp.headers
    ok = handle_write(body, RW_HEADERS, store)
    assert ok.status == 204
    assert not any(k.startswith("X-Prometheus") for k, _ in ok.headers)


def test_oversized_body_is_413_before_decoding() -> None:
    store = Recorder()
    body = write_body(*(series("m", (i, float(i)), i=str(i)) for i in range(50)))
    resp = handle_write(body, RW_HEADERS, store, max_body_size=len(body) - 1)
    assert resp.status == 413
    assert str(len(body)) in text(resp)
    assert handle_write(body, RW_HEADERS, store, max_body_size=len(body)).status == 204


def test_declared_size_over_limit_is_400() -> None:
    store = Recorder()
    raw = encode(WriteRequest(timeseries=[series("m", (1, 1.0))]))
    resp = handle_write(snappy.compress(raw), RW_HEADERS, store, max_decompressed_size=len(raw) - 1)
    assert resp.status == 400
    assert "declares" in text(resp)
    # A tiny body declaring 4 GiB - 1 is refused without inflating anything.
    assert handle_write(b"\xff\xff\xff\xff\x0f\x00", RW_HEADERS, store).status == 400
    assert store.writes == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(write_body(series("up", (1, 1.0)))[:-3], id="truncated"),
        pytest.param(b"\xff\x06\x00\x00sNaPpY" + b"\x00" * 10, id="framed"),
        pytest.param(encode(WriteRequest(timeseries=[series("up", (1, 1.0))])), id="uncompressed"),
        pytest.param(snappy.compress(b"\x0a\x05\x0a"), id="bad-protobuf"),
        pytest.param(snappy.compress(b"\x0f"), id="wire-type-7"),
    ],
)
def test_bad_bodies_are_400_with_a_message(body: bytes) -> None:
    store = Recorder()
    resp = handle_write(body, RW_HEADERS, store)
    assert resp.status == 400
    assert len(text(resp)) > 5
    assert store.writes == []


def test_series_and_sample_limits_are_400() -> None:
    store = Recorder()
    body = write_body(series("a", (1, 1.0), (2, 2.0)), series("b", (1, 1.0)))
    r = handle_write(body, RW_HEADERS, store, max_series=1)
    assert r.status == 400
    assert "series" in text(r)
    r = handle_write(body, RW_HEADERS, store, max_samples=2)
    assert r.status == 400
    assert "3 samples" in text(r)
    assert handle_write(body, RW_HEADERS, store, max_series=2, max_samples=3).status == 204


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (StorageRejected("out of order sample"), 400),
        (StorageError("disk full"), 500),
        (StorageOverloaded("busy"), 429),
        (RuntimeError("bug in storage"), 500),
        (NotImplementedError("nope"), 500),
    ],
)
def test_storage_errors_map_to_status(error: Exception, status: int) -> None:
    resp = handle_write(write_body(series("up", (1, 1.0))), RW_HEADERS, Recorder(fail=error))
    assert resp.status == status
    if isinstance(error, PromwireError):
        assert str(error) in text(resp)
    else:  # the cause goes to the log, not to the client (issue 12, finding 6)
        assert str(error) not in text(resp)
        assert type(error).__name__ not in text(resp)
        assert text(resp) in (
            "internal storage error (the cause is in the server's log)\n",
            "not implemented by this storage\n",
        )
    assert not any(k == "Retry-After" for k, _ in resp.headers)


def test_overloaded_sends_retry_after_rounded_up() -> None:
    resp = handle_write(
        write_body(), RW_HEADERS, Recorder(fail=StorageOverloaded("slow", retry_after=1.2))
    )
    assert resp.status == 429
    assert ("Retry-After", "2") in resp.headers


def test_base_storage_without_write_is_500() -> None:
    resp = handle_write(write_body(), RW_HEADERS, BaseStorage())
    assert resp.status == 500
    assert text(resp) == "not implemented by this storage\n"  # no class name


# ----------------------------------------------------------------------------- read


def decode_read(resp: Response) -> ReadResponse:
    assert resp.status == 200, resp.body
    assert ("Content-Type", "application/x-protobuf") in resp.headers
    assert ("Content-Encoding", "snappy") in resp.headers
    assert isinstance(resp.body, bytes)
    return decode(ReadResponse, snappy.decompress(resp.body))


@pytest.mark.parametrize("accepted", [[], [0], [7, 0], [0, 1]])
def test_read_answers_samples_one_result_per_query_in_order(accepted: list[int]) -> None:
    queries = [Query(10 * i, 100 * i, [LabelMatcher(MatchType.EQ, "a", "b")]) for i in range(4)]
    got = decode_read(handle_read(read_body(*queries, accepted=accepted), RW_HEADERS, Recorder()))
    assert [r.timeseries[0].samples[0] for r in got.results] == [
        Sample(float(100 * i), 10 * i) for i in range(4)
    ]


@pytest.mark.parametrize("accepted", [[2], [9, 7]])
def test_read_without_a_supported_response_type_is_400(accepted: list[int]) -> None:
    resp = handle_read(read_body(Query(), accepted=accepted), RW_HEADERS, Recorder())
    assert resp.status == 400
    assert "STREAMED_XOR_CHUNKS" in text(resp)


def test_read_errors() -> None:
    store = Recorder()
    assert handle_read(b"junk", {}, store).status == 400
    assert handle_read(read_body(Query()), {"Content-Type": "text/plain"}, store).status == 415
    assert handle_read(read_body(Query()), {"Content-Encoding": "zstd"}, store).status == 415
    body = read_body(Query())
    assert handle_read(body, {}, store, max_body_size=len(body) - 1).status == 413
    failing = handle_read(read_body(Query()), {}, Recorder(fail=StorageRejected("bad regex")))
    assert (failing.status, text(failing)) == (400, "bad regex\n")


def test_read_result_count_mismatch_is_500() -> None:
    class Short(BaseStorage):
        def read(self, ctx: Any, request: ReadRequest) -> ReadResponse:
            return ReadResponse(results=[])

    resp = handle_read(read_body(Query(), Query()), {}, Short())
    assert resp.status == 500
    assert "0 results for 2 queries" in text(resp)


def test_read_sample_limit() -> None:
    body = read_body(Query(), Query())
    assert handle_read(body, {}, Recorder(), max_read_samples=2).status == 200
    resp = handle_read(body, {}, Recorder(), max_read_samples=1)
    assert resp.status == 400
    assert "sample limit" in text(resp)


def test_real_prometheus_read_request(fixtures_dir: Path) -> None:
    body = (fixtures_dir / "rr_client" / "req_01.bin").read_bytes()
    got = decode_read(handle_read(body, {"Content-Type": "application/x-protobuf"}, Recorder()))
    assert len(got.results) == 1


# ---------------------------------------------------------------------------- async


class AsyncRecorder(AsyncBaseStorage):
    def __init__(self) -> None:
        self.writes: list[WriteRequest] = []

    async def write(self, ctx: Any, request: WriteRequest) -> None:
        await asyncio.sleep(0)
        self.writes.append(request)

    async def process_query(self, ctx: Any, query: Query) -> QueryResult:
        await asyncio.sleep(0)
        return QueryResult([series("q", (query.start_timestamp_ms, 1.0))])


def test_async_handlers_with_async_storage() -> None:
    store = AsyncRecorder()
    ts = series("up", (5, 5.0))
    resp = asyncio.run(handle_write_async(write_body(ts), RW_HEADERS, store))
    assert (resp.status, resp.body) == (204, b"")
    assert store.writes == [WriteRequest(timeseries=[ts])]
    got = decode_read(asyncio.run(handle_read_async(read_body(Query(7), Query(8)), {}, store)))
    assert [r.timeseries[0].samples[0].timestamp for r in got.results] == [7, 8]
    bad = asyncio.run(handle_write_async(b"x", {"Content-Type": "text/csv"}, store))
    assert bad.status == 415


def test_async_handlers_run_sync_storage_in_a_worker_thread() -> None:
    store = Recorder()
    main = threading.get_ident()
    assert asyncio.run(handle_write_async(write_body(), RW_HEADERS, store)).status == 204
    decode_read(asyncio.run(handle_read_async(read_body(Query()), {}, store)))
    assert len(store.threads) == 2
    assert main not in store.threads
    failing = Recorder(fail=StorageOverloaded("later", retry_after=3))
    resp = asyncio.run(handle_write_async(write_body(), RW_HEADERS, failing))
    assert (resp.status, ("Retry-After", "3") in resp.headers) == (429, True)


def test_async_handlers_decode_big_bodies_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # handle_write_async looks _decode_write up in the module that defines it.
    import promwire.server.handlers.write as write_path

    threads: list[tuple[int, int]] = []
    real = write_path._decode_write

    def spy(body: bytes, *args: Any, **kwargs: Any) -> Any:
        threads.append((len(body), threading.get_ident()))
        return real(body, *args, **kwargs)

    monkeypatch.setattr(write_path, "_decode_write", spy)
    rnd = random.Random(5)
    big = write_body(
        *(series("m", (i, rnd.random()), id=f"{rnd.getrandbits(64):x}") for i in range(3000))
    )
    small = write_body(series("m", (1, 1.0)))
    assert len(big) >= 64 * 1024 > len(small)
    store = AsyncRecorder()

    async def run() -> int:
        for body in (big, small):
            assert (await handle_write_async(body, RW_HEADERS, store)).status == 204
        return threading.get_ident()

    loop_thread = asyncio.run(run())
    assert [(n, t == loop_thread) for n, t in threads] == [(len(big), False), (len(small), True)]
    assert len(store.writes[0].timeseries) == 3000


@settings(max_examples=150, deadline=None)
@given(raw=mutated_encodings(WriteRequest), compressed=st.booleans())
def test_damaged_bodies_are_never_a_server_error(raw: bytes, compressed: bool) -> None:
    """Whatever the bytes, a write is stored (204) or refused as bad input (400), never a 500."""
    store = Recorder()
    body = snappy.compress(raw) if compressed else raw
    resp = handle_write(body, RW_HEADERS, store)
    assert resp.status in (204, 400), resp.body
    assert (resp.status == 204) == (len(store.writes) == 1)
