"""Subprocess entry: time protobuf's pure-Python backend.

protobuf picks its backend once, at import, from the environment variable
``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION``; a process that already imported
upb cannot switch. The suite therefore starts this module in a child process
with the variable set to ``python``, hands it the same workloads (bodies and
content, pickled to a temp file) and reads the results back as JSON.

Usage: ``python -m benchmarks.pyproto_worker IN.pickle OUT.json``
"""

from __future__ import annotations

import json
import pickle
import sys

from .timing import Budget
from .workloads import Workload


def main(argv: list[str]) -> int:
    src, dst = argv
    with open(src, "rb") as f:
        job = pickle.load(f)
    from .peers import promwire_peer, protobuf_peer
    from .runner import run_peer

    if protobuf_peer.backend() != "python":
        print(f"expected the python backend, got {protobuf_peer.backend()}", file=sys.stderr)
        return 2
    workloads = [Workload(n, d, c, b) for n, d, c, b in job["workloads"]]
    budget = Budget(*job["budget"])
    # promwire checks what this backend encodes: this backend's own decoder
    # loses NaN payloads, which would blame its encoder for it.
    results = run_peer(protobuf_peer, workloads, budget, reference=promwire_peer)
    with open(dst, "w") as f:
        json.dump(
            {"version": protobuf_peer.version(), "results": [r.to_json() for r in results]}, f
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
