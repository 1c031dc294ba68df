"""environment.startup on a real copy of a shared-library CPython prefix (the seed interpreter
the portable builder copies), without packages: what a stub's start imports gets valid,
reproducible bytecode, and nothing else is compiled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmepack.environment.base_python import find_base_interpreter
from mmepack.environment.builders import _copy_prefix
from mmepack.environment.determinism import check_no_build_path
from mmepack.environment.startup import STUB_IMPORTS, compile_startup_bytecode, startup_sources

MINOR = "3.12"


def _prefix(root: Path) -> Path:
    prefix = root / "env"
    _copy_prefix(find_base_interpreter(MINOR), prefix)
    return prefix


def _stdlib_pycs(prefix: Path) -> dict[str, bytes]:
    stdlib = prefix / "lib" / f"python{MINOR}"
    return {
        str(p.relative_to(stdlib)): p.read_bytes()
        for p in stdlib.rglob("*.pyc")
        if "site-packages" not in p.parts
    }


def _run(prefix: Path, code: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["LD_LIBRARY_PATH"] = str(prefix / "lib")
    subprocess.run([str(prefix / "bin" / "python3"), "-c", code], env=env, check=True)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = _prefix(tmp_path_factory.mktemp("first"))
    assert not _stdlib_pycs(prefix), "the copied standard library already holds bytecode"
    count = compile_startup_bytecode(prefix, ["no_such_requirement"])
    assert count == len(_stdlib_pycs(prefix)) > 20
    return prefix


def test_what_a_stub_imports_is_compiled_checked_and_without_the_build_path(
    compiled: Path,
) -> None:
    pycs = _stdlib_pycs(compiled)
    tag = f"cpython-{MINOR.replace('.', '')}"
    for wanted in ("asyncio/__init__", "json/__init__", "inspect", "typing", "struct"):
        folder, _, name = wanted.rpartition("/")
        assert str(Path(folder) / "__pycache__" / f"{name}.{tag}.pyc") in pycs, wanted
    for data in pycs.values():
        assert int.from_bytes(data[4:8], "little") == 0b11  # PEP 552: hash-based, checked
    check_no_build_path(compiled)
    # Not the whole standard library: modules no start imports stay uncompiled.
    assert str(Path("__pycache__") / f"tabnanny.{tag}.pyc") not in pycs


def test_a_start_finds_everything_it_imports_already_compiled(compiled: Path) -> None:
    before = _stdlib_pycs(compiled)
    # Writing bytecode allowed, as in the unpacked environment on an endpoint: a module the
    # build missed (or a pyc the interpreter found invalid) would appear or change here.
    _run(compiled, "import " + ", ".join(STUB_IMPORTS))
    assert _stdlib_pycs(compiled) == before


def test_the_same_prefix_gives_the_same_bytecode(compiled: Path, tmp_path: Path) -> None:
    again = _prefix(tmp_path)
    compile_startup_bytecode(again, ["no_such_requirement"])
    assert _stdlib_pycs(again) == _stdlib_pycs(compiled)


def test_an_interpreter_whose_standard_library_is_elsewhere_gets_nothing(tmp_path: Path) -> None:
    # A bare link to this test's Python: its standard library is outside the prefix.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").symlink_to(sys.executable)
    assert startup_sources(tmp_path, ["json"]) == []
