"""promwire's error family.

Every error promwire raises on bad input derives from :class:`PromwireError`
and carries the HTTP status a receiver should answer with (``status``), so a
handler turns any of them into a response without a lookup table::

    PromwireError                      (base, status 500)
    ├── DecodeError(ValueError)        bytes are not a valid message   -> 400
    │   ├── SnappyError                bad or framed snappy            -> 400
    │   ├── FrameError                 streamed-read framing           -> 400
    │   │   ├── TruncatedStreamError   EOF inside a frame
    │   │   └── ChecksumError          CRC-32C mismatch
    │   └── UnsupportedChunkEncoding   chunk type promwire cannot decode
    ├── LimitExceeded(ValueError)      a configured limit was hit      -> 413 or 400
    ├── UnsupportedMediaType           Content-Type / -Encoding        -> 415
    ├── MethodNotAllowed               not POST                        -> 405
    ├── EncodeError(ValueError)        a message cannot be encoded     -> 500
    └── StorageError                   storage failed, retry           -> 500
        ├── StorageRejected            storage refuses, do not retry   -> 400
        └── StorageOverloaded          slow down, retry later          -> 429

Storage implementations raise the ``Storage*`` classes; everything else is
raised by promwire itself.
"""

from __future__ import annotations

__all__ = [
    "ChecksumError",
    "DecodeError",
    "EncodeError",
    "FrameError",
    "LimitExceeded",
    "MethodNotAllowed",
    "PromwireError",
    "SnappyError",
    "StorageError",
    "StorageOverloaded",
    "StorageRejected",
    "TruncatedStreamError",
    "UnsupportedChunkEncoding",
    "UnsupportedMediaType",
]


class PromwireError(Exception):
    """Base of every error promwire raises.

    ``status`` is the HTTP status a receiver answers with when this error
    ends a request. Subclasses set a class default; a single instance may
    override it (``LimitExceeded`` is 413 for a body, 400 for a declared size).
    """

    status: int = 500

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class DecodeError(PromwireError, ValueError):
    """The bytes are not a valid encoding of the expected message."""

    status = 400


class SnappyError(DecodeError):
    """The body is not a valid snappy *block* (raw) stream."""


class FrameError(DecodeError):
    """A streamed remote-read response is malformed."""


class TruncatedStreamError(FrameError):
    """The stream ended inside a frame."""


class ChecksumError(FrameError):
    """A frame's CRC-32C does not match its message."""


class UnsupportedChunkEncoding(DecodeError):
    """A chunk uses an encoding promwire does not decode (its bytes stay usable)."""


class LimitExceeded(PromwireError, ValueError):
    """A configured size or count limit was exceeded.

    ``status`` is 413 when the request body itself is too large and 400 when
    the limit concerns what the body declares or contains.
    """

    status = 413


class UnsupportedMediaType(PromwireError):
    """Content-Type or Content-Encoding not supported by this endpoint."""

    status = 415


class MethodNotAllowed(PromwireError):
    """The endpoint only accepts POST."""

    status = 405


class EncodeError(PromwireError, ValueError):
    """A message holds a value its wire type cannot carry."""

    status = 500


class StorageError(PromwireError):
    """The storage failed; nothing was kept and the sender should retry."""

    status = 500


class StorageRejected(StorageError):
    """The storage refuses the data for good (e.g. out of order); do not retry."""

    status = 400


class StorageOverloaded(StorageError):
    """The storage is overloaded; retry after ``retry_after`` seconds if given."""

    status = 429

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
