"""The bit-by-bit reference XOR codec of benchmarks/bench_xor.py, loaded once for the tests.

It is the textbook Gorilla codec written from PROTOCOL.md section 5, the
independent oracle that promwire.chunks.xor's fast paths are checked against.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["ref"]


def _load() -> ModuleType:
    path = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "bench_xor.py"
    spec = importlib.util.spec_from_file_location("bench_xor_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ref = _load()
