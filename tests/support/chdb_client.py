"""Run the ClickHouse store's SQL in-process on a current ClickHouse release (``chdb``).

:class:`ChdbClient` has the ``query``/``close`` of
:class:`promwire.stores._clickhouse_http.ClickHouseHTTP`, so
``ClickHouseStorage(client=ChdbClient(path))`` runs the very statements the
store sends over HTTP, on the ClickHouse that ``chdb`` embeds. An ``INSERT ...
FORMAT RowBinary`` with rows becomes ``INSERT ... SELECT * FROM file(...)``
over the same bytes written to a file (chdb takes no request body), so the
server still parses promwire's RowBinary.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from pathlib import Path

from chdb import session

from promwire.errors import StorageError
from promwire.stores._clickhouse_sql import TABLES, literal

_INSERT = re.compile(r"INSERT INTO (\w+)\.(\w+) \(([^)]*)\) FORMAT RowBinary\Z")


def _column_types() -> dict[str, dict[str, str]]:
    out = {}
    for table, (columns, *_rest) in TABLES.items():
        out[table] = dict(c.strip().split(" ", 1) for c in columns.split(", "))
    return out


class ChdbClient:
    """A chdb session in ``path`` answering like ClickHouse's HTTP interface."""

    def __init__(self, path: Path) -> None:
        self.dir = path
        self.dir.mkdir(parents=True, exist_ok=True)
        self.session = session.Session(str(self.dir / "db"))
        self._types = _column_types()
        self._files = itertools.count()

    def query(
        self,
        sql: str,
        data: bytes | None = None,
        settings: Mapping[str, str | int | float] | None = None,
    ) -> bytes:
        fmt = "CSV"
        if data is not None:
            found = _INSERT.match(sql)
            assert found, sql
            database, table, columns = found.groups()
            names = [c.strip() for c in columns.split(",")]
            structure = ", ".join(f"{n} {self._types[table][n]}" for n in names)
            rows = self.dir / f"rows-{next(self._files)}.bin"
            rows.write_bytes(data)
            sql = (
                f"INSERT INTO {database}.{table} ({columns}) "
                f"SELECT * FROM file('{rows}', 'RowBinary', '{structure}')"
            )
        else:
            sql, _, fmt = sql.rpartition(" FORMAT ") if " FORMAT " in sql else (sql, "", "CSV")
        try:
            if settings and sql.startswith("SELECT"):
                sql += " SETTINGS " + ", ".join(
                    f"{k} = {literal(v) if isinstance(v, str) else v}" for k, v in settings.items()
                )
            result = self.session.query(sql, fmt)
        except Exception as exc:  # chdb raises a bare RuntimeError-like error
            raise StorageError(f"chdb: {exc}"[:300]) from exc
        return bytes(result.bytes()) if result is not None else b""

    def close(self) -> None:
        self.session.close()
