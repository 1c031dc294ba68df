"""The plugin restates nothing of the library: every name, pattern and variable the two share is
imported from mmepack_contract, and nothing is imported from the library itself (it runs on
3.11, the plugin inside Pants on 3.9; src/ is on Pants' pythonpath for mmepack_contract only)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Iterator, Set, Tuple

import mmepack_contract
import mmepack_pants.register  # noqa: F401  (loads every plugin module)


def _plugin_sources() -> Iterator[Tuple[str, ast.Module]]:
    for name, module in sorted(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.startswith("mmepack_pants.") and path and not name.endswith("_test"):
            yield name, ast.parse(Path(path).read_text(encoding="utf-8"))


def _contract_strings() -> Set[str]:
    values: Set[str] = set()
    for name, value in vars(mmepack_contract).items():
        if not name.isupper():
            continue
        if isinstance(value, str):
            values.add(value)
        elif isinstance(value, tuple):
            values |= {v for v in value if isinstance(v, str)}
    return values


def test_plugin_modules_are_found() -> None:
    names = {name for name, _ in _plugin_sources()}
    assert {"mmepack_pants.environment", "mmepack_pants.package", "mmepack_pants.tailor"} <= names


def test_no_plugin_module_spells_a_contract_value() -> None:
    """A string constant equal to a contract value (a file name, pattern, suffix or variable)
    is a copy that would drift; prose that mentions one (help, docstrings) is not."""
    shared = _contract_strings()
    prefixes = tuple(value for value in shared if value.endswith("_"))
    copies = [
        f"{name}:{node.lineno}: {node.value!r}"
        for name, tree in _plugin_sources()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and (node.value in shared or node.value.startswith(prefixes))
    ]
    assert copies == [], "import these from mmepack_contract instead"


def test_plugin_imports_nothing_of_the_library() -> None:
    imported = []
    for name, tree in _plugin_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported += [(name, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                imported.append((name, node.module or ""))
    library = [(m, i) for m, i in imported if i == "mmepack" or i.startswith("mmepack.")]
    assert library == []
    assert any(i == "mmepack_contract" for _, i in imported)
