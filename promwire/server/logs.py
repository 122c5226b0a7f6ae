"""Structured log lines of the receiver (logfmt, one line per event).

:func:`configure_logging` sets up the ``promwire`` loggers for ``serve``:
``--log-level`` (debug, info, warning, error) and a logfmt formatter, e.g.::

    ts=2026-12-01T16:00:00.123Z level=warning logger=promwire.http msg="request refused"
      endpoint=/api/v1/write status=401 tenant=team-a client=10.0.0.5:5123 reason="no credentials"

Every answer 4xx or 5xx is one ``warning`` line (``error`` for 5xx) on
``promwire.http`` with the reason and the tenant, never a traceback for a
client error; with ``--access-log`` every request is also an ``info`` line on
``promwire.access``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

__all__ = ["LEVELS", "LogfmtFormatter", "configure_logging", "logfmt"]

LEVELS = ("debug", "info", "warning", "error")
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@+,")


def _value(value: Any) -> str:
    text = str(value)
    if text and all(c in _SAFE for c in text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def logfmt(**fields: Any) -> str:
    """``key=value`` pairs, values quoted when they hold spaces or quotes; ``None`` left out."""
    return " ".join(f"{k}={_value(v)}" for k, v in fields.items() if v is not None)


class LogfmtFormatter(logging.Formatter):
    """Formats a record as ``ts=... level=... logger=... msg=...`` plus its ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = logfmt(
            ts=f"{stamp}.{int(record.msecs):03d}Z",
            level=record.levelname.lower(),
            logger=record.name,
            msg=record.getMessage(),
        )
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + logfmt(**fields)
        if record.exc_info:
            line += " " + logfmt(error=self.formatException(record.exc_info))
        return line


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send the ``promwire`` loggers to ``stream`` (stderr) in logfmt at ``level``."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    logger = logging.getLogger("promwire")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
