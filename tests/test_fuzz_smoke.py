"""A short, deterministic fuzz run over every target (no atheris needed).

Each target runs its seeds (the Prometheus captures, see fuzz/corpus.py)
and then mutants of them, a fixed number of inputs with a fixed random seed,
so a failure here reproduces exactly. The contract: every input is accepted
or refused with a PromwireError; anything else fails the test with the
offending input. Longer runs: ``python3 fuzz/run.py --seconds 600``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz import corpus
from fuzz.mutate import fuzz_target
from fuzz.targets import TARGETS, UNAVAILABLE, Crash, Target, check

#: Inputs per target: about 10 s for all targets together on a slow machine.
INPUTS = 5000
#: Mutants are cut to this length (the seeds run whole) to keep inputs cheap.
MAX_LEN = 4096
#: An input taking this long means super-linear work: a denial of service.
SLOW = 5.0

EXPECTED_FAMILIES = (
    "decode:",
    "decode:v2.",
    "snappy:",
    "receive:",
    "xor:",
    "histogram:",
    "frames:",
    "text:",
)


def test_every_decoder_has_a_target(fixtures_dir: Path) -> None:
    from promwire.codec.fields import SCHEMAS

    names = {t.name for t in TARGETS}
    assert not UNAVAILABLE, UNAVAILABLE
    for family in EXPECTED_FAMILIES:
        assert any(n.startswith(family) for n in names), family
    assert len([n for n in names if n.startswith("decode:")]) == len(SCHEMAS)
    assert {"snappy:python", "snappy:cramjam", "snappy:differential"} <= names
    assert fixtures_dir == corpus.FIXTURES


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_fuzz_smoke(target: Target, record_property: pytest.RecordProperty) -> None:
    seeds = corpus.seeds(target.seeds)
    assert seeds, f"no seeds for {target.name}"
    stats = fuzz_target(target, seeds, seed=0, max_inputs=INPUTS, max_len=MAX_LEN)
    record_property("inputs", stats.inputs)
    print(
        f"{target.name}: {stats.inputs} inputs, {stats.accepted} accepted, "
        f"{stats.refused} refused ({stats.refusal_kinds} kinds), slowest {stats.slowest:.3f} s"
    )
    assert stats.inputs == INPUTS
    if stats.crashes:
        pytest.fail("\n\n".join(c.format() for c in stats.crashes.values()))
    assert stats.slowest < SLOW
    # Mutants must exercise both sides of the contract on every target.
    assert stats.accepted + stats.refused == INPUTS
    if target.name not in ("snappy:roundtrip", "json:WriteRequest"):
        assert stats.refused > 0


def test_contract_violations_are_reported() -> None:
    # The harness itself: a target raising anything but PromwireError is a crash.
    def bad(data: bytes) -> None:
        if data:
            raise IndexError("boom")

    target = Target("test:bad", bad, "payload")
    assert check(target, b"") is None
    with pytest.raises(Crash) as info:
        check(target, b"x")
    assert info.value.key.startswith("IndexError at ")
    stats = fuzz_target(target, (b"", b"abc"), seed=1, max_inputs=50)
    assert stats.crash_count == 1 and stats.inputs == 50
