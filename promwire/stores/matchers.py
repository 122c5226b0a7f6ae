"""Prometheus label-matcher semantics in Python, for storages answering remote read.

A remote-read :class:`~promwire.codec.messages.Query` selects series with
:class:`~promwire.codec.messages.LabelMatcher` s (``=``, ``!=``, ``=~``, ``!~``)::

    match = compile_matchers(query.matchers)
    if match({"__name__": "up", "job": "node"}): ...

Semantics follow Prometheus:

* A label that is absent has the value ``""``: ``{foo=""}`` selects series
  *without* ``foo``, ``{foo!=""}`` those that have it, and ``{foo=~".*"}``
  matches every series.
* Regexes are anchored as Prometheus anchors them: ``=~"a|b"`` compiles
  ``^(?:a|b)$`` and must match the whole value.

Regexes are RE2 (:mod:`promwire.stores.regex`): Google's RE2 when
``google-re2`` is installed (``promwire[re2]``), otherwise promwire's own
linear-time engine for the same syntax. Either way matching takes time
linear in the value, and what Prometheus refuses is refused here
(backreferences, lookarounds, ``\\C``, repeat counts over 1000, ...).
Differences from Prometheus (Go's RE2):

* patterns longer than ``max_regex_length`` characters (default 16384) are
  refused; Prometheus has no limit;
* very large programs are refused earlier than Go would: over RE2's memory
  budget (e.g. ``\\pL{1000}``) or, without google-re2, over 50,000 NFA
  instructions;
* without google-re2, a match needing over 1,000,000 NFA steps on one
  value (a huge program against a long value) is refused, not answered;
* ``(?<name>...)`` is accepted (RE2 and Go >= 1.22 do; Prometheus 2.42's Go
  did not); Unicode tables are RE2's (newer than Go 1.19's).

An invalid or over-long regex raises :class:`~promwire.errors.StorageRejected`
(answered 400) with a short message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from ..codec.messages import LabelMatcher, MatchType
from ..errors import StorageRejected
from .regex import DEFAULT_MAX_REGEX_LENGTH, Regex, compile_regex

__all__ = ["Regex", "compile_matcher", "compile_matchers", "compile_regex", "matches"]

Predicate = Callable[[Mapping[str, str]], bool]


def compile_matcher(
    matcher: LabelMatcher, *, max_regex_length: int = DEFAULT_MAX_REGEX_LENGTH
) -> Predicate:
    """A predicate over a ``{name: value}`` mapping for one matcher."""
    name, value = matcher.name, matcher.value
    mtype = matcher.type
    if mtype == MatchType.EQ:
        return lambda labels: labels.get(name, "") == value
    if mtype == MatchType.NEQ:
        return lambda labels: labels.get(name, "") != value
    if mtype in (MatchType.RE, MatchType.NRE):
        test = compile_regex(value, max_length=max_regex_length).matches
        if mtype == MatchType.RE:
            return lambda labels: test(labels.get(name, ""))
        return lambda labels: not test(labels.get(name, ""))
    raise StorageRejected(f"unknown label matcher type {int(mtype)}")


def compile_matchers(
    matchers: Iterable[LabelMatcher], *, max_regex_length: int = DEFAULT_MAX_REGEX_LENGTH
) -> Predicate:
    """A predicate that holds when every matcher matches (an empty list matches all)."""
    preds = [compile_matcher(m, max_regex_length=max_regex_length) for m in matchers]
    return lambda labels: all(p(labels) for p in preds)


def matches(
    matchers: Iterable[LabelMatcher],
    labels: Mapping[str, str],
    *,
    max_regex_length: int = DEFAULT_MAX_REGEX_LENGTH,
) -> bool:
    """Whether a label set satisfies all ``matchers``."""
    return compile_matchers(matchers, max_regex_length=max_regex_length)(labels)
