"""Fuzz targets: one callable per decoder, all held to the same contract.

A target takes arbitrary bytes and feeds them to a promwire decoder. The
contract: the decoder either accepts the input or raises a
:class:`~promwire.errors.PromwireError`. Anything else - ``IndexError``,
``struct.error``, ``RecursionError``, ``MemoryError``, a wrong answer caught
by a target's own assertions - is a crash, reported as :class:`Crash`.

Some targets check more than the contract (each says so):

* ``decode:*`` - a message that decodes must re-encode, and its encoding must
  decode and re-encode to the same bytes (the codec reaches a fixed point);
* ``snappy:differential`` - both backends agree on every input (same bytes
  or the same error class);
* ``snappy:roundtrip`` - the input as *uncompressed* data: both backends
  compress it to the same block and inflate it back unchanged.
* ``regex:python`` - the input as ``pattern NUL value``: the pure-Python RE2
  engine compiles the pattern and matches the value;
  ``regex:differential`` - the same through google-re2 too: both engines
  refuse the same patterns and agree on every match.

Targets for modules that are not importable in this checkout are left out
and listed in :data:`UNAVAILABLE`.
"""

from __future__ import annotations

import json
import re
import struct
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import promwire
from promwire import snappy
from promwire.codec.fields import SCHEMAS
from promwire.errors import LimitExceeded, PromwireError, SnappyError

__all__ = ["TARGETS", "UNAVAILABLE", "Crash", "Target", "check", "select"]

#: The declared-size limit the snappy targets use: small, so that a fuzzer
#: input declaring megabytes is refused cheaply, yet over every seed.
SNAPPY_LIMIT = 1 << 20


class Crash(Exception):
    """A target broke the contract on ``data``."""

    def __init__(self, target: str, data: bytes, exc: BaseException) -> None:
        self.target = target
        self.data = data
        self.exc = exc
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{tb[-1].filename}:{tb[-1].lineno}" if tb else "?"
        #: What identifies the bug: same exception type raised at the same line.
        self.key = f"{type(exc).__name__} at {where}"
        super().__init__(f"{target}: {self.key}: {exc!r}")

    def format(self) -> str:
        body = "".join(traceback.format_exception(self.exc))
        return f"target {self.target}\ninput ({len(self.data)} bytes) {self.data!r}\n{body}"


class Broken(AssertionError):
    """A target's own check failed (raised inside a target, becomes a Crash)."""


@dataclass(frozen=True)
class Target:
    """A named fuzz target.

    ``seeds`` names the kind of seed inputs it wants (see :mod:`fuzz.corpus`).
    """

    name: str
    fn: Callable[[bytes], None]
    seeds: str


_VARIABLE = re.compile(r"\b[0-9a-fA-F]{4,}\b|\d+|'[^']*'|\"[^\"]*\"")


def check(target: Target, data: bytes) -> str | None:
    """Run ``target`` on ``data``: ``None`` if accepted, a refusal key if refused.

    The refusal key (error class and message with numbers, hex and quoted
    text blanked) lets a coverage-blind driver notice inputs reaching new code.
    Raises :class:`Crash` when the contract is broken.
    """
    try:
        target.fn(data)
    except PromwireError as exc:
        return f"{type(exc).__name__}: {_VARIABLE.sub('#', str(exc))[:80]}"
    except Exception as exc:
        raise Crash(target.name, data, exc) from exc
    return None


# ---------------------------------------------------------------------- helpers


@contextmanager
def backend(name: str) -> Iterator[None]:
    """Run with ``promwire.snappy`` switched to backend ``name``."""
    if name == snappy.BACKEND:
        yield
        return
    previous = snappy._use_backend(name)
    try:
        yield
    finally:
        snappy._use_backend(previous)


def _label(cls: type[Any]) -> str:
    prefix = cls.__module__.removeprefix("promwire.").removesuffix("messages").replace(".", "")
    return f"{prefix}.{cls.__name__}" if prefix else cls.__name__


def _decode_target(cls: type[Any]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        msg = promwire.decode(cls, data)
        try:
            first = promwire.encode(msg)
            second = promwire.encode(promwire.decode(cls, first))
        except Exception as exc:
            raise Broken(f"decoded {cls.__name__} does not round-trip: {exc!r}") from exc
        if first != second:
            raise Broken(f"{cls.__name__} re-encoding is not stable: {first!r} != {second!r}")

    return run


def _same_columns(got: list[Any], want: list[Any]) -> None:
    """Columns carry what the object decoders give (floats by bits)."""
    if len(got) != len(want):
        raise Broken(f"decode_columns gave {len(got)} series, decode {len(want)}")
    for sc, ts in zip(got, want, strict=True):
        ok = (
            list(sc.labels) == list(ts.labels)
            and list(sc.timestamps) == [s.timestamp for s in ts.samples]
            and sc.values.tobytes()
            == struct.pack(f"<{len(ts.samples)}d", *[s.value for s in ts.samples])
            and len(sc.exemplars) == len(ts.exemplars)
            and len(sc.histograms) == len(ts.histograms)
        )
        if not ok:
            raise Broken(f"decode_columns and decode differ on series {ts.labels!r}")


def _columns_target(v2: Any) -> Callable[[bytes], None]:
    """decode_columns refuses what decode refuses, and otherwise agrees with it (differential)."""

    def run(data: bytes) -> None:
        try:
            if v2 is None:
                want = promwire.decode(promwire.WriteRequest, data).timeseries
            else:
                want = v2.to_v1(promwire.decode(v2.Request, data)).timeseries
        except PromwireError:
            try:
                promwire.decode_columns(data, promwire.WriteRequest if v2 is None else v2.Request)
            except PromwireError:
                raise
            raise Broken("decode_columns accepted what decode refuses") from None
        got = promwire.decode_columns(data, promwire.WriteRequest if v2 is None else v2.Request)
        _same_columns(got, want)
        if v2 is None and promwire.encode_columns(got) != promwire.encode(
            promwire.WriteRequest(want)
        ):
            raise Broken("encode_columns differs from encode of the same series")

    return run


def _snappy_backend_target(name: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        with backend(name):
            out = snappy.decompress(data, max_decompressed_size=SNAPPY_LIMIT)
        if len(out) != snappy.declared_size(data):
            raise Broken("inflated size differs from the declared size")

    return run


def _outcome(name: str, data: bytes) -> bytes | PromwireError:
    with backend(name):
        try:
            return snappy.decompress(data, max_decompressed_size=SNAPPY_LIMIT)
        except (LimitExceeded, SnappyError) as exc:
            return exc


def _snappy_differential(data: bytes) -> None:
    a, b = _outcome("python", data), _outcome("cramjam", data)
    if isinstance(a, bytes) and isinstance(b, bytes):
        if a != b:
            raise Broken("backends inflate the block to different bytes")
    elif type(a) is not type(b):
        raise Broken(f"backends disagree: python {a!r:.100}, cramjam {b!r:.100}")
    elif isinstance(a, PromwireError):
        raise a  # both refused it alike: pass the python backend's reason on


def _snappy_roundtrip(data: bytes) -> None:
    blocks = {}
    for name in snappy.BACKENDS:
        with backend(name):
            blocks[name] = block = snappy.compress(data)
        for other in snappy.BACKENDS:
            with backend(other):
                if snappy.decompress(block, max_decompressed_size=len(data)) != data:
                    raise Broken(f"{other} does not inflate {name}'s block to the input")
    if len(set(blocks.values())) != 1:
        raise Broken("backends compress to different blocks")


_WRITE_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
_WRITE_V2_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    "X-Prometheus-Remote-Write-Version": "2.0.0",
}


def _build() -> tuple[list[Target], dict[str, str]]:
    targets: list[Target] = []
    unavailable: dict[str, str] = {}

    try:
        from promwire import v2
    except ImportError as exc:
        v2 = None  # type: ignore[assignment]
        unavailable["decode:v2.*"] = repr(exc)

    for cls in list(SCHEMAS):
        targets.append(Target(f"decode:{_label(cls)}", _decode_target(cls), "payload"))

    targets.append(Target("columns:WriteRequest", _columns_target(None), "payload"))
    if v2 is not None:
        targets.append(Target("columns:v2.Request", _columns_target(v2), "payload"))

    for name in snappy.BACKENDS:
        targets.append(Target(f"snappy:{name}", _snappy_backend_target(name), "snappy"))
    targets.append(Target("snappy:differential", _snappy_differential, "snappy"))
    targets.append(Target("snappy:roundtrip", _snappy_roundtrip, "payload"))

    try:
        from promwire.server import handlers

        def receive_write(data: bytes) -> None:
            handlers.prepare_write(data, _WRITE_HEADERS)

        def receive_read(data: bytes) -> None:
            handlers.prepare_read(data, {"Content-Encoding": "snappy"})

        targets.append(Target("receive:WriteRequest", receive_write, "snappy"))
        targets.append(Target("receive:ReadRequest", receive_read, "snappy"))

        if v2 is not None and hasattr(handlers, "check_v2_request"):

            def receive_write_v2(data: bytes) -> None:
                request = handlers.prepare_write(data, _WRITE_V2_HEADERS)
                if not isinstance(request, v2.Request):
                    raise Broken(f"a v2 Content-Type gave a {type(request).__name__}")
                kept, _problems = handlers.check_v2_request(request)
                # What the checks keep must resolve: the storage gets it as v1.
                try:
                    v2.to_v1(kept)
                except PromwireError as exc:
                    raise Broken(f"check_v2_request kept a series to_v1 refuses: {exc}") from exc

            targets.append(Target("receive:v2-handler", receive_write_v2, "snappy"))
    except ImportError as exc:
        unavailable["receive:*"] = repr(exc)

    if v2 is not None:

        def receive_v2(data: bytes) -> None:
            request = promwire.decode(v2.Request, snappy.decompress(data))
            v2.validate(request)
            v2.to_v1(request)

        targets.append(Target("receive:v2.Request", receive_v2, "snappy"))

    xor_module: Any = None
    try:
        from promwire.chunks import xor

        xor_module = xor

        def xor_chunk(data: bytes) -> None:
            timestamps, bits = xor.decode_xor_bits(data)
            if len(timestamps) != len(bits) or len(bits) != (data[0] << 8 | data[1]):
                raise Broken("XOR chunk decoded to a sample count it does not declare")

        targets.append(Target("xor:chunk", xor_chunk, "xor"))
    except ImportError as exc:
        unavailable["xor:chunk"] = repr(exc)

    hist_decoders: dict[int, Any] = {}
    try:
        from promwire.chunks import float_histogram, histogram

        hist_decoders = {
            2: histogram.decode_histogram_chunk,
            3: float_histogram.decode_float_histogram_chunk,
        }

        def _histogram_target(decode: Any, encode: Any) -> Callable[[bytes], None]:
            def target(data: bytes) -> None:
                hs = decode(data)
                if len(hs) != (data[0] << 8 | data[1]):
                    raise Broken("histogram chunk decoded to a count it does not declare")
                # What decodes re-encodes (or is refused with EncodeError) and
                # reaches a fixed point: encode(decode(x)) decodes and encodes
                # to the same bytes.
                header = data[2] >> 6
                once = encode(hs, header=header)
                if encode(decode(once), header=header) != once:
                    raise Broken("histogram chunk does not reach a fixed point")

            return target

        targets.append(
            Target(
                "histogram:chunk",
                _histogram_target(
                    histogram.decode_histogram_chunk, histogram.encode_histogram_chunk
                ),
                "histogram",
            )
        )
        targets.append(
            Target(
                "histogram:float-chunk",
                _histogram_target(
                    float_histogram.decode_float_histogram_chunk,
                    float_histogram.encode_float_histogram_chunk,
                ),
                "float-histogram",
            )
        )
    except ImportError as exc:
        unavailable["histogram:*"] = repr(exc)

    try:
        from promwire.chunks import frames

        def frame_stream(data: bytes) -> None:
            # The stream arrives in pieces split where the input's own
            # bytes say, so splits land everywhere across runs.
            reader = frames.FrameReader(max_frame_size=SNAPPY_LIMIT)
            step = 1 + (data[0] % 97 if data else 0)
            for i in range(0, len(data), step):
                reader.feed(data[i : i + step])
                while reader.next_frame() is not None:
                    pass
            reader.close()

        def streamed_response(data: bytes) -> None:
            # The input is one ChunkedReadResponse; framing it with a valid
            # CRC gets the fuzzer past the checksum to the decoders behind it.
            body = frames.encode_frame(data) * 2
            for message in frames.iter_frames([body]):
                response = promwire.decode(promwire.ChunkedReadResponse, message)
                if xor_module is not None:
                    for series in response.chunked_series:
                        for chunk in series.chunks:
                            if int(chunk.type) in hist_decoders:
                                hist_decoders[int(chunk.type)](chunk.data)
                            else:
                                xor_module.decode_chunk(chunk)

        targets.append(Target("frames:stream", frame_stream, "stream"))
        targets.append(Target("frames:chunked-response", streamed_response, "chunked"))
    except ImportError as exc:
        unavailable["frames:*"] = repr(exc)

    try:
        from promwire.codec import textform as textformat

        def text(data: bytes) -> None:
            textformat.parse_text(data.decode("utf-8", "replace"), now_ms=0)

        targets.append(Target("text:parse", text, "text"))
    except ImportError as exc:
        unavailable["text:parse"] = repr(exc)

    def from_json(data: bytes) -> None:
        try:
            obj = json.loads(data)
        except ValueError:
            return  # not JSON at all: json's business, not promwire's
        promwire.from_dict(promwire.WriteRequest, obj)

    targets.append(Target("json:WriteRequest", from_json, "json"))
    _regex_targets(targets, unavailable)
    return targets, unavailable


def _regex_input(data: bytes) -> tuple[str, str]:
    pattern, _, value = data.partition(b"\x00")
    return pattern.decode("utf-8", "replace"), value.decode("utf-8", "replace")


def _regex_targets(targets: list[Target], unavailable: dict[str, str]) -> None:
    try:
        from promwire.stores import regex
    except ImportError as exc:
        unavailable["regex:*"] = repr(exc)
        return

    def python(data: bytes) -> None:
        pattern, value = _regex_input(data)
        compiled = regex.compile_regex(pattern, engine="python")
        if compiled.matches(value) != compiled.matches(value):
            raise Broken("a second match of the same value gave another answer")

    targets.append(Target("regex:python", python, "regex"))
    if regex._load_re2() is None:
        unavailable["regex:differential"] = "google-re2 is not installed"
        return

    def differential(data: bytes) -> None:
        pattern, value = _regex_input(data)
        outcomes: list[bool | PromwireError] = []
        for engine in ("python", "re2"):
            try:
                outcomes.append(regex.compile_regex(pattern, engine=engine).matches(value))
            except PromwireError as exc:
                outcomes.append(exc)
        mine, theirs = outcomes
        if isinstance(mine, PromwireError) and isinstance(theirs, PromwireError):
            raise mine  # both refused: the python engine's reason
        if isinstance(theirs, PromwireError) and "pattern too large" in str(theirs):
            raise theirs  # over RE2's memory budget: a documented difference
        if isinstance(mine, PromwireError) and "too costly" in str(mine):
            raise mine  # over the python engine's work budget: documented too
        if type(mine) is not type(theirs) or mine != theirs:
            raise Broken(f"engines disagree on {pattern!r:.80} / {value!r:.40}: {outcomes!r:.200}")

    targets.append(Target("regex:differential", differential, "regex"))


TARGETS, UNAVAILABLE = _build()


def select(patterns: list[str] | None = None) -> list[Target]:
    """The targets whose names match any of the ``fnmatch`` patterns (all if none)."""
    from fnmatch import fnmatchcase

    if not patterns:
        return list(TARGETS)
    chosen = [t for t in TARGETS if any(fnmatchcase(t.name, p) for p in patterns)]
    if not chosen:
        raise SystemExit(f"no target matches {patterns}; targets: {[t.name for t in TARGETS]}")
    return chosen
