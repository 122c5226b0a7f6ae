"""Markdown tables and the target check for the benchmark results."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .runner import BUILD_ENCODE, DECODE, ENCODE, HANDLER, PARSE, Result
from .workloads import Workload

__all__ = ["render", "targets"]

UPB = "protobuf-upb"
PYPB = "protobuf-python"
SLOW_PEERS = (PYPB, "betterproto", "pure-protobuf")
LABEL_HEAVY = ("W1", "W2", "W4", "captures")

# (column title, op, library) of the decode and encode tables; the first
# column of each table is the baseline of its ratios.
DECODE_COLUMNS = [
    ("promwire warm", DECODE, "promwire"),
    ("promwire cold", DECODE, "promwire cold"),
    ("promwire no walk", PARSE, "promwire"),
    ("upb parse only", PARSE, UPB),
    ("upb parse+walk", DECODE, UPB),
    ("pb-python", DECODE, PYPB),
    ("betterproto", DECODE, "betterproto"),
    ("pure-protobuf", DECODE, "pure-protobuf"),
]
ENCODE_COLUMNS = [
    ("promwire", ENCODE, "promwire"),
    ("promwire build+encode", BUILD_ENCODE, "promwire"),
    ("upb", ENCODE, UPB),
    ("upb build+serialize", BUILD_ENCODE, UPB),
    ("pb-python", ENCODE, PYPB),
    ("betterproto", ENCODE, "betterproto"),
    ("pure-protobuf", ENCODE, "pure-protobuf"),
]


def _index(results: Iterable[Result]) -> dict[tuple[str, str, str], Result]:
    return {(r.workload, r.op, r.library): r for r in results}


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:,.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def _value(r: Result, stat: str) -> float:
    assert r.stats is not None
    return min(r.stats.times) if stat == "min" else r.stats.median


def _cell(r: Result | None, base: Result | None, stat: str = "median") -> str:
    if r is None:
        return "-"
    if r.stats is None:
        return r.note.split(":")[0] or "-"
    text = _ms(_value(r, stat))
    if base is not None and base is not r and base.stats is not None:
        text += f" ({_value(r, stat) / _value(base, stat):.1f}x)"
    if r.note:
        text += " !"
    return text


def _size(w: Workload) -> str:
    kib = w.raw_size / 1024
    return f"{w.series_count:,} series, {w.sample_count:,} samples, {kib:,.0f} KiB snappy"


def _table(
    title: str,
    columns: list[tuple[str, str, str]],
    workloads: list[Workload],
    idx: dict[tuple[str, str, str], Result],
    stat: str,
) -> list[str]:
    present = [c for c in columns if any((w.name, c[1], c[2]) in idx for w in workloads)]
    what = "fastest run" if stat == "min" else "median"
    lines = [
        f"**{title}** - {what}, ms (ratio = column / {present[0][0]}; >1 means promwire is faster)",
        "",
        "| workload | " + " | ".join(c[0] for c in present) + " |",
        "|---|" + "---:|" * len(present),
    ]
    for w in workloads:
        base = idx.get((w.name, present[0][1], present[0][2]))
        cells = [_cell(idx.get((w.name, op, lib)), base, stat) for _, op, lib in present]
        lines.append(f"| {w.name} | " + " | ".join(cells) + " |")
    return lines


def _ratio(
    idx: dict[tuple[str, str, str], Result],
    w: str,
    peer: tuple[str, str],
    ours: tuple[str, str],
    stat: str = "median",
) -> float | None:
    a = idx.get((w, *peer))
    b = idx.get((w, *ours))
    if a is None or b is None or a.stats is None or b.stats is None:
        return None
    if stat == "min":
        return min(a.stats.times) / min(b.stats.times)
    return a.stats.median / b.stats.median


def targets(results: list[Result], workloads: list[Workload]) -> list[dict[str, Any]]:
    """Each target of the issue, per workload: the ratio measured and whether it is met.

    ``ratio``/``met`` compare medians; ``ratio_min``/``met_min`` compare the
    fastest runs, which is what to trust when the machine was busy (runs
    preempted by other processes inflate medians, never minimums).
    """
    idx = _index(results)
    names = {w.name for w in workloads}
    out: list[dict[str, Any]] = []

    def add(target: str, w: str, peer: tuple[str, str], ours: tuple[str, str], need: float) -> None:
        if w not in names:
            return
        r = _ratio(idx, w, peer, ours)
        r_min = _ratio(idx, w, peer, ours, "min")
        out.append(
            {
                "target": target,
                "workload": w,
                "peer": f"{peer[1]} {peer[0]}",
                "promwire": f"{ours[1]} {ours[0]}",
                "ratio": r,
                "need": need,
                "met": None if r is None else r >= need,
                "ratio_min": r_min,
                "met_min": None if r_min is None else r_min >= need,
            }
        )

    for w in LABEL_HEAVY:
        for ours in ("promwire", "promwire cold"):
            add(
                "label-heavy decode >= 2x faster than upb parse+walk",
                w,
                (DECODE, UPB),
                (DECODE, ours),
                2.0,
            )
    for w in LABEL_HEAVY:
        for peer in SLOW_PEERS:
            add(
                "label-heavy decode >= 20x faster than pure-Python peers",
                w,
                (DECODE, peer),
                (DECODE, "promwire"),
                20.0,
            )
    for ours in ("promwire", "promwire cold"):
        add("W3 decode no slower than upb parse+walk", "W3", (DECODE, UPB), (DECODE, ours), 1.0)
    for w in sorted(names):
        add(
            "encode faster than upb build+serialize",
            w,
            (BUILD_ENCODE, UPB),
            (ENCODE, "promwire"),
            1.0,
        )
    return out


def render(
    results: list[Result],
    workloads: list[Workload],
    *,
    header: list[str],
    memory: list[dict[str, Any]],
    notes: list[str],
    stat: str = "median",
) -> str:
    """The whole report as markdown.

    ``stat`` is what the decode and encode tables show: ``median``, ``min``
    (the fastest run) or ``both`` (two pairs of tables).
    """
    idx = _index(results)
    lines = list(header)
    lines.append("")
    lines.append("Workloads:")
    lines.append("")
    for w in workloads:
        lines.append(f"- **{w.name}**: {w.description} ({_size(w)})")
    lines.append("")
    for st in ("median", "min") if stat == "both" else (stat,):
        lines += _table(
            "Decode: snappy block -> objects -> every field read",
            DECODE_COLUMNS,
            workloads,
            idx,
            st,
        )
        lines.append("")
        lines += _table("Encode: objects -> snappy block", ENCODE_COLUMNS, workloads, idx, st)
        lines.append("")

    handler_rows = [r for r in results if r.op == HANDLER]
    if handler_rows:
        lines.append(
            "**Write handler end to end** (`handle_write`: body + headers -> "
            "storage.write called; warm caches; ratio = handler / promwire decode "
            "without walk)"
        )
        lines.append("")
        lines.append("| workload | handler ms | ratio |")
        lines.append("|---|---:|---:|")
        for r in handler_rows:
            base = idx.get((r.workload, PARSE, "promwire"))
            ratio = _cell(r, base).partition(" ")[2].strip("()! ") or "-"
            lines.append(f"| {r.workload} | {_cell(r, None)} | {ratio} |")
        lines.append("")

    if memory:
        lines.append(
            "**Memory**: decoding W2 and reading every field while holding the "
            "message, fresh process per library (RSS, MiB above the baseline)"
        )
        lines.append("")
        lines.append("| library | peak | held after decode | peak / promwire peak |")
        lines.append("|---|---:|---:|---:|")
        mem_base = next(
            (m for m in memory if m.get("library") == "promwire" and "error" not in m), None
        )
        for m in memory:
            if "error" in m:
                lines.append(f"| {m['library']} | {m['error']} | | |")
                continue
            ratio = "-"
            if mem_base is not None and mem_base["peak_delta_kib"] > 0:
                ratio = f"{m['peak_delta_kib'] / mem_base['peak_delta_kib']:.1f}x"
            lines.append(
                f"| {m['library']} | {m['peak_delta_kib'] / 1024:.1f} | "
                f"{m['held_delta_kib'] / 1024:.1f} | {ratio} |"
            )
        lines.append("")

    lines.append(
        "**Targets** (ratio = peer time / promwire time, of the medians and of the fastest "
        "runs; trust the latter when the load average was above the core count)"
    )
    lines.append("")
    lines.append(
        "| target | workload | peer | promwire | need | median ratio | met | min ratio | met |"
    )
    lines.append("|---|---|---|---|---:|---:|---|---:|---|")
    yes_no = {True: "yes", False: "**NO**", None: "n/a"}
    for t in targets(results, workloads):
        ratio = "-" if t["ratio"] is None else f"{t['ratio']:.2f}"
        ratio_min = "-" if t["ratio_min"] is None else f"{t['ratio_min']:.2f}"
        lines.append(
            f"| {t['target']} | {t['workload']} | {t['peer']} | {t['promwire']} | {t['need']:g} | "
            f"{ratio} | {yes_no[t['met']]} | {ratio_min} | {yes_no[t['met_min']]} |"
        )
    lines.append("")

    lines.append("<details><summary>All cells: median, spread, fastest, repeats</summary>")
    lines.append("")
    lines.append("| workload | op | library | median ms | spread ms | min ms | n |")
    lines.append("|---|---|---|---:|---|---:|---:|")
    for r in results:
        if r.stats is None:
            lines.append(f"| {r.workload} | {r.op} | {r.library} | - | {r.note} | - | 0 |")
            continue
        s = r.stats
        lines.append(
            f"| {r.workload} | {r.op} | {r.library} | {_ms(s.median)} | "
            f"{s.spread_kind} {_ms(s.low)}-{_ms(s.high)} | {_ms(min(s.times))} | {s.n} |"
        )
    lines.append("")
    lines.append("</details>")
    flagged = sorted({f"{r.library} {r.op}: {r.note}" for r in results if r.note})
    if flagged:
        lines.append("")
        lines.append(
            "`!` / WRONG - content checks that failed (every peer's decoded content and "
            "re-encoded bytes are compared with the workload, floats by bit pattern):"
        )
        lines.append("")
        lines += [f"- {n}" for n in flagged]
    if notes:
        lines.append("")
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
