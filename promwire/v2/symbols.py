"""The remote write 2.0 string table: building it (encode side) and checking refs (decode side).

Every string of a v2 request (label names and values, exemplar labels, help,
unit) lives once in ``Request.symbols``; messages carry indexes ("refs").
``symbols[0]`` is always ``""``, so an unset ref (0) means "empty".

Encode side::

    table = SymbolTable()
    series = TimeSeries(labels_refs=table.refs(labels), ...)
    request = Request(symbols=table.symbols, timeseries=[series])

Decode side: ``decode`` only checks the wire format. Refs are checked by
:func:`validate` (whole request, first problem raises) or :func:`series_error`
(one series, for receivers that accept the good series of a request and
reject the bad ones, as Prometheus does: 400 with a partial write).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..codec.messages import Label
from ..errors import DecodeError
from .messages import Request, TimeSeries

__all__ = [
    "SymbolTable",
    "describe_series",
    "resolve_labels",
    "series_error",
    "validate",
]


class SymbolTable:
    """Interns strings for one v2 request; ``symbols[0]`` is ``""``.

    Strings get refs in order of first use. The table grows without bound:
    use one table per request.
    """

    __slots__ = ("_index", "symbols")

    def __init__(self) -> None:
        #: The string table, ready to be used as ``Request.symbols``.
        self.symbols: list[str] = [""]
        self._index: dict[str, int] = {"": 0}

    def __len__(self) -> int:
        return len(self.symbols)

    def ref(self, s: str) -> int:
        """The ref of ``s``, adding it to the table on first use."""
        r = self._index.get(s)
        if r is None:
            if not isinstance(s, str):
                raise TypeError(f"symbols are str, got {type(s).__name__}")
            r = len(self.symbols)
            self.symbols.append(s)
            self._index[s] = r
        return r

    def refs(self, labels: Iterable[Label] | Mapping[str, str]) -> list[int]:
        """``labels_refs`` for a label set: ``[name_ref, value_ref, ...]`` in the given order.

        Accepts ``Label`` objects or a ``{name: value}`` mapping. The order is
        kept as given: senders should pass labels sorted by name.
        """
        ref = self.ref
        out: list[int] = []
        if isinstance(labels, Mapping):
            for name, value in labels.items():
                out.append(ref(name))
                out.append(ref(value))
        else:
            for label in labels:
                out.append(ref(label.name))
                out.append(ref(label.value))
        return out


def resolve_labels(symbols: Sequence[str], refs: Sequence[int]) -> list[Label]:
    """Turn ``labels_refs`` into ``Label`` objects.

    Raises :class:`~promwire.errors.DecodeError` for an odd number of refs or
    a ref outside the table (the message names the offending ref).
    """
    n = len(refs)
    if n & 1:
        raise DecodeError(f"odd number of label refs ({n})")
    size = len(symbols)
    out: list[Label] = []
    for i in range(0, n, 2):
        a = refs[i]
        b = refs[i + 1]
        if a >= size or b >= size:
            bad = a if a >= size else b
            raise DecodeError(f"label ref {bad} out of range (symbol table has {size} entries)")
        out.append(Label(symbols[a], symbols[b]))
    return out


#: Longest label text an error message quotes (a sender controls it).
_DESCRIBE_LIMIT = 240


def describe_series(symbols: Sequence[str], series: TimeSeries, index: int) -> str:
    """How error messages name a series: its index plus ``{name='value', ...}`` when resolvable.

    Names that are not identifiers are quoted; the label text is cut at 240
    characters.
    """
    try:
        labels = resolve_labels(symbols, series.labels_refs)
    except DecodeError:
        return f"series #{index}"
    inner = ", ".join(
        f"{lb.name if lb.name.isidentifier() else repr(lb.name)}={lb.value!r}" for lb in labels
    )
    if len(inner) > _DESCRIBE_LIMIT:
        inner = inner[:_DESCRIBE_LIMIT] + "..."
    return f"series #{index} {{{inner}}}"


def series_error(symbols: Sequence[str], series: TimeSeries, index: int) -> str | None:
    """What is wrong with the refs of one series, or ``None`` if they are all valid.

    Checks: even ``labels_refs`` length, every label ref, every exemplar
    label ref (and their even length), metadata ``help_ref``/``unit_ref``.
    ``index`` is only used to name the series in the message.
    """
    size = len(symbols)
    refs = series.labels_refs
    md = series.metadata
    # The common, valid case costs a few C-level calls: parity, max() per list.
    if (
        not len(refs) & 1
        and (not refs or max(refs) < size)
        and (md is None or (md.help_ref < size and md.unit_ref < size))
        and all(
            not len(e.labels_refs) & 1 and (not e.labels_refs or max(e.labels_refs) < size)
            for e in series.exemplars
        )
    ):
        return None
    if len(refs) & 1:
        return f"{describe_series(symbols, series, index)}: odd number of label refs ({len(refs)})"
    for r in refs:
        if r >= size:
            return (
                f"{describe_series(symbols, series, index)}: label ref {r} out of range "
                f"(symbol table has {size} entries)"
            )
    for j, ex in enumerate(series.exemplars):
        erefs = ex.labels_refs
        if len(erefs) & 1:
            return (
                f"{describe_series(symbols, series, index)}: exemplar #{j}: "
                f"odd number of label refs ({len(erefs)})"
            )
        for r in erefs:
            if r >= size:
                return (
                    f"{describe_series(symbols, series, index)}: exemplar #{j}: label ref {r} "
                    f"out of range (symbol table has {size} entries)"
                )
    assert md is not None  # the only check left
    for what, r in (("help_ref", md.help_ref), ("unit_ref", md.unit_ref)):
        if r >= size:
            return (
                f"{describe_series(symbols, series, index)}: metadata {what} {r} out of "
                f"range (symbol table has {size} entries)"
            )
    raise AssertionError("unreachable")


def validate(request: Request, *, require_empty_first: bool = True) -> None:
    """Check the symbol table and every ref of ``request``.

    Raises :class:`~promwire.errors.DecodeError` (HTTP 400) for the first
    series with a bad ref; the message names the series by its labels when
    they resolve, else by its index. With ``require_empty_first`` (the
    default, the spec's MUST) a non-empty table whose first symbol is not
    ``""`` is rejected too; pass ``False`` to accept such tables as leniently
    as Prometheus, which only indexes into the table. An empty table is
    accepted when nothing refers to it.
    """
    symbols = request.symbols
    if require_empty_first and symbols and symbols[0] != "":
        raise DecodeError(f"symbols[0] must be the empty string, got {symbols[0]!r}")
    for i, series in enumerate(request.timeseries):
        problem = series_error(symbols, series, i)
        if problem is not None:
            raise DecodeError(problem)
