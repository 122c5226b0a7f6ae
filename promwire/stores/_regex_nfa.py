"""A linear-time matcher for parsed RE2 patterns: Thompson NFA, run as a lazy DFA.

:func:`compile_program` turns a :mod:`._regex_syntax` tree into a program
of at most ``max_insts`` instructions (counted repeats are expanded, so the
size is known before anything runs). :class:`Matcher` answers "does the
pattern match anywhere in ``text``" by simulating all NFA threads at once:
each input character is looked at once and costs at most one pass over the
program, so a search costs O(len(text) x program size) whatever the pattern.
Nothing backtracks.

Sets of NFA states reached are cached as DFA states with their transitions
(per character seen), so repeated matching against similar label values
costs one dictionary lookup per character. The cache is bounded: past
``max_cache_units`` it is dropped and rebuilt as needed, as RE2 does.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Generator

from ..errors import StorageRejected
from ._regex_syntax import (
    ALT,
    ASSERT,
    BEGIN_LINE,
    BEGIN_TEXT,
    CAT,
    CLASS,
    EMPTY,
    END_LINE,
    END_TEXT,
    REPEAT,
    WORD_BOUNDARY,
    Node,
)

__all__ = ["Matcher", "ProgramTooLarge", "compile_program"]

# Instructions.
CHAR, SPLIT, CHECK, MATCH = range(4)
# What lies before / after a position: text edge, newline, ASCII word character, other.
EDGE, NEWLINE, WORD, OTHER = range(4)


class ProgramTooLarge(ValueError):
    """The compiled program would exceed its instruction limit."""


class Program:
    """Parallel lists: ``ops[pc]``, ``outs[pc]`` (next pcs), ``arg[pc]`` (class bounds
    for CHAR: ``[lo0, hi0 + 1, lo1, hi1 + 1, ...]``; the assertion for CHECK)."""

    __slots__ = ("arg", "max_insts", "ops", "outs")

    def __init__(self, max_insts: int) -> None:
        self.ops: list[int] = []
        self.outs: list[tuple[int, ...]] = []
        self.arg: list[object] = []
        self.max_insts = max_insts

    def emit(self, op: int, arg: object, outs: tuple[int, ...]) -> int:
        if len(self.ops) >= self.max_insts:
            raise ProgramTooLarge(f"regex too large (over {self.max_insts} instructions)")
        self.ops.append(op)
        self.arg.append(arg)
        self.outs.append(outs)
        return len(self.ops) - 1


_Step = Generator[tuple[Node, int], int, int]


def _compile_node(prog: Program, node: Node, nxt: int, bounds: dict[int, list[int]]) -> _Step:
    """Emit ``node`` so that it continues at ``nxt``; returns its first pc.

    A generator instead of a recursive function: it yields (child, continuation)
    and is sent the child's first pc, so deep trees need no Python stack.
    """
    kind = node.kind
    if kind == CLASS:
        key = id(node.ranges)
        flat = bounds.get(key)
        if flat is None:
            flat = bounds[key] = [b for lo, hi in node.ranges for b in (lo, hi + 1)]
        return prog.emit(CHAR, flat, (nxt,))
    if kind == EMPTY:
        return nxt
    if kind == ASSERT:
        return prog.emit(CHECK, node.assertion, (nxt,))
    if kind == CAT:
        for child in reversed(node.children):
            nxt = yield child, nxt
        return nxt
    if kind == ALT:
        starts = []
        for child in node.children:
            starts.append((yield child, nxt))
        return prog.emit(SPLIT, None, tuple(starts))
    assert kind == REPEAT
    sub, lo, hi = node.children[0], node.lo, node.hi
    if hi < 0:
        loop = prog.emit(SPLIT, None, ())
        body = yield sub, loop
        prog.outs[loop] = (body, nxt)
        nxt = loop
    else:
        tail = nxt
        for _ in range(hi - lo):
            body = yield sub, tail
            tail = prog.emit(SPLIT, None, (body, nxt))
        nxt = tail
    for _ in range(lo):
        nxt = yield sub, nxt
    return nxt


def compile_program(root: Node, *, max_insts: int) -> tuple[Program, int]:
    """The program for "``root`` matches somewhere in the text", and its start pc.

    An unanchored search: the program starts with a loop over any character,
    and the first time MATCH is reached the answer is yes. (Anchors in the
    pattern, such as the ``^(?:...)$`` Prometheus wraps matchers in, decide
    where a match may begin and end.)
    """
    prog = Program(max_insts)
    bounds: dict[int, list[int]] = {}
    match = prog.emit(MATCH, None, ())
    stack = [_compile_node(prog, root, match, bounds)]
    value: int | None = None
    start = match
    while stack:
        try:
            child, cont = stack[-1].send(value)  # type: ignore[arg-type]
        except StopIteration as done:
            stack.pop()
            value = start = done.value
            continue
        stack.append(_compile_node(prog, child, cont, bounds))
        value = None
    if _anchored(root):
        return prog, start
    loop = prog.emit(SPLIT, None, ())
    any_char = prog.emit(CHAR, [0, 0x110000], (loop,))
    prog.outs[loop] = (start, any_char)
    return prog, loop


def _anchored(root: Node) -> bool:
    """Whether every match must begin at the start of the text (``^`` / ``\\A`` first)."""
    node = root
    while node.kind == CAT and node.children:
        node = node.children[0]
    return node.kind == ASSERT and node.assertion == BEGIN_TEXT


def _kind(ch: str) -> int:
    if ch == "\n":
        return NEWLINE
    if ch < "\x80" and (ch.isalnum() or ch == "_"):
        return WORD
    return OTHER


def _holds(assertion: int, before: int, after: int) -> bool:
    if assertion == BEGIN_TEXT:
        return before == EDGE
    if assertion == END_TEXT:
        return after == EDGE
    if assertion == BEGIN_LINE:
        return before in (EDGE, NEWLINE)
    if assertion == END_LINE:
        return after in (EDGE, NEWLINE)
    if assertion == WORD_BOUNDARY:
        return (before == WORD) != (after == WORD)
    return (before == WORD) == (after == WORD)


class _State:
    """A DFA state: NFA pcs before following empty transitions, and what came before."""

    __slots__ = ("before", "final", "next", "pcs")

    def __init__(self, pcs: frozenset[int], before: int) -> None:
        self.pcs = pcs
        self.before = before
        self.next: dict[str, _State] = {}
        self.final: bool | None = None


#: Sentinel states: a match was found / no match is possible any more.
_FOUND = _State(frozenset(), EDGE)
_DEAD = _State(frozenset(), EDGE)


class Matcher:
    """Searches text with a compiled program (thread-safe; the cache is shared)."""

    __slots__ = (
        "_start",
        "_states",
        "_units",
        "max_cache_units",
        "max_work",
        "name",
        "prog",
        "start_pc",
    )

    def __init__(
        self,
        prog: Program,
        start_pc: int,
        *,
        max_cache_units: int,
        max_work: int,
        name: str = "regex",
    ) -> None:
        self.prog = prog
        self.start_pc = start_pc
        self.max_cache_units = max_cache_units
        #: NFA work (states visited outside the DFA cache) one search may do.
        self.max_work = max_work
        self.name = name  # for the refusal message
        self._reset()

    def _reset(self) -> None:
        self._states: dict[tuple[frozenset[int], int], _State] = {}
        self._units = 0
        self._start = self._state(frozenset((self.start_pc,)), EDGE)

    def _state(self, pcs: frozenset[int], before: int) -> _State:
        key = (pcs, before)
        state = self._states.get(key)
        if state is None:
            if self._units > self.max_cache_units:
                self._reset()
            state = self._states[key] = _State(pcs, before)
            self._units += len(pcs) + 8
        return state

    def _closure(self, pcs: frozenset[int], before: int, after: int) -> tuple[list[int], bool, int]:
        """The CHAR pcs reachable without input, whether MATCH is, and the pcs visited
        (each at most once: the work is at most the program size)."""
        ops, outs, arg = self.prog.ops, self.prog.outs, self.prog.arg
        seen: set[int] = set()
        todo = list(pcs)
        chars: list[int] = []
        while todo:
            pc = todo.pop()
            if pc in seen:
                continue
            seen.add(pc)
            op = ops[pc]
            if op == CHAR:
                chars.append(pc)
            elif op == MATCH:
                return chars, True, len(seen)
            elif op == SPLIT or _holds(arg[pc], before, after):  # type: ignore[arg-type]
                todo.extend(outs[pc])
        return chars, False, len(seen)

    def _step(self, state: _State, ch: str) -> tuple[_State, int]:
        """The state after ``ch``, and the work it took."""
        after = _kind(ch)
        chars, found, work = self._closure(state.pcs, state.before, after)
        if found:
            nxt = _FOUND
        else:
            cp = ord(ch)
            arg, outs = self.prog.arg, self.prog.outs
            pcs = frozenset(
                outs[pc][0]
                for pc in chars
                if bisect_right(arg[pc], cp) & 1  # type: ignore[call-overload]
            )
            nxt = self._state(pcs, after) if pcs else _DEAD
        if self._units > self.max_cache_units:
            self._reset()  # over budget: start over (the scan goes on with ``nxt``)
        else:
            state.next[ch] = nxt
            self._units += 1
        return nxt, work + len(chars)

    def search(self, text: str) -> bool:
        """Whether the pattern matches somewhere in ``text``.

        Raises :class:`~promwire.errors.StorageRejected` if that needs more than
        ``max_work`` NFA steps outside the DFA cache.
        """
        state = self._start
        work = 0
        for ch in text:
            nxt = state.next.get(ch)
            if nxt is None:
                nxt, cost = self._step(state, ch)
                work += cost
                if work > self.max_work:
                    self._too_costly(len(text))
            if nxt is _FOUND:
                return True
            if nxt is _DEAD:
                return False
            state = nxt
        final = state.final
        if final is None:
            final = state.final = self._closure(state.pcs, state.before, EDGE)[1]
        return final

    def _too_costly(self, length: int) -> None:
        raise StorageRejected(
            f"{self.name} in label matcher is too costly to match against a "
            f"{length}-character value without RE2 (over {self.max_work} NFA steps); "
            "simplify it, or install promwire[re2]"
        )
