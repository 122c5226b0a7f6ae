"""Run the peers over the workloads and collect timings.

A *peer* is a module in :mod:`benchmarks.peers` exposing ``NAME``,
``version()``, ``decode(body)`` (snappy block -> its message object),
``walk(obj)`` (read every field into Python values), ``content(obj)`` (plain
content, see :mod:`benchmarks.workloads`), ``build(plain)`` and
``encode(obj)`` (-> snappy block).

Before a peer is timed on a workload its decoded content is checked against
the workload's content (floats by bits) and what it encodes is decoded back
and checked too; a peer that gets the content wrong is reported, not timed.
That check also serves as the warm-up run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .timing import Budget, Cell, Stats, measure_interleaved
from .workloads import Workload, difference

__all__ = [
    "Result",
    "attach_bodies",
    "check_decode",
    "check_encode",
    "run_fast",
    "run_peer",
]

# Operation names used in results and tables.
DECODE = "decode"  # decompress + decode + walk every field
PARSE = "parse"  # decompress + decode, no walk (upb: lazy parse)
ENCODE = "encode"  # own prebuilt objects -> snappy block
BUILD_ENCODE = "build+encode"  # plain data -> own objects -> snappy block
HANDLER = "handler"  # handle_write: body + headers -> storage.write called
UPB = "protobuf-upb"


@dataclass
class Result:
    workload: str
    op: str
    library: str
    stats: Stats | None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "op": self.op,
            "library": self.library,
            "note": self.note,
            "stats": self.stats.to_json() if self.stats else None,
        }


def attach_bodies(workloads: list[Workload], reference: ModuleType) -> None:
    """Give generated workloads their bodies and captures their content.

    ``reference`` (the upb peer) encodes generated content, so every peer,
    promwire included, decodes bytes promwire did not produce; the captures'
    content is what ``reference`` decodes from them.
    """
    for w in workloads:
        if not w.bodies:
            w.bodies = [reference.encode(reference.build(c)) for c in w.contents]
        if not w.contents:
            w.contents = [reference.content(reference.decode(b)) for b in w.bodies]


def check_decode(peer: ModuleType, w: Workload) -> str:
    """``""`` if ``peer`` decodes every body of ``w`` to its content, else what differs."""
    for i, (body, content) in enumerate(zip(w.bodies, w.contents, strict=True)):
        diff = difference(peer.content(peer.decode(body)), content)
        if diff:
            return f"{peer.NAME} decoding {w.name} body {i}: {diff}"
    return ""


def check_encode(peer: ModuleType, w: Workload, reference: ModuleType) -> str:
    """``""`` if ``peer``'s encoding decodes (by ``reference``) to the content, else the diff."""
    for i, content in enumerate(w.contents):
        body = peer.encode(peer.build(content))
        diff = difference(reference.content(reference.decode(body)), content)
        if diff:
            return f"{peer.NAME} encoding {w.name} body {i}: {diff}"
    return ""


def _checked(
    results: list[Result],
    w: Workload,
    op: str,
    library: str,
    check: Callable[[], str],
) -> str | None:
    """Run a content check: its note ("" = fine), or None when timing is pointless.

    Losing NaN payloads is timed anyway (the peer does the work, it only
    cannot keep stale markers); any other difference is reported untimed.
    """
    try:
        note = check()
    except Exception as exc:  # a crashing peer is reported, not allowed to end the run
        note = f"{library} {op} on {w.name} raised {type(exc).__name__}: {exc}"[:300]
    if note and "NaN payloads" not in note:
        results.append(Result(w.name, op, library, None, f"WRONG: {note}"))
        return None
    return note


def _peer_cells(
    peer: ModuleType,
    w: Workload,
    results: list[Result],
    *,
    reference: ModuleType,
    library: str,
    parse_only: bool = False,
    build_encode: bool = False,
    setup: Callable[[], object] | None = None,
) -> list[Cell]:
    """Check ``peer`` on ``w`` (failures go to ``results``) and return its cells.

    A cell's key is ``(workload, op, library, note)``. ``setup`` runs before
    each decode run (promwire uses it to re-warm its caches).
    """
    cells: list[Cell] = []
    bodies = w.bodies
    note = _checked(results, w, DECODE, library, lambda: check_decode(peer, w))
    if note is not None:

        def dec() -> None:
            for b in bodies:
                peer.walk(peer.decode(b))

        cells.append(Cell((w.name, DECODE, library, note), dec, setup))
        if parse_only:

            def par() -> None:
                for b in bodies:
                    peer.decode(b)

            cells.append(Cell((w.name, PARSE, library, note), par, setup))

    note = _checked(results, w, ENCODE, library, lambda: check_encode(peer, w, reference))
    if note is not None:
        objs = [peer.build(c) for c in w.contents]

        def enc() -> None:
            for o in objs:
                peer.encode(o)

        cells.append(Cell((w.name, ENCODE, library, note), enc))
        if build_encode:

            def benc() -> None:
                for c in w.contents:
                    peer.encode(peer.build(c))

            cells.append(Cell((w.name, BUILD_ENCODE, library, note), benc))
    return cells


def _collect(cells: list[Cell], budget: Budget, results: list[Result]) -> None:
    for cell in measure_interleaved(cells, budget):
        workload, op, library, note = cell.key
        results.append(Result(workload, op, library, cell.stats, note))


def run_peer(
    peer: ModuleType,
    workloads: list[Workload],
    budget: Budget,
    *,
    reference: ModuleType,
    parse_only: bool = False,
    build_encode: bool = False,
    library: str | None = None,
    progress: Callable[[str], None] = lambda s: None,
) -> list[Result]:
    """Time one peer: decode (optionally parse-only, build+encode) and encode."""
    name = library or peer.NAME
    results: list[Result] = []
    for w in workloads:
        progress(f"{name} {w.name}")
        cells = _peer_cells(
            peer,
            w,
            results,
            reference=reference,
            library=name,
            parse_only=parse_only,
            build_encode=build_encode,
        )
        _collect(cells, budget, results)
    return results


def run_fast(
    promwire: ModuleType,
    upb: ModuleType,
    workloads: list[Workload],
    budget: Budget,
    *,
    progress: Callable[[str], None] = lambda s: None,
) -> tuple[list[Result], str]:
    """promwire and upb, interleaved per workload; plus the handler when it exists.

    promwire decode is timed *warm* (its label caches already hold this
    workload's series, as when Prometheus resends the same series every
    scrape) and *cold* (``clear_caches()`` before every run, untimed: every
    label pair and label block is a miss). Warm cells re-warm the caches
    (untimed) after a cold run. Returns the results and a note about the
    handler ("" when it ran).
    """
    handle_write: Any = None
    handler_note = ""
    try:
        from promwire.server.handlers import handle_write
    except ImportError as exc:
        handler_note = f"handler row skipped: handle_write is absent ({exc})"

    results: list[Result] = []
    for w in workloads:
        progress(f"promwire + upb {w.name}")
        state = {"cold": False}

        def rewarm(w: Workload = w, state: dict[str, bool] = state) -> None:
            if state["cold"]:
                for b in w.bodies:
                    promwire.decode(b)
                state["cold"] = False

        def chill(state: dict[str, bool] = state) -> None:
            promwire.clear_caches()
            state["cold"] = True

        cells = _peer_cells(
            promwire,
            w,
            results,
            reference=upb,
            library="promwire",
            parse_only=True,
            build_encode=True,
            setup=rewarm,
        )
        cold = [c for c in cells if c.key[1] == DECODE]
        if cold:
            cells.append(Cell((w.name, DECODE, "promwire cold", cold[0].key[3]), cold[0].fn, chill))
        cells += _peer_cells(
            upb, w, results, reference=upb, library=UPB, parse_only=True, build_encode=True
        )
        if handle_write is not None:
            cells += _handler_cells(handle_write, w, results, rewarm)
        _collect(cells, budget, results)
    promwire.clear_caches()
    return results, handler_note


class _CountingStorage:
    """A storage whose ``write`` only counts: the handler row measures the handler."""

    def __init__(self) -> None:
        self.series = 0

    def write(self, ctx: Any, request: Any) -> None:
        self.series += len(request.timeseries)


WRITE_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "User-Agent": "Prometheus/2.42.0",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def _handler_cells(
    handle_write: Callable[..., Any],
    w: Workload,
    results: list[Result],
    setup: Callable[[], object],
) -> list[Cell]:
    """``handle_write`` end to end on every body of ``w`` (must answer 204)."""
    storage = _CountingStorage()
    statuses = {handle_write(b, WRITE_HEADERS, storage).status for b in w.bodies}
    if statuses != {204}:
        results.append(
            Result(w.name, HANDLER, "promwire", None, f"WRONG: handler answered {sorted(statuses)}")
        )
        return []

    def run() -> None:
        for b in w.bodies:
            handle_write(b, WRITE_HEADERS, storage)

    return [Cell((w.name, HANDLER, "promwire", ""), run, setup)]
