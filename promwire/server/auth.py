"""Who may talk to the receiver: basic auth (bcrypt) and bearer tokens.

:class:`Authenticator` checks a request's ``Authorization`` header against
the ``basic_auth_users`` of a web configuration file (bcrypt hashes, as
Prometheus) and the tokens of ``--bearer-token-file`` (one per line). A
request passes when either matches; with neither configured every request
passes.

bcrypt is slow on purpose (about 100 ms at cost 10), and Prometheus sends the
same credentials with every request, so a successful check is remembered:
the cache key is a SHA-256 of the user, the stored hash and the password
given, so a valid password is hashed once, a changed one is checked again,
and the cache holds no password. Failed checks are not cached (each costs a
bcrypt run, which also slows guessing). An unknown user is checked against a
fixed hash so that it takes as long as a known one. Tokens are compared with
:func:`hmac.compare_digest` against every configured token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from collections.abc import Iterable, Mapping

__all__ = ["Authenticator", "read_token_file"]

# bcrypt of a random string: what an unknown user's password is checked against.
_DUMMY_HASH = b"$2b$10$4Z0xB3o2G1mJ0q3mX9pY0u0mJ7m3o0cQ2N8bT9vV7yq3yC2oE6xWa"
#: Most remembered successful checks; past it the cache is cleared.
CACHE_SIZE = 1024


def read_token_file(path: str) -> tuple[str, ...]:
    """The tokens of a bearer-token file: one per line, blank lines and ``#`` comments skipped."""
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    tokens = tuple(line for line in lines if line and not line.startswith("#"))
    if not tokens:
        raise ValueError(f"{path} holds no token")
    return tokens


class Authenticator:
    """Checks ``Authorization`` headers; see the module docstring."""

    def __init__(
        self, users: Mapping[str, bytes] | None = None, tokens: Iterable[str] = ()
    ) -> None:
        self.users = dict(users or {})
        self.tokens = tuple(t.encode() for t in tokens)
        self._cache: set[bytes] = set()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether any credential is required."""
        return bool(self.users or self.tokens)

    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of a 401."""
        return 'Basic realm="promwire"' if self.users else 'Bearer realm="promwire"'

    def check(self, authorization: str | None) -> str | None:
        """``None`` when the request may pass, else why not (for the log, never the answer)."""
        if not self.enabled:
            return None
        if not authorization:
            return "no credentials"
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and self.users:
            return self._check_basic(credentials.strip())
        if scheme == "bearer" and self.tokens:
            return self._check_token(credentials.strip().encode())
        return f"{scheme[:20]} credentials not accepted"

    def _check_token(self, given: bytes) -> str | None:
        ok = False
        for token in self.tokens:  # no early exit: the time does not tell which matched
            ok |= hmac.compare_digest(token, given)
        return None if ok else "wrong bearer token"

    def remembered(self, authorization: str | None) -> bool:
        """Whether these basic credentials passed before (a check without bcrypt:
        an async server needs no thread for them)."""
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        found = self._key(credentials.strip())
        if found is None or found[1] is None:
            return False
        with self._lock:
            return found[0] in self._cache

    def _key(self, credentials: str) -> tuple[bytes, bytes | None, str, str] | None:
        """(cache key, stored hash, user, password) of basic credentials, ``None`` if malformed."""
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        if not sep:
            return None
        hashed = self.users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode(), hashed or b"", password.encode()))).digest()
        return key, hashed, user, password

    def _check_basic(self, credentials: str) -> str | None:
        found = self._key(credentials)
        if found is None:
            return "malformed basic credentials"
        key, hashed, _, password = found
        with self._lock:
            if hashed is not None and key in self._cache:
                return None
        import bcrypt  # the serve extra; only needed once basic_auth_users is configured

        try:
            ok = bcrypt.checkpw(password.encode(), hashed or _DUMMY_HASH)
        except ValueError:
            ok = False
        if hashed is None or not ok:
            return "wrong user or password"
        with self._lock:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache.add(key)
        return None
