"""The regex numbers of docs/robustness.md ("Regular expressions").

    python3 scripts/regex_timing.py            # both engines; `re` (the old matcher) up to n=26

"before" is what promwire did until 0.2: Python's backtracking ``re`` with
``fullmatch`` on ``(?:pattern)``; "after" is promwire.stores.regex with each
engine (compile plus first match, cache cleared).
"""

from __future__ import annotations

import random
import re
import time

from promwire.stores import regex


def _ms(t0: float) -> str:
    return f"{(time.perf_counter() - t0) * 1000:.2f} ms"


def main() -> None:
    engines: list[regex.Engine] = ["python", "re2"] if regex.ENGINE == "re2" else ["python"]
    print("(a+)+b against n a's")
    for n in (20, 22, 24, 26):
        old = re.compile("(?:(a+)+b)").fullmatch
        t0 = time.perf_counter()
        old("a" * n)
        print(f"  re (before)  n={n:<6} {_ms(t0)}")
    for engine in engines:
        for n in (30, 40, 10_000):
            regex.clear_cache()
            t0 = time.perf_counter()
            regex.compile_regex("(a+)+b", engine=engine).matches("a" * n)
            print(f"  {engine:<12} n={n:<6} {_ms(t0)}")
    rng = random.Random(0)
    words = ["node", "kube", "api", "http", "requests", "cpu", "seconds", "total", "bytes", "pod"]
    values = ["_".join(rng.choice(words) for _ in range(4)) for _ in range(100_000)]
    print("100,000 metric-like values")
    for pattern in ("api_.*_total", ".*seconds.*", "node|kube|pod"):
        row = [f"  {pattern:<14}"]
        old = re.compile(f"(?:{pattern})").fullmatch
        t0 = time.perf_counter()
        sum(1 for v in values if old(v))
        row.append(f"re {_ms(t0)}")
        for engine in engines:
            matches = regex.compile_regex(pattern, engine=engine).matches
            t0 = time.perf_counter()
            sum(map(matches, values))
            row.append(f"{engine} {_ms(t0)}")
        print(" | ".join(row))


if __name__ == "__main__":
    main()
