"""A remote write sender that loses nothing: write-ahead log, parallel shards.

::

    from promwire.client.durable import DurableWriter
    with DurableWriter("http://127.0.0.1:9201/api/v1/write", "/var/lib/app/wal") as w:
        w.append(series)            # on disk when this returns; sent in the background
        w.append_sample({"__name__": "jobs_done", "queue": "a"}, 17.0, ts_ms)
    # leaving the block waits until everything was answered 2xx (see close())

How it works:

* **Shards.** Each series goes to shard ``crc32(sorted labels) % shards`` (a
  hash that is the same in every process, so a restarted writer puts a series
  where the previous one did). A shard has its own write-ahead log
  (:class:`~promwire.client.wal.SegmentLog`, directory ``shard-<n>``), its own
  thread and its own :class:`~promwire.client.writer.RemoteWriteClient`
  connection: shards send in parallel, and one series' points are always
  sent in the order they were appended.
* **Durability.** :meth:`DurableWriter.append` writes one record per touched
  shard before it returns. ``fsync="batch"`` (default) fsyncs them before
  returning: appended data survives a crash of the machine.
  ``fsync="interval"`` fsyncs every ``fsync_interval`` seconds instead
  (faster; a power loss may lose the last interval; a ``kill -9`` of the
  process loses nothing, the bytes are already in the kernel).
* **Acknowledgement.** A shard reads records, sends them (batches of at most
  ``max_samples_per_send`` points) with the client's retry rules, and only
  after the 2xx records the new acknowledged position and deletes segments
  wholly before it. Retryable failures (5xx, network) are retried forever
  with the client's backoff, unless ``max_age`` is set: then points older
  than ``max_age`` seconds are dropped from a batch before it is re-sent
  (counted in ``dropped_too_old``), as asked in prometheus#7912. A final
  refusal (4xx other than a retried 429) drops the batch, as Prometheus does,
  and counts it in ``failures`` and ``dropped_rejected``: re-sending would be
  refused again and block the shard forever.
* **After a crash.** A new writer on the same directory resends everything
  after the acknowledged position: nothing appended is lost; what the killed
  writer had in flight (sent, answer not yet recorded) is sent twice, which an
  idempotent receiver (Prometheus, ``promwire serve``) absorbs.
* **Bounded disk.** ``max_bytes`` caps the segment bytes of all shards. When an
  append would go over it, :meth:`append` **blocks** until the shards free
  space, for at most ``full_timeout`` seconds (``None``: no limit), then raises
  :class:`~promwire.client.wal.WalFull` with nothing of that append written.
* **One writer per directory.** A second writer on a directory in use
  raises :class:`~promwire.client.wal.WalError` (an ``flock`` on
  ``DIR/lock``, released by the kernel when the process ends in any way).
* **Shard count.** The directory remembers its shard count. Opening it with
  another ``shards=`` while data is pending raises ``ValueError`` (the order
  of a series would otherwise break); an empty directory takes the new count.

:class:`AsyncDurableWriter` is the asyncio front end: the same writer, its
blocking calls (append with its fsync, flush, close) run in a worker thread.
:meth:`DurableWriter.metrics` returns a :class:`WriterMetrics` snapshot;
:meth:`DurableWriter.exposition` the same in Prometheus' text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from ..codec import snappy
from ..codec.decoder import decode
from ..codec.encoder import encode
from ..codec.messages import Label, MetricMetadata, Sample, TimeSeries, WriteRequest
from .wal import SegmentLog, WalError, WalFull
from .writer import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_SAMPLES_PER_SEND,
    RemoteWriteClient,
    RemoteWriteError,
    WriteResult,
    _without_empty_labels,
    batch_series,
)

__all__ = [
    "AsyncDurableWriter",
    "DurableWriter",
    "WalError",
    "WalFull",
    "WriterMetrics",
    "shard_of",
]

SHARDS_FILE = "shards"
LOCK_FILE = "lock"


def shard_of(labels: Sequence[Label], shards: int) -> int:
    """The shard of a label set: CRC-32 of its sorted ``name=value`` pairs."""
    key = "\xff".join(f"{lb.name}\xfe{lb.value}" for lb in sorted(labels, key=_by_name))
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % shards


def _lock_directory(directory: Path) -> int:
    """Take the directory's writer lock (one writer per directory): an
    ``flock`` the kernel drops when the process ends, however it ends (kill -9
    included). Where ``fcntl`` is missing (Windows) nothing is locked."""
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise WalError(
            f"{directory} is in use by another DurableWriter (of this or another process)"
        ) from None
    return fd


def _by_name(lb: Label) -> str:
    return lb.name


def _points(ts: TimeSeries) -> int:
    return len(ts.samples) + len(ts.histograms) + len(ts.exemplars)


@dataclass(slots=True)
class WriterMetrics:
    """Counters of a :class:`DurableWriter` (points = samples + histograms +
    exemplars). ``pending_points`` and ``bytes_on_disk`` are gauges and
    include what a previous writer left in the directory."""

    pending_points: int = 0
    bytes_on_disk: int = 0
    appended_points: int = 0
    sent_points: int = 0
    sends: int = 0
    retries: int = 0
    failures: int = 0
    dropped_too_old: int = 0
    dropped_rejected: int = 0


_HELP = {
    "pending_points": ("gauge", "points appended (or left by a previous writer) not yet sent 2xx"),
    "bytes_on_disk": ("gauge", "bytes of write-ahead log segments on disk"),
    "appended_points": ("counter", "points appended by this writer"),
    "sent_points": ("counter", "points answered 2xx"),
    "sends": ("counter", "requests answered 2xx"),
    "retries": ("counter", "requests repeated after a retryable failure"),
    "failures": ("counter", "send attempts that failed (retryable or not)"),
    "dropped_too_old": ("counter", "points dropped for being older than max_age"),
    "dropped_rejected": ("counter", "points dropped because the receiver refused them (4xx)"),
}


class _Shard:
    """One shard: its log, its client, its sending thread."""

    def __init__(self, writer: DurableWriter, index: int, log: SegmentLog) -> None:
        self.writer = writer
        self.index = index
        self.log = log
        self.wake = threading.Condition()
        self.thread = threading.Thread(
            target=self.run, name=f"promwire-durable-{index}", daemon=True
        )

    def run(self) -> None:
        w = self.writer
        kwargs = {"max_retries": 3, "sleep": w.stopping.wait, **w.client_kwargs}
        client = RemoteWriteClient(w.url, **kwargs)
        pos = self.log.acked
        try:
            while not w.stopping.is_set():
                records, after = self.log.read(
                    pos, max_points=w.max_samples_per_send, max_bytes=w.max_request_bytes
                )
                if not records:
                    if w.draining.is_set():
                        return
                    pos = after  # past deleted or empty segments: where the next record goes
                    with self.wake:
                        if self.log.end == pos and not w.draining.is_set():
                            self.wake.wait(0.5)
                    continue
                if not self.send(client, records):
                    return  # stopping
                self.log.ack(after, sum(n for _, n in records))
                w.freed()
                pos = after
        except Exception as exc:  # a damaged log or a bug: say so, stop this shard
            w.last_error = f"shard {self.index} stopped: {type(exc).__name__}: {exc}"
            raise
        finally:
            client.close()

    def send(self, client: RemoteWriteClient, records: list[tuple[bytes, int]]) -> bool:
        """Send the records' series until every batch got an answer that ends
        it (2xx, or a final refusal); False if the writer stopped first."""
        w = self.writer
        raws = [snappy.decompress(payload) for payload, _ in records]
        points = sum(n for _, n in records)
        if (
            client.active_protocol == "v1"
            and w.max_age is None
            and points <= w.max_samples_per_send
            and sum(map(len, raws)) <= w.max_request_bytes
        ):
            # The fast path: the records are encoded WriteRequests, and
            # protobuf reads concatenated messages as one (repeated fields
            # append), so their concatenation is the request; nothing is
            # decoded or encoded again.
            raw = b"".join(raws)
            return bool(self.attempt(partial(client.send_encoded, raw, points), points))
        series: list[TimeSeries] = []
        metadata: list[MetricMetadata] = []
        for raw in raws:
            req = decode(WriteRequest, raw)
            series.extend(req.timeseries)
            metadata.extend(req.metadata)
        batches = list(
            batch_series(
                series,
                max_samples_per_send=w.max_samples_per_send,
                max_bytes=w.max_request_bytes,
            )
        )
        if metadata:
            if batches:
                batches[0].metadata = metadata
            else:
                batches.append(WriteRequest(metadata=metadata))
        return all(self.attempt_request(client, req) for req in batches)

    def attempt_request(self, client: RemoteWriteClient, req: WriteRequest) -> bool:
        w = self.writer
        if w.max_age is None:
            n = sum(_points(ts) for ts in req.timeseries)
            return bool(self.attempt(partial(client.send, req), n))
        while True:
            req = w.drop_old(req)
            if not req.timeseries and not req.metadata:
                return True
            n = sum(_points(ts) for ts in req.timeseries)
            outcome = self.attempt(partial(client.send, req), n, once=True)
            if outcome is not None:
                return outcome

    def attempt(
        self, send: Callable[[], WriteResult], points: int, *, once: bool = False
    ) -> bool | None:
        """Call ``send`` until it ends in a 2xx (True) or a final refusal (True:
        the batch is dropped and counted), waiting ``retry_wait`` (doubling)
        between tries; False if the writer stops. With ``once``, a retryable
        failure returns None after the wait instead of trying again."""
        w = self.writer
        delay = w.retry_wait
        while True:
            if w.stopping.is_set():
                return False
            try:
                result = send()
            except RemoteWriteError as exc:
                w.count(failures=exc.attempts, retries=exc.attempts - 1)
                w.last_error = str(exc)
                if not exc.retryable:
                    w.count(dropped_rejected=points)
                    return True
                w.count(retries=1)
                if w.stopping.wait(delay):
                    return False
                delay = min(delay * 2, w.max_retry_wait)
                if once:
                    return None
                continue
            w.count(
                sends=1,
                sent_points=points,
                retries=result.attempts - 1,
                failures=result.attempts - 1,
            )
            return True


class DurableWriter:
    """Append series to a write-ahead log in ``directory``; shards send them to
    ``url`` in the background. See the module docstring for the guarantees.

    Keyword arguments (all optional):

    ``shards``
        parallel senders, each with its own connection (4).
    ``fsync``
        ``"batch"`` (default): fsync before :meth:`append` returns;
        ``"interval"``: fsync every ``fsync_interval`` seconds (1.0).
    ``max_bytes``
        cap on the log's bytes on disk, all shards together (1 GiB);
        ``full_timeout`` how long an :meth:`append` waits for room (30 s;
        ``None`` = forever) before raising :class:`WalFull`.
    ``segment_bytes``
        size at which a shard starts a new segment file (8 MiB).
    ``max_samples_per_send``, ``max_request_bytes``
        batch limits per request (2000 points, 4 MiB uncompressed).
    ``max_age``
        seconds: while retrying, drop points older than this instead of
        retrying them forever (``None``, the default: never drop).
    ``retry_wait``, ``max_retry_wait``
        wait after a send gave up its own retries, doubling up to the
        maximum (1 s, 30 s), before trying again.
    ``protocol``, ``timeout``, ``headers``, ``basic_auth``, ``bearer_token``,
    ``min_backoff``, ``max_backoff``, ``max_retries``, ``retry_on_429``,
    ``ssl_context``
        passed to each shard's :class:`RemoteWriteClient` (``max_retries``
        defaults to 3 here: after those the shard waits ``retry_wait`` and
        starts again, forever).
    """

    def __init__(
        self,
        url: str,
        directory: str | Path,
        *,
        shards: int = 4,
        fsync: Literal["batch", "interval"] = "batch",
        fsync_interval: float = 1.0,
        max_bytes: int = 1 << 30,
        full_timeout: float | None = 30.0,
        segment_bytes: int = 8 << 20,
        max_samples_per_send: int = DEFAULT_MAX_SAMPLES_PER_SEND,
        max_request_bytes: int = DEFAULT_MAX_BYTES,
        max_age: float | None = None,
        retry_wait: float = 1.0,
        max_retry_wait: float = 30.0,
        **client_kwargs: Any,
    ) -> None:
        if shards < 1:
            raise ValueError("shards must be >= 1")
        if fsync not in ("batch", "interval"):
            raise ValueError(f"fsync must be 'batch' or 'interval', not {fsync!r}")
        if fsync_interval <= 0 or max_bytes < 1 or segment_bytes < 1:
            raise ValueError("fsync_interval, max_bytes and segment_bytes must be > 0")
        if max_age is not None and max_age <= 0:
            raise ValueError("max_age must be > 0 (or None)")
        if retry_wait <= 0 or max_retry_wait < retry_wait:
            raise ValueError("need 0 < retry_wait <= max_retry_wait")
        RemoteWriteClient(url, **client_kwargs).close()  # check url and options now
        self.url = url
        self.client_kwargs = client_kwargs
        self.directory = Path(directory)
        self.fsync = fsync
        self.max_bytes = max_bytes
        self.full_timeout = full_timeout
        self.max_samples_per_send = max_samples_per_send
        self.max_request_bytes = max_request_bytes
        self.max_age = max_age
        self.retry_wait = retry_wait
        self.max_retry_wait = max_retry_wait
        self.last_error: str | None = None
        self.stopping = threading.Event()
        self.draining = threading.Event()
        self._counts = WriterMetrics()
        self._count_lock = threading.Lock()
        self._append_lock = threading.Lock()
        self._room = threading.Condition()
        self._closed = False
        self._pool: ThreadPoolExecutor | None = None
        logs = self._open_logs(shards, segment_bytes)
        self._shards = [_Shard(self, i, log) for i, log in enumerate(logs)]
        for shard in self._shards:
            shard.thread.start()
        self._syncer: threading.Thread | None = None
        if fsync == "interval":
            self._syncer = threading.Thread(
                target=self._sync_loop, args=(fsync_interval,), daemon=True
            )
            self._syncer.start()

    # ------------------------------------------------------------- opening

    def _open_logs(self, shards: int, segment_bytes: int) -> list[SegmentLog]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WalError(f"cannot create {self.directory}: {exc}") from None
        self._lock_fd = _lock_directory(self.directory)
        try:
            return self._open_shard_logs(shards, segment_bytes)
        except BaseException:
            os.close(self._lock_fd)
            raise

    def _open_shard_logs(self, shards: int, segment_bytes: int) -> list[SegmentLog]:
        marker = self.directory / SHARDS_FILE
        before = int(marker.read_text()) if marker.exists() else shards
        if before != shards:
            old = [SegmentLog(self.directory / f"shard-{i}") for i in range(before)]
            pending = sum(log.pending_points for log in old)
            for log in old:
                log.close()
            if pending:
                raise ValueError(
                    f"{self.directory} holds {pending} unsent points in {before} shards: "
                    f"open it with shards={before} until they are sent"
                )
            for i in range(before):
                shutil.rmtree(self.directory / f"shard-{i}")
        marker.write_text(f"{shards}\n")
        # A shard drops its acknowledged head segment once it holds this much,
        # so acknowledged bytes never keep more than half of max_bytes.
        rotate = max(1, min(1 << 20, self.max_bytes // (2 * shards)))
        return [
            SegmentLog(
                self.directory / f"shard-{i}", segment_bytes=segment_bytes, rotate_bytes=rotate
            )
            for i in range(shards)
        ]

    # ------------------------------------------------------------- appending

    def append(self, series: Iterable[TimeSeries], metadata: Sequence[MetricMetadata] = ()) -> int:
        """Write ``series`` (samples, histograms, exemplars) and ``metadata`` to
        the log; returns the points written. On disk (fsynced with
        ``fsync="batch"``) when this returns; sent in the background.

        Blocks while the log is full (see ``max_bytes``); raises
        :class:`WalFull` after ``full_timeout`` and ``ValueError`` for a
        series without labels or an append after :meth:`close`.
        """
        if self._closed:
            raise ValueError("append on a closed DurableWriter")
        n = len(self._shards)
        parts: list[list[TimeSeries]] = [[] for _ in range(n)]
        # Empty label values are dropped now (they mean "no such label" and
        # must not be sent): the log holds requests ready to send as they are.
        clean = _without_empty_labels(WriteRequest(timeseries=list(series))).timeseries
        for ts in clean:
            if not ts.labels:
                raise ValueError("a series needs at least one label with a value")
            parts[shard_of(ts.labels, n)].append(ts)
        records: list[tuple[int, bytes, int]] = []
        for i, part in enumerate(parts):
            md = list(metadata) if i == 0 else []
            if part or md:
                body = snappy.compress(encode(WriteRequest(timeseries=part, metadata=md)))
                records.append((i, body, sum(_points(ts) for ts in part)))
        if not records:
            return 0
        need = sum(len(body) + 12 for _, body, _ in records)
        with self._append_lock:
            self._wait_for_room(need)
            for i, body, points in records:
                self._shards[i].log.append(body, points)
            if self.fsync == "batch":
                self._sync([self._shards[i].log for i, _, _ in records])
        total = sum(points for _, _, points in records)
        self.count(appended_points=total)
        for i, _, _ in records:
            with self._shards[i].wake:
                self._shards[i].wake.notify()
        return total

    def append_sample(
        self, labels: Mapping[str, str], value: float, timestamp_ms: int | None = None
    ) -> int:
        """Append one sample (``timestamp_ms`` defaults to now); see :meth:`append`."""
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        return self.append(
            [
                TimeSeries(
                    labels=[Label(k, v) for k, v in sorted(labels.items())],
                    samples=[Sample(value, ts)],
                )
            ]
        )

    def _sync(self, logs: list[SegmentLog]) -> None:
        """fsync the logs an append touched, in parallel when there are several
        (os.fsync releases the GIL, and the file system can merge them)."""
        if len(logs) == 1:
            logs[0].sync()
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(len(self._shards), thread_name_prefix="promwire-fsync")
        for done in [self._pool.submit(log.sync) for log in logs]:
            done.result()

    def _disk_bytes(self) -> int:
        return sum(s.log.bytes_on_disk for s in self._shards)

    def _wait_for_room(self, need: int) -> None:
        if need > self.max_bytes:
            raise WalFull(f"one append of {need} bytes is larger than max_bytes={self.max_bytes}")
        deadline = None if self.full_timeout is None else time.monotonic() + self.full_timeout
        with self._room:
            while self._disk_bytes() + need > self.max_bytes:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise WalFull(
                        f"{self.directory}: write-ahead log full ({self._disk_bytes()} of "
                        f"max_bytes={self.max_bytes}) for {self.full_timeout} s"
                        + (f"; last send error: {self.last_error}" if self.last_error else "")
                    )
                self._room.wait(0.1 if left is None else min(left, 0.1))

    def freed(self) -> None:
        """A shard acknowledged records (space may be free)."""
        with self._room:
            self._room.notify_all()

    def _sync_loop(self, interval: float) -> None:
        while not self.stopping.wait(interval):
            for shard in self._shards:
                with contextlib.suppress(OSError):  # closed meanwhile
                    shard.log.sync()

    # ------------------------------------------------------------- sending state

    def drop_old(self, req: WriteRequest) -> WriteRequest:
        """``req`` without the points older than ``max_age`` (counted)."""
        assert self.max_age is not None
        cutoff = int((time.time() - self.max_age) * 1000)
        out: list[TimeSeries] = []
        dropped = 0
        for ts in req.timeseries:
            kept = replace(
                ts,
                samples=[s for s in ts.samples if s.timestamp >= cutoff],
                histograms=[h for h in ts.histograms if h.timestamp >= cutoff],
                exemplars=[e for e in ts.exemplars if e.timestamp >= cutoff],
            )
            dropped += _points(ts) - _points(kept)
            if _points(kept):
                out.append(kept)
        if not dropped:
            return req
        self.count(dropped_too_old=dropped)
        return WriteRequest(timeseries=out, metadata=req.metadata)

    def count(self, **deltas: int) -> None:
        with self._count_lock:
            for name, d in deltas.items():
                setattr(self._counts, name, getattr(self._counts, name) + d)

    def metrics(self) -> WriterMetrics:
        """A snapshot of the writer's metrics."""
        with self._count_lock:
            snap = replace(self._counts)
        snap.pending_points = sum(s.log.pending_points for s in self._shards)
        snap.bytes_on_disk = self._disk_bytes()
        return snap

    def exposition(self, prefix: str = "promwire_durable_") -> str:
        """:meth:`metrics` in Prometheus' text exposition format."""
        snap = self.metrics()
        lines = []
        for f in fields(snap):
            kind, text = _HELP[f.name]
            name = prefix + f.name + ("_total" if kind == "counter" else "")
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            lines.append(f"{name} {getattr(snap, f.name)}")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------- ending

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every appended point was answered (2xx or refused);
        True if so, False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while any(s.log.pending_points > 0 for s in self._shards):
            if not any(s.thread.is_alive() for s in self._shards):
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Send what is pending (for at most ``timeout`` seconds; ``None``: until
        done), then stop the shards. Unsent points stay in the log for the next
        writer. True if everything was sent."""
        if self._closed:
            return True
        done = self.flush(timeout)
        self._closed = True
        self.draining.set()
        self.stopping.set()
        for shard in self._shards:
            with shard.wake:
                shard.wake.notify()
        for shard in self._shards:
            shard.thread.join()
        if self._syncer is not None:
            self._syncer.join()
        if self._pool is not None:
            self._pool.shutdown()
        for shard in self._shards:
            shard.log.close()
        os.close(self._lock_fd)  # releases the directory's lock
        return done

    def __enter__(self) -> DurableWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(None if exc_type is None else 0.0)


class AsyncDurableWriter:
    """The asyncio front end of :class:`DurableWriter` (same arguments).

    ``await append(...)``, ``await flush()`` and ``await aclose()`` run the
    blocking calls (fsync, waits) in a worker thread, so the event loop never
    waits on the disk; use as ``async with``.
    """

    def __init__(self, url: str, directory: str | Path, **kwargs: Any) -> None:
        self.writer = DurableWriter(url, directory, **kwargs)

    async def append(
        self, series: Iterable[TimeSeries], metadata: Sequence[MetricMetadata] = ()
    ) -> int:
        return await asyncio.to_thread(self.writer.append, list(series), metadata)

    async def append_sample(
        self, labels: Mapping[str, str], value: float, timestamp_ms: int | None = None
    ) -> int:
        return await asyncio.to_thread(self.writer.append_sample, labels, value, timestamp_ms)

    async def flush(self, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.writer.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.writer.close, timeout)

    def metrics(self) -> WriterMetrics:
        return self.writer.metrics()

    async def __aenter__(self) -> AsyncDurableWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose(None if exc_type is None else 0.0)
