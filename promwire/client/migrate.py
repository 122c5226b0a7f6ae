"""Copy series from a remote-read source to a remote-write destination
(``promwire migrate``), through a :class:`~promwire.client.durable.DurableWriter`.

::

    from promwire.client.migrate import Migration
    m = Migration("http://old:9090/api/v1/read", "http://new:9201/api/v1/write",
                  selector='{job="node"}', start_ms=t0, end_ms=t1, directory="mig")
    stats = m.run()             # MigrationStats(series, samples, histograms, seconds)

The range ``[start_ms, end_ms]`` is read in slices of ``slice_ms`` (one remote
read per slice, streamed XOR chunks when the source offers them, like
Prometheus' own remote read). Each slice's series are appended to the durable
writer's log in ``directory/wal``; once a slice is in the log (fsynced), the
checkpoint ``directory/checkpoint.json`` moves past it. A killed run started
again with the same arguments therefore skips the slices already in the log,
and the new writer sends what the killed one had not sent: nothing is read
twice and nothing is lost (points in flight at the kill are sent twice, which
the destination absorbs).

Native histograms travel in streamed answers as HISTOGRAM / FLOAT_HISTOGRAM
chunks (Prometheus 2.x's SAMPLES answers leave them out). A slice whose
streamed answer holds a chunk encoding promwire does not know is read again
as SAMPLES. With ``response_types=[SAMPLES]`` every slice travels that way.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from ..codec.messages import ResponseType, TimeSeries
from ..errors import UnsupportedChunkEncoding
from .durable import DurableWriter
from .reader import RemoteReadClient, RemoteReadError

__all__ = ["CHECKPOINT_FILE", "Migration", "MigrationStats", "Progress"]

CHECKPOINT_FILE = "checkpoint.json"
#: 8-byte hashes of the label sets seen, so a resumed run counts series once.
SERIES_FILE = "series.bin"


def _series_key(ts: TimeSeries) -> int:
    """A hash of the label set that is the same in every process."""
    text = "\xff".join(f"{lb.name}\xfe{lb.value}" for lb in sorted(ts.labels, key=_by_name))
    return int.from_bytes(
        hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
    )


def _by_name(lb: Any) -> str:
    return str(lb.name)


@dataclass(slots=True)
class MigrationStats:
    """What a migration copied (counted over every run of it, resumed ones
    included). ``series`` counts distinct label sets (a series met in many
    slices counts once)."""

    series: int = 0
    samples: int = 0
    histograms: int = 0
    seconds: float = 0.0
    slices_done: int = 0
    slices: int = 0


class Progress:
    """Progress output: a bar redrawn in place with rate and ETA on a terminal,
    one plain line per slice otherwise."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.started = time.monotonic()
        self.first: tuple[int, int] | None = None  # (samples, slices) when this run began

    def begin(self, stats: MigrationStats) -> None:
        """The run starts (a resumed one: rate and ETA count only this run)."""
        self.started = time.monotonic()
        self.first = (stats.samples, stats.slices_done)

    def update(self, stats: MigrationStats) -> None:
        if self.first is None:
            self.first = (0, 0)
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (stats.samples - self.first[0]) / elapsed
        slice_rate = (stats.slices_done - self.first[1]) / elapsed
        done = stats.slices_done / stats.slices if stats.slices else 1.0
        left = stats.slices - stats.slices_done
        eta = f"{left / slice_rate:.0f}s" if slice_rate > 0 else "?"
        text = (
            f"{stats.slices_done}/{stats.slices} slices, {stats.series} series, "
            f"{stats.samples} samples, {stats.histograms} histograms, "
            f"{rate:,.0f} samples/s, ETA {eta}"
        )
        if self.tty:
            width = 30
            filled = int(done * width)
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {done:4.0%} {text}\x1b[K")
        else:
            self.stream.write(f"migrate: {text}\n")
        self.stream.flush()

    def waiting(self, pending: int, error: str | None) -> None:
        """All slices are read; ``pending`` points still wait for the destination."""
        why = f" (last error: {error})" if error else ""
        end = "\x1b[K" if self.tty else ""
        lead = "\r" if self.tty else "migrate: "
        self.stream.write(f"{lead}all slices read, {pending} points still to send{why}{end}")
        self.stream.write("" if self.tty else "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Migration:
    """One migration: source, destination, selector, range, and its directory
    (write-ahead log and checkpoint). ``read_kwargs`` go to the
    :class:`RemoteReadClient`, ``write_kwargs`` to the :class:`DurableWriter`.
    A slice whose read fails retryably (no answer, 5xx) is read again up to
    ``read_retries`` times (3), waiting ``read_backoff`` seconds (1, doubling);
    after that the run stops, and running it again resumes at that slice."""

    def __init__(
        self,
        src_url: str,
        dst_url: str,
        *,
        selector: str,
        start_ms: int,
        end_ms: int,
        directory: str | Path,
        slice_ms: int = 3_600_000,
        response_types: Sequence[ResponseType] = (
            ResponseType.STREAMED_XOR_CHUNKS,
            ResponseType.SAMPLES,
        ),
        read_kwargs: dict[str, Any] | None = None,
        write_kwargs: dict[str, Any] | None = None,
        read_retries: int = 3,
        read_backoff: float = 1.0,
    ) -> None:
        if end_ms < start_ms:
            raise ValueError(f"end ({end_ms}) is before start ({start_ms})")
        if slice_ms < 1:
            raise ValueError("slice_ms must be >= 1")
        self.src_url = src_url
        self.dst_url = dst_url
        self.selector = selector
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.slice_ms = slice_ms
        self.read_retries = read_retries
        self.read_backoff = read_backoff
        self.directory = Path(directory)
        self.response_types = list(response_types)
        self.read_kwargs = dict(read_kwargs or {})
        self.write_kwargs = dict(write_kwargs or {})
        self.reader = RemoteReadClient(
            src_url, response_types=self.response_types, **self.read_kwargs
        )
        self.reader.request_for(selector, start_ms, end_ms)  # check the selector now

    @property
    def key(self) -> dict[str, Any]:
        """What must match for a checkpoint to be resumed."""
        return {
            "src": self.src_url,
            "dst": self.dst_url,
            "selector": self.selector,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "slice_ms": self.slice_ms,
        }

    def _load(self) -> tuple[int, MigrationStats]:
        path = self.directory / CHECKPOINT_FILE
        stats = MigrationStats(slices=-(-(self.end_ms - self.start_ms + 1) // self.slice_ms))
        if not path.exists():
            return self.start_ms, stats
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("key") != self.key:
            raise ValueError(
                f"{path} belongs to another migration ({doc.get('key')}); "
                "use another directory or delete it"
            )
        saved = doc["stats"]
        stats.series, stats.samples = saved["series"], saved["samples"]
        stats.histograms, stats.seconds = saved["histograms"], saved["seconds"]
        stats.slices_done = saved["slices_done"]
        return int(doc["next_ms"]), stats

    def _save(self, next_ms: int, stats: MigrationStats) -> None:
        path = self.directory / CHECKPOINT_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"key": self.key, "next_ms": next_ms, "stats": asdict(stats)}),
            encoding="utf-8",
        )
        os.replace(tmp, path)

    def _load_series(self, stats: MigrationStats) -> set[int]:
        path = self.directory / SERIES_FILE
        if not stats.slices_done:
            path.unlink(missing_ok=True)
            return set()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return set()
        whole = len(data) - len(data) % 8  # a write the kill cut short
        return {int.from_bytes(data[i : i + 8], "little") for i in range(0, whole, 8)}

    def _add_series(self, seen: set[int], series: list[TimeSeries]) -> None:
        new = []
        for ts in series:
            key = _series_key(ts)
            if key not in seen:
                seen.add(key)
                new.append(key.to_bytes(8, "little"))
        if new:
            with open(self.directory / SERIES_FILE, "ab") as f:
                f.write(b"".join(new))

    def _read_slice(self, lo: int, hi: int) -> list[TimeSeries]:
        """One slice's series; a retryable failure (no answer, 5xx) is tried
        again ``read_retries`` times, ``read_backoff`` seconds apart (doubling)."""
        delay = self.read_backoff
        for attempt in range(self.read_retries + 1):
            try:
                return self._read_once(lo, hi)
            except RemoteReadError as exc:
                if not exc.retryable or attempt == self.read_retries:
                    raise
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_once(self, lo: int, hi: int) -> list[TimeSeries]:
        try:
            return list(self.reader.query(self.selector, lo, hi))
        except UnsupportedChunkEncoding:
            # A chunk encoding promwire does not know: read the slice as SAMPLES.
            with RemoteReadClient(
                self.src_url, response_types=[ResponseType.SAMPLES], **self.read_kwargs
            ) as samples_only:
                return list(samples_only.query(self.selector, lo, hi))

    @staticmethod
    def _drain(writer: DurableWriter, progress: Progress | None, timeout: float | None) -> bool:
        """Wait for the destination to take the rest, saying what is pending
        every few seconds; then close the writer. True if all was sent."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if writer.flush(5.0 if left is None else min(5.0, left)):
                break
            if left is not None and left <= 5.0:
                break
            if progress is not None:
                progress.waiting(writer.metrics().pending_points, writer.last_error)
        return writer.close(0.0)

    def run(
        self,
        progress: Progress | None = None,
        *,
        drain_timeout: float | None = None,
        on_slice: Callable[[MigrationStats], None] | None = None,
    ) -> MigrationStats:
        """Copy the slices not done yet, then wait (``drain_timeout`` seconds at
        most; ``None``: until done) for the destination to acknowledge all.
        Raises :class:`RuntimeError` if points are still unsent at the end
        (they stay in the log: running again sends them)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        next_ms, stats = self._load()
        seen = self._load_series(stats)
        began = time.monotonic()
        base_seconds = stats.seconds
        writer = DurableWriter(self.dst_url, self.directory / "wal", **self.write_kwargs)
        if progress is not None:
            progress.begin(stats)
        try:
            while next_ms <= self.end_ms:
                hi = min(next_ms + self.slice_ms - 1, self.end_ms)
                series = self._read_slice(next_ms, hi)
                writer.append(series)
                self._add_series(seen, series)
                stats.series = len(seen)
                stats.samples += sum(len(ts.samples) for ts in series)
                stats.histograms += sum(len(ts.histograms) for ts in series)
                stats.slices_done += 1
                stats.seconds = base_seconds + time.monotonic() - began
                next_ms = hi + 1
                self._save(next_ms, stats)  # the slice is in the log: never read again
                if progress is not None:
                    progress.update(stats)
                if on_slice is not None:
                    on_slice(stats)
            sent = self._drain(writer, progress, drain_timeout)
        except BaseException:
            writer.close(0.0)
            raise
        finally:
            if progress is not None:
                progress.finish()
        stats.seconds = base_seconds + time.monotonic() - began
        self._save(next_ms, stats)
        if not sent:
            left = writer.metrics().pending_points
            raise RuntimeError(
                f"{left} points not yet acknowledged by {self.dst_url} "
                f"({writer.last_error or 'no error seen'}); they are kept in "
                f"{self.directory / 'wal'}: run the same migration again to send them"
            )
        return stats
