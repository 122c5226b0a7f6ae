"""Regenerate promwire/stores/_regex_unicode.py from google-re2's own tables.

    python3 scripts/gen_regex_unicode.py > promwire/stores/_regex_unicode.py

The pure-Python regex engine (promwire/stores/regex.py) needs the Unicode
general categories and scripts that ``\\p{...}`` names, and the simple
case-folding orbits that ``(?i)`` uses. Taking them from RE2 itself makes the
fallback accept the same names and match the same code points as the RE2
path. Needs ``pip install google-re2``.
"""

from __future__ import annotations

import sys
from importlib import metadata

import re2

# Unicode general categories (one- and two-letter) and the script names of
# Go's unicode.Scripts; only the names RE2 accepts are kept.
CATEGORIES = (  # noqa: SIM905
    "C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps "
    "S Sc Sk Sm So Z Zl Zp Zs"
).split()
SCRIPTS = (  # noqa: SIM905
    "Adlam Ahom Anatolian_Hieroglyphs Arabic Armenian Avestan Balinese Bamum Bassa_Vah "
    "Batak Bengali Bhaiksuki Bopomofo Brahmi Braille Buginese Buhid Canadian_Aboriginal "
    "Carian Caucasian_Albanian Chakma Cham Cherokee Chorasmian Common Coptic Cuneiform "
    "Cypriot Cypro_Minoan Cyrillic Deseret Devanagari Dives_Akuru Dogra Duployan "
    "Egyptian_Hieroglyphs Elbasan Elymaic Ethiopic Georgian Glagolitic Gothic Grantha "
    "Greek Gujarati Gunjala_Gondi Gurmukhi Han Hangul Hanifi_Rohingya Hanunoo Hatran "
    "Hebrew Hiragana Imperial_Aramaic Inherited Inscriptional_Pahlavi "
    "Inscriptional_Parthian Javanese Kaithi Kannada Katakana Kawi Kayah_Li Kharoshthi "
    "Khitan_Small_Script Khmer Khojki Khudawadi Lao Latin Lepcha Limbu Linear_A Linear_B "
    "Lisu Lycian Lydian Mahajani Makasar Malayalam Mandaic Manichaean Marchen "
    "Masaram_Gondi Medefaidrin Meetei_Mayek Mende_Kikakui Meroitic_Cursive "
    "Meroitic_Hieroglyphs Miao Modi Mongolian Mro Multani Myanmar Nabataean Nag_Mundari "
    "Nandinagari New_Tai_Lue Newa Nko Nushu Nyiakeng_Puachue_Hmong Ogham Ol_Chiki "
    "Old_Hungarian Old_Italic Old_North_Arabian Old_Permic Old_Persian Old_Sogdian "
    "Old_South_Arabian Old_Turkic Old_Uyghur Oriya Osage Osmanya Pahawh_Hmong Palmyrene "
    "Pau_Cin_Hau Phags_Pa Phoenician Psalter_Pahlavi Rejang Runic Samaritan Saurashtra "
    "Sharada Shavian Siddham SignWriting Sinhala Sogdian Sora_Sompeng Soyombo Sundanese "
    "Syloti_Nagri Syriac Tagalog Tagbanwa Tai_Le Tai_Tham Tai_Viet Takri Tamil Tangsa "
    "Tangut Telugu Thaana Thai Tibetan Tifinagh Tirhuta Toto Ugaritic Vai Vithkuqi Wancho "
    "Warang_Citi Yezidi Yi Zanabazar_Square"
).split()
SURROGATES = (0xD800, 0xDFFF)

OPTIONS = re2.Options()
OPTIONS.log_errors = False
CODEPOINTS = [c for c in range(0x110000) if not SURROGATES[0] <= c <= SURROGATES[1]]
TEXT = "".join(map(chr, CODEPOINTS))


def ranges_of(pattern: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for m in re2.compile(pattern, OPTIONS).finditer(TEXT):
        for i in range(m.start(), m.end()):
            c = CODEPOINTS[i]
            if out and out[-1][1] == c - 1:
                out[-1] = (out[-1][0], c)
            else:
                out.append((c, c))
    return out


def encode(ranges: list[tuple[int, int]]) -> str:
    """``lo:len`` pairs in hex, ``lo`` as the distance from the previous range's end."""
    parts, prev = [], 0
    for lo, hi in ranges:
        parts.append(f"{lo - prev:x}:{hi - lo:x}")
        prev = hi
    return " ".join(parts)


def accepted(name: str) -> bool:
    try:
        re2.compile(f"\\p{{{name}}}", OPTIONS)
    except re2.error:
        return False
    return True


def fold_orbits() -> list[list[int]]:
    seen: set[int] = set()
    orbits = []
    for c in CODEPOINTS:
        ch = chr(c)
        if c in seen or (ch.lower() == ch == ch.upper() and ch.casefold() == ch == ch.title()):
            continue
        members = sorted({ord(x) for x in re2.compile(f"(?i)\\x{{{c:x}}}", OPTIONS).findall(TEXT)})
        seen.update(members)
        if len(members) > 1:
            orbits.append(members)
    return orbits


def main() -> None:
    out = sys.stdout
    version = metadata.version("google-re2")
    out.write(
        f'"""Unicode tables for promwire.stores.regex, generated from google-re2 {version}.\n\n'
        "Do not edit: ``python3 scripts/gen_regex_unicode.py"
        " > promwire/stores/_regex_unicode.py``.\n"
        "TABLES: ``\\\\p{name}`` -> ranges, each ``lo:len`` in hex with ``lo`` counted from the\n"
        "previous range's end. FOLDS: the simple case-folding orbits, space-separated hex.\n"
        '"""\n\n# ruff: noqa: E501\n\n'
    )
    out.write("TABLES: dict[str, str] = {\n")
    for name in [*CATEGORIES, *SCRIPTS]:
        if not accepted(name):
            print(f"skipped {name}: RE2 refuses it", file=sys.stderr)
            continue
        ranges = ranges_of(f"\\p{{{name}}}+")
        if name in ("C", "Cs"):
            ranges = sorted([*ranges, SURROGATES])
        out.write(f'    "{name}": "{encode(ranges)}",\n')
    out.write("}\n\nFOLDS: tuple[str, ...] = (\n")
    for orbit in fold_orbits():
        out.write(f'    "{" ".join(f"{c:x}" for c in orbit)}",\n')
    out.write(")\n")


if __name__ == "__main__":
    main()
