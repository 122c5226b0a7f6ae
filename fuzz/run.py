"""Run the fuzz targets for a while and report inputs run and crashes.

    python3 fuzz/run.py --seconds 600                     # every target, plain driver
    python3 fuzz/run.py --seconds 60 -t 'snappy:*'        # some targets (fnmatch)
    python3 fuzz/run.py --seconds 600 --engine atheris    # coverage-guided (pip install atheris)
    python3 fuzz/run.py --list

The time is shared equally among the selected targets. The plain driver
(:mod:`fuzz.mutate`) needs nothing but promwire; ``--engine atheris`` runs
each target under libFuzzer in its own process (:mod:`fuzz.atheris_main`),
seeded with the same corpus. Crashing inputs are written to ``--crash-dir``
(``<target>-<sha1>.bin`` plus a ``.txt`` traceback); the exit status is 1
when anything crashed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fuzz import corpus  # noqa: E402
from fuzz.mutate import Stats, fuzz_target  # noqa: E402
from fuzz.targets import UNAVAILABLE, Target, select  # noqa: E402

DEFAULT_CRASH_DIR = Path(tempfile.gettempdir()) / "promwire-fuzz-crashes"


def run_plain(
    targets: list[Target], seconds: float, *, seed: int, crash_dir: Path, max_len: int
) -> list[Stats]:
    share = seconds / len(targets)
    results = []
    for target in targets:
        stats = fuzz_target(
            target,
            corpus.seeds(target.seeds),
            seed=seed,
            seconds=share,
            max_len=max_len,
            crash_dir=crash_dir,
        )
        _print_row(stats)
        results.append(stats)
    return results


_EXECS = re.compile(r"stat::number_of_executed_units:\s*(\d+)")


def run_atheris(
    targets: list[Target], seconds: float, *, seed: int, crash_dir: Path, max_len: int
) -> list[Stats]:
    share = max(1, int(seconds / len(targets)))
    crash_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for target in targets:
        with tempfile.TemporaryDirectory(prefix="promwire-fuzz-") as tmp:
            work, seed_dir = Path(tmp, "corpus"), Path(tmp, "seeds")
            work.mkdir()
            seed_dir.mkdir()
            for i, data in enumerate(corpus.seeds(target.seeds)):
                (seed_dir / f"seed-{i:04d}").write_bytes(data)
            prefix = crash_dir / f"{target.name.replace(':', '_').replace('.', '_')}-"
            cmd = [
                sys.executable, "-m", "fuzz.atheris_main", target.name,
                f"-max_total_time={share}", f"-seed={seed + 1}", f"-max_len={max_len}",
                "-rss_limit_mb=4096", "-timeout=10", "-print_final_stats=1",
                f"-artifact_prefix={prefix}", str(work), str(seed_dir),
            ]  # fmt: skip
            t0 = time.perf_counter()
            env = dict(
                os.environ,
                PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            )
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
            stats = Stats(target.name, seconds=time.perf_counter() - t0)
            found = _EXECS.findall(proc.stderr)
            stats.inputs = int(found[-1]) if found else 0
            stats.corpus = len(list(work.iterdir()))
            if proc.returncode != 0:
                (crash_dir / f"{prefix.name}log.txt").write_text(proc.stderr)
                tail = proc.stderr.strip().splitlines()[-25:]
                key = next((ln for ln in reversed(tail) if "Error" in ln), "exit status")
                stats.crashes[f"{key} (log: {prefix.name}log.txt)"] = None  # type: ignore[assignment]
            _print_row(stats)
            results.append(stats)
    return results


def _print_row(stats: Stats) -> None:
    rate = stats.inputs / stats.seconds if stats.seconds else 0.0
    print(
        f"{stats.target:32} {stats.inputs:9d} inputs {rate:8.0f}/s  corpus {stats.corpus:5d}  "
        f"crashes {stats.crash_count}",
        flush=True,
    )
    for key in stats.crashes:
        print(f"    CRASH {key}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="total time (default 60)")
    parser.add_argument("-t", "--target", action="append", help="fnmatch pattern (repeatable)")
    parser.add_argument("--engine", choices=("plain", "atheris"), default="plain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-len", type=int, default=1 << 16)
    parser.add_argument("--crash-dir", type=Path, default=DEFAULT_CRASH_DIR)
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    args = parser.parse_args(argv)

    targets = select(args.target)
    if args.list:
        for t in targets:
            print(f"{t.name:32} seeds: {t.seeds} ({len(corpus.seeds(t.seeds))})")
        for name, why in UNAVAILABLE.items():
            print(f"{name:32} unavailable: {why}")
        return 0
    engine = run_atheris if args.engine == "atheris" else run_plain
    print(f"{len(targets)} targets, {args.seconds:g} s, engine {args.engine}, seed {args.seed}")
    results = engine(
        targets, args.seconds, seed=args.seed, crash_dir=args.crash_dir, max_len=args.max_len
    )
    total = sum(s.inputs for s in results)
    crashes = sum(s.crash_count for s in results)
    print(f"total: {total} inputs, {crashes} distinct crashes", end="")
    print(f" (inputs in {args.crash_dir})" if crashes else "")
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
