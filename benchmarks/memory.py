"""Peak memory of decoding one body, each library in a fresh process.

Usage: ``python -m benchmarks.memory LIBRARY BODY_FILE`` prints JSON.

The child reads the body, imports the peer, notes its resident set size,
resets the kernel's peak-RSS mark (``/proc/self/clear_refs``, value 5), then
decodes and walks every field *while keeping the decoded message alive*, and
reports the peak (``VmHWM``) and the still-resident size (``VmRSS``) minus the
baseline. RSS sees C allocations (upb's arenas) that tracemalloc cannot, so it
is the fair measure across peers. Linux only.
"""

from __future__ import annotations

import gc
import importlib
import json
import sys

PEERS = {
    "promwire": "benchmarks.peers.promwire_peer",
    "protobuf": "benchmarks.peers.protobuf_peer",
    "betterproto": "benchmarks.peers.betterproto_peer",
    "pure-protobuf": "benchmarks.peers.pure_protobuf_peer",
}


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def main(argv: list[str]) -> int:
    library, path = argv
    with open(path, "rb") as f:
        body = f.read()
    peer = importlib.import_module(PEERS[library])
    gc.collect()
    base = _status_kib("VmRSS")
    reset = True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        reset = False
    msg = peer.decode(body)
    peer.walk(msg)
    peak = _status_kib("VmHWM")
    held = _status_kib("VmRSS")
    print(
        json.dumps(
            {
                "library": peer.NAME,
                "baseline_kib": base,
                "peak_delta_kib": peak - base,
                "held_delta_kib": held - base,
                "peak_reset": reset,
            }
        )
    )
    del msg
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
