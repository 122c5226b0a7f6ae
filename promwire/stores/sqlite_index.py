"""Postings for the SQLite store: which series a query's matchers select.

The ``postings`` table maps a label pair ``(name, value)`` to the ids of the
series carrying it (primary key ``(name, value, series_id)``: the ids of one
pair are one range of the B-tree), and ``label_values`` lists the distinct
values of each label name. A query is resolved like Prometheus' index does:

1. equality matchers with a non-empty value first, each one range of postings,
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

import json
import sqlite3
from collections.abc import Iterator

from ..codec.messages import LabelMatcher, MatchType
from .matchers import compile_matcher
from .protocol import ReadBudget

__all__ = ["select_series"]

_BATCH = 4096
_MAX_VARS = 500


def _pair_ids(conn: sqlite3.Connection, name: str, value: str) -> set[int]:
    return {
        int(r[0])
        for r in conn.execute(
            "SELECT series_id FROM postings WHERE name = ? AND value = ?", (name, value)
        )
    }


def _values_ids(conn: sqlite3.Connection, name: str, values: list[str]) -> set[int]:
    ids: set[int] = set()
    for value in values:
        ids |= _pair_ids(conn, name, value)
    return ids


def _labels(conn: sqlite3.Connection, ids: list[int]) -> Iterator[tuple[int, str]]:
    for start in range(0, len(ids), _MAX_VARS):
        batch = ids[start : start + _MAX_VARS]
        marks = ",".join("?" * len(batch))
        yield from conn.execute(f"SELECT id, labels FROM series WHERE id IN ({marks})", batch)


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
        if m.type == MatchType.EQ:
            found = _pair_ids(conn, m.name, m.value)
        else:
            found = _values_ids(
                conn, m.name, [v for v in _values(conn, m.name) if pred({m.name: v})]
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
        # A matcher that matches the empty string removes the series whose
        # value of its label it does not match (a series without the label stays).
        ids -= _values_ids(
            conn, m.name, [v for v in _values(conn, m.name) if not pred({m.name: v})]
        )
    out = [
        ([(str(n), str(v)) for n, v in json.loads(key)], int(sid))
        for sid, key in _labels(conn, sorted(ids))
    ]
    out.sort()
    return out


def _values(conn: sqlite3.Connection, name: str) -> list[str]:
    """The distinct values label ``name`` has in any series."""
    return [
        str(r[0]) for r in conn.execute("SELECT value FROM label_values WHERE name = ?", (name,))
    ]
