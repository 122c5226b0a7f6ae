"""A ZooKeeper and a 2-shard x 2-replica ClickHouse cluster as plain processes, for tests.

    with ClickHouseCluster(tmp_dir) as cluster:
        cluster.nodes[0].http_port      # shard 1 replica 1
        cluster.stop_node(1); cluster.start_node(1)

Every process listens on 127.0.0.1 on free ports, keeps its files under the
given directory and is stopped (SIGTERM, then SIGKILL) at the end.
ClickHouse starts only once ZooKeeper's ``srvr`` says ``Mode: standalone``:
18.16 crashes at startup against a ZooKeeper that answers ``ruok`` but is not
serving yet. :func:`node_config` writes the ``config.xml`` a node runs with
(docs/scaling.md shows the same files).
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.support.prometheus import free_port

CLUSTER = "promwire"
#: The same shards, first replicas only (a cluster without replication).
UNREPLICATED = "promwire_unreplicated"
ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"
ZOOKEEPER_CONF = "/etc/zookeeper/conf"


@dataclass
class Node:
    """One ClickHouse server: shard and replica numbers (from 1), its ports and files."""

    shard: int
    replica: int
    http_port: int
    tcp_port: int
    interserver_port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


def node_config(node: Node, nodes: list[Node], zk_port: int) -> str:
    """The ``config.xml`` of ``node`` in a cluster of ``nodes`` named ``promwire``
    (and ``promwire_unreplicated``: the first replica of each shard only)."""
    shards: dict[int, list[Node]] = {}
    for n in nodes:
        shards.setdefault(n.shard, []).append(n)

    def shard_list(per_shard: int) -> str:
        return "".join(
            "\n      <shard>\n        <internal_replication>true</internal_replication>"
            + "".join(
                f"\n        <replica><host>127.0.0.1</host><port>{r.tcp_port}</port></replica>"
                for r in replicas[:per_shard]
            )
            + "\n      </shard>"
            for _, replicas in sorted(shards.items())
        )

    remote = shard_list(len(nodes))
    first_replicas = shard_list(1)
    d = node.dir
    return f"""<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog>
    <console>0</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{node.http_port}</http_port>
  <tcp_port>{node.tcp_port}</tcp_port>
  <interserver_http_port>{node.interserver_port}</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <remote_servers>
    <{CLUSTER}>{remote}
    </{CLUSTER}>
    <{UNREPLICATED}>{first_replicas}
    </{UNREPLICATED}>
  </remote_servers>
  <zookeeper><node><host>127.0.0.1</host><port>{zk_port}</port></node>
    <session_timeout_ms>6000</session_timeout_ms></zookeeper>
  <macros><shard>{node.shard:02d}</shard><replica>r{node.replica}</replica></macros>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
</yandex>
"""


def zookeeper_config(data_dir: Path, port: int) -> str:
    """The ``zoo.cfg`` of the standalone ZooKeeper."""
    return (
        f"tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={data_dir}\n"
        f"clientPort={port}\nclientPortAddress=127.0.0.1\n"
        "admin.enableServer=false\n4lw.commands.whitelist=srvr,ruok\n"
        "maxSessionTimeout=60000\n"
    )


def example_nodes() -> list[Node]:
    """The 2 x 2 cluster docs/scaling.md shows: fixed ports, files under /srv."""
    return [
        Node(s, r, 8123 + 10 * k, 9000 + 10 * k, 9009 + 10 * k, Path(f"/srv/ch-s{s}r{r}"))
        for k, (s, r) in enumerate(((1, 1), (1, 2), (2, 1), (2, 2)))
    ]


USERS_XML = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
"""


class PortTaken(RuntimeError):
    """A server could not bind its port (another process took it first)."""


def _distinct_ports(n: int, avoid: set[int]) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in avoid and port not in ports:
            ports.append(port)
    return ports


def _four_letter(port: int, word: bytes) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(word)
            chunks = []
            while data := s.recv(4096):
                chunks.append(data)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def clickhouse_query(node: Node, sql: str, timeout: float = 30, **settings: str) -> str:
    """Run ``sql`` on ``node`` over HTTP with ClickHouse ``settings``; its text
    answer (raises on an error status)."""
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=timeout)
    try:
        conn.request("POST", "/?" + urllib.parse.urlencode(settings), sql.encode())
        resp = conn.getresponse()
        body = resp.read().decode()
        if resp.status != 200:
            raise RuntimeError(f"clickhouse {node.http_port}: {resp.status} {body[:500]}")
        return body
    finally:
        conn.close()


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@dataclass
class ClickHouseCluster:
    """ZooKeeper plus ``shards`` x ``replicas`` ClickHouse servers under ``root``."""

    root: Path
    shards: int = 2
    replicas: int = 2
    zk_port: int = 0
    nodes: list[Node] = field(default_factory=list)
    zk: subprocess.Popen[bytes] | None = None
    _base: Path = Path()

    def __enter__(self) -> ClickHouseCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # A free port can be taken by another process before a server binds it:
        # then everything starts again on fresh ports (a few attempts).
        for attempt in range(4):
            self._base = self.root / f"try{attempt}"
            try:
                self._start_zookeeper()
                self._start_nodes()
                return
            except PortTaken:
                self.stop()
                if attempt == 3:
                    raise

    def _start_nodes(self) -> None:
        ports = _distinct_ports(3 * self.shards * self.replicas, avoid={self.zk_port})
        self.nodes = [
            Node(s, r, ports.pop(), ports.pop(), ports.pop(), self._base / f"ch-s{s}r{r}")
            for s in range(1, self.shards + 1)
            for r in range(1, self.replicas + 1)
        ]
        for node in self.nodes:
            (node.dir / "data").mkdir(parents=True, exist_ok=True)
            (node.dir / "users.xml").write_text(USERS_XML)
            (node.dir / "config.xml").write_text(node_config(node, self.nodes, self.zk_port))
        for i in range(len(self.nodes)):
            self.start_node(i, wait=False)
        for i in range(len(self.nodes)):
            self.wait_node(i)

    def _start_zookeeper(self) -> None:
        self.zk_port = free_port()
        zk_dir = self._base / "zookeeper"
        (zk_dir / "data").mkdir(parents=True, exist_ok=True)
        cfg = zk_dir / "zoo.cfg"
        cfg.write_text(zookeeper_config(zk_dir / "data", self.zk_port))
        java = shutil.which("java") or "java"
        log = open(zk_dir / "zookeeper.log", "wb")  # noqa: SIM115 - closed with the process
        self.zk = subprocess.Popen(
            [
                java,
                "-Xmx256m",
                "-Dzookeeper.log.dir=" + str(zk_dir),
                "-cp",
                f"{ZOOKEEPER_CONF}:{ZOOKEEPER_JAR}",
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                str(cfg),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=zk_dir,
        )
        log.close()
        deadline = time.monotonic() + 60
        while "Mode: standalone" not in _four_letter(self.zk_port, b"srvr"):
            if self.zk.poll() is not None:
                text = (zk_dir / "zookeeper.log").read_text()
                if "Address already in use" in text:
                    raise PortTaken(text[-500:])
                raise RuntimeError(f"zookeeper exited: {text[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("zookeeper did not start")
            time.sleep(0.1)

    def start_node(self, i: int, *, wait: bool = True) -> None:
        """Start (or restart) node ``i``; wait until it answers unless ``wait`` is false."""
        node = self.nodes[i]
        log = open(node.dir / "stdout.log", "ab")  # noqa: SIM115 - closed with the process
        node.proc = subprocess.Popen(
            ["clickhouse-server", f"--config-file={node.dir / 'config.xml'}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=node.dir,
            env={**os.environ, "TZ": "UTC"},
        )
        log.close()
        if wait:
            self.wait_node(i)

    def wait_node(self, i: int) -> None:
        node = self.nodes[i]
        deadline = time.monotonic() + 60
        while True:
            assert node.proc is not None
            if node.proc.poll() is not None:
                errors = (node.dir / "error.log").read_text()[-2000:]
                if "Address already in use" in errors:
                    raise PortTaken(errors)
                raise RuntimeError(f"clickhouse s{node.shard}r{node.replica} exited: {errors}")
            try:
                # Answering is not enough: 18.16 can crash in its ZooKeeper client
                # when the first ZooKeeper work (a DDL) races the session set-up,
                # so wait until a ZooKeeper read succeeds through it.
                sql = "SELECT count() > 0 FROM system.zookeeper WHERE path = '/'"
                if clickhouse_query(node, sql, timeout=2).strip() == "1":
                    return
            except (OSError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"clickhouse s{node.shard}r{node.replica} did not start")
            time.sleep(0.05)

    def stop_node(self, i: int, *, sig: int = signal.SIGKILL) -> None:
        """Stop node ``i`` (killed by default: the failure under test)."""
        _stop(self.nodes[i].proc, sig)

    def store_url(self, i: int, database: str) -> str:
        """The ``--store`` URL of ``promwire serve`` pointing at node ``i``."""
        query = urllib.parse.urlencode({"cluster": CLUSTER})
        return f"clickhouse://127.0.0.1:{self.nodes[i].http_port}/{database}?{query}"

    def stop(self) -> None:
        """Kill every process (the files are thrown away: no clean shutdown needed,
        and 18.16 takes seconds over one)."""
        procs = [n.proc for n in self.nodes if n.proc is not None] + [self.zk] * (
            self.zk is not None
        )
        for proc in procs:
            if proc is not None and proc.poll() is None:
                proc.kill()
        for proc in procs:
            if proc is not None:
                proc.wait(10)
