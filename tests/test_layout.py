"""The package layout holds its rules (docs/architecture.md).

* each layer imports only the layers below it (checked on the source, so a
  lazy import inside a function counts too);
* no module is named like a function it exports;
* the top-level package exports the public names, the layers above the codec
  only on first use.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import promwire

PKG = Path(promwire.__file__).resolve().parent

# Rank of each layer: a module may import only from layers of a lower or equal
# rank (equal: within its own layer). testing sits beside the server and the
# clients: it uses the codec and v2 only, and nothing but tests import it.
RANK = {
    "errors": 0,
    "codec": 1,
    "v2": 2,
    "chunks": 3,
    "stores": 4,
    "client": 5,
    "server": 5,
    "testing": 5,
    "cli": 6,
    "__main__": 7,
}
# Same rank is fine inside one layer; these layers of equal rank must not
# import each other.
SIBLINGS_APART = {"client", "server", "testing"}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    """Absolute promwire module names imported by the file at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "promwire":
                # names taken from the top-level package: a layer or a re-export
                found.extend(
                    f"promwire.{a.name}" if a.name in RANK else f"promwire:{a.name}"
                    for a in node.names
                )
            elif target.startswith("promwire"):
                found.append(target)
        elif isinstance(node, ast.Import):
            found.extend(a.name for a in node.names if a.name.startswith("promwire"))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith("promwire")
        ):
            found.append(str(node.args[0].value))
    return found


SOURCES = sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_layers_are_the_documented_ones() -> None:
    top = sorted(
        p.stem if p.is_file() else p.name
        for p in PKG.iterdir()
        if p.name != "__pycache__" and (p.suffix == ".py" or p.is_dir()) and p.name != "__init__.py"
    )
    # A new top-level module or layer needs a rank here and a place in docs/architecture.md.
    assert top == sorted(RANK)
    doc = (PKG.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    for layer in RANK:
        if layer != "__main__":
            assert layer in doc


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PKG.parent)))
def test_imports_go_only_downwards(path: Path) -> None:
    me = _layer(_module_name(path))
    if me == "__init__":
        return  # the top-level package re-exports from every layer
    for target in _imports(path):
        if target.startswith("promwire:"):
            # A re-export of the top-level package: only the CLI may use those
            # (they come from every layer); `__version__` is for everyone.
            assert target == "promwire:__version__" or RANK[me] >= RANK["cli"], target
            continue
        other = _layer(target)
        assert RANK[other] <= RANK[me], f"{_module_name(path)} imports {target} (a higher layer)"
        if RANK[other] == RANK[me] and other != me:
            assert not ({me, other} <= SIBLINGS_APART), f"{_module_name(path)} imports {target}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PKG.parent)))
def test_no_module_is_named_like_a_function_it_exports(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = {
        n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    stem = path.parent.name if path.name == "__init__.py" else path.stem
    assert stem not in functions, f"{path} defines a function named like its module"


def test_top_level_exports() -> None:
    for name in (
        "WriteRequest",
        "ReadRequest",
        "TimeSeries",
        "encode",
        "decode",
        "snappy",
        "PromwireError",
        "DecodeError",
        "RemoteWriteClient",
        "RemoteReadClient",
        "SQLiteStorage",
        "handle_write",
        "handle_read",
    ):
        assert name in promwire.__all__
        assert getattr(promwire, name) is not None
    assert callable(promwire.decode) and callable(promwire.encode)
    from promwire.server.handlers import handle_write
    from promwire.stores.sqlite import SQLiteStorage

    assert promwire.handle_write is handle_write
    assert promwire.SQLiteStorage is SQLiteStorage
    with pytest.raises(AttributeError):
        _ = promwire.no_such_name  # type: ignore[attr-defined]


def test_import_promwire_loads_only_the_codec() -> None:
    code = (
        "import sys, promwire\n"
        "loaded = sorted(n for n in sys.modules if n.startswith('promwire.'))\n"
        "bad = [n for n in loaded if n.split('.')[1] not in ('codec', 'errors')]\n"
        "assert not bad, bad\n"
        "assert 'sqlite3' not in sys.modules and 'http.client' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
