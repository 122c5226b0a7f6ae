"""SQL text for the ClickHouse store: literals, label matchers, the schema.

ClickHouse 18.16 has no server-side query parameters, so every value from a
request reaches SQL as a string literal built by :func:`literal`, which
escapes *every* byte that could end or bend the literal (quote, backslash,
control bytes, DEL) and passes the rest through. Identifiers (database,
cluster) are never taken from a request; they are checked against
:data:`IDENTIFIER` when the store is configured.

Matchers follow Prometheus (:mod:`promwire.stores.matchers`): a label's value
is ``label_values[indexOf(label_names, 'name')]``, which is ``''`` when the
label is absent (ClickHouse answers index 0 with the element type's
default), so ``{foo=""}`` selects series without ``foo``. A regex is anchored
as Prometheus anchors it and ``.`` is kept from matching a newline (as in Go;
ClickHouse's ``match()`` turns RE2's ``dot_nl`` on), hence
``^(?-s:(?:RE))$``. RE2 runs in linear time, so a hostile pattern such as
``(a+)+b`` cannot make a query slow.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..codec.messages import LabelMatcher, MatchType
from ..errors import StorageRejected

__all__ = ["IDENTIFIER", "TABLES", "literal", "matcher_condition", "schema_statements"]

#: What a database or cluster name may be (checked, then used without quoting).
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")

# Every byte that needs an escape in a ClickHouse string literal: \xHH for
# control bytes and DEL, a backslash before ' and \ (both releases read these).
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
_ESCAPES[ord("'")] = "\\'"
_ESCAPES[ord("\\")] = "\\\\"


def literal(value: str) -> str:
    """``value`` as a ClickHouse string literal (single-quoted, escaped)."""
    return "'" + value.translate(_ESCAPES) + "'"


def label_value(name: str) -> str:
    """The SQL expression for a series' value of label ``name`` (``''`` if absent)."""
    return f"label_values[indexOf(label_names, {literal(name)})]"


def matcher_condition(matcher: LabelMatcher) -> str:
    """The SQL condition of one matcher over the ``series`` table's columns."""
    value = label_value(matcher.name)
    mtype = matcher.type
    if mtype == MatchType.EQ:
        return f"{value} = {literal(matcher.value)}"
    if mtype == MatchType.NEQ:
        return f"{value} != {literal(matcher.value)}"
    if mtype in (MatchType.RE, MatchType.NRE):
        pattern = literal("^(?-s:(?:" + matcher.value + "))$")
        test = f"match({value}, {pattern})"
        return test if mtype == MatchType.RE else f"NOT {test}"
    raise StorageRejected(f"unknown label matcher type {int(mtype)}")


def matchers_condition(matchers: Iterable[LabelMatcher]) -> str:
    """All matchers joined with AND (``1`` for none)."""
    return " AND ".join(f"({matcher_condition(m)})" for m in matchers) or "1"


#: table -> (columns, sorting key, sharding key, version column or "")
TABLES: dict[str, tuple[str, str, str, str]] = {
    "series": (
        "tenant String, fingerprint UInt64, label_names Array(String), label_values Array(String)",
        "tenant, fingerprint",
        "fingerprint",
        "",
    ),
    "samples": (
        "tenant String, fingerprint UInt64, ts Int64, value Float64",
        "tenant, fingerprint, ts",
        "fingerprint",
        "",
    ),
    "histograms": (
        "tenant String, fingerprint UInt64, ts Int64, data String",
        "tenant, fingerprint, ts",
        "fingerprint",
        "",
    ),
    "exemplars": (
        "tenant String, fingerprint UInt64, ts Int64, id UInt64, value Float64, "
        "label_names Array(String), label_values Array(String)",
        "tenant, fingerprint, ts, id",
        "fingerprint",
        "",
    ),
    "metadata": (
        "tenant String, family String, type Int32, help String, unit String, received Int64",
        "tenant, family",
        "sipHash64(family)",
        "received",
    ),
}


def schema_statements(database: str, cluster: str | None, replicated: bool) -> list[str]:
    """``CREATE`` statements for the database and every table.

    Without a cluster: one ``ReplacingMergeTree`` table each. With one: a
    ``<name>_local`` table on every node (``ReplicatedReplacingMergeTree``
    when the cluster has replicas, its ZooKeeper path naming the ``{shard}``
    macro and the replica the ``{replica}`` macro) and a ``Distributed``
    table ``<name>`` over them, sharded by the series fingerprint.
    """
    on = f" ON CLUSTER {cluster}" if cluster else ""
    out = [f"CREATE DATABASE IF NOT EXISTS {database}{on}"]
    for table, (columns, key, shard_key, version) in TABLES.items():
        local = f"{table}_local" if cluster else table
        if replicated:
            path = literal(f"/clickhouse/tables/{{shard}}/{database}/{local}")
            args = f"{path}, '{{replica}}'" + (f", {version}" if version else "")
            engine = f"ReplicatedReplacingMergeTree({args})"
        else:
            engine = f"ReplacingMergeTree({version})"
        out.append(
            f"CREATE TABLE IF NOT EXISTS {database}.{local}{on} ({columns}) "
            f"ENGINE = {engine} ORDER BY ({key})"
        )
        if cluster:
            out.append(
                f"CREATE TABLE IF NOT EXISTS {database}.{table}{on} AS {database}.{local} "
                f"ENGINE = Distributed({cluster}, {database}, {local}, {shard_key})"
            )
    return out
