"""Series and postings of the SQLite store: label sets, and which series matchers select.

Every distinct label name and value string is stored once, in ``symbols``
(``id INTEGER PRIMARY KEY, text UNIQUE``). A series row holds its label set
as a blob of varint symbol ids (name, value, name, value, ... in the sorted
order of the pairs), and the 32-bit :func:`label_hash` of its canonical JSON
key, the lookup key of the write path.

Postings map a label pair ``(name id, value id)`` to the ids of the series
carrying it, as **blocks**: rows of ``postings`` keyed ``(name, value,
first)`` whose ``ids`` blob holds the ids after ``first`` as varint deltas
(up to :data:`BLOCK_BYTES` of them). A new series adds one row per label to
``postings_new`` (a few bytes each, no blob rewritten per series); the
compaction (:func:`merge_postings`) appends them to the last block of their
pair, or starts a new block, and empties ``postings_new``. Reads see both.

A query is resolved like Prometheus' index does:

1. equality matchers with a non-empty value first, each one pair's postings,
   intersected;
2. then every other matcher that cannot match the empty string (``=~"a|b"``,
   ``!=""``, ...): its regex is tested once per *distinct value* of the label
   (never per series, never per sample), and the postings of the values that
   match are united and intersected with the rest;
3. matchers that match the empty string (``!="x"``, ``=~".*"``, ``=""``) then
   remove the series carrying a value of their label they do not match (again
   tested once per distinct value); when no matcher narrowed anything, they
   start from every series.

The answer is exact (a series without a label has the value ``""``, which
is how Prometheus matches). The series the narrowing left (every series when
nothing narrowed) count against the read budget (``examine``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from hashlib import blake2b
from itertools import pairwise

from ..codec.messages import LabelMatcher, MatchType
from ..codec.wire import varint
from ..errors import StorageError
from .matchers import compile_matcher
from .protocol import ReadBudget

__all__ = [
    "BLOCK_BYTES",
    "add_series",
    "label_hash",
    "merge_postings",
    "pack_ids",
    "posting_pairs",
    "select_series",
    "series_labels",
    "unpack_ids",
    "write_postings",
]

#: A posting block's ``ids`` blob is closed once it reaches this many bytes.
BLOCK_BYTES = 1024
_BATCH = 4096
_MAX_VARS = 500


def label_hash(key: str) -> int:
    """The 32-bit lookup key of a series' canonical label JSON (equal hashes are
    told apart by comparing the label sets; 4 bytes on disk instead of 8)."""
    return int.from_bytes(blake2b(key.encode(), digest_size=4).digest(), "little", signed=True)


def pack_ids(ids: Iterable[int]) -> bytes:
    """Non-negative integers as concatenated varints."""
    return b"".join(map(varint, ids))


def unpack_ids(blob: bytes) -> list[int]:
    """The integers of :func:`pack_ids` (a truncated blob is a damaged file)."""
    out: list[int] = []
    value = shift = 0
    for byte in blob:  # iterating bytes gives ints: one cursor, no slicing
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            out.append(value)
            value = shift = 0
        else:
            shift += 7
    if shift:
        raise StorageError("damaged promwire database: a truncated varint list")
    return out


def _deltas(ids: Sequence[int]) -> bytes:
    return pack_ids(b - a for a, b in pairwise(ids))


def _undelta(first: int, blob: bytes) -> list[int]:
    out = [first]
    last = first
    for d in unpack_ids(blob):
        last += d
        out.append(last)
    return out


# ------------------------------------------------------------------ the write side


def _symbols(conn: sqlite3.Connection, texts: set[str], create: bool) -> dict[str, int]:
    """Symbol ids of ``texts`` (missing ones inserted when ``create``)."""
    found: dict[str, int] = {}
    wanted = sorted(texts)
    for start in range(0, len(wanted), _MAX_VARS):
        batch = wanted[start : start + _MAX_VARS]
        marks = ",".join("?" * len(batch))
        found.update(
            (str(t), int(i))
            for t, i in conn.execute(f"SELECT text, id FROM symbols WHERE text IN ({marks})", batch)
        )
    if create:
        for text in wanted:
            if text not in found:
                cur = conn.execute("INSERT INTO symbols(text) VALUES (?)", (text,))
                found[text] = int(cur.lastrowid or 0)
    return found


def add_series(
    conn: sqlite3.Connection,
    key: str,
    pairs: Sequence[tuple[str, str]],
    *,
    postings: bool = True,
    sid: int | None = None,
) -> int:
    """The id of the series with label ``pairs`` (sorted; ``key`` its canonical
    JSON), created with its pending postings if new (inside the caller's write
    transaction). ``sid``: create it under that id without looking (a migration);
    ``postings=False``: the caller writes the postings itself."""
    digest = label_hash(key)
    texts = {s for pair in pairs for s in pair}
    if sid is None:
        candidates = conn.execute(
            "SELECT id, labels FROM series WHERE hash = ?", (digest,)
        ).fetchall()
        if candidates:
            known = _symbols(conn, texts, create=False)
            if len(known) == len(texts):
                blob = pack_ids(known[s] for pair in pairs for s in pair)
                for found, labels in candidates:
                    if bytes(labels) == blob:
                        return int(found)
    ids = _symbols(conn, texts, create=True)
    blob = pack_ids(ids[s] for pair in pairs for s in pair)
    cur = conn.execute("INSERT INTO series(id, hash, labels) VALUES (?, ?, ?)", (sid, digest, blob))
    sid = int(cur.lastrowid or 0)
    if postings:
        conn.executemany(
            "INSERT INTO postings_new VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [(n, v, sid) for n, v in posting_pairs(blob)],
        )
    return sid


def posting_pairs(labels: bytes) -> list[tuple[int, int]]:
    """The ``(name, value)`` symbol pairs a series' label blob is posted under."""
    ids = unpack_ids(labels)
    # A label name repeated in one set (invalid, but possible on the wire) keeps the first.
    firsts: dict[int, int] = {}
    for n, v in zip(ids[::2], ids[1::2], strict=True):
        firsts.setdefault(n, v)
    return list(firsts.items())


def write_postings(conn: sqlite3.Connection, name: int, value: int, ids: Sequence[int]) -> None:
    """Store the sorted series ``ids`` of a pair as new blocks (after its existing ones)."""
    rows = []
    lo = 0
    while lo < len(ids):
        hi = lo + 1
        size = 0
        while hi < len(ids) and size < BLOCK_BYTES:
            size += len(varint(ids[hi] - ids[hi - 1]))
            hi += 1
        rows.append((name, value, ids[lo], _deltas(ids[lo:hi])))
        lo = hi
    conn.executemany("INSERT INTO postings VALUES (?, ?, ?, ?)", rows)


def merge_postings(conn: sqlite3.Connection) -> int:
    """Move ``postings_new`` into blocks (inside the caller's write transaction);
    returns the number of ids moved. Only the last block of a pair is rewritten,
    so a merge costs what it adds, not the size of the posting list."""
    pending: dict[tuple[int, int], list[int]] = {}
    for n, v, sid in conn.execute(
        "SELECT name, value, series_id FROM postings_new ORDER BY name, value, series_id"
    ):
        pending.setdefault((int(n), int(v)), []).append(int(sid))
    if not pending:
        return 0
    moved = 0
    for (n, v), new in pending.items():
        moved += len(new)
        last = conn.execute(
            "SELECT first, ids FROM postings WHERE name = ? AND value = ? "
            "ORDER BY first DESC LIMIT 1",
            (n, v),
        ).fetchone()
        if last is not None:
            block = _undelta(int(last[0]), bytes(last[1]))
            if new[0] > block[-1]:  # the common case: ids only grow
                if len(last[1]) < BLOCK_BYTES:
                    conn.execute(
                        "DELETE FROM postings WHERE name = ? AND value = ? AND first = ?",
                        (n, v, block[0]),
                    )
                    new = block + new
            else:  # an id below the last one: rewrite the pair's list (never in practice)
                everything = set(new)
                for first, blob in conn.execute(
                    "SELECT first, ids FROM postings WHERE name = ? AND value = ?", (n, v)
                ).fetchall():
                    everything.update(_undelta(int(first), bytes(blob)))
                conn.execute("DELETE FROM postings WHERE name = ? AND value = ?", (n, v))
                new = sorted(everything)
        write_postings(conn, n, v, new)
    conn.execute("DELETE FROM postings_new")
    return moved


# ------------------------------------------------------------------- the read side


def _symbol_id(conn: sqlite3.Connection, text: str) -> int | None:
    row = conn.execute("SELECT id FROM symbols WHERE text = ?", (text,)).fetchone()
    return None if row is None else int(row[0])


def _pair_ids(conn: sqlite3.Connection, name: int, value: int) -> set[int]:
    ids: set[int] = set()
    for first, blob in conn.execute(
        "SELECT first, ids FROM postings WHERE name = ? AND value = ?", (name, value)
    ):
        ids.update(_undelta(int(first), bytes(blob)))
    ids.update(
        int(r[0])
        for r in conn.execute(
            "SELECT series_id FROM postings_new WHERE name = ? AND value = ?", (name, value)
        )
    )
    return ids


def _values(conn: sqlite3.Connection, name: int) -> list[tuple[str, int]]:
    """The distinct values label ``name`` has in any series: (text, symbol id)."""
    return [
        (str(t), int(i))
        for t, i in conn.execute(
            "SELECT s.text, s.id FROM symbols s WHERE s.id IN ("
            "SELECT value FROM postings WHERE name = ?1 "
            "UNION SELECT value FROM postings_new WHERE name = ?1)",
            (name,),
        )
    ]


def _values_ids(conn: sqlite3.Connection, name: int, values: list[int]) -> set[int]:
    ids: set[int] = set()
    for value in values:
        ids |= _pair_ids(conn, name, value)
    return ids


def series_labels(
    conn: sqlite3.Connection, ids: Sequence[int]
) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """``(id, label pairs)`` of the series ``ids`` (those that exist), any order."""
    for start in range(0, len(ids), _MAX_VARS):
        batch = list(ids[start : start + _MAX_VARS])
        marks = ",".join("?" * len(batch))
        rows = [
            (int(sid), unpack_ids(bytes(blob)))
            for sid, blob in conn.execute(
                f"SELECT id, labels FROM series WHERE id IN ({marks})", batch
            )
        ]
        wanted = sorted({s for _, syms in rows for s in syms})
        texts: dict[int, str] = {}
        for lo in range(0, len(wanted), _MAX_VARS):
            part = wanted[lo : lo + _MAX_VARS]
            texts.update(
                (int(i), str(t))
                for i, t in conn.execute(
                    f"SELECT id, text FROM symbols WHERE id IN ({','.join('?' * len(part))})",
                    part,
                )
            )
        for sid, syms in rows:
            try:
                strings = [texts[s] for s in syms]
            except KeyError:
                raise StorageError(
                    f"damaged promwire database: series {sid} names a missing symbol"
                ) from None
            if len(strings) % 2:
                raise StorageError(f"damaged promwire database: series {sid} has an odd label list")
            yield sid, list(zip(strings[::2], strings[1::2], strict=True))


def select_series(
    conn: sqlite3.Connection,
    matchers: list[LabelMatcher],
    budget: ReadBudget | None,
    max_regex_length: int,
) -> list[tuple[list[tuple[str, str]], int]]:
    """The series matching all ``matchers``: ``(label pairs, id)`` sorted by label set."""
    preds = [(m, compile_matcher(m, max_regex_length=max_regex_length)) for m in matchers]
    equal = [(m, p) for m, p in preds if m.type == MatchType.EQ and m.value != ""]
    narrowing = equal + [(m, p) for m, p in preds if m.type != MatchType.EQ and not p({})]
    filters = [(m, p) for m, p in preds if p({})]
    ids: set[int] | None = None
    for m, pred in narrowing:
        name = _symbol_id(conn, m.name)
        if name is None:
            return []  # no series has the label: none has a value it requires
        if m.type == MatchType.EQ:
            value = _symbol_id(conn, m.value)
            found = set() if value is None else _pair_ids(conn, name, value)
        else:
            found = _values_ids(
                conn, name, [i for v, i in _values(conn, name) if pred({m.name: v})]
            )
        ids = found if ids is None else ids & found
        if not ids:
            return []
    if ids is None:
        # Nothing narrowed: every series is examined (what the series budget counts).
        ids = set()
        cursor = conn.execute("SELECT id FROM series")
        while rows := cursor.fetchmany(_BATCH):
            if budget is not None:
                budget.examine(len(rows))
            ids.update(int(r[0]) for r in rows)
    elif budget is not None:
        budget.examine(len(ids))
    for m, pred in filters:
        if not ids:
            break
        name = _symbol_id(conn, m.name)
        if name is None:
            continue  # no series has the label: every one has "", which it matches
        # A matcher that matches the empty string removes the series whose
        # value of its label it does not match (a series without the label stays).
        ids -= _values_ids(conn, name, [i for v, i in _values(conn, name) if not pred({m.name: v})])
    out = [(pairs, sid) for sid, pairs in series_labels(conn, sorted(ids))]
    out.sort()
    return out
