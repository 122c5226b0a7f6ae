"""Prometheus label-matcher semantics in Python, for storages answering remote read.

A remote-read :class:`~promwire.codec.messages.Query` selects series with
:class:`~promwire.codec.messages.LabelMatcher` s (``=``, ``!=``, ``=~``, ``!~``)::

    match = compile_matchers(query.matchers)
    if match({"__name__": "up", "job": "node"}): ...

Semantics follow Prometheus:

* A label that is absent has the value ``""``: ``{foo=""}`` selects series
  *without* ``foo``, ``{foo!=""}`` those that have it, and ``{foo=~".*"}``
  matches every series.
* Regexes are fully anchored: ``=~"a|b"`` means ``^(?:a|b)$`` and must match
  the whole value (``re.fullmatch``; note Python's ``$`` alone would also
  accept a trailing newline, fullmatch does not).

Differences between Python ``re`` and Go's RE2, which Prometheus uses:

* RE2 rejects backreferences (``\\1``) and lookarounds (``(?=...)``); Python
  accepts them, so a query Prometheus answers with 400 may work here.
* RE2-only syntax such as ``\\pL``/``\\p{Greek}``, ``\\z``, POSIX classes
  (``[[:alpha:]]``) and ``(?U)`` is an error (or means something else) in Python.
* ``.`` does not match a newline in either (Prometheus 3.x switched to ``(?s)``;
  2.x, which this targets, did not).
* Python's engine backtracks: a hostile pattern can take exponential time,
  RE2 is linear. Expose remote read only to trusted clients.

An invalid regex raises :class:`~promwire.errors.StorageRejected` (answered 400).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache

from ..codec.messages import LabelMatcher, MatchType
from ..errors import StorageRejected

__all__ = ["compile_matcher", "compile_matchers", "compile_regex", "matches"]

Predicate = Callable[[Mapping[str, str]], bool]


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile a matcher regex (cached); use it with ``fullmatch``."""
    try:
        # The (?:...) group keeps an alternation like "a|b" inside the anchoring.
        return re.compile(f"(?:{pattern})")
    except re.error as exc:
        raise StorageRejected(f"invalid regex {pattern!r} in label matcher: {exc}") from None


def compile_matcher(matcher: LabelMatcher) -> Predicate:
    """A predicate over a ``{name: value}`` mapping for one matcher."""
    name, value = matcher.name, matcher.value
    mtype = matcher.type
    if mtype == MatchType.EQ:
        return lambda labels: labels.get(name, "") == value
    if mtype == MatchType.NEQ:
        return lambda labels: labels.get(name, "") != value
    if mtype in (MatchType.RE, MatchType.NRE):
        fullmatch = compile_regex(value).fullmatch
        if mtype == MatchType.RE:
            return lambda labels: fullmatch(labels.get(name, "")) is not None
        return lambda labels: fullmatch(labels.get(name, "")) is None
    raise StorageRejected(f"unknown label matcher type {int(mtype)}")


def compile_matchers(matchers: Iterable[LabelMatcher]) -> Predicate:
    """A predicate that holds when every matcher matches (an empty list matches all)."""
    preds = [compile_matcher(m) for m in matchers]
    return lambda labels: all(p(labels) for p in preds)


def matches(matchers: Iterable[LabelMatcher], labels: Mapping[str, str]) -> bool:
    """Whether a label set satisfies all ``matchers``."""
    return compile_matchers(matchers)(labels)
