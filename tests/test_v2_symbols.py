"""SymbolTable (encode side) and ref validation (decode side) of remote write 2.0."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire import DecodeError, Label, decode, encode, v2
from promwire.testing import texts
from promwire.testing.v2 import valid_requests


def test_symbol_table_interns_and_starts_with_empty() -> None:
    t = v2.SymbolTable()
    assert t.symbols == [""]
    assert t.ref("") == 0
    assert t.ref("a") == 1
    assert t.ref("b") == 2
    assert t.ref("a") == 1
    assert len(t) == 3
    assert t.refs([Label("__name__", "a"), Label("job", "")]) == [3, 1, 4, 0]
    assert t.refs({"job": "a", "x": "b"}) == [4, 1, 5, 2]
    assert t.symbols == ["", "a", "b", "__name__", "job", "x"]
    with pytest.raises(TypeError):
        t.ref(b"bytes")  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(pairs=st.lists(st.tuples(texts(), texts()), max_size=10))
def test_symbol_table_refs_resolve_back(pairs: list[tuple[str, str]]) -> None:
    labels = [Label(n, v) for n, v in pairs]
    t = v2.SymbolTable()
    refs = t.refs(labels)
    assert v2.resolve_labels(t.symbols, refs) == labels
    assert len(set(t.symbols)) == len(t.symbols)  # de-duplicated
    assert t.symbols[0] == ""


def _req(*series: v2.TimeSeries, symbols: list[str] | None = None) -> v2.Request:
    return v2.Request(
        symbols=["", "__name__", "up", "job", "x"] if symbols is None else symbols,
        timeseries=list(series),
    )


GOOD = v2.TimeSeries(labels_refs=[1, 2, 3, 4], samples=[v2.Sample(1.0, 1)])


@pytest.mark.parametrize(
    ("series", "needle"),
    [
        (v2.TimeSeries(labels_refs=[1, 2, 3]), "series #1: odd number of label refs (3)"),
        (
            v2.TimeSeries(labels_refs=[1, 2, 3, 5]),
            "series #1: label ref 5 out of range (symbol table has 5 entries)",
        ),
        (
            v2.TimeSeries(labels_refs=[1, 2], exemplars=[v2.Exemplar([3, 9])]),
            "series #1 {__name__='up'}: exemplar #0: label ref 9 out of range",
        ),
        (
            v2.TimeSeries(labels_refs=[1, 2], exemplars=[v2.Exemplar(), v2.Exemplar([3])]),
            "series #1 {__name__='up'}: exemplar #1: odd number of label refs (1)",
        ),
        (
            v2.TimeSeries(labels_refs=[1, 2, 3, 4], metadata=v2.Metadata(help_ref=5)),
            "series #1 {__name__='up', job='x'}: metadata help_ref 5 out of range",
        ),
        (
            v2.TimeSeries(labels_refs=[1, 2], metadata=v2.Metadata(unit_ref=1 << 31)),
            f"series #1 {{__name__='up'}}: metadata unit_ref {1 << 31} out of range",
        ),
    ],
)
def test_validation_errors_name_the_series(series: v2.TimeSeries, needle: str) -> None:
    req = _req(GOOD, series)
    with pytest.raises(DecodeError) as exc:
        v2.validate(req)
    assert needle in str(exc.value)
    assert exc.value.status == 400
    assert v2.series_error(req.symbols, req.timeseries[0], 0) is None
    # to_v1 raises the same error; with an error list it keeps the good series.
    with pytest.raises(DecodeError, match="series #1"):
        v2.to_v1(req)
    errors: list[str] = []
    out = v2.to_v1(req, errors=errors)
    assert len(out.timeseries) == 1
    assert out.timeseries[0].labels == [Label("__name__", "up"), Label("job", "x")]
    assert len(errors) == 1
    assert needle in errors[0]


def test_refs_checked_after_a_wire_round_trip() -> None:
    # What a receiver does: decode, then validate.
    raw = encode(_req(v2.TimeSeries(labels_refs=[1, 7])))
    with pytest.raises(DecodeError, match=r"series #0: label ref 7 out of range"):
        v2.validate(decode(v2.Request, raw))


def test_first_symbol_must_be_empty() -> None:
    req = _req(symbols=["x", "y"])
    with pytest.raises(DecodeError, match=r"symbols\[0\] must be the empty string"):
        v2.validate(req)
    v2.validate(req, require_empty_first=False)
    v2.validate(v2.Request())  # nothing refers to the empty table
    with pytest.raises(DecodeError, match="label ref 0 out of range"):
        v2.validate(v2.Request(timeseries=[v2.TimeSeries(labels_refs=[0, 0])]))


def test_resolve_labels_errors() -> None:
    with pytest.raises(DecodeError, match="odd"):
        v2.resolve_labels(["", "a"], [1])
    with pytest.raises(DecodeError, match="label ref 2 out of range"):
        v2.resolve_labels(["", "a"], [1, 2])


@settings(max_examples=50, deadline=None)
@given(req=valid_requests())
def test_valid_requests_validate(req: v2.Request) -> None:
    v2.validate(req)
    assert all(v2.series_error(req.symbols, ts, i) is None for i, ts in enumerate(req.timeseries))


@settings(max_examples=50, deadline=None)
@given(req=valid_requests(), data=st.data())
def test_any_out_of_range_ref_is_caught(req: v2.Request, data: st.DataObject) -> None:
    if not req.timeseries:
        return
    i = data.draw(st.integers(0, len(req.timeseries) - 1))
    ts = req.timeseries[i]
    bad = len(req.symbols) + data.draw(st.integers(0, 5))
    where = data.draw(st.sampled_from(["labels", "exemplar", "help", "unit"]))
    if where == "labels":
        ts.labels_refs = [*ts.labels_refs, 0, bad]
    elif where == "exemplar":
        ts.exemplars = [*ts.exemplars, v2.Exemplar([bad, 0])]
    elif where == "help":
        ts.metadata = v2.Metadata(help_ref=bad)
    else:
        ts.metadata = v2.Metadata(unit_ref=bad)
    with pytest.raises(DecodeError, match=rf"(?s)series #{i}\b.*\b{bad} out of range"):
        v2.validate(req)


def test_series_description_quotes_odd_names_and_is_bounded() -> None:
    symbols = ["", "__name__", "up", "a b", "\n", "v" * 1000]
    ts = v2.TimeSeries(labels_refs=[1, 2, 3, 4, 4, 5])
    text = v2.describe_series(symbols, ts, 7)
    assert text.startswith("series #7 {__name__='up', 'a b'='\\n', '\\n'='vvv")
    assert text.endswith("...}")
    assert len(text) < 300
    assert "\n" not in text
    assert v2.describe_series(symbols, v2.TimeSeries(labels_refs=[1, 99]), 3) == "series #3"
