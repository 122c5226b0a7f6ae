"""The golden table (tests/cases.py) drives the encoder and the decoder.

Every case is also checked against protobuf's own implementation (the
runtime-built upb oracle), so a mistake in a hand derivation shows up as a
disagreement with upb rather than as a wrong expectation.
"""

from __future__ import annotations

import pytest

from promwire import decode, encode
from promwire.testing import canonical
from tests.cases import CASES, DECODE_ONLY, Case, DecodeCase
from tests.oracle import ORACLE, from_oracle, to_oracle


def test_case_names_unique() -> None:
    names = [c.name for c in CASES] + [c.name for c in DECODE_ONLY]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_encode(case: Case) -> None:
    assert encode(case.message).hex(" ") == case.raw.hex(" ")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decode(case: Case) -> None:
    got = decode(type(case.message), case.raw)
    assert type(got) is type(case.message)
    assert canonical(got) == canonical(case.message)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_agrees_with_upb(case: Case) -> None:
    cls = type(case.message)
    assert to_oracle(case.message).SerializeToString() == case.raw
    back = from_oracle(cls, ORACLE[cls].FromString(case.raw))
    assert canonical(back) == canonical(case.message)


@pytest.mark.parametrize("case", DECODE_ONLY, ids=[c.name for c in DECODE_ONLY])
def test_decode_non_canonical(case: DecodeCase) -> None:
    got = decode(case.cls, case.raw)
    assert canonical(got) == canonical(case.message)
    # ... and re-encoding gives the canonical form, which decodes the same.
    assert canonical(decode(case.cls, encode(got))) == canonical(case.message)


@pytest.mark.parametrize("case", DECODE_ONLY, ids=[c.name for c in DECODE_ONLY])
def test_non_canonical_case_agrees_with_upb(case: DecodeCase) -> None:
    back = from_oracle(case.cls, ORACLE[case.cls].FromString(case.raw))
    assert canonical(back) == canonical(case.message)
    assert encode(case.message) == to_oracle(case.message).SerializeToString()
