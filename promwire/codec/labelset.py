"""What makes a series' label set valid, the rule of remote write 1.0 receivers.

A label set must hold at least one label with a value (a label with an empty
value is the same as no label: storages drop it), and no label name twice
(a store keyed by the set could never find such a series again). Prometheus'
TSDB refuses both ("empty labelset", ``label name "a" is not unique``).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

from .messages import Label

__all__ = ["label_set_problem"]

_name_of = operator.attrgetter("name")
_value_of = operator.attrgetter("value")


def _shown(text: str) -> str:
    return repr(text[:40] + "..." if len(text) > 40 else text)


def label_set_problem(labels: Sequence[Label]) -> str | None:
    """What is wrong with ``labels`` as a series' label set, or ``None`` if it is valid."""
    if not any(map(_value_of, labels)):
        return "no labels" if not labels else "no label has a value"
    if len(set(map(_name_of, labels))) == len(labels):
        return None
    seen: set[str] = set()
    for lb in labels:
        if lb.name in seen:
            return f"label name {_shown(lb.name)} appears twice"
        seen.add(lb.name)
    raise AssertionError("unreachable")
