"""decode(encode(m)) gives back m, bit for bit, for every message class."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire import decode, encode
from promwire.testing import MESSAGE_CLASSES, canonical, messages


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_decode_encode_round_trip(cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(messages(cls))
    raw = encode(msg)
    back = decode(cls, raw)
    assert type(back) is cls
    assert canonical(back) == canonical(msg)
    # Encoding what was decoded gives the same bytes again.
    assert encode(back) == raw
