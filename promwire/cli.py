"""The ``promwire`` command line (also ``python -m promwire``).

Subcommands::

    promwire decode [FILE] [--type T] [--samples]     body or stream -> JSON on stdout
    promwire encode [FILE] [--type T] [--raw] [-o OUT] JSON -> body
    promwire write URL [FILE] [--format json|text]    send samples (remote write)
    promwire read URL SELECTOR [--start T] [--end T]  print samples (remote read)
    promwire serve [--db PATH] [--listen HOST:PORT]   run promwire's receiver

Data goes to stdout, progress and errors to stderr. Exit codes:

== =============================================================
0  success
1  the remote side failed (HTTP error answer, no answer)
2  usage error (bad option, selector or time; PROMWIRE_SNAPPY names no backend)
3  invalid input (file missing, empty, not decodable, bad JSON or text)
4  an optional part of promwire is missing (e.g. promwire.server.runner, or
   cramjam when PROMWIRE_SNAPPY=cramjam)
== =============================================================
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO

from . import __version__, snappy
from .codec.decoder import decode
from .codec.encoder import encode
from .codec.jsonform import from_dict, to_dict
from .codec.messages import (
    ChunkedReadResponse,
    QueryResult,
    ReadRequest,
    ReadResponse,
    ResponseType,
    TimeSeries,
    WriteRequest,
)
from .codec.textform import parse_duration
from .errors import DecodeError, PromwireError

__all__ = ["EXIT_INPUT", "EXIT_MISSING", "EXIT_OK", "EXIT_REMOTE", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_REMOTE = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MISSING = 4

#: ``--type`` names and the message class each stands for ("chunked" is a stream).
TYPES = ("write", "write-v2", "read-request", "read-response", "chunked")


class CliError(Exception):
    """Ends the command with ``code`` after printing the message on stderr."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _say(message: str) -> None:
    print(f"promwire: {message}", file=sys.stderr)


def _v2() -> Any:
    try:
        return importlib.import_module("promwire.v2")
    except ImportError:
        return None


def _class_for(kind: str) -> type[Any]:
    if kind == "write":
        return WriteRequest
    if kind == "read-request":
        return ReadRequest
    if kind == "read-response":
        return ReadResponse
    if kind == "write-v2":
        v2 = _v2()
        if v2 is None:
            raise CliError("remote write 2.0 needs promwire.v2, which is missing", EXIT_MISSING)
        return type(v2.Request())
    raise CliError(f"unknown type {kind!r}", EXIT_USAGE)


# ------------------------------------------------------------------------ input


def _read_input(path: str | None) -> bytes:
    if path in (None, "-"):
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", EXIT_INPUT) from None


# ------------------------------------------------------------------------ decode


def _framed_layout(data: bytes) -> bool:
    """Whether ``data`` splits exactly into ``uvarint N | 4-byte CRC | N bytes``
    frames (the streamed remote-read layout) whose first message is a
    ChunkedReadResponse. The CRCs are checked later, by promwire.chunks.frames."""
    from .codec.wire import read_varint

    pos = 0
    first: tuple[int, int] | None = None
    try:
        while pos < len(data):
            n, p = read_varint(data, pos)
            start = p + 4
            if n == 0 or start + n > len(data):
                return False
            if first is None:
                first = (start, start + n)
            pos = start + n
    except (DecodeError, IndexError):
        return False
    if first is None:
        return False
    msg = data[first[0] : first[1]]
    try:
        return encode(decode(ChunkedReadResponse, msg)) == msg
    except PromwireError:
        return False


def _penalty(msg: Any) -> int:
    """How implausible a decoded message is (wrong-type decodes score high)."""
    bad = 0

    def bad_labels(labels: Sequence[Any]) -> int:
        if not labels:
            return 1
        return sum(1 for lb in labels if not lb.name or not lb.name.isprintable())

    if isinstance(msg, WriteRequest):
        bad += sum(bad_labels(ts.labels) for ts in msg.timeseries)
        bad += sum(1 for md in msg.metadata if not md.metric_family_name)
    elif isinstance(msg, ReadRequest):
        for q in msg.queries:
            bad += 1 if not q.matchers else 0
            bad += sum(1 for m in q.matchers if not m.name or not m.name.isprintable())
    elif isinstance(msg, ReadResponse):
        bad += sum(bad_labels(ts.labels) for r in msg.results for ts in r.timeseries)
    else:  # remote write 2.0
        syms = msg.symbols
        bad += 1 if syms and syms[0] != "" else 0
        bad += sum(1 for ts in msg.timeseries if not ts.labels_refs)
    return bad


def _detect(raw: bytes) -> tuple[str, Any]:
    """Guess the message type of uncompressed protobuf ``raw``.

    Protobuf bytes carry no type, but a wrong guess shows: fields of the wrong
    type are skipped as unknown, so re-encoding no longer gives ``raw`` back
    (promwire's encoder reproduces Go's bytes exactly). Among the types that
    round-trip, the one with the fewest implausible parts wins (a series
    without labels, a query without matchers); ties go to the order below.
    """
    candidates: list[tuple[int, int, int, str, Any]] = []
    kinds = ["read-response", "write", "read-request"]
    if _v2() is not None:
        kinds.append("write-v2")
    for order, kind in enumerate(kinds):
        try:
            msg = decode(_class_for(kind), raw)
        except PromwireError:
            continue
        try:
            same = encode(msg) == raw
        except PromwireError:
            same = False
        candidates.append((0 if same else 1, _penalty(msg), order, kind, msg))
    if not candidates:
        raise CliError(
            "not a remote write or remote read message (no message type decodes it)",
            EXIT_INPUT,
        )
    candidates.sort(key=lambda c: c[:3])
    _, _, _, kind, msg = candidates[0]
    return kind, msg


def _frames_json(data: bytes, *, samples: bool, max_frame_size: int) -> dict[str, Any]:
    if samples:
        try:
            streamed = importlib.import_module("promwire.chunks.streamed")
        except ImportError as exc:
            raise CliError(
                f"decoding chunks to samples needs promwire.chunks.streamed ({exc})", EXIT_MISSING
            ) from None
        response = ReadResponse()
        for index, series in streamed.read_streamed_response([data], max_frame_size=max_frame_size):
            while len(response.results) <= index:
                response.results.append(QueryResult())
            response.results[index].timeseries.append(series)
        return to_dict(response)
    try:
        frames = importlib.import_module("promwire.chunks.frames")
    except ImportError as exc:
        raise CliError(
            f"decoding a chunked stream needs promwire.chunks.frames ({exc})", EXIT_MISSING
        ) from None
    out = []
    for frame in frames.iter_frames([data], max_frame_size=max_frame_size):
        message = frame if isinstance(frame, ChunkedReadResponse) else None
        if message is None:
            # iter_frames may hand out the message bytes rather than the message.
            message = decode(ChunkedReadResponse, bytes(frame))
        out.append(to_dict(message))
    return {"frames": out}


def cmd_decode(args: argparse.Namespace) -> int:
    data = _read_input(args.file)
    name = args.file or "stdin"
    if not data and not (args.raw and args.type):
        # Empty bytes decode as an empty message of every type: say so rather
        # than print "{}" (an empty --raw body of a named --type is allowed).
        raise CliError(f"{name}: empty input, nothing to decode", EXIT_INPUT)
    kind: str | None = args.type
    if kind is None and _framed_layout(data):
        kind = "chunked"
    if kind == "chunked":
        doc = _frames_json(data, samples=args.samples, max_frame_size=args.max_frame_size)
        if args.samples:
            n = sum(len(r.get("timeseries", [])) for r in doc.get("results", []))
            _say(f"{name}: streamed remote-read response, {n} series")
        else:
            _say(f"{name}: streamed remote-read response, {len(doc['frames'])} frames")
        _print_json(doc)
        return EXIT_OK
    if args.raw:
        raw, how = data, "uncompressed"
    else:
        try:
            raw = snappy.decompress(data, max_decompressed_size=args.max_decompressed_size)
            how = "snappy"
        except PromwireError as exc:
            if args.type is not None:
                raise CliError(
                    f"{name}: {exc} (use --raw for uncompressed protobuf)", EXIT_INPUT
                ) from None
            raw, how = data, f"uncompressed (not snappy: {exc})"
    if kind is None:
        kind, msg = _detect(raw)
    else:
        try:
            msg = decode(_class_for(kind), raw)
        except DecodeError as exc:
            raise CliError(f"{name}: not a valid {kind}: {exc}", EXIT_INPUT) from None
    _say(f"{name}: {kind}, {how}, {len(raw)} bytes of protobuf")
    _print_json(to_dict(msg))
    return EXIT_OK


def _print_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")


# ------------------------------------------------------------------------ encode


def _encode_frames(doc: Any) -> bytes:
    """``{"frames": [ChunkedReadResponse JSON, ...]}`` (what decode prints) to a stream."""
    try:
        frames = importlib.import_module("promwire.chunks.frames")
    except ImportError as exc:
        raise CliError(
            f"encoding a chunked stream needs promwire.chunks.frames ({exc})", EXIT_MISSING
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list):
        raise CliError('a chunked stream is {"frames": [...]}', EXIT_INPUT)
    parts = [frames.encode_frame(encode(from_dict(ChunkedReadResponse, f))) for f in doc["frames"]]
    return b"".join(parts)


def _kind_of_json(doc: Any) -> str:
    if not isinstance(doc, dict):
        raise CliError("expected a JSON object", EXIT_INPUT)
    keys = set(doc)
    if "frames" in keys:
        return "chunked"
    if "symbols" in keys:
        return "write-v2"
    if keys & {"queries", "accepted_response_types"}:
        return "read-request"
    if "results" in keys:
        return "read-response"
    return "write"


def _load_json(data: bytes) -> Any:
    if not data.strip():
        raise CliError("empty input: expected a JSON document", EXIT_INPUT)
    try:
        return json.loads(data)
    except ValueError as exc:
        raise CliError(f"invalid JSON: {exc}", EXIT_INPUT) from None


def cmd_encode(args: argparse.Namespace) -> int:
    doc = _load_json(_read_input(args.file))
    kind = args.type or _kind_of_json(doc)
    try:
        if kind == "chunked":
            body = _encode_frames(doc)
        else:
            body = encode(from_dict(_class_for(kind), doc))
    except PromwireError as exc:
        raise CliError(f"cannot encode as {kind}: {exc}", EXIT_INPUT) from None
    if not args.raw and kind != "chunked":  # a stream of frames is never snappy
        body = snappy.compress(body)
    out: BinaryIO
    if args.output and args.output != "-":
        with open(args.output, "wb") as f:
            f.write(body)
    else:
        out = sys.stdout.buffer
        if sys.stdout.isatty():
            raise CliError("refusing to write binary to a terminal: use -o FILE", EXIT_USAGE)
        out.write(body)
        out.flush()
    how = "frames" if kind == "chunked" else "uncompressed" if args.raw else "snappy"
    _say(f"{kind}: {len(body)} bytes ({how})")
    return EXIT_OK


# ------------------------------------------------------------------- HTTP opts


def _client_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for h in args.header or []:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise CliError(f"--header {h!r}: expected 'Name: value'", EXIT_USAGE)
        headers[name.strip()] = value.strip()
    kw: dict[str, Any] = {"headers": headers, "timeout": args.timeout}
    if args.basic_auth:
        user, sep, password = args.basic_auth.partition(":")
        if not sep:
            password = os.environ.get("PROMWIRE_PASSWORD", "")
        kw["basic_auth"] = (user, password)
    token = args.bearer_token
    if args.bearer_token_file:
        try:
            with open(args.bearer_token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise CliError(f"cannot read {args.bearer_token_file}: {exc}", EXIT_INPUT) from None
    if token:
        kw["bearer_token"] = token
    return kw


def _add_http_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--header",
        "-H",
        action="append",
        metavar="'NAME: VALUE'",
        help="extra request header (repeatable; protocol headers cannot be overridden)",
    )
    p.add_argument(
        "--basic-auth",
        metavar="USER[:PASS]",
        help="HTTP basic auth (password from $PROMWIRE_PASSWORD if omitted)",
    )
    p.add_argument("--bearer-token", metavar="TOKEN", help="Authorization: Bearer TOKEN")
    p.add_argument("--bearer-token-file", metavar="FILE", help="read the bearer token from FILE")
    p.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="per attempt (default: 30)"
    )


# ------------------------------------------------------------------------- write


def _write_request(data: bytes, fmt: str, protocol: str) -> Any:
    from .codec.textform import parse_text

    if fmt in ("auto", "json"):
        try:
            doc = json.loads(data)
        except ValueError as exc:
            if fmt == "json":
                raise CliError(f"invalid JSON: {exc}", EXIT_INPUT) from None
        else:
            kind = _kind_of_json(doc)
            if kind not in ("write", "write-v2"):
                raise CliError(f"the JSON holds a {kind}, not a write request", EXIT_INPUT)
            if kind == "write-v2" and protocol != "v2":
                raise CliError("the JSON holds a v2 request: add --protocol v2", EXIT_USAGE)
            try:
                return from_dict(_class_for(kind), doc)
            except PromwireError as exc:
                raise CliError(f"invalid write request JSON: {exc}", EXIT_INPUT) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError("the text form must be UTF-8", EXIT_INPUT) from None
    try:
        return parse_text(text, now_ms=int(time.time() * 1000))
    except PromwireError as exc:
        raise CliError(str(exc), EXIT_INPUT) from None


def _send_v1_request(client: Any, request: WriteRequest, args: argparse.Namespace) -> list[Any]:
    """Send a parsed ``WriteRequest`` in batches. Remote write 1.0 sends the
    metadata in a request of its own, as Prometheus does; 2.0 has no
    metadata-only records, so every batch carries the metadata and each
    series gets its family's (see :func:`promwire.v2.convert.from_v1`)."""
    from .client.writer import batch_series

    batches = batch_series(request.timeseries, max_samples_per_send=args.max_samples_per_send)
    if args.protocol == "v2":
        if not request.timeseries:
            raise CliError(
                "remote write 2.0 carries metadata only with series: the input has none",
                EXIT_INPUT,
            )
        return [
            client.send(WriteRequest(timeseries=b.timeseries, metadata=request.metadata))
            for b in batches
        ]
    results = [client.send(b) for b in batches]
    if request.metadata:
        results.append(client.send(WriteRequest(metadata=request.metadata)))
    return results


def _write_through_wal(args: argparse.Namespace, request: Any) -> int:
    """``write --wal DIR``: append to a DurableWriter's log, then send it all."""
    from .client.durable import DurableWriter

    if not isinstance(request, WriteRequest):
        from .v2.convert import to_v1

        request = to_v1(request, sort_labels=True)
    try:
        writer = DurableWriter(
            args.url,
            args.wal,
            protocol=args.protocol,
            max_retries=args.max_retries,
            retry_on_429=args.retry_on_429,
            max_samples_per_send=args.max_samples_per_send,
            **_client_kwargs(args),
        )
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    points = writer.append(request.timeseries, request.metadata)
    if not writer.close(args.wal_timeout):
        m = writer.metrics()
        raise CliError(
            f"{m.pending_points} points not yet acknowledged by {args.url} "
            f"({writer.last_error or 'no answer'}); they stay in {args.wal}: the next "
            "`promwire write --wal` on it sends them",
            EXIT_REMOTE,
        )
    m = writer.metrics()
    _say(
        f"appended {points} points to {args.wal}; sent {m.sent_points} points in "
        f"{m.sends} request(s) to {args.url} ({m.retries} retries, "
        f"{m.dropped_rejected} points refused)"
    )
    return EXIT_OK if not m.dropped_rejected else EXIT_REMOTE


def cmd_write(args: argparse.Namespace) -> int:
    from .client.writer import RemoteWriteClient, RemoteWriteError

    data = _read_input(args.file)
    if not data.strip():
        raise CliError(f"{args.file or 'stdin'}: empty input, nothing to send", EXIT_INPUT)
    request = _write_request(data, args.format, args.protocol)
    if not request.timeseries and not getattr(request, "metadata", None):
        raise CliError(
            f"{args.file or 'stdin'}: no samples or metadata in the input, nothing to send",
            EXIT_INPUT,
        )
    if args.wal:
        return _write_through_wal(args, request)
    try:
        client = RemoteWriteClient(
            args.url,
            protocol=args.protocol,
            max_retries=args.max_retries,
            retry_on_429=args.retry_on_429,
            **_client_kwargs(args),
        )
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    with client:
        try:
            if isinstance(request, WriteRequest):
                results = _send_v1_request(client, request, args)
            else:
                results = [client.send(request)]
        except RemoteWriteError as exc:
            raise CliError(str(exc), EXIT_REMOTE) from None
    points = sum(
        len(ts.samples) + len(ts.histograms) + len(ts.exemplars) for ts in request.timeseries
    )
    statuses = ",".join(sorted({str(r.status) for r in results}))
    _say(
        f"sent {len(request.timeseries)} series, {points} points in {len(results)} "
        f"request(s) to {args.url} (status {statuses or '-'})"
    )
    return EXIT_OK


# -------------------------------------------------------------------------- read


def parse_time(text: str, *, now_ms: int) -> int:
    """A time for ``--start``/``--end`` in ms since the epoch.

    Accepts ``now``, ``now-1h30m`` / ``-15m`` (relative to now), integer
    milliseconds since the epoch, or RFC 3339 (``2026-11-25T06:00:00Z``).
    """
    t = text.strip()
    if t == "now":
        return now_ms
    rel = t[3:] if t.startswith("now") else t
    if rel[:1] in ("-", "+") and rel[1:] and not rel[1:].isdigit():
        total = parse_duration(rel[1:])
        if total is not None:
            return now_ms - total if rel[0] == "-" else now_ms + total
    if re.fullmatch(r"-?\d+", t):
        return int(t)
    try:
        dt = _dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"bad time {text!r}: use now, now-1h, -5m, epoch milliseconds or RFC 3339",
            EXIT_USAGE,
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    return int(dt.timestamp() * 1000)


def cmd_read(args: argparse.Namespace) -> int:
    from .client.reader import RemoteReadClient, RemoteReadError
    from .codec.textform import format_series

    now_ms = int(time.time() * 1000)
    start = parse_time(args.start, now_ms=now_ms)
    end = parse_time(args.end, now_ms=now_ms)
    types = {
        "auto": [ResponseType.STREAMED_XOR_CHUNKS, ResponseType.SAMPLES],
        "samples": [ResponseType.SAMPLES],
        "streamed": [ResponseType.STREAMED_XOR_CHUNKS],
    }[args.response_type]
    try:
        client = RemoteReadClient(args.url, response_types=types, **_client_kwargs(args))
        request = client.request_for(args.selector, start, end)
    except DecodeError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    n_series = n_samples = n_histograms = 0
    collected = []
    try:
        for _, series in client.read(request):
            n_series += 1
            n_samples += len(series.samples)
            n_histograms += len(series.histograms)
            if args.output == "json":
                collected.append(series)
            else:
                for line in format_series(series):
                    print(line)
                for line in _histogram_lines(series):
                    print(line)
    except RemoteReadError as exc:
        raise CliError(str(exc), EXIT_REMOTE) from None
    except PromwireError as exc:
        raise CliError(f"{args.url}: bad answer: {exc}", EXIT_REMOTE) from None
    if args.output == "json":
        _print_json(to_dict(ReadResponse(results=[QueryResult(timeseries=collected)])))
    histograms = f", {n_histograms} histograms" if n_histograms else ""
    _say(
        f"{n_series} series, {n_samples} samples{histograms} "
        f"({(client.last_content_type or '?').split(';')[0]})"
    )
    return EXIT_OK


# ----------------------------------------------------------------------- migrate


def cmd_migrate(args: argparse.Namespace) -> int:
    from .client.migrate import Migration, Progress

    now_ms = int(time.time() * 1000)
    start = parse_time(args.start, now_ms=now_ms)
    end = parse_time(args.end, now_ms=now_ms)
    slice_ms = parse_duration(args.slice)
    if slice_ms is None or slice_ms < 1:
        raise CliError(f"--slice {args.slice!r}: expected a duration such as 1h or 30m", EXIT_USAGE)
    http = _client_kwargs(args)
    types = {
        "auto": [ResponseType.STREAMED_XOR_CHUNKS, ResponseType.SAMPLES],
        "samples": [ResponseType.SAMPLES],
        "streamed": [ResponseType.STREAMED_XOR_CHUNKS],
    }[args.response_type]
    try:
        migration = Migration(
            args.src,
            args.dst,
            selector=args.selector,
            start_ms=start,
            end_ms=end,
            directory=args.dir,
            slice_ms=slice_ms,
            response_types=types,
            read_kwargs=http,
            write_kwargs={**http, "shards": args.shards, "protocol": args.protocol},
            read_retries=args.read_retries,
        )
    except (ValueError, DecodeError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        stats = migration.run(Progress(), drain_timeout=args.drain_timeout)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except (RuntimeError, PromwireError, OSError) as exc:
        raise CliError(f"migrate stopped: {exc}", EXIT_REMOTE) from None
    _say(
        f"migrated {stats.series} series, {stats.samples} samples, {stats.histograms} "
        f"histograms in {stats.seconds:.1f} s ({stats.slices_done} slices)"
    )
    return EXIT_OK


def _add_migrate_parser(sub: Any) -> None:
    p = sub.add_parser(
        "migrate", help="copy series from a remote read source to a remote write destination"
    )
    p.add_argument("src", metavar="SRC_READ_URL", help="e.g. http://old:9090/api/v1/read")
    p.add_argument("dst", metavar="DST_WRITE_URL", help="e.g. http://new:9201/api/v1/write")
    p.add_argument("--selector", required=True, help="PromQL selector, e.g. '{job=\"node\"}'")
    p.add_argument("--start", required=True, help="epoch ms, RFC 3339, now-30d, ...")
    p.add_argument("--end", default="now", help="same forms as --start (default: now)")
    p.add_argument("--slice", default="1h", help="time read per request (default: 1h)")
    p.add_argument(
        "--dir",
        default="promwire-migrate",
        help="checkpoint and write-ahead log; a killed run resumes from it (default: "
        "./promwire-migrate)",
    )
    p.add_argument("--shards", type=int, default=4, help="parallel senders (default: 4)")
    p.add_argument("--protocol", choices=("v1", "v2"), default="v1", help="remote write version")
    p.add_argument(
        "--response-type",
        choices=("auto", "samples", "streamed"),
        default="auto",
        help="answer form to ask the source for (default: auto, streamed preferred)",
    )
    p.add_argument(
        "--read-retries",
        type=int,
        default=3,
        metavar="N",
        help="retries of a slice whose read got no answer or a 5xx (default: 3)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wait at most this long for the destination at the end (default: until done)",
    )
    _add_http_options(p)
    p.set_defaults(func=cmd_migrate)


def _histogram_lines(series: TimeSeries) -> Iterator[str]:
    """Text lines for native histograms: ``# histogram labels {count=.. sum=.. ...} timestamp``.

    Buckets are ``index:count`` pairs (absolute counts) of each side. The
    lines are comments of the text form, so ``read | write`` copies the
    float samples and skips them.
    """
    from .codec.textform import format_labels

    head = format_labels(series.labels)
    for h in series.histograms:
        sides = []
        for name, spans, deltas, counts in (
            ("positive", h.positive_spans, h.positive_deltas, h.positive_counts),
            ("negative", h.negative_spans, h.negative_deltas, h.negative_counts),
        ):
            values: list[int | float] = list(counts) if h.is_float else []
            if not h.is_float:
                total = 0
                for d in deltas:
                    total += d
                    values.append(total)
            indices: list[int] = []
            idx = 0
            for span in spans:  # the first offset is absolute, later ones skip buckets
                idx += span.offset
                indices.extend(range(idx, idx + span.length))
                idx += span.length
            pairs = ",".join(f"{i}:{v!r}" for i, v in zip(indices, values, strict=False))
            sides.append(f"{name}={pairs}")
        count = h.count_float if h.is_float else h.count_int
        zero = h.zero_count_float if h.is_float else h.zero_count_int
        yield (
            f"# histogram {head} {{count={count!r} sum={h.sum!r} schema={h.schema} "
            f"zero_threshold={h.zero_threshold!r} zero_count={zero!r} {' '.join(sides)} "
            f"hint={int(h.reset_hint)}}} {h.timestamp}"
        )


# ------------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        server = importlib.import_module("promwire.server.runner")
    except ImportError as exc:
        raise CliError(
            f"promwire serve needs promwire.server.runner, which is missing ({exc})", EXIT_MISSING
        ) from None
    try:
        server.serve(db=args.db, listen=args.listen, **server.serve_options(args))
    except KeyboardInterrupt:
        return EXIT_OK
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except server.UnusableDatabase as exc:
        raise CliError(f"--db: {exc}", EXIT_INPUT) from None
    except OSError as exc:  # e.g. address in use, database not writable
        raise CliError(
            f"cannot serve on {args.listen}: {exc.strerror or exc}", EXIT_REMOTE
        ) from None
    except SystemExit as exc:
        # uvicorn exits (status 3) when it cannot bind; keep our own exit codes.
        if exc.code not in (0, None):
            raise CliError(
                f"the server on {args.listen} stopped (status {exc.code}; reason above)",
                EXIT_REMOTE,
            ) from None
    return EXIT_OK


def _add_serve_parser(sub: Any, *, with_options: bool) -> None:
    # The server's options come from promwire.server.runner, which imports the
    # whole server (SQLite, regex engine, handlers: ~130 ms); loaded only when
    # `serve` is the command, so `decode` and the others start without it.
    p = sub.add_parser(
        "serve",
        help="run promwire's remote write/read receiver",
        description="Run promwire's remote write/read receiver on SQLite. "
        "Exit codes: 2 bad option or --listen, 3 unusable --db, 1 the server cannot start.",
    )
    runner = None
    if with_options:
        with contextlib.suppress(ImportError):
            runner = importlib.import_module("promwire.server.runner")
    if runner is None:
        # Another command, or no runner: `serve` still parses (and then says what is missing).
        p.add_argument("--db", default="promwire.db", help="SQLite file (default promwire.db)")
        p.add_argument("--listen", default="127.0.0.1:9201", help="HOST:PORT (127.0.0.1:9201)")
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    else:
        runner.add_serve_options(p)
    p.set_defaults(func=cmd_serve)


# -------------------------------------------------------------------------- main


def build_parser(*, serve_options: bool = True) -> argparse.ArgumentParser:
    """The command line's parser; ``serve_options=False`` leaves out the options
    of ``serve`` (and the import of the server they need)."""
    parser = argparse.ArgumentParser(
        prog="promwire",
        description="Prometheus remote write / remote read from the command line.",
        epilog="Exit codes: 0 ok, 1 remote failure, 2 usage, 3 invalid input, "
        "4 optional component missing. Environment: PROMWIRE_SNAPPY=auto|cramjam|python "
        "chooses the snappy backend.",
    )
    parser.add_argument("--version", action="version", version=f"promwire {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("decode", help="decode a captured body or stream to JSON")
    p.add_argument("file", nargs="?", help="input file (default: stdin)")
    p.add_argument("--type", "-t", choices=TYPES, help="message type (default: detect)")
    p.add_argument("--raw", action="store_true", help="input is uncompressed protobuf")
    p.add_argument(
        "--samples",
        action="store_true",
        help="for a chunked stream: decode the chunks into samples and native histograms "
        "(ReadResponse JSON)",
    )
    p.add_argument(
        "--max-decompressed-size",
        type=int,
        default=snappy.DEFAULT_MAX_DECOMPRESSED_SIZE,
        metavar="BYTES",
        help="refuse a snappy body that declares more (default: 32 MiB)",
    )
    p.add_argument(
        "--max-frame-size",
        type=int,
        default=50_000_000,
        metavar="BYTES",
        help="refuse a stream frame that declares more (default: 50000000)",
    )
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("encode", help="encode JSON to a body")
    p.add_argument("file", nargs="?", help="JSON file (default: stdin)")
    p.add_argument(
        "--type",
        "-t",
        choices=TYPES,
        help="message type (default: from the JSON keys)",
    )
    p.add_argument("--raw", action="store_true", help="write uncompressed protobuf")
    p.add_argument("--output", "-o", help="output file (default: stdout)")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("write", help="send samples to a remote write endpoint")
    p.add_argument("url", help="e.g. http://127.0.0.1:9090/api/v1/write")
    p.add_argument("file", nargs="?", help="JSON or text form (default: stdin)")
    p.add_argument(
        "--format",
        "-f",
        choices=("auto", "json", "text"),
        default="auto",
        help="input form (default: auto, JSON if it parses, else the text form)",
    )
    p.add_argument(
        "--protocol",
        choices=("v1", "v2"),
        default="v1",
        help="remote write 1.0 (v1, default) or 2.0 (v2)",
    )
    p.add_argument(
        "--max-samples-per-send",
        type=int,
        default=2000,
        metavar="N",
        help="points per request (default: 2000)",
    )
    p.add_argument(
        "--max-retries",
        type=int,
        default=10,
        metavar="N",
        help="retries of a 5xx or network error (default: 10)",
    )
    p.add_argument(
        "--retry-on-429", action="store_true", help="retry 429 answers too (default: don't)"
    )
    p.add_argument(
        "--wal",
        metavar="DIR",
        help="go through a durable writer on DIR: the input is written to its log first, "
        "and whatever a failed run left there is sent too",
    )
    p.add_argument(
        "--wal-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="with --wal: how long to keep trying before leaving the rest in DIR (default: 60)",
    )
    _add_http_options(p)
    p.set_defaults(func=cmd_write)

    p = sub.add_parser("read", help="query a remote read endpoint and print samples")
    p.add_argument("url", help="e.g. http://127.0.0.1:9090/api/v1/read")
    p.add_argument("selector", help="PromQL selector, e.g. 'up{job=\"x\"}'")
    p.add_argument("--start", default="now-1h", help="now-1h (default), -5m, epoch ms, RFC 3339")
    p.add_argument("--end", default="now", help="same forms as --start (default: now)")
    p.add_argument(
        "--output",
        "-o",
        choices=("text", "json"),
        default="text",
        help="text form (default) or ReadResponse JSON",
    )
    p.add_argument(
        "--response-type",
        choices=("auto", "samples", "streamed"),
        default="auto",
        help="answer form to ask for (default: auto, streamed preferred, like Prometheus)",
    )
    _add_http_options(p)
    p.set_defaults(func=cmd_read)

    _add_migrate_parser(sub)
    _add_serve_parser(sub, with_options=serve_options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    words = sys.argv[1:] if argv is None else list(argv)
    command = next((w for w in words if not w.startswith("-")), None)
    args = build_parser(serve_options=command in (None, "serve")).parse_args(words)
    func: Callable[[argparse.Namespace], int] = args.func
    if snappy.BACKEND_PROBLEM is not None:
        # The library falls back with a warning; the command line refuses instead.
        missing = snappy.BACKEND_PROBLEM.startswith(f"{snappy.ENV_VAR}=cramjam")
        _say(snappy.BACKEND_PROBLEM)
        return EXIT_MISSING if missing else EXIT_USAGE
    try:
        return func(args)
    except CliError as exc:
        _say(str(exc))
        return exc.code
    except PromwireError as exc:  # bad bytes met while decoding input
        _say(f"invalid input: {exc}")
        return EXIT_INPUT
    except BrokenPipeError:
        # stdout closed early (e.g. `| head`): not an error worth a traceback.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
