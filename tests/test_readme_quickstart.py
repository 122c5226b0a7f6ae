"""README's first command works on a fresh machine.

``pip install -e . && promwire serve`` is run in a new virtual environment
holding nothing but what the package declares as its dependencies (no extras:
so ``serve`` runs on the standard library's server), with ``--db`` and
``--listen`` added so the test neither writes into the work tree nor needs
port 9201. A remote write to it is answered 204 and read back.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from promwire import (
    Label,
    LabelMatcher,
    MatchType,
    Query,
    ReadRequest,
    ReadResponse,
    Sample,
    TimeSeries,
    WriteRequest,
    decode,
    snappy,
)
from tests.support.serve_process import post, serve_process

ROOT = Path(__file__).resolve().parent.parent


def _first_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, "README.md starts with no sh block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_serve_and_test_commands() -> None:
    assert _first_commands() == ["pip install -e . && promwire serve", "./scripts/test"]


def test_pip_install_then_serve_in_a_new_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-e", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {line.split("==")[0].lower() for line in listed.split() if "==" in line}
    assert names - {"pip", "setuptools", "wheel"} == {"promwire", "cramjam"}, names

    command = (str(venv / "bin" / "promwire"), "serve")
    with serve_process(tmp_path / "m.db", None, command=command, cwd=tmp_path) as served:
        port, lines = served.port, served.lines
        assert any("(wsgiref)" in line for line in lines), lines  # no uvicorn without [serve]
        now = int(time.time() * 1000)
        labels = [Label("__name__", "quickstart"), Label("job", "readme")]
        write = WriteRequest([TimeSeries(labels, [Sample(1.5, now)])])
        assert post(port, "/api/v1/write", write)[0] == 204
        query = Query(now - 60_000, now + 1, [LabelMatcher(MatchType.EQ, "job", "readme")])
        status, body = post(port, "/api/v1/read", ReadRequest([query]))
        assert status == 200
        answer = decode(ReadResponse, snappy.decompress(body))
        assert answer.results[0].timeseries[0].samples == [Sample(1.5, now)]
