"""Regex label matchers with RE2's syntax and semantics, in linear time.

Prometheus compiles a matcher value ``v`` as ``^(?:v)$`` with Go's
``regexp`` (RE2 syntax, no backtracking). :func:`compile_regex` does the
same with one of two engines:

* ``re2`` - Google's RE2 through the ``google-re2`` binding
  (``pip install 'promwire[re2]'``), used whenever it is importable;
* ``python`` - promwire's own: a parser for the RE2 syntax
  (:mod:`._regex_syntax`) and a Thompson-NFA simulation run as a lazy DFA
  (:mod:`._regex_nfa`), pure Python.

Both give the same answers (within the limits below), and both are
linear: matching looks at each character of the value once, whatever the
pattern, so ``(a+)+b`` against 40 ``a`` s costs what ``a+b`` does. Every pattern is first parsed by
promwire's parser, so both engines refuse the same patterns, as Go does:
backreferences, lookarounds, ``\\C``, repeat counts over 1000, bad syntax,
and groups nested more than :data:`MAX_NESTING` deep. Refusals raise
:class:`~promwire.errors.StorageRejected` (answered 400) with a message
quoting at most :data:`QUOTE_CHARS` characters of the pattern.

The environment variable ``PROMWIRE_REGEX`` (read at import) chooses the
default engine: unset/``auto`` (re2 if importable), ``python`` or ``re2``.

Limits (see docs/robustness.md): patterns longer than ``max_length``
characters (default :data:`DEFAULT_MAX_REGEX_LENGTH`) are refused; the
python engine refuses programs over :data:`MAX_PROGRAM_SIZE` instructions
and matches that need over :data:`MAX_MATCH_WORK` NFA steps on one value,
RE2 programs over its memory budget (:data:`RE2_MAX_MEM`); compiled
patterns are cached up to :data:`CACHE_BYTES` of estimated memory, least
recently used first out; refused patterns are never cached.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal

from ..errors import StorageRejected
from ._regex_nfa import Matcher, ProgramTooLarge, compile_program
from ._regex_syntax import Node, RegexSyntaxError, parse

__all__ = [
    "CACHE_BYTES",
    "DEFAULT_MAX_REGEX_LENGTH",
    "ENGINE",
    "MAX_MATCH_WORK",
    "MAX_NESTING",
    "MAX_PROGRAM_SIZE",
    "Regex",
    "cache_stats",
    "clear_cache",
    "compile_regex",
]

#: Longest pattern accepted by default, in characters (Prometheus has no limit).
DEFAULT_MAX_REGEX_LENGTH = 16 * 1024
#: Deepest nesting of groups (Go refuses parse trees over 1000 high).
MAX_NESTING = 1000
#: Largest program of the python engine, in NFA instructions (counted repeats expanded).
MAX_PROGRAM_SIZE = 50_000
#: RE2's memory budget per pattern (program and lazy DFA), in bytes.
RE2_MAX_MEM = 256 * 1024
#: NFA steps the python engine may spend on one value outside its DFA cache (about 1 s).
MAX_MATCH_WORK = 1_000_000
#: The compile cache holds patterns up to this many bytes of estimated memory.
CACHE_BYTES = 64 * 1024 * 1024
#: At most this many characters of a pattern appear in an error message.
QUOTE_CHARS = 64
#: Estimated bytes per instruction / per DFA cache unit of the python engine.
_INST_BYTES, _UNIT_BYTES = 160, 100

Engine = Literal["re2", "python"]


def _load_re2() -> Any:
    try:
        import re2  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return None
    return re2


def _choose() -> tuple[Engine, Any]:
    wanted = os.environ.get("PROMWIRE_REGEX", "").strip().lower()
    if wanted in ("", "auto"):
        module = _load_re2()
        return ("re2" if module is not None else "python"), module
    if wanted == "python":
        return "python", None
    if wanted == "re2":
        module = _load_re2()
        if module is None:
            raise ImportError("PROMWIRE_REGEX=re2 but google-re2 is not installed")
        return "re2", module
    raise ImportError(f"PROMWIRE_REGEX must be auto, python or re2, not {wanted[:20]!r}")


#: The default engine: ``"re2"`` or ``"python"``.
ENGINE, _re2 = _choose()
# The pattern is wrapped as ^(?:...)$ (see _wrap), so an unanchored search
# is the full match, exactly as Prometheus runs it.
_UNANCHORED: Any = None
if _re2 is not None:
    try:
        _UNANCHORED = _re2._re2.RE2.Anchor.UNANCHORED
    except AttributeError:  # another layout of the binding: search() is used
        _UNANCHORED = None


def _quote(pattern: str) -> str:
    short = pattern[:QUOTE_CHARS] + ("…" if len(pattern) > QUOTE_CHARS else "")
    return repr(short)


def _invalid(pattern: str, reason: object) -> StorageRejected:
    """The 400 for a pattern RE2 (or the python engine) refuses."""
    return StorageRejected(f"invalid regex {_quote(pattern)} in label matcher: {reason}")


class Regex:
    """A compiled matcher regex: ``matches(value)`` is Prometheus' ``=~``."""

    __slots__ = ("_fallback", "_raw", "_re2", "engine", "matches", "pattern", "size")

    def __init__(
        self, pattern: str, engine: Engine, matcher: Matcher | None, re2_obj: Any, size: int
    ) -> None:
        self.pattern = pattern
        self.engine = engine
        self._fallback = matcher
        self._re2 = re2_obj
        # google-re2's Python-level search() decodes offsets back to str
        # positions, about 3 us a call; its compiled object's Match on bytes
        # answers "does it match" in about 1 us. Used when this version of
        # the binding has it; search() otherwise.
        raw = getattr(re2_obj, "_regexp", None)
        self._raw: Callable[..., Any] | None = (
            getattr(raw, "Match", None) if _UNANCHORED is not None else None
        )
        #: Estimated memory held, in bytes (what the compile cache counts).
        self.size = size
        #: ``matches(value)``: whether the whole value matches (Prometheus' ``=~``).
        self.matches: Callable[[str], bool] = (
            matcher.search if matcher is not None else self._match_re2
        )

    def _match_re2(self, value: str) -> bool:
        try:
            if self._raw is not None:
                data = value.encode()
                # spans[0] is (-1, -1) when nothing matched
                return bool(self._raw(_UNANCHORED, data, 0, len(data))[0][0] >= 0)
            return self._re2.search(value) is not None
        except UnicodeEncodeError:  # lone surrogates: not UTF-8, RE2 cannot see them
            if self._fallback is None:
                self._fallback = _python_matcher(self.pattern)[0]
            return self._fallback.search(value)

    def fullmatch(self, value: str) -> Literal[True] | None:
        """``True`` if the whole value matches, else ``None`` (as ``re``'s ``fullmatch`` use)."""
        return True if self.matches(value) else None

    def __repr__(self) -> str:
        return f"Regex({_quote(self.pattern)}, engine={self.engine!r})"


def _wrap(pattern: str) -> str:
    return f"^(?:{pattern})$"  # exactly as Prometheus does, text and all


def _check(pattern: str) -> Node:
    """Parse (and so validate) ``pattern`` as Prometheus compiles it."""
    try:
        return parse(_wrap(pattern), max_depth=MAX_NESTING + 1)
    except RegexSyntaxError as exc:
        at = min(max(exc.pos - 4, 0), len(pattern))  # 4 = len("^(?:")
        raise _invalid(pattern, f"{exc.what} (at offset {at})") from None


def _python_matcher(pattern: str, tree: Node | None = None) -> tuple[Matcher, int]:
    """The python engine's matcher and its estimated size in bytes."""
    try:
        prog, start = compile_program(tree or _check(pattern), max_insts=MAX_PROGRAM_SIZE)
    except ProgramTooLarge as exc:
        raise _invalid(pattern, exc) from None
    units = min(1024 + 16 * len(prog.ops), 32 * 1024)
    size = _INST_BYTES * len(prog.ops) + _UNIT_BYTES * units
    matcher = Matcher(
        prog, start, max_cache_units=units, max_work=MAX_MATCH_WORK, name=f"regex {_quote(pattern)}"
    )
    return matcher, size


def _build(pattern: str, engine: Engine) -> Regex:
    tree = _check(pattern)
    base = 2 * len(pattern) + 200
    if engine == "python":
        matcher, size = _python_matcher(pattern, tree)
        return Regex(pattern, engine, matcher, None, base + size)
    module = _re2 if _re2 is not None else _load_re2()
    if module is None:
        raise StorageRejected("regex engine re2 requested but google-re2 is not installed")
    options = module.Options()
    options.log_errors = False
    options.never_capture = True  # only "does it match" is asked
    options.max_mem = RE2_MAX_MEM
    try:
        re2_obj = module.compile(_wrap(pattern), options)
    except module.error as exc:
        reason = str(exc).removeprefix("b'").removesuffix("'").partition(":")[0]
        raise _invalid(pattern, reason) from None
    return Regex(pattern, engine, None, re2_obj, base + RE2_MAX_MEM)


_cache: OrderedDict[tuple[str, str], Regex] = OrderedDict()
_cache_bytes = 0
_lock = threading.Lock()


def clear_cache() -> None:
    """Drop every cached compiled pattern."""
    global _cache_bytes
    with _lock:
        _cache.clear()
        _cache_bytes = 0


def cache_stats() -> tuple[int, int]:
    """``(entries, estimated bytes)`` of the compile cache."""
    with _lock:
        return len(_cache), _cache_bytes


def compile_regex(
    pattern: str,
    *,
    max_length: int = DEFAULT_MAX_REGEX_LENGTH,
    engine: Engine | None = None,
) -> Regex:
    """Compile a label-matcher regex (cached); ``.matches(value)`` tests a value.

    Raises :class:`~promwire.errors.StorageRejected` for a pattern longer than
    ``max_length`` characters or one RE2 refuses. ``engine`` forces
    ``"python"`` or ``"re2"`` (default: :data:`ENGINE`).
    """
    global _cache_bytes
    if len(pattern) > max_length:
        raise StorageRejected(
            f"regex {_quote(pattern)} in label matcher is {len(pattern)} characters long, "
            f"over the limit of {max_length}"
        )
    chosen: Engine = engine or ENGINE
    key = (pattern, chosen)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    regex = _build(pattern, chosen)
    with _lock:
        if key not in _cache and regex.size <= CACHE_BYTES:
            _cache[key] = regex
            _cache_bytes += regex.size
            while _cache_bytes > CACHE_BYTES:
                _, old = _cache.popitem(last=False)
                _cache_bytes -= old.size
    return regex
