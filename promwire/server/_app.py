"""What the ASGI and WSGI apps share: configuration, limits, routing answers.

The apps themselves (:mod:`promwire.server.asgi`, :mod:`promwire.server.wsgi`) only do what
their server interface needs: read the body, build the request context, send
the response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .handlers import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_BYTES_IN_FRAME,
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    DEFAULT_MAX_LABEL_BYTES,
    DEFAULT_MAX_LABELS_PER_SERIES,
    DEFAULT_MAX_READ_QUERIES,
    DEFAULT_MAX_READ_SAMPLES,
    DEFAULT_MAX_READ_SECONDS,
    DEFAULT_MAX_READ_SERIES,
    DEFAULT_MAX_SAMPLES,
    DEFAULT_MAX_SERIES,
    Response,
    refused_write_headers,
    text_response,
)


class AppBase:
    """Storage, paths and limits of a remote storage app, and its early answers.

    Keyword limits are those of the handlers: ``max_body_size`` (also enforced
    while reading the body and from ``Content-Length`` before reading),
    ``max_decompressed_size``, ``max_series``, ``max_samples``,
    ``max_labels_per_series``, ``max_label_bytes`` (write),
    ``max_read_queries``, ``max_read_samples``, ``max_read_series``,
    ``max_read_seconds`` and ``max_bytes_in_frame`` (read); see
    :mod:`promwire.server.handlers` for defaults and answers. Set
    ``read_path`` or ``write_path`` to ``None`` to disable that endpoint.
    """

    def __init__(
        self,
        storage: Any,
        write_path: str | None = "/api/v1/write",
        read_path: str | None = "/api/v1/read",
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
        max_series: int = DEFAULT_MAX_SERIES,
        max_samples: int = DEFAULT_MAX_SAMPLES,
        max_labels_per_series: int = DEFAULT_MAX_LABELS_PER_SERIES,
        max_label_bytes: int = DEFAULT_MAX_LABEL_BYTES,
        max_read_queries: int = DEFAULT_MAX_READ_QUERIES,
        max_read_samples: int = DEFAULT_MAX_READ_SAMPLES,
        max_read_series: int = DEFAULT_MAX_READ_SERIES,
        max_read_seconds: float = DEFAULT_MAX_READ_SECONDS,
        max_bytes_in_frame: int = DEFAULT_MAX_BYTES_IN_FRAME,
    ) -> None:
        if max_bytes_in_frame <= 0:
            raise ValueError("max_bytes_in_frame must be > 0")
        self.storage = storage
        self.write_path = write_path
        self.read_path = read_path
        self.max_body_size = max_body_size
        #: keyword arguments for handle_write / handle_read
        self.write_limits: dict[str, int] = {
            "max_body_size": max_body_size,
            "max_decompressed_size": max_decompressed_size,
            "max_series": max_series,
            "max_samples": max_samples,
            "max_labels_per_series": max_labels_per_series,
            "max_label_bytes": max_label_bytes,
        }
        self.read_limits: dict[str, Any] = {
            "max_body_size": max_body_size,
            "max_decompressed_size": max_decompressed_size,
            "max_read_queries": max_read_queries,
            "max_read_samples": max_read_samples,
            "max_read_series": max_read_series,
            "max_read_seconds": max_read_seconds,
            "max_bytes_in_frame": max_bytes_in_frame,
        }

    def route(self, path: str, method: str) -> Response | None:
        """The 404 or 405 answer for a request, or ``None`` when it is for an endpoint."""
        if path not in (self.write_path, self.read_path):
            return text_response(404, f"not found: {path}")
        if method != "POST":
            return text_response(405, f"method {method} not allowed: use POST", [("Allow", "POST")])
        return None

    def too_large(self, path: str, headers: Mapping[str, str]) -> Response:
        """The 413 answer for a body over ``max_body_size``."""
        return text_response(
            413,
            f"request body is over the limit of {self.max_body_size} bytes",
            refused_write_headers(headers) if path == self.write_path else (),
        )
