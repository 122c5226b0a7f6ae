"""``python3 -m benchmarks``: promwire against other Python protobuf libraries.

Prints a markdown report (see docs/performance.md) and optionally writes every
timing as JSON. Peers: protobuf with upb (message classes built at run time),
protobuf's pure-Python backend (in a child process), betterproto and
pure-protobuf (hand-declared classes). All decode the same bytes and encode
the same content in one run.

Options: ``--quick`` (workloads at 1/10 size, short budgets: a smoke run),
``--json PATH``, ``--only W1,W3,...``, ``--no-slow`` (skip the three
pure-Python peers), ``--no-memory``, ``--stat median|min|both``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import report, runner
from .peers import promwire_peer
from .peers import protobuf_peer as upb_peer
from .timing import Budget
from .workloads import Workload, standard_workloads

ROOT = Path(__file__).resolve().parent.parent


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_pure_python_protobuf(
    workloads: list[Workload], budget: Budget
) -> tuple[list[runner.Result], str]:
    """Run protobuf's python backend in a child process on the same bytes."""
    with tempfile.TemporaryDirectory(prefix="promwire-bench-") as tmp:
        src = Path(tmp, "job.pickle")
        dst = Path(tmp, "out.json")
        job = {
            "workloads": [(w.name, w.description, w.contents, w.bodies) for w in workloads],
            "budget": (budget.seconds, budget.max_repeats),
        }
        src.write_bytes(pickle.dumps(job))
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.pyproto_worker", str(src), str(dst)],
            env=_child_env(PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python"),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            return [], f"protobuf python backend failed: {proc.stderr.strip()[-300:]}"
        data = json.loads(dst.read_text())
    results = []
    for r in data["results"]:
        stats = None
        if r["stats"] is not None:
            from .timing import Stats

            stats = Stats(r["stats"]["times"])
        results.append(runner.Result(r["workload"], r["op"], r["library"], stats, r["note"]))
    return results, data["version"]


def run_memory(w2: Workload, libraries: list[str]) -> list[dict[str, Any]]:
    """Peak/held RSS of decoding W2, one fresh child process per library."""
    out = []
    with tempfile.NamedTemporaryFile(prefix="promwire-bench-", suffix=".bin") as f:
        f.write(w2.bodies[0])
        f.flush()
        for lib in libraries:
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.memory", lib, f.name],
                env=_child_env(),
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                out.append({"library": lib, "error": proc.stderr.strip()[-200:]})
            else:
                out.append(json.loads(proc.stdout))
    return out


def _optional_peer(name: str) -> Any:
    try:
        if name == "betterproto":
            from .peers import betterproto_peer

            return betterproto_peer
        from .peers import pure_protobuf_peer

        return pure_protobuf_peer
    except ImportError:
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m benchmarks", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small workloads, short budgets")
    ap.add_argument("--json", metavar="PATH", help="also write all timings as JSON")
    ap.add_argument("--only", metavar="W1,W2", help="comma-separated workload names")
    ap.add_argument("--no-slow", action="store_true", help="skip the pure-Python peers")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    ap.add_argument(
        "--stat",
        choices=["median", "min", "both"],
        default="both",
        help="what the decode/encode tables show (default: both)",
    )
    args = ap.parse_args(argv)

    if upb_peer.backend() != "upb":
        _log(f"warning: protobuf backend is {upb_peer.backend()!r}, not upb")
    started = time.perf_counter()
    load_before = _load()
    scale = 0.1 if args.quick else 1.0
    fast = Budget(0.15, 5) if args.quick else Budget(0.6, 50)
    slow = Budget(0.1, 2) if args.quick else Budget(1.0, 3)

    workloads = standard_workloads(scale)
    if args.only:
        wanted = set(args.only.split(","))
        workloads = [w for w in workloads if w.name in wanted]
    _log(f"generating {len(workloads)} workloads (scale {scale})")
    runner.attach_bodies(workloads, upb_peer)

    results: list[runner.Result] = []
    notes: list[str] = []
    versions = [promwire_peer.version(), upb_peer.version()]

    fast_results, note = runner.run_fast(promwire_peer, upb_peer, workloads, fast, progress=_log)
    results += fast_results
    if note:
        notes.append(note)
        _log(note)

    if not args.no_slow:
        for name in ("betterproto", "pure-protobuf"):
            peer = _optional_peer(name)
            if peer is None:
                notes.append(f"{name} skipped: not installed")
                continue
            versions.append(peer.version())
            results += runner.run_peer(peer, workloads, slow, reference=upb_peer, progress=_log)
        _log("protobuf python backend (child process)")
        py_results, info = run_pure_python_protobuf(workloads, slow)
        results += py_results
        if py_results:
            versions.append(info)
        else:
            notes.append(info)

    memory: list[dict[str, Any]] = []
    w2 = next((w for w in workloads if w.name == "W2"), None)
    if w2 is not None and not args.no_memory:
        _log("memory (child processes)")
        libs = ["promwire", "protobuf"]
        if not args.no_slow and not args.quick:
            libs += ["betterproto", "pure-protobuf"]
        memory = run_memory(w2, libs)

    elapsed = time.perf_counter() - started
    command = " ".join(["python3 -m benchmarks", *(sys.argv[1:] if argv is None else argv)])
    header = [
        f"# promwire benchmarks ({'quick smoke run' if args.quick else 'full run'})",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- command: `{command}` ({elapsed:.0f} s)",
        f"- CPU: {_cpu()}, {_cores()} cores available",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.machine()}",
        f"- libraries: {'; '.join(versions)}",
        f"- load average (1 min) before / after: {load_before} / {_load()} "
        "(the machine may be shared: cells of one workload run interleaved)",
    ]
    print(
        report.render(results, workloads, header=header, memory=memory, notes=notes, stat=args.stat)
    )
    if args.json:
        payload = {
            "header": header,
            "results": [r.to_json() for r in results],
            "memory": memory,
            "targets": report.targets(results, workloads),
            "notes": notes,
            "workloads": [
                {
                    "name": w.name,
                    "description": w.description,
                    "bodies": len(w.bodies),
                    "snappy_bytes": w.raw_size,
                    "series": w.series_count,
                    "samples": w.sample_count,
                }
                for w in workloads
            ],
        }
        Path(args.json).write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
