"""A simple text form of samples, close to Prometheus' exposition format.

One sample per line::

    # HELP http_requests_total Requests served.
    # TYPE http_requests_total counter
    http_requests_total{code="200",method="GET"} 1027 1700000000000
    temperature_celsius 21.5
    {"my.metric", zone="a"} NaN 1700000001000

* ``name{label="value",...} value [timestamp_ms]``; the value is a float
  (``NaN``, ``+Inf``, ``-Inf`` allowed) or ``stale`` for Prometheus' stale
  marker; the timestamp is integer milliseconds and defaults to ``now_ms``.
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
import struct
from collections.abc import Callable, Iterable, Iterator

from ..errors import DecodeError
from .messages import (
    STALE_NAN_BITS,
    Label,
    MetricMetadata,
    MetricType,
    Sample,
    TimeSeries,
    WriteRequest,
)
from .wire import double_bits

__all__ = ["STALE_NAN", "TextFormatError", "format_labels", "format_series", "parse_text"]

#: The stale marker as a Python float (struct keeps the signalling-NaN bits).
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]

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


def _value(token: str, line: _Line) -> float:
    if token.lower() == "stale":
        return STALE_NAN
    try:
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
            tok = line.token()
            try:
                ts = int(tok)
            except ValueError:
                raise line.fail(f"timestamp {tok!r} is not integer milliseconds") from None
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
        return "stale" if double_bits(v) == STALE_NAN_BITS else "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def format_series(series: TimeSeries) -> Iterator[str]:
    """The text-form lines of ``series``' float samples (histograms are skipped)."""
    head = format_labels(series.labels)
    for s in series.samples:
        yield f"{head} {_format_value(s.value)} {s.timestamp}"
