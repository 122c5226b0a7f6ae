"""Every code block in README.md and docs/*.md runs as written.

Rules (what a block in the docs may rely on):

* A fenced block must name its language. ```python blocks run; ```sh, ```bash
  and ```console blocks run their commands; any other language (```text for
  output and synopses, ```yaml, ...) is not run.
* A block is skipped only when the line directly above its fence is
  ``<!-- doc-test: skip (reason) -->``; a marker without a reason, or not
  directly above a fence, fails the test.
* Each file runs in a fresh temporary directory, its blocks in page order.
  The Python blocks of one file run in one interpreter, one after the other,
  like a session: a block may use names defined by earlier blocks of the same
  page. Shell commands run with bash in the same directory, so files made by
  one block are there for the next. Nothing is shared between pages.
* The directory holds ``capture.bin``, a remote-write body a real
  Prometheus 2.42 sent (../shared/fixtures/prometheus-2.42/rw_sender/
  A_03_with_exemplars_and_native_histogram.bin); the pages say so where they
  use it.
* ```console blocks: lines starting with ``$ `` are commands (a heredoc's
  lines and ``\\`` continuations belong to the command), other lines are the
  output shown. A command must exit 0, or with the status a following
  ``$ echo $?`` shows. Output lines shown that start with a letter, digit or
  ``#`` and hold no ``...``/``…`` must each equal a line of the real output,
  where numbers of 10 or more digits (timestamps) match any number. JSON
  lines and elided lines are not compared.
* Peers: a page that mentions ``127.0.0.1:9090`` gets a fresh, empty
  Prometheus 2.42 (remote write receiver on, no scrape jobs) and every
  ``127.0.0.1:9090`` in its blocks and shown output is replaced by that
  Prometheus' address; ``127.0.0.1:9201`` is replaced by another free port.
  The replacement keeps the test from depending on those ports being free.
* ``promwire serve ...`` and ``python -m promwire.server.runner ...`` never
  end by themselves: they are started in the background; the test waits until
  the server answers on its address (a GET of /api/v1/write must get 405), and
  at the end of the page stops it with SIGINT (Ctrl-C), expects exit status
  0 and then compares the output it showed.

The test suite itself runs in a fresh virtual environment where ./scripts/test
did ``pip install -e '.[test,...]'``; the README's install line is therefore
marked skip rather than installing promwire a second time.
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from tests.support.prometheus import PrometheusProcess, free_port

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CAPTURE = FIXTURES / "rw_sender" / "A_03_with_exemplars_and_native_histogram.bin"

RUN_LANGUAGES = {"python", "sh", "bash", "console"}
FENCE = re.compile(r"^(\s*)```(.*)$")
MARKER = re.compile(r"^\s*<!--\s*doc-test:")
SKIP = re.compile(r"^\s*<!-- doc-test: skip \((?P<reason>[^)].*)\) -->\s*$")
SERVER = re.compile(r"^(promwire serve|python3? -m promwire\.server\.runner)\b")
HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")
DEFAULT_PORTS = {"9090": "prometheus", "9201": "receiver"}
TIMEOUT = 60.0


@dataclass
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    skip: str | None  # the reason, when marked


def parse_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a page; AssertionError for a bad fence or marker."""
    lines = path.read_text(encoding="utf-8").splitlines()
    name = path.relative_to(REPO).as_posix()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if MARKER.match(line):
            m = SKIP.match(line)
            assert m and m.group("reason").strip(), (
                f"{name}:{i + 1}: expected '<!-- doc-test: skip (reason) -->', got {line.strip()!r}"
            )
            after = lines[i + 1] if i + 1 < len(lines) else ""
            assert FENCE.match(after), f"{name}:{i + 1}: a doc-test marker must precede a fence"
        fence = FENCE.match(line)
        if not fence:
            i += 1
            continue
        indent, info = fence.group(1), fence.group(2).strip()
        language = info.split()[0] if info else ""
        assert language, (
            f"{name}:{i + 1}: a code block needs a language (```text for output or a synopsis)"
        )
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        assert end < len(lines), f"{name}:{i + 1}: unclosed code block"
        body = [ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines[i + 1 : end]]
        above = SKIP.match(lines[i - 1]) if i > 0 else None
        blocks.append(
            Block(
                page=name,
                line=i + 1,
                language=language,
                text="\n".join(body) + "\n",
                skip=above.group("reason").strip() if above else None,
            )
        )
        i = end + 1
    return blocks


# ------------------------------------------------------------------ commands


@dataclass
class Command:
    text: str
    output: list[str] = field(default_factory=list)


def parse_commands(block: Block) -> list[Command]:
    """The commands of a shell block, with the output a console block shows."""
    commands: list[Command] = []
    lines = block.text.splitlines()
    console = block.language == "console"
    i = 0
    while i < len(lines):
        line = lines[i]
        if console and not line.startswith("$ "):
            if line.strip():
                assert commands, f"{block.page}:{block.line}: output before any '$ ' command"
                commands[-1].output.append(line)
            i += 1
            continue
        text = line[2:] if console else line
        if not console and (not text.strip() or text.lstrip().startswith("#")):
            i += 1
            continue
        i += 1
        while text.endswith("\\") and i < len(lines):
            text += "\n" + lines[i]
            i += 1
        heredoc = HEREDOC.search(text)
        if heredoc:
            while i < len(lines):
                text += "\n" + lines[i]
                i += 1
                if lines[i - 1].strip() == heredoc.group(1):
                    break
        commands.append(Command(text))
    return commands


def output_pattern(line: str) -> re.Pattern[str] | None:
    """The regex an output line shown must match, or None if it is not compared."""
    shown = line.rstrip()
    if not shown or "..." in shown or "…" in shown:
        return None
    if shown[0].isspace() or shown[0] in '{}[]"':
        return None
    escaped = re.escape(shown)
    return re.compile(re.sub(r"\d{10,}", r"\\d+", escaped))


def check_output(where: str, shown: list[str], actual: str) -> None:
    real = [ln.rstrip() for ln in actual.splitlines()]
    for line in shown:
        pattern = output_pattern(line)
        if pattern is not None and not any(pattern.fullmatch(r) for r in real):
            raise AssertionError(f"{where}: output line {line!r} not in:\n{actual}")


# -------------------------------------------------------------- one page's run


class PythonSession:
    """One interpreter for a page's Python blocks (names carry over, like a REPL)."""

    WORKER = r"""
import contextlib, io, json, sys, traceback
namespace = {"__name__": "__main__"}
channel = sys.stdout
for request in sys.stdin:
    code = json.loads(request)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            exec(compile(code["source"], code["name"], "exec"), namespace)
        answer = {"ok": True, "output": buf.getvalue()}
    except BaseException:
        answer = {"ok": False, "output": buf.getvalue(), "error": traceback.format_exc()}
    channel.write(json.dumps(answer) + "\n")
    channel.flush()
"""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.log = cwd / "python-session.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log.open("wb"),
            cwd=cwd,
            env=env,
            text=True,
        )

    def run(self, name: str, source: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"name": name, "source": source}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        if not ready:
            self.close()
            raise AssertionError(f"{name}: no end after {TIMEOUT:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"{name}: the interpreter died: {self.log.read_text()[-2000:]}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise AssertionError(f"{name} failed:\n{answer['error']}\noutput:\n{answer['output']}")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Server:
    where: str
    proc: subprocess.Popen[bytes]
    log: Path
    shown: list[str]


class PageRun:
    def __init__(self, page: str, cwd: Path, ports: dict[str, str]) -> None:
        self.page = page
        self.cwd = cwd
        self.ports = ports  # "127.0.0.1:9090" -> "127.0.0.1:PORT"
        self.env = dict(os.environ)
        self.env.pop("PROMWIRE_SNAPPY", None)
        self.env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + self.env["PATH"]
        self.env["PYTHONUNBUFFERED"] = "1"
        self.python: PythonSession | None = None
        self.servers: list[Server] = []

    def mapped(self, text: str) -> str:
        for default, actual in self.ports.items():
            text = text.replace(default, actual)
        return text

    def run_block(self, block: Block) -> None:
        where = f"{block.page}:{block.line}"
        if block.language == "python":
            if self.python is None:
                self.python = PythonSession(self.cwd, self.env)
            self.python.run(where, self.mapped(block.text))
            return
        commands = parse_commands(block)
        assert commands, f"{where}: a shell block without commands"
        for n, command in enumerate(commands):
            if command.text.strip() == "echo $?":
                continue  # checked with the command before it
            expected = 0
            following = commands[n + 1] if n + 1 < len(commands) else None
            if following is not None and following.text.strip() == "echo $?":
                expected = int(following.output[0])
            self.run_command(where, command, expected)

    def run_command(self, where: str, command: Command, expected: int) -> None:
        text = self.mapped(command.text)
        shown = [self.mapped(line) for line in command.output]
        if SERVER.match(text):
            self.start_server(where, text, shown)
            return
        proc = subprocess.run(
            ["bash", "-c", text],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        both = proc.stdout + proc.stderr
        assert proc.returncode == expected, (
            f"{where}: `{text}` exited {proc.returncode}, the page shows {expected}:\n{both}"
        )
        assert "Traceback" not in proc.stderr, f"{where}: `{text}`:\n{proc.stderr}"
        check_output(f"{where}: `{text}`", shown, both)

    def start_server(self, where: str, text: str, shown: list[str]) -> None:
        words = shlex.split(text, comments=True)
        listen = "127.0.0.1:9201"
        if "--listen" in words:
            listen = words[words.index("--listen") + 1]
        host, _, port = listen.rpartition(":")
        log = self.cwd / f"server-{len(self.servers)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["bash", "-c", f"exec {text}"],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = Server(where, proc, log, shown)
        self.servers.append(server)
        url = f"http://{host}:{port}/api/v1/write"
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{where}: `{text}` exited: {log.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=2)
            except urllib.error.HTTPError as exc:
                assert exc.code == 405, f"{where}: GET {url} answered {exc.code}"
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{where}: `{text}` not answering: {log.read_text()}")
            time.sleep(0.1)

    def close(self) -> None:
        if self.python is not None:
            self.python.close()
        problems = []
        for server in self.servers:
            server.proc.send_signal(signal.SIGINT)
            try:
                status = server.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()
                problems.append(f"{server.where}: the server did not stop on SIGINT")
                continue
            output = server.log.read_text()
            if status != 0:
                problems.append(f"{server.where}: the server exited {status}:\n{output}")
            try:
                check_output(server.where, server.shown, output)
            except AssertionError as exc:
                problems.append(str(exc))
        assert not problems, "\n".join(problems)


PROMETHEUS_CONFIG = "global:\n  scrape_interval: 1m\n"


@pytest.fixture
def page_dir(tmp_path: Path) -> Path:
    shutil.copyfile(CAPTURE, tmp_path / "capture.bin")
    return tmp_path


def _runnable(path: Path) -> list[Block]:
    return [b for b in parse_blocks(path) if b.language in RUN_LANGUAGES and b.skip is None]


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_page_runs_as_written(path: Path, page_dir: Path, prometheus_bin: str) -> None:
    blocks = _runnable(path)
    text = path.read_text(encoding="utf-8")
    ports: dict[str, str] = {}
    prometheus: PrometheusProcess | None = None
    if "127.0.0.1:9090" in text:
        prometheus = PrometheusProcess(
            PROMETHEUS_CONFIG,
            page_dir / "prometheus",
            flags=[
                "--web.enable-remote-write-receiver",
                "--enable-feature=native-histograms,exemplar-storage",
            ],
        ).start()
        ports["127.0.0.1:9090"] = f"127.0.0.1:{prometheus.port}"
    if "127.0.0.1:9201" in text:
        ports["127.0.0.1:9201"] = f"127.0.0.1:{free_port()}"
    run = PageRun(path.relative_to(REPO).as_posix(), page_dir, ports)
    try:
        for block in blocks:
            run.run_block(block)
    finally:
        try:
            run.close()
        finally:
            if prometheus is not None:
                prometheus.stop()


# ------------------------------------------------------- the rules themselves


def _write(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text)
    return page


def test_skip_marker_needs_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    good = "<!-- doc-test: skip (needs a GPU) -->\n```sh\nnvidia-smi\n```\n"
    (block,) = parse_blocks(_write(tmp_path, good))
    assert block.skip == "needs a GPU" and block.language == "sh"
    for bad in (
        "<!-- doc-test: skip -->\n```sh\nls\n```\n",
        "<!-- doc-test: skip () -->\n```sh\nls\n```\n",
        "<!-- doc-test: skip (why) -->\n\n```sh\nls\n```\n",
        "```\nls\n```\n",
        "```sh\nls\n",
    ):
        with pytest.raises(AssertionError):
            parse_blocks(_write(tmp_path, bad))


def test_console_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    page = _write(
        tmp_path,
        "- item\n\n  ```console\n  $ cat > a.txt <<'EOF'\n  x 1\n  EOF\n  $ wc -l a.txt \\\n"
        "      | cat\n  1 a.txt\n  $ false\n  $ echo $?\n  1\n  ```\n",
    )
    (block,) = parse_blocks(page)
    commands = parse_commands(block)
    assert [c.text for c in commands] == [
        "cat > a.txt <<'EOF'\nx 1\nEOF",
        "wc -l a.txt \\\n    | cat",
        "false",
        "echo $?",
    ]
    assert commands[1].output == ["1 a.txt"] and commands[3].output == ["1"]
    run = PageRun("page.md", tmp_path, {})
    run.run_block(block)  # the heredoc, the pipe and the shown exit status all hold
    with pytest.raises(AssertionError, match="not in"):
        run.run_block(parse_blocks(_write(tmp_path, "```console\n$ echo 2\n3\n```\n"))[0])
    with pytest.raises(AssertionError, match="exited 1"):
        run.run_block(parse_blocks(_write(tmp_path, "```sh\nfalse\n```\n"))[0])


def test_output_patterns() -> None:
    pattern = output_pattern('up{a="b"} 1.5 1795580000000')
    assert pattern is not None and pattern.fullmatch('up{a="b"} 1.5 1800000000123')
    assert not pattern.fullmatch('up{a="b"} 2.5 1800000000123')
    assert output_pattern("  indented") is None
    assert output_pattern('{"json": 1}') is None
    assert output_pattern("promwire: 2 series...") is None


def test_python_blocks_share_a_session(tmp_path: Path) -> None:
    session = PythonSession(tmp_path, dict(os.environ))
    try:
        session.run("first", "x = 41\n")
        session.run("second", "assert x + 1 == 42\n")
        with pytest.raises(AssertionError, match="NameError"):
            session.run("third", "undefined_name\n")
    finally:
        session.close()


def iter_skips() -> Iterator[tuple[str, int, str]]:
    for path in PAGES:
        for block in parse_blocks(path):
            if block.skip is not None:
                yield block.page, block.line, block.skip


def test_skips_are_few_and_explained() -> None:
    skips = list(iter_skips())
    for page, line, reason in skips:
        assert len(reason) >= 20, f"{page}:{line}: say why the block cannot run: {reason!r}"
    runnable = sum(len(_runnable(p)) for p in PAGES)
    assert runnable > 3 * len(skips), (runnable, skips)


MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|root|home|tmp)/")


def test_performance_page_names_no_path_of_a_machine() -> None:
    text = (REPO / "docs" / "performance.md").read_text(encoding="utf-8")
    assert not MACHINE_PATH.findall(text)
    for path in PAGES:  # nor any page outside a shown transcript under /tmp
        found = re.findall(r"(?<![\w.])/(?:work|root|home)/\S*", path.read_text(encoding="utf-8"))
        assert not found, (path.name, found)
