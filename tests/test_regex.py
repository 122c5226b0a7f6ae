"""promwire.stores.regex: RE2 semantics on both engines, refusals, limits, cache."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import re2

from promwire import LabelMatcher, MatchType
from promwire.errors import StorageRejected
from promwire.stores import regex
from promwire.stores.matchers import compile_matchers, compile_regex, matches

REPO = Path(__file__).resolve().parent.parent
ENGINES = ("python", "re2")
OPTIONS = re2.Options()
OPTIONS.log_errors = False

# (pattern, value, whether Prometheus' ^(?:pattern)$ matches)
CASES = [
    ("", "", True),
    ("", "a", False),
    ("a|b", "b", True),
    ("a|b", "ab", False),
    ("a)|(b", "xxb", True),  # Prometheus wraps the text: ^(?:a)|(b)$
    ("a)|(b", "ax", True),
    (".*", "x\ny", False),  # . excludes \n (Prometheus 2.x)
    ("(?s).*", "x\ny", True),
    ("[^a]", "\n", True),
    ("foo.*", "foobar", True),
    (".*bar", "foo", False),
    ("(?i)K", "\u212a", True),  # Kelvin sign folds to k
    ("(?i)ß", "ẞ", True),
    ("(?i)\\w", "\u212a", True),
    ("(?i)\\W", "\u212a", False),
    ("\\pL+", "héllo", True),
    ("\\p{Greek}+", "\u03b1β\u03b3", True),
    ("\\p{^Greek}", "a", True),
    ("\\PL", "1", True),
    ("\\pN", "٣", True),
    ("[[:alpha:]]+", "abc", True),
    ("[[:^alpha:]]", "1", True),
    ("[[:word:]]{3}", "a_1", True),
    ("\\d", "٣", False),  # \d is ASCII
    ("\\s", "\v", False),  # \s has no \v in RE2
    ("\\Q.*\\E", ".*", True),
    ("\\Q.*\\E", "ab", False),
    ("\\Qa.b\\E", "a.b", True),
    ("(?U)a+", "aaa", True),
    ("a*?b", "aab", True),
    ("a\\b", "a", True),
    ("a\\B", "a", False),
    ("(?m)^a$\\n^b$", "a\nb", True),
    ("^a$\\nb", "a\nb", False),
    ("\\Aa\\z", "a", True),
    ("\\x41\\x{42}\\103\\0", "ABC\x00", True),
    ("\\_\\-\\.", "_-.", True),
    ("[]a]+", "]a", True),
    ("[a-]+", "-a", True),
    ("a{,5}", "a{,5}", True),  # not a repeat: literal
    ("a{01}", "a{01}", True),
    ("a{2}", "aa", True),
    ("a{2,}", "aaaa", True),
    ("a{2,3}", "aaaa", False),
    ("(a{2}){3}", "aaaaaa", True),
    ("(?P<n>a)(?:b)(c)", "abc", True),
    ("(?i:A)a", "aa", True),
    ("(?i:A)a", "AA", False),
    ("(?i)a(?-i)a", "Aa", True),
    ("(?i)a(?-i)a", "AA", False),
    ("x*", "", True),
    ("(a*)*b", "a" * 50, False),
    ("[^\\x00-\\x{10FFFF}]", "a", False),
    ("\u03b1.β", "\u03b1\u00e9β", True),
]

REFUSED = [
    "\\1",
    "(a)\\1",
    "(?=a)",
    "(?!a)",
    "(?<=a)b",
    "(?<!a)b",
    "(?#comment)",
    "(?P=n)",
    "\\C",
    "\\Z",
    "\\8",
    "a**",
    "a{2}{3}",
    "*a",
    "(*)",
    "\\Qa.b",  # \Q swallows the wrapper's )$, as in Prometheus
    "a{1001}",
    "a{4294967295}",
    "a{2,1}",
    "(a{10}){200}",
    "(",
    ")",
    "a)",
    "[a",
    "[z-a]",
    "[a-\\d]",
    "[[:foo:]]",
    "\\p{Nope}",
    "\\pX",
    "\\x{110000}",
    "\\xg1",
    "\\",
    "(?i-)",
    "(?-)",
    "(?<>a)",
    "(" * 2000,
    "(" * 2000 + "a" + ")" * 2000,
]

#: Refused by Go (so by Prometheus) but accepted by C++ RE2: promwire follows Go.
GO_ONLY = {"\\C", "a{4294967295}"}


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    regex.clear_cache()


def oracle(pattern: str, value: str) -> bool:
    return re2.compile(f"^(?:{pattern})$", OPTIONS).search(value) is not None


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("pattern", "value", "expected"), CASES)
def test_re2_semantics(engine: str, pattern: str, value: str, expected: bool) -> None:
    assert oracle(pattern, value) == expected  # the table itself is RE2's answer
    compiled = regex.compile_regex(pattern, engine=engine)  # type: ignore[arg-type]
    assert compiled.engine == engine
    assert compiled.matches(value) == expected
    assert compiled.fullmatch(value) == (True if expected else None)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("pattern", REFUSED)
def test_refused_like_re2(engine: str, pattern: str) -> None:
    with pytest.raises(StorageRejected) as info:
        regex.compile_regex(pattern, engine=engine)  # type: ignore[arg-type]
    message = str(info.value)
    assert info.value.status == 400
    assert len(message) < 200
    assert "Error" not in message and "Traceback" not in message
    assert regex.cache_stats() == (0, 0)  # refusals are never cached
    if pattern.count("(") < 1000 and pattern not in GO_ONLY:
        with pytest.raises(re2.error):  # RE2 refuses it too
            re2.compile(f"^(?:{pattern})$", OPTIONS)


def test_nesting_limit_is_go_s() -> None:
    deep = "(" * 1000 + "a" + ")" * 1000
    for engine in ENGINES:
        assert regex.compile_regex(deep, engine=engine).matches("a")  # type: ignore[arg-type]
        with pytest.raises(StorageRejected, match="nests too deeply"):
            regex.compile_regex("(" + deep + ")", engine=engine)  # type: ignore[arg-type]


def test_length_limit_and_short_quotes() -> None:
    long = "a" * (regex.DEFAULT_MAX_REGEX_LENGTH + 1)
    with pytest.raises(StorageRejected) as info:
        regex.compile_regex(long)
    assert "over the limit of 16384" in str(info.value)
    assert len(str(info.value)) < 200 and "a" * 65 not in str(info.value)
    assert regex.compile_regex("a" * 100, max_length=100).matches("a" * 100)
    with pytest.raises(StorageRejected):
        regex.compile_regex("a" * 101, max_length=100)
    # An invalid 1 MiB pattern is quoted by a short prefix only.
    with pytest.raises(StorageRejected) as info:
        regex.compile_regex("(" * (1 << 20), max_length=2 << 20)
    assert len(str(info.value)) < 200


def test_random_patterns_agree_with_re2() -> None:
    rng = random.Random(12)
    atoms = [
        *"ab.^$()|*+?{}]-K\u212a\u03b1\n",
        *("\\b", "\\B", "(?i)", "(?m)", "(?s)", "[ab]", "[^a]", "\\w", "\\W", "\\s", "\\d"),
        *("{2}", "{1,3}", "{0,}", "\\n", "\\pL", "\\p{Greek}", "[[:upper:]]", "\\z", "\\A"),
        *("(?:", "(?i:", "\\Q*\\E", "[a-c]", "(?U)", "\\x41", "\\101", "(?P<n>", "\\1"),
    ]
    values = ["", "a", "b", "ab", "ba", "aab", "a b", "a\nb", "\n", "Kk\u212a", "AB", "\u03b1", "*"]
    checked = 0
    for _ in range(3000):
        pattern = "".join(rng.choice(atoms) for _ in range(rng.randint(1, 6)))
        try:
            theirs = re2.compile(f"^(?:{pattern})$", OPTIONS)
        except re2.error:
            with pytest.raises(StorageRejected):
                regex.compile_regex(pattern, engine="python")
            continue
        mine = regex.compile_regex(pattern, engine="python")
        for value in values:
            assert mine.matches(value) == (theirs.search(value) is not None), (pattern, value)
            checked += 1
    assert checked > 20_000


def test_cache_is_bounded_by_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(regex, "CACHE_BYTES", 2 * 1024 * 1024)
    for i in range(300):
        regex.compile_regex(f"job_{i}_[a-z]+.*", engine="python")
    entries, size = regex.cache_stats()
    assert 0 < size <= 2 * 1024 * 1024
    assert entries < 300
    # Hits come back as the same object; the oldest ones were dropped.
    assert regex.compile_regex("job_299_[a-z]+.*", engine="python") is regex.compile_regex(
        "job_299_[a-z]+.*", engine="python"
    )


def test_dfa_cache_reset_keeps_answers() -> None:
    compiled = regex.compile_regex("(?i)[a-z]+_(total|count|sum)", engine="python")
    matcher = compiled._fallback
    matcher.max_cache_units = 50  # force many resets
    rng = random.Random(3)
    for _ in range(500):
        value = "".join(rng.choice("abcXYZ_") for _ in range(rng.randint(0, 12)))
        value += rng.choice(["_total", "_COUNT", "_x", ""])
        assert matcher.search(value) == oracle("(?i)[a-z]+_(total|count|sum)", value), value


def test_matchers_api() -> None:
    m = [
        LabelMatcher(MatchType.RE, "job", "api|web"),
        LabelMatcher(MatchType.NRE, "instance", ".*:9090"),
    ]
    assert matches(m, {"job": "web", "instance": "a:80"})
    assert not matches(m, {"job": "web", "instance": "a:9090"})
    assert not compile_matchers(m)({"job": "db"})
    assert compile_regex("a+").fullmatch("aa") is True
    with pytest.raises(StorageRejected):
        compile_matchers([LabelMatcher(MatchType.RE, "job", "x" * 200)], max_regex_length=100)


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_re2_the_python_engine_runs() -> None:
    code = (
        "import sys; sys.modules['re2'] = None\n"
        "from promwire.stores import regex\n"
        "from promwire.stores.matchers import compile_matchers\n"
        "from promwire import LabelMatcher, MatchType\n"
        "assert regex.ENGINE == 'python', regex.ENGINE\n"
        "m = compile_matchers([LabelMatcher(MatchType.RE, 'job', '(a+)+b')])\n"
        "assert not m({'job': 'a' * 10000})\n"
        "assert regex.compile_regex('\\\\p{Greek}+').matches('\u03b1β')\n"
        "print('ok')\n"
    )
    done = _run(code, PROMWIRE_REGEX="")
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
    # Asking for re2 without it fails at import, naming the variable.
    done = _run(
        "import sys; sys.modules['re2'] = None\nimport promwire.stores.regex", PROMWIRE_REGEX="re2"
    )
    assert done.returncode != 0 and "PROMWIRE_REGEX" in done.stderr


@pytest.mark.parametrize(("value", "engine"), [("python", "python"), ("re2", "re2"), ("", "re2")])
def test_engine_variable(value: str, engine: str) -> None:
    done = _run("from promwire.stores import regex; print(regex.ENGINE)", PROMWIRE_REGEX=value)
    assert done.stdout.strip() == engine, done.stderr
    bad = _run("import promwire.stores.regex", PROMWIRE_REGEX="pcre")
    assert bad.returncode != 0 and "PROMWIRE_REGEX" in bad.stderr


def test_values_that_are_not_utf8_match_on_both_engines() -> None:
    # A lone surrogate cannot be given to RE2; the re2 engine falls back to python.
    for engine in ENGINES:
        compiled = regex.compile_regex("a.b", engine=engine)  # type: ignore[arg-type]
        assert compiled.matches("a\udc80b")
        assert not compiled.matches("a\udc80\udc80b")


def test_python_engine_work_budget_per_value() -> None:
    # A large program with many live threads on a long value: linear, but the
    # python engine stops at MAX_MATCH_WORK steps instead of spending seconds.
    pattern = "(?s)(.{0,1000}a){1}(.{0,1000}b){1}"
    value = "a" * 65536
    with pytest.raises(StorageRejected, match="pattern too large"):
        regex.compile_regex(pattern, engine="re2")  # over RE2's memory budget
    compiled = regex.compile_regex(pattern, engine="python")
    with pytest.raises(StorageRejected) as info:
        compiled.matches(value)
    assert "too costly" in str(info.value) and "promwire[re2]" in str(info.value)
    assert len(str(info.value)) < 250
    assert not compiled.matches("a" * 100)  # short values still answer
