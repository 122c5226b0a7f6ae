"""Run a real Prometheus (Debian's 2.42 package) on loopback for end-to-end tests.

    flags = ["--web.enable-remote-write-receiver"]
    with PrometheusProcess(config_yaml, tmp_path, flags=flags) as prom:
        prom.url  # "http://127.0.0.1:PORT"

Tests that need it use the ``prometheus_bin`` fixture (tests/conftest.py), which
fails, rather than skips, when the binary is missing: CI installs it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

PROMETHEUS = "prometheus"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prometheus_path() -> str | None:
    return shutil.which(PROMETHEUS)


class PrometheusProcess:
    """A Prometheus server on 127.0.0.1 with a temporary data dir."""

    def __init__(
        self,
        config_yaml: str,
        workdir: Path,
        *,
        flags: list[str] | None = None,
        port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = self.workdir / "prometheus.yml"
        self.config_path.write_text(config_yaml.replace("{PORT}", str(self.port)))
        self.flags = flags or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "prometheus.log"

    def start(self) -> PrometheusProcess:
        binary = prometheus_path()
        if binary is None:
            raise RuntimeError("prometheus binary not found (apt-get install prometheus)")
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                *self.flags,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus not ready after 30s: {self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, path: str, **params: Any) -> Any:
        """GET an HTTP API endpoint and return ``data`` of its JSON answer."""
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=10) as r:
            body = json.loads(r.read())
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body}")
        return body["data"]

    def wait_for(self, query: str, timeout: float = 30.0) -> list[Any]:
        """Poll an instant query until it returns a non-empty result."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.api("/api/v1/query", query=query)["result"]
            if result:
                return list(result)
            time.sleep(0.5)
        raise TimeoutError(f"no result for {query!r} after {timeout}s")

    def __enter__(self) -> PrometheusProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
