"""A parser for RE2 / Go ``regexp/syntax`` regular expressions (Perl flags).

:func:`parse` turns a pattern into a tree of :class:`Node` s, or raises
:class:`RegexSyntaxError` for what Go's parser refuses: backreferences,
lookarounds and other unsupported Perl syntax, ``\\C``, repeat counts over
1000 (also as a product of nested counts), bad escapes, classes and groups,
and groups nested deeper than ``max_depth``. It uses no recursion: any
input ends in a tree or an error, never in ``RecursionError``.

The tree keeps only what decides *whether* a string matches (captures,
names and greediness are dropped): literals and classes become sorted,
merged code-point ranges with ``(?i)`` folding already applied.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from functools import lru_cache

__all__ = ["MAX_REPEAT", "Node", "RegexSyntaxError", "parse"]

#: The largest count in ``x{n,m}``, and of the product of nested counts (Go's maxRepeat).
MAX_REPEAT = 1000
MAX_RUNE = 0x10FFFF

# Node kinds.
CLASS, EMPTY, CAT, ALT, REPEAT, ASSERT = range(6)
# Empty-width assertions.
BEGIN_TEXT, END_TEXT, BEGIN_LINE, END_LINE, WORD_BOUNDARY, NOT_WORD_BOUNDARY = range(6)

Ranges = tuple[tuple[int, int], ...]


class RegexSyntaxError(ValueError):
    """The pattern is not valid RE2 syntax: ``what`` is wrong at index ``pos``."""

    def __init__(self, what: str, pos: int = 0) -> None:
        super().__init__(what)
        self.what = what
        self.pos = pos


class Node:
    """One node: ``kind`` and, as the kind needs, ranges / children / counts / assertion."""

    __slots__ = ("assertion", "children", "hi", "kind", "lo", "ranges")

    def __init__(
        self,
        kind: int,
        *,
        ranges: Ranges = (),
        children: list[Node] | None = None,
        lo: int = 0,
        hi: int = 0,
        assertion: int = 0,
    ) -> None:
        self.kind = kind
        self.ranges = ranges
        self.children = children if children is not None else []
        self.lo = lo
        self.hi = hi  # -1: unbounded
        self.assertion = assertion


# ----------------------------------------------------------------- code-point sets


def normalize(ranges: list[tuple[int, int]]) -> Ranges:
    """Sorted, merged, non-overlapping ranges."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def negate(ranges: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in ranges:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_RUNE:
        out.append((nxt, MAX_RUNE))
    return tuple(out)


@lru_cache(maxsize=1)
def _fold_table() -> tuple[list[int], dict[int, tuple[int, ...]]]:
    from ._regex_unicode import FOLDS

    orbit_of: dict[int, tuple[int, ...]] = {}
    for line in FOLDS:
        orbit = tuple(int(x, 16) for x in line.split())
        for c in orbit:
            orbit_of[c] = orbit
    return sorted(orbit_of), orbit_of


def fold(ranges: Ranges) -> Ranges:
    """Add every simple case-folding partner of every code point in ``ranges``."""
    keys, orbit_of = _fold_table()
    extra: list[tuple[int, int]] = []
    for lo, hi in ranges:
        for i in range(bisect_left(keys, lo), bisect_right(keys, hi)):
            extra.extend((c, c) for c in orbit_of[keys[i]])
    return normalize([*ranges, *extra]) if extra else ranges


@lru_cache(maxsize=256)
def unicode_table(name: str) -> Ranges | None:
    """The ranges of ``\\p{name}`` (a general category or script), or None if unknown."""
    if name == "Any":
        return ((0, MAX_RUNE),)
    from ._regex_unicode import TABLES

    encoded = TABLES.get(name)
    if encoded is None:
        return None
    out: list[tuple[int, int]] = []
    prev = 0
    for part in encoded.split():
        start, _, length = part.partition(":")
        lo = prev + int(start, 16)
        prev = lo + int(length, 16)
        out.append((lo, prev))
    return tuple(out)


def _r(*pairs: str) -> Ranges:
    return tuple((ord(p[0]), ord(p[-1])) for p in pairs)


PERL_CLASSES: dict[str, Ranges] = {
    "d": _r("09"),
    "s": _r("\t\n", "\f\r", "  "),
    "w": _r("09", "AZ", "__", "az"),
}
POSIX_CLASSES: dict[str, Ranges] = {
    "alnum": _r("09", "AZ", "az"),
    "alpha": _r("AZ", "az"),
    "ascii": ((0, 0x7F),),
    "blank": _r("\t\t", "  "),
    "cntrl": ((0, 0x1F), (0x7F, 0x7F)),
    "digit": _r("09"),
    "graph": _r("!~"),
    "lower": _r("az"),
    "print": _r(" ~"),
    "punct": _r("!/", ":@", "[`", "{~"),
    "space": _r("\t\r", "  "),
    "upper": _r("AZ"),
    "word": _r("09", "AZ", "__", "az"),
    "xdigit": _r("09", "AF", "af"),
}


@lru_cache(maxsize=1024)
def named_table(family: str, name: str, folded: bool, negated: bool) -> Ranges | None:
    """A ``\\p`` (family ``p``), Perl (``perl``) or POSIX (``posix``) class, folded
    and negated as asked; cached, so a pattern repeating one costs nothing more."""
    if family == "p":
        base = unicode_table(name)
    else:
        base = (PERL_CLASSES if family == "perl" else POSIX_CLASSES).get(name)
    if base is None:
        return None
    if folded:
        base = fold(base)
    return negate(base) if negated else base


ANY = ((0, MAX_RUNE),)
ANY_BUT_NEWLINE = ((0, 9), (11, MAX_RUNE))
_C_ESCAPES = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}

# ------------------------------------------------------------------------ parsing

# Flags.
FOLD_CASE, MULTI_LINE, DOT_NL = 1, 2, 4


class _Group:
    __slots__ = ("alternatives", "flags", "items")

    def __init__(self, flags: int) -> None:
        self.flags = flags  # the flags to restore at ")"
        self.alternatives: list[Node] = []
        self.items: list[Node] = []

    def close_alternative(self) -> None:
        items = self.items
        self.alternatives.append(
            Node(EMPTY) if not items else items[0] if len(items) == 1 else Node(CAT, children=items)
        )
        self.items = []

    def node(self) -> Node:
        self.close_alternative()
        alts = self.alternatives
        return alts[0] if len(alts) == 1 else Node(ALT, children=alts)


class _Parser:
    def __init__(self, pattern: str, max_depth: int) -> None:
        self.s = pattern
        self.i = 0
        self.flags = 0
        self.max_depth = max_depth

    # -- helpers

    def error(self, what: str, start: int | None = None) -> RegexSyntaxError:
        return RegexSyntaxError(what, self.i if start is None else start)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def char_class(self, ranges: Ranges) -> Node:
        if self.flags & FOLD_CASE:
            ranges = fold(ranges)
        return Node(CLASS, ranges=ranges)

    # -- escapes

    def escape(self) -> int:
        """A single-character escape at ``self.i`` (the backslash); returns the code point."""
        start = self.i
        self.i += 1
        c = self.peek()
        if not c:
            raise self.error("trailing backslash at end of expression", start)
        self.i += 1
        if c < "\x80" and not c.isalnum():
            return ord(c)
        if c in "01234567":
            if c != "0" and not ("0" <= self.peek() <= "7"):
                raise self.error("invalid escape sequence (no backreferences in RE2)", start)
            value = ord(c) - 48
            for _ in range(2):
                d = self.peek()
                if not ("0" <= d <= "7"):
                    break
                value = value * 8 + ord(d) - 48
                self.i += 1
            return value
        if c == "x":
            return self.hex_escape(start)
        if c in _C_ESCAPES:
            return _C_ESCAPES[c]
        raise self.error("invalid escape sequence", start)

    def hex_escape(self, start: int) -> int:
        hexdigits = "0123456789abcdefABCDEF"
        if self.peek() == "{":
            end = self.s.find("}", self.i)
            digits = self.s[self.i + 1 : end] if end >= 0 else ""
            if digits and all(d in hexdigits for d in digits) and int(digits, 16) <= MAX_RUNE:
                self.i = end + 1
                return int(digits, 16)
            raise self.error("invalid escape sequence", start)
        digits = self.s[self.i : self.i + 2]
        if len(digits) == 2 and all(d in hexdigits for d in digits):
            self.i += 2
            return int(digits, 16)
        raise self.error("invalid escape sequence", start)

    def unicode_class(self) -> Ranges | None:
        """``\\pN``, ``\\p{Name}``, ``\\p{^Name}``, ``\\PN`` at ``self.i``, else None."""
        if self.peek() != "\\" or self.peek(1) not in ("p", "P"):
            return None
        start = self.i
        negated = self.peek(1) == "P"
        self.i += 2
        c = self.peek()
        if not c:
            raise self.error("invalid character class range", start)
        if c == "{":
            end = self.s.find("}", self.i)
            if end < 0:
                raise self.error("invalid character class range", start)
            name = self.s[self.i + 1 : end]
            self.i = end + 1
        else:
            name = c
            self.i += 1
        if name.startswith("^"):
            negated, name = not negated, name[1:]
        table = named_table("p", name, bool(self.flags & FOLD_CASE), negated)
        if table is None:
            raise self.error("invalid character class range", start)
        return table

    def perl_class(self) -> Ranges | None:
        c = self.peek(1)
        if self.peek() != "\\" or c.lower() not in PERL_CLASSES:
            return None
        self.i += 2
        return named_table("perl", c.lower(), bool(self.flags & FOLD_CASE), c.isupper())

    # -- classes

    def bracket(self) -> Ranges:
        """A ``[...]`` class at ``self.i``; folding (if on) applied, negation applied."""
        start = self.i
        self.i += 1
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        items: list[tuple[int, int]] = []
        tables: set[int] = set()  # ids of the cached named tables already in items
        first = True
        while first or self.peek() != "]":
            if not self.peek():
                raise self.error("missing closing ]", start)
            first = False
            if self.peek() == "[" and self.peek(1) == ":":
                end = self.s.find(":]", self.i + 2)
                if end >= 0:
                    name = self.s[self.i + 2 : end]
                    neg = name.startswith("^")
                    table = named_table(
                        "posix", name[1:] if neg else name, bool(self.flags & FOLD_CASE), neg
                    )
                    if table is None:
                        raise self.error("invalid character class range", self.i)
                    self.i = end + 2
                    if id(table) not in tables:  # the same class twice adds nothing
                        tables.add(id(table))
                        items.extend(table)
                    continue
            table = self.unicode_class()
            if table is None:
                table = self.perl_class()
            if table is not None:
                if id(table) not in tables:
                    tables.add(id(table))
                    items.extend(table)
                continue
            item_start = self.i
            lo = self.class_char(start)
            hi = lo
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.i += 1
                hi = self.class_char(start)
                if hi < lo:
                    raise self.error("invalid character class range", item_start)
            rng: Ranges = ((lo, hi),)
            items.extend(fold(rng) if self.flags & FOLD_CASE else rng)
        self.i += 1
        ranges = normalize(items)
        return negate(ranges) if negated else ranges

    def class_char(self, class_start: int) -> int:
        c = self.peek()
        if not c:
            raise self.error("missing closing ]", class_start)
        if c == "\\":
            return self.escape()
        self.i += 1
        return ord(c)

    # -- repetition

    def repeat_counts(self) -> tuple[int, int] | None:
        """``{n}``, ``{n,}``, ``{n,m}`` at ``self.i`` (consumed), else None (a literal ``{``)."""
        j = self.i + 1
        s = self.s

        def number(j: int) -> tuple[int, int] | None:
            k = j
            while k < len(s) and "0" <= s[k] <= "9":
                k += 1
            if k == j or (s[j] == "0" and k - j > 1):
                return None
            digits = s[j:k]
            return (int(digits) if len(digits) <= 8 else -1), k

        got = number(j)
        if got is None:
            return None
        lo, j = got
        if j >= len(s):
            return None
        if s[j] == ",":
            j += 1
            if j < len(s) and s[j] == "}":
                hi = -1
            else:
                got = number(j) if j < len(s) else None
                if got is None:
                    return None
                hi, j = got
                if hi < 0:
                    lo = -1
        else:
            hi = lo
        if j >= len(s) or s[j] != "}":
            return None
        start = self.i
        self.i = j + 1
        if lo < 0 or lo > MAX_REPEAT or hi > MAX_REPEAT or (hi >= 0 and lo > hi):
            raise self.error("invalid repeat count", start)
        return lo, hi


def _repeat_is_valid(node: Node, budget: int) -> bool:
    """Whether nested counts multiply to at most ``budget`` (Go's repeatIsValid)."""
    todo = [(node, budget)]
    while todo:
        n, b = todo.pop()
        if n.kind == REPEAT:
            m = n.hi
            if m == 0:
                continue
            if m < 0:
                m = n.lo
            if m > b:
                return False
            if m > 0:
                b //= m
        todo.extend((child, b) for child in n.children)
    return True


def parse(pattern: str, *, max_depth: int = 1000) -> Node:
    """Parse ``pattern`` (RE2 syntax, Perl flags as Go's ``regexp.Compile``)."""
    if any("\ud800" <= c <= "\udfff" for c in pattern):
        raise RegexSyntaxError("invalid UTF-8")
    p = _Parser(pattern, max_depth)
    s = pattern
    stack = [_Group(0)]
    last_was_repeat = False
    while p.i < len(s):
        c = s[p.i]
        top = stack[-1]
        was_repeat, last_was_repeat = last_was_repeat, False
        if c == "(":
            if p.peek(1) == "?":
                _group_or_flags(p, stack)
                continue
            _open(p, stack, p.flags)
            p.i += 1
        elif c == "|":
            top.close_alternative()
            p.i += 1
        elif c == ")":
            if len(stack) == 1:
                raise p.error("unexpected )")
            group = stack.pop()
            p.flags = group.flags
            stack[-1].items.append(group.node())
            p.i += 1
        elif c in "^$":
            multi = p.flags & MULTI_LINE
            kind = (
                (BEGIN_LINE if multi else BEGIN_TEXT)
                if c == "^"
                else (END_LINE if multi else END_TEXT)
            )
            top.items.append(Node(ASSERT, assertion=kind))
            p.i += 1
        elif c == ".":
            top.items.append(Node(CLASS, ranges=ANY if p.flags & DOT_NL else ANY_BUT_NEWLINE))
            p.i += 1
        elif c == "[":
            top.items.append(Node(CLASS, ranges=p.bracket()))
        elif c in "*+?" or (c == "{" and (counts := p.repeat_counts()) is not None):
            start = p.i
            if c == "{":
                assert counts is not None
                lo, hi = counts
            else:
                p.i += 1
                lo, hi = {"*": (0, -1), "+": (1, -1), "?": (0, 1)}[c]
            if p.peek() == "?":
                p.i += 1  # non-greedy: the same strings match
            if was_repeat:
                raise p.error("invalid nested repetition operator", start)
            if not top.items:
                raise p.error("missing argument to repetition operator", start)
            node = Node(REPEAT, children=[top.items[-1]], lo=lo, hi=hi)
            if c == "{" and (lo >= 2 or hi >= 2) and not _repeat_is_valid(node, MAX_REPEAT):
                raise p.error("invalid repeat count", start)
            top.items[-1] = node
            last_was_repeat = True
        elif c == "\\":
            _backslash(p, top)
        else:
            top.items.append(p.char_class(((ord(c), ord(c)),)))
            p.i += 1
    if len(stack) != 1:
        raise p.error("missing closing )", len(s))
    return stack[0].node()


def _open(p: _Parser, stack: list[_Group], restore_flags: int) -> None:
    if len(stack) > p.max_depth:
        raise p.error("expression nests too deeply")
    stack.append(_Group(restore_flags))


def _group_or_flags(p: _Parser, stack: list[_Group]) -> None:
    """``(?P<name>``, ``(?<name>``, ``(?flags)``, ``(?flags:`` at ``p.i``."""
    s, start = p.s, p.i
    if s.startswith("(?P<", start) or s.startswith("(?<", start):
        name_start = start + (4 if s[start + 2] == "P" else 3)
        end = s.find(">", name_start)
        name = s[name_start:end] if end >= 0 else ""
        if not name or not all(ch == "_" or (ch.isascii() and ch.isalnum()) for ch in name):
            raise p.error("invalid named capture", start)
        _open(p, stack, p.flags)
        p.i = end + 1
        return
    flags, sign, saw = p.flags, 1, False
    j = start + 2
    while j < len(s):
        c = s[j]
        j += 1
        bit = {"i": FOLD_CASE, "m": MULTI_LINE, "s": DOT_NL, "U": 0}.get(c)
        if bit is not None:
            flags = flags | bit if sign > 0 else flags & ~bit
            saw = True
        elif c == "-" and sign > 0:
            sign, saw = -1, False
        elif c in ":)" and (sign > 0 or saw):
            if c == ":":
                _open(p, stack, p.flags)
            p.flags = flags
            p.i = j
            return
        else:
            break
    raise p.error("invalid or unsupported Perl syntax (no lookarounds in RE2)", start)


def _backslash(p: _Parser, top: _Group) -> None:
    s, start = p.s, p.i
    c = p.peek(1)
    simple = {"A": BEGIN_TEXT, "z": END_TEXT, "b": WORD_BOUNDARY, "B": NOT_WORD_BOUNDARY}
    if c in simple:
        top.items.append(Node(ASSERT, assertion=simple[c]))
        p.i += 2
        return
    if c == "C":
        raise p.error("invalid escape sequence", start)
    if c == "Q":
        end = s.find("\\E", start + 2)
        literal = s[start + 2 :] if end < 0 else s[start + 2 : end]
        top.items.extend(p.char_class(((ord(ch), ord(ch)),)) for ch in literal)
        p.i = len(s) if end < 0 else end + 2
        return
    table = p.unicode_class()
    if table is None:
        table = p.perl_class()
    if table is not None:
        top.items.append(Node(CLASS, ranges=table))
        return
    cp = p.escape()
    top.items.append(p.char_class(((cp, cp),)))
