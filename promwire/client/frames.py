"""Series in columns to and from pandas DataFrames and Arrow tables (optional extras).

Imported only when asked (``RemoteReadClient.read_dataframe``/``read_arrow``,
``RemoteWriteClient.send_frame``, or directly); pandas and pyarrow are the
``pandas`` and ``arrow`` extras and are imported inside the functions that
need them, so this module loads without either.

**Layout: long form, labels as columns.** One row per sample: a column per
label name (sorted by name), then ``timestamp`` and ``value``. A series
without some label has a null there (Prometheus treats an empty value as an
absent label, so nothing is lost). Why labels as columns rather than one
label-set key column: that is what data work filters and groups on
(``df[df.job == "node"]``, ``groupby("instance")``), it is the layout of
``prometheus-api-client``'s ``MetricRangeDataFrame`` that users know, and it
costs little: each label column is dictionary-encoded (pandas
``Categorical``, Arrow ``dictionary<int32, string>``), one small code per
row. The label set of a row is the non-null label columns, so writing a
frame back needs no key parsing either.

* ``timestamp``: UTC datetimes at millisecond resolution (pandas
  ``datetime64[ms, UTC]``, Arrow ``timestamp[ms, tz=UTC]``), or the raw int64
  milliseconds with ``timestamps="ms"``;
* ``value``: float64, bit-exact (the bytes of the ``array('d')`` are handed
  over: stale markers and NaN payloads survive);
* the data columns' names are ``timestamp_column``/``value_column``; a label
  with one of those names is refused (:class:`ValueError`) rather than
  silently renamed: pick other names for the data columns.

Rows come series by series, in the order the server answered (Prometheus
sorts series by label set), each series in time order.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal

from ..codec.columns import SeriesColumns, time_series_of
from ..codec.messages import Label

if TYPE_CHECKING:
    import pandas
    import pyarrow

__all__ = ["from_arrow", "from_dataframe", "send_frame", "to_arrow", "to_dataframe"]

Timestamps = Literal["datetime", "ms"]


class _Long:
    """The long form of some series, in flat arrays: what both libraries are built from."""

    __slots__ = ("codes", "names", "timestamps", "values", "vocab")

    def __init__(self, series: Iterable[SeriesColumns], reserved: Sequence[str]) -> None:
        parts = list(series)
        self.timestamps: array[int] = array("q")
        self.values: array[float] = array("d")
        for sc in parts:
            if len(sc.timestamps) != len(sc.values):
                raise ValueError(f"series {sc.labels!r}: timestamps and values differ in length")
            self.timestamps.extend(sc.timestamps)  # memcpy, no per-sample object
            self.values.extend(sc.values)
        self.names = sorted({lb.name for sc in parts for lb in sc.labels})
        for name in reserved:
            if name in self.names:
                raise ValueError(
                    f"a series has a label named {name!r}, the name of a data column; "
                    "pass other timestamp_column/value_column names"
                )
        # per label name: its distinct values and one int32 code per row (-1: absent)
        self.vocab: dict[str, dict[str, int]] = {name: {} for name in self.names}
        self.codes: dict[str, array[int]] = {name: array("i") for name in self.names}
        absent = array("i", [-1])
        for sc in parts:
            n = len(sc.timestamps)
            if not n:
                continue
            have = {lb.name: lb.value for lb in sc.labels}
            for name in self.names:
                value = have.get(name)
                if value is None or value == "":
                    self.codes[name].extend(absent * n)
                    continue
                vocab = self.vocab[name]
                code = vocab.get(value)
                if code is None:
                    code = vocab[value] = len(vocab)
                self.codes[name].extend(array("i", [code]) * n)  # a run repeated in C


def _series_of(items: Iterable[tuple[int, SeriesColumns] | SeriesColumns]) -> list[SeriesColumns]:
    return [item if isinstance(item, SeriesColumns) else item[1] for item in items]


def to_arrow(
    items: Iterable[tuple[int, SeriesColumns] | SeriesColumns],
    *,
    timestamp_column: str = "timestamp",
    value_column: str = "value",
    timestamps: Timestamps = "datetime",
) -> pyarrow.Table:
    """A long-form ``pyarrow.Table`` of the series (see the module docstring).

    ``items``: ``SeriesColumns`` or ``(query_index, SeriesColumns)`` pairs
    (what :meth:`RemoteReadClient.read_columns` yields). The timestamp and
    value columns share the arrays' memory (no copy after joining them).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    long = _Long(_series_of(items), (timestamp_column, value_column))
    n = len(long.timestamps)
    ts_type = pa.timestamp("ms", tz="UTC") if timestamps == "datetime" else pa.int64()
    columns: dict[str, Any] = {}
    null_code = pa.scalar(None, pa.int32())
    for name in long.names:
        codes = pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(long.codes[name])])
        lowest = pc.min(codes).as_py()
        if lowest is not None and lowest < 0:  # some series lack this label: nulls
            codes = pc.if_else(pc.less(codes, 0), null_code, codes)
        dictionary = pa.array(list(long.vocab[name]), pa.string())
        columns[name] = pa.DictionaryArray.from_arrays(codes, dictionary)
    columns[timestamp_column] = pa.Array.from_buffers(
        ts_type, n, [None, pa.py_buffer(long.timestamps)]
    )
    columns[value_column] = pa.Array.from_buffers(
        pa.float64(), n, [None, pa.py_buffer(long.values)]
    )
    return pa.table(columns)


def to_dataframe(
    items: Iterable[tuple[int, SeriesColumns] | SeriesColumns],
    *,
    timestamp_column: str = "timestamp",
    value_column: str = "value",
    timestamps: Timestamps = "datetime",
) -> pandas.DataFrame:
    """A long-form ``pandas.DataFrame`` of the series (see the module docstring).

    Needs pandas only (not pyarrow): label columns are ``Categorical`` built
    from codes, the value column a copy of the joined ``array('d')``.
    """
    import numpy as np
    import pandas as pd

    long = _Long(_series_of(items), (timestamp_column, value_column))
    data: dict[str, Any] = {}
    for name in long.names:
        codes = np.frombuffer(long.codes[name], dtype=np.int32)
        data[name] = pd.Categorical.from_codes(codes, categories=list(long.vocab[name]))
    ms = np.frombuffer(long.timestamps, dtype=np.int64).copy()
    if timestamps == "datetime":
        data[timestamp_column] = pd.Series(ms.view("datetime64[ms]")).dt.tz_localize("UTC")
    else:
        data[timestamp_column] = ms
    data[value_column] = np.frombuffer(long.values, dtype=np.float64).copy()
    return pd.DataFrame(data, copy=False)


# ------------------------------------------------------------------ writing back


def _labels(names: Sequence[str], values: Sequence[Any]) -> tuple[Label, ...]:
    """Labels of a row group: null and empty values are absent labels; names sorted."""
    out = []
    for name, value in sorted(zip(names, values, strict=True)):
        if value is None or value != value or value == "":  # None, NaN (pandas' null), ""
            continue
        out.append(Label(name, str(value)))
    return tuple(out)


def from_dataframe(
    frame: pandas.DataFrame, *, timestamp_column: str = "timestamp", value_column: str = "value"
) -> list[SeriesColumns]:
    """Series in columns from a long-form DataFrame (the layout :func:`to_dataframe` makes).

    Every column other than the two data columns is a label. Timestamps may
    be datetimes (naive ones are taken as UTC; sub-millisecond parts are cut)
    or integer milliseconds; a timestamp index (as in prometheus-api-client's
    ``MetricRangeDataFrame``) is taken as the column. Each series' samples are
    put in time order.
    """
    import numpy as np
    import pandas as pd

    if timestamp_column not in frame.columns and timestamp_column in frame.index.names:
        frame = frame.reset_index()  # e.g. prometheus-api-client's MetricRangeDataFrame
    names = [c for c in frame.columns if c not in (timestamp_column, value_column)]
    if not len(frame):
        return []
    ts_col = frame[timestamp_column]
    if isinstance(ts_col.dtype, pd.DatetimeTZDtype):
        ts_col = ts_col.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(ts_col.dtype):
        ms = ts_col.to_numpy().astype("datetime64[ms]").view(np.int64)
    elif pd.api.types.is_integer_dtype(ts_col.dtype):
        ms = ts_col.to_numpy(dtype=np.int64)
    else:
        raise TypeError(f"column {timestamp_column!r} holds {ts_col.dtype}, not times")
    values = frame[value_column].to_numpy(dtype=np.float64)
    if not names:
        groups: dict[Any, Any] = {(): np.arange(len(frame))}
    else:
        groups = frame.groupby(names, dropna=False, sort=False, observed=True).indices
    out = []
    for key, rows in groups.items():
        key_values = key if isinstance(key, tuple) else (key,)
        order = rows[np.argsort(ms[rows], kind="stable")]
        ts: array[int] = array("q")
        ts.frombytes(np.ascontiguousarray(ms[order], dtype="<i8").tobytes())
        vs: array[float] = array("d")
        vs.frombytes(np.ascontiguousarray(values[order], dtype="<f8").tobytes())
        out.append(SeriesColumns(_labels(names, key_values), ts, vs))
    return out


def from_arrow(
    table: pyarrow.Table, *, timestamp_column: str = "timestamp", value_column: str = "value"
) -> list[SeriesColumns]:
    """Series in columns from a long-form Arrow table (the layout :func:`to_arrow` makes).

    The same rules as :func:`from_dataframe`; needs pyarrow only.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    names = [c for c in table.column_names if c not in (timestamp_column, value_column)]
    ts_col = table[timestamp_column]
    if pa.types.is_timestamp(ts_col.type):
        ts_col = pc.cast(ts_col, pa.timestamp("ms", tz=ts_col.type.tz), safe=False)
    elif not pa.types.is_integer(ts_col.type):
        raise TypeError(f"column {timestamp_column!r} holds {ts_col.type}, not times")
    ts_col = pc.cast(ts_col, pa.int64())
    work = pa.table(
        {
            **{
                f"l{i}": pc.fill_null(pc.cast(table[c], pa.string()), "")
                for i, c in enumerate(names)
            },
            "t": ts_col,
            "v": pc.cast(table[value_column], pa.float64()),
        }
    )
    keys = [f"l{i}" for i in range(len(names))]
    work = work.sort_by([(k, "ascending") for k in keys] + [("t", "ascending")])
    n = work.num_rows
    starts = [0]
    if n > 1 and keys:
        change = None
        for k in keys:
            col = work[k]
            ne = pc.not_equal(col.slice(1), col.slice(0, n - 1))
            change = ne if change is None else pc.or_(change, ne)
        starts += [i + 1 for i in pc.indices_nonzero(change).to_pylist()]
    starts.append(n)
    t_all: array[int] = array("q")
    v_all: array[float] = array("d")
    for chunk in work["t"].chunks:
        t_all.frombytes(_buffer_bytes(chunk, 8))
    for chunk in work["v"].chunks:
        v_all.frombytes(_buffer_bytes(chunk, 8))
    label_cols = [work[k] for k in keys]
    out = []
    for a, b in pairwise(starts):
        if a == b:
            continue
        key_values = [col[a].as_py() for col in label_cols]
        out.append(SeriesColumns(_labels(names, key_values), t_all[a:b], v_all[a:b]))
    return out


def _buffer_bytes(arr: Any, width: int) -> bytes:
    """The data bytes of a fixed-width Arrow array without nulls (its offset honoured)."""
    if arr.null_count:
        raise ValueError("timestamps and values must not be null")
    data = arr.buffers()[1]
    start = arr.offset * width
    raw: bytes = data.to_pybytes()
    return raw[start : start + len(arr) * width]


def send_frame(
    client: Any,
    frame: Any,
    *,
    timestamp_column: str = "timestamp",
    value_column: str = "value",
    **send_options: Any,
) -> list[Any]:
    """Remote-write a long-form DataFrame or Arrow table with a ``RemoteWriteClient``.

    The frame becomes series (:func:`from_dataframe`/:func:`from_arrow`), sent
    in batches by ``client.send_series`` (its retries and limits apply);
    returns its results.
    """
    kind = type(frame).__module__.split(".", 1)[0]
    if kind == "pyarrow":
        series = from_arrow(frame, timestamp_column=timestamp_column, value_column=value_column)
    else:
        series = from_dataframe(frame, timestamp_column=timestamp_column, value_column=value_column)
    return list(
        client.send_series(
            map(time_series_of, series),
            **send_options,
        )
    )
