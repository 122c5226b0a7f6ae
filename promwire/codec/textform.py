"""A simple text form of samples, close to Prometheus' exposition format.

One sample per line::

    # HELP http_requests_total Requests served.
    # TYPE http_requests_total counter
    http_requests_total{code="200",method="GET"} 1027 1700000000000
    temperature_celsius 21.5
    {"my.metric", zone="a"} NaN 1700000001000

* ``name{label="value",...} value [timestamp]``; the value is a float
  (``NaN``, ``+Inf``, ``-Inf`` allowed), ``stale`` for Prometheus' stale
  marker, or ``NaN:0x<16 hex digits>`` for a NaN with other bits (as
  :mod:`promwire.codec.jsonform` writes it); the timestamp is integer
  milliseconds since the epoch, or ``now`` / ``now-30s`` / ``now-1h5m``
  (relative to ``now_ms``; units ms s m h d w y), and defaults to ``now_ms``.
* Label values are double-quoted with ``\\\\``, ``\\"`` and ``\\n`` escapes.
  Prometheus 3's quoted names are accepted (``{"my.metric",...}``).
* ``# HELP`` / ``# TYPE`` / ``# UNIT`` lines become ``MetricMetadata``;
  other ``#`` lines and blank lines are ignored.
* Lines with the same label set form one series (samples in input order);
  labels are sorted by name, as remote write requires.

:func:`parse_text` gives a :class:`~promwire.codec.messages.WriteRequest`;
:func:`format_series` prints series back in the same form. No I/O here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator

from ..errors import DecodeError
from .jsonform import NAN_PREFIX, float_from_text, nan_text
from .messages import (
    STALE_NAN_BITS,
    Label,
    MetricMetadata,
    MetricType,
    Sample,
    TimeSeries,
    WriteRequest,
)
from .wire import bits_double, double_bits

__all__ = [
    "STALE_NAN",
    "TextFormatError",
    "format_labels",
    "format_series",
    "parse_duration",
    "parse_text",
]

#: The stale marker as a Python float (its signalling-NaN bits kept).
STALE_NAN: float = bits_double(STALE_NAN_BITS)

_TYPES = {
    "counter": MetricType.COUNTER,
    "gauge": MetricType.GAUGE,
    "histogram": MetricType.HISTOGRAM,
    "gaugehistogram": MetricType.GAUGEHISTOGRAM,
    "summary": MetricType.SUMMARY,
    "info": MetricType.INFO,
    "stateset": MetricType.STATESET,
    "untyped": MetricType.UNKNOWN,
    "unknown": MetricType.UNKNOWN,
}


class TextFormatError(DecodeError):
    """A line of the text form cannot be parsed."""


def _name_start(c: str) -> bool:
    return c == "_" or c == ":" or ("a" <= c <= "z") or ("A" <= c <= "Z")


def _name_char(c: str) -> bool:
    return _name_start(c) or ("0" <= c <= "9")


class _Line:
    def __init__(self, text: str, lineno: int) -> None:
        self.text = text
        self.pos = 0
        self.lineno = lineno

    def fail(self, what: str) -> TextFormatError:
        return TextFormatError(
            f"line {self.lineno}: {what} at column {self.pos + 1}: {self.text!r}"
        )

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def ws(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.pos += 1

    def name(self) -> str:
        start = self.pos
        if not _name_start(self.peek()):
            raise self.fail("expected a name")
        while self.pos < len(self.text) and _name_char(self.text[self.pos]):
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        if self.peek() != '"':
            raise self.fail('expected a "quoted" string')
        self.pos += 1
        out: list[str] = []
        while True:
            c = self.peek()
            if not c:
                raise self.fail("unterminated string")
            self.pos += 1
            if c == '"':
                return "".join(out)
            if c == "\\":
                e = self.peek()
                self.pos += 1
                if e == "n":
                    out.append("\n")
                elif e in ('"', "\\"):
                    out.append(e)
                else:
                    raise self.fail(f"unknown escape \\{e}")
            else:
                out.append(c)

    def token(self) -> str:
        start = self.pos
        while self.peek() and self.peek() not in (" ", "\t"):
            self.pos += 1
        return self.text[start : self.pos]

    def series(self) -> list[Label]:
        labels: dict[str, str] = {}

        def add(name: str, value: str) -> None:
            if name in labels:
                raise self.fail(f"label {name!r} given twice")
            labels[name] = value

        if self.peek() != "{":
            add("__name__", self.name())
        if self.peek() == "{":
            self.pos += 1
            self.ws()
            while self.peek() != "}":
                if not self.peek():
                    raise self.fail("missing '}'")
                if self.peek() == '"':
                    name = self.quoted()
                    self.ws()
                    if self.peek() in (",", "}"):
                        add("__name__", name)
                    else:
                        self.label_value(name, add)
                else:
                    self.label_value(self.name(), add)
                self.ws()
                if self.peek() == ",":
                    self.pos += 1
                    self.ws()
                elif self.peek() != "}":
                    raise self.fail("expected ',' or '}'")
            self.pos += 1
        # An empty value means "label absent" in Prometheus: drop it.
        return [Label(k, v) for k, v in sorted(labels.items()) if v != ""]

    def label_value(self, name: str, add: Callable[[str, str], None]) -> None:
        self.ws()
        if self.peek() != "=" or self.text[self.pos + 1 : self.pos + 2] == "~":
            raise self.fail("expected '=' (only equality in the text form)")
        self.pos += 1
        self.ws()
        add(name, self.quoted())


_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_UNIT_MS.update({"w": 7 * 86_400_000, "y": 365 * 86_400_000})


def parse_duration(text: str) -> int | None:
    """Milliseconds in a Prometheus-style duration (``1h30m``, ``15s``, ``250ms``),
    or None if ``text`` is not one."""
    total, pos = 0, 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            return None
        total += int(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    return total if text and pos == len(text) else None


def _timestamp(token: str, now_ms: int, line: _Line) -> int:
    if token == "now":
        return now_ms
    if token.startswith(("now-", "now+")):
        ms = parse_duration(token[4:])
        if ms is not None:
            return now_ms - ms if token[3] == "-" else now_ms + ms
    try:
        return int(token)
    except ValueError:
        raise line.fail(
            f"timestamp {token!r} is not integer milliseconds, now or now-<duration>"
        ) from None


def _value(token: str, line: _Line) -> float:
    if token.lower() == "stale":
        return STALE_NAN
    try:
        if token.startswith(NAN_PREFIX):
            return float_from_text(token)
        return float(token)
    except ValueError:
        raise line.fail(f"{token!r} is not a number") from None


def parse_text(text: str, *, now_ms: int) -> WriteRequest:
    """Parse the text form into a WriteRequest (``now_ms`` = default timestamp)."""
    series: dict[tuple[Label, ...], TimeSeries] = {}
    metadata: dict[str, MetricMetadata] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            _comment(stripped, metadata)
            continue
        line = _Line(stripped, lineno)
        labels = line.series()
        if not labels:
            raise line.fail("a series needs at least one non-empty label")
        line.ws()
        if not line.peek():
            raise line.fail("missing value")
        value = _value(line.token(), line)
        line.ws()
        ts = now_ms
        if line.peek():
            ts = _timestamp(line.token(), now_ms, line)
            line.ws()
            if line.peek():
                raise line.fail("unexpected text after the timestamp")
        key = tuple(labels)
        entry = series.get(key)
        if entry is None:
            entry = series[key] = TimeSeries(labels=labels)
        entry.samples.append(Sample(value=value, timestamp=ts))
    return WriteRequest(timeseries=list(series.values()), metadata=list(metadata.values()))


def _comment(line: str, metadata: dict[str, MetricMetadata]) -> None:
    parts = line[1:].strip().split(None, 2)
    if len(parts) < 2 or parts[0] not in ("HELP", "TYPE", "UNIT"):
        return
    kind, name = parts[0], parts[1]
    rest = parts[2] if len(parts) > 2 else ""
    md = metadata.setdefault(name, MetricMetadata(metric_family_name=name))
    if kind == "HELP":
        md.help = rest.replace("\\n", "\n").replace("\\\\", "\\")
    elif kind == "UNIT":
        md.unit = rest
    else:
        md.type = _TYPES.get(rest.strip().lower(), MetricType.UNKNOWN)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_labels(labels: Iterable[Label]) -> str:
    """``name{a="b",...}`` (or ``{...}`` when there is no plain metric name)."""
    name = ""
    rest = []
    for lb in labels:
        if lb.name == "__name__" and not name and lb.value and _is_plain(lb.value):
            name = lb.value
        else:
            rest.append(lb)
    body = ",".join(
        f"{lb.name if _is_plain(lb.name) else chr(34) + _escape(lb.name) + chr(34)}"
        f'="{_escape(lb.value)}"'
        for lb in rest
    )
    if not rest:
        return name or "{}"
    return f"{name}{{{body}}}"


def _is_plain(name: str) -> bool:
    return bool(name) and _name_start(name[0]) and all(_name_char(c) for c in name)


def _format_value(v: float) -> str:
    if math.isnan(v):
        bits = double_bits(v)
        return "stale" if bits == STALE_NAN_BITS else nan_text(v)
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def format_series(series: TimeSeries) -> Iterator[str]:
    """The text-form lines of ``series``' float samples (histograms are skipped)."""
    head = format_labels(series.labels)
    for s in series.samples:
        yield f"{head} {_format_value(s.value)} {s.timestamp}"
