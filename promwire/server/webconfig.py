"""Prometheus' web configuration file (``--web.config.file``) for ``serve --web-config``.

The format is that of prometheus/exporter-toolkit, so operators reuse the file
they already give Prometheus or an exporter::

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      client_ca_file: ca.crt         # optional: verify client certificates
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12             # TLS10..TLS13 (default TLS12)
      max_version: TLS13
    basic_auth_users:
      alice: $2y$10$...              # bcrypt hashes (htpasswd -nBC 10 alice)

Semantics as exporter-toolkit's: TLS is on when any of ``cert_file``,
``key_file``, ``client_ca_file`` or ``client_auth_type`` is set, and then both
``cert_file`` and ``key_file`` are required; a ``client_ca_file`` with
``client_auth_type`` empty or ``NoClientCert`` is an error. Unknown keys are
an error (the Go side parses strictly). ``client_auth_type`` values
``RequestClientCert`` and ``RequireAnyClientCert`` ask for a client
certificate without verifying it, which Python's ``ssl`` module cannot do:
they are refused with a message instead of being quietly weakened or
strengthened. ``cert``/``key``/``client_ca`` inline PEM, ``cipher_suites``,
``curve_preferences``, ``client_allowed_sans``, ``http_server_config`` and
``rate_limit`` are not supported yet and refused by name.

Needs PyYAML (the ``serve`` extra); the file is read once at start-up.
"""

from __future__ import annotations

import importlib
import os
import ssl
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TLSSettings", "WebConfig", "WebConfigError", "load_web_config"]


class WebConfigError(ValueError):
    """The web configuration file is unreadable or invalid (the message says why)."""


_CLIENT_AUTH = {
    "": ssl.CERT_NONE,
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNVERIFIED = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_TLS_KEYS = {
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
}
_UNSUPPORTED_TLS_KEYS = {"cert", "key", "client_ca", "cipher_suites", "curve_preferences"}
_UNSUPPORTED_TLS_KEYS |= {"client_allowed_sans"}
_TOP_KEYS = {"tls_server_config", "basic_auth_users"}
_UNSUPPORTED_TOP_KEYS = {"http_server_config", "rate_limit"}


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """``tls_server_config`` with paths made absolute."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    client_auth: ssl.VerifyMode = ssl.CERT_NONE
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3

    def context(self) -> ssl.SSLContext:
        """A server-side ``ssl.SSLContext`` with these settings (loads the files)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = self.min_version
        ctx.maximum_version = self.max_version
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file is not None:
                ctx.load_verify_locations(cafile=self.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"cannot load TLS files: {exc}") from None
        ctx.verify_mode = self.client_auth
        return ctx


@dataclass(frozen=True, slots=True)
class WebConfig:
    """A parsed web configuration: TLS settings (``None``: plain HTTP) and the
    basic-auth users with their bcrypt hashes (empty: no basic auth)."""

    tls: TLSSettings | None = None
    users: dict[str, bytes] = field(default_factory=dict)


def _strings(section: Any, where: str) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise WebConfigError(f"{where} must be a mapping")
    return section


def _tls(section: dict[str, Any], base: str) -> TLSSettings | None:
    unknown = set(section) - _TLS_KEYS
    for key in sorted(unknown):
        if key in _UNSUPPORTED_TLS_KEYS:
            raise WebConfigError(f"tls_server_config.{key} is not supported by promwire")
        raise WebConfigError(f"unknown key tls_server_config.{key}")
    cert = str(section.get("cert_file") or "")
    key = str(section.get("key_file") or "")
    ca = str(section.get("client_ca_file") or "")
    auth = str(section.get("client_auth_type") or "")
    if not (cert or key or ca or auth):
        return None  # exporter-toolkit: no TLS setting at all means plain HTTP
    if not cert:
        raise WebConfigError("tls_server_config: missing cert_file")
    if not key:
        raise WebConfigError("tls_server_config: missing key_file")
    if auth in _UNVERIFIED:
        raise WebConfigError(
            f"client_auth_type {auth} (a client certificate that is not verified) is not "
            "supported: use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
        )
    if auth not in _CLIENT_AUTH:
        raise WebConfigError(f"invalid client_auth_type: {auth[:60]}")
    mode = _CLIENT_AUTH[auth]
    if ca and mode == ssl.CERT_NONE:
        raise WebConfigError("client_ca_file is set without a client_auth_type")
    if mode != ssl.CERT_NONE and not ca:
        raise WebConfigError(f"client_auth_type {auth} needs client_ca_file")
    versions = []
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        value = str(section.get(name) or default)
        if value not in _VERSIONS:
            raise WebConfigError(f"unknown TLS version {value[:20]!r} in {name}")
        versions.append(_VERSIONS[value])
    return TLSSettings(
        cert_file=os.path.join(base, cert),
        key_file=os.path.join(base, key),
        client_ca_file=os.path.join(base, ca) if ca else None,
        client_auth=mode,
        min_version=versions[0],
        max_version=versions[1],
    )


def _users(section: dict[str, Any]) -> dict[str, bytes]:
    users = {}
    for name, hashed in section.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise WebConfigError(f"basic_auth_users.{str(name)[:60]}: not a bcrypt hash")
        users[str(name)] = hashed.encode()
    return users


def load_web_config(path: str) -> WebConfig:
    """Parse the file at ``path``; :class:`WebConfigError` saying what is wrong."""
    try:
        yaml: Any = importlib.import_module("yaml")  # no stubs needed: used in four lines
    except ImportError:  # pragma: no cover - the serve extra installs it
        raise WebConfigError("--web-config needs PyYAML: pip install 'promwire[serve]'") from None
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise WebConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{path} is not valid YAML: {str(exc)[:200]}") from None
    top = _strings(data, "the web configuration")
    for key in sorted(set(top) - _TOP_KEYS):
        if key in _UNSUPPORTED_TOP_KEYS:
            raise WebConfigError(f"{key} is not supported by promwire")
        raise WebConfigError(f"unknown key {str(key)[:60]} in {path}")
    base = os.path.dirname(os.path.abspath(path))
    config = WebConfig(
        tls=_tls(_strings(top.get("tls_server_config"), "tls_server_config"), base),
        users=_users(_strings(top.get("basic_auth_users"), "basic_auth_users")),
    )
    if config.tls is not None:
        config.tls.context()  # fail at start-up, not at the first connection
    return config
