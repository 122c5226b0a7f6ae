"""The compliance cases over remote write 1.0: Prometheus 2.42's answer beside promwire's.

Each case of ``tests/compliance_cases.CASES`` (the SHOULD twins send the same
request as their MUST case and are left out) is turned into a 1.0
``WriteRequest`` (``promwire.v2.to_v1``: labels sorted, exemplars and
histograms kept, metadata per metric family; rc.3's created timestamp has no
1.0 field) with 1.0 headers, the suite's header and body damage applied as in
2.0, and sent to a real Prometheus 2.42 (remote write receiver, native
histograms and exemplar storage on) and to ``promwire serve``. The table in
docs/compliance.md must say what each answered: one row per case, or per
group of cases whose name differs only in the value kind (``*``) when all of
them got the same answers.
"""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from promwire import encode, snappy, v2
from tests.compliance_cases import CASES, VALUES, Built, Case, build
from tests.support.prometheus import PrometheusProcess
from tests.support.serve_process import serve_process

DOC = Path(__file__).resolve().parent.parent / "docs" / "compliance.md"
V1_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
FLAGS = [
    "--web.enable-remote-write-receiver",
    "--enable-feature=native-histograms,exemplar-storage",
]

V1_CASES = [c for c in CASES if not c.name.endswith(" returns 204")]


def v1_request(case: Case, now: int) -> Built:
    """The 1.0 form of ``case`` at ``now`` (ms), damaged as the case says."""
    assert case.opts is not None
    request, expected = build(case.opts, now)
    body = snappy.compress(encode(v2.to_v1(request, sort_labels=True)))
    built = Built(dict(V1_HEADERS), body, None, expected)
    return case.mutate(built) if case.mutate is not None else built


def _post(port: int, built: Built) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/api/v1/write", built.body, built.headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _group(name: str) -> str:
    parts = name.split("/")
    if len(parts) == 3 and parts[1] in VALUES:
        parts[1] = "*"
    return "/".join(parts)


def measured_rows(prometheus_port: int, promwire_port: int) -> dict[str, set[tuple[int, int]]]:
    """``{row name: {(Prometheus status, promwire status), ...}}`` for every case."""
    rows: dict[str, set[tuple[int, int]]] = {}
    for case in V1_CASES:
        time.sleep(0.01)  # the suite's ticker: every case at a later "now"
        built = v1_request(case, int(time.time() * 1000))
        answers = (_post(prometheus_port, built), _post(promwire_port, built))
        rows.setdefault(_group(case.name), set()).add(answers)
    return rows


def documented_rows() -> dict[str, tuple[int, int]]:
    """The table of docs/compliance.md between its ``v1-table`` markers."""
    text = DOC.read_text()
    table = text.split("<!-- v1-table: start -->")[1].split("<!-- v1-table: end -->")[0]
    rows = {}
    for line in table.splitlines():
        m = re.fullmatch(r"\| `([^`]+)` \| (\d{3}) \| (\d{3}) \|.*", line.strip())
        if m:
            rows[m[1]] = (int(m[2]), int(m[3]))
    return rows


@pytest.fixture(scope="module")
def peers(
    tmp_path_factory: pytest.TempPathFactory, prometheus_bin: str
) -> Iterator[tuple[int, int]]:
    del prometheus_bin  # fails, never skips, without the binary
    tmp = tmp_path_factory.mktemp("rw1-table")
    config = "global:\n  scrape_interval: 1h\n"
    with (
        PrometheusProcess(config, tmp / "prom", flags=FLAGS) as prom,
        serve_process(tmp / "store.db", None) as served,
    ):
        yield prom.port, served.port


def test_v1_table_matches_what_prometheus_2_42_and_promwire_answered(
    peers: tuple[int, int],
) -> None:
    measured = measured_rows(*peers)
    documented = documented_rows()
    assert set(documented) == set(measured), "the table must list every case (group) once"
    wrong = {
        name: (documented[name], sorted(answers))
        for name, answers in measured.items()
        if answers != {documented[name]}
    }
    assert not wrong, wrong


def test_the_v1_table_covers_the_suite() -> None:
    """Every non-twin case is in a row: 121 cases, the value kinds grouped."""
    assert len(V1_CASES) == 121
    assert {_group(c.name) for c in V1_CASES} == set(documented_rows())
