"""One fuzz target under atheris (libFuzzer, coverage-guided).

    python3 -m fuzz.atheris_main TARGET [libFuzzer flags] [corpus dirs]

Usually started by ``fuzz/run.py --engine atheris``. promwire is imported
with coverage instrumentation; a contract violation is raised out of the
callback, which libFuzzer reports as a crash and saves the input.
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped]

# fuzz.targets imports every promwire module a target uses: all of them
# are loaded here, inside the block, so all of promwire is instrumented.
with atheris.instrument_imports(include=["promwire"]):
    from fuzz.targets import check, select


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    (target,) = select([sys.argv[1]])

    def one_input(data: bytes) -> None:
        check(target, data)  # raises Crash on a contract violation

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
