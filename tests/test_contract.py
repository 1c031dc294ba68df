"""mmepack_contract is what the Pants plugin may import: plain values and readers on the
standard library only, on the oldest Python Pants 2.17 runs (3.7); and the library's own names
are its values."""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

import pytest

import mmepack_contract as contract
from mmepack import names, passthrough
from mmepack.environment import builders, cache, report
from mmepack.model import rules, version, weights
from mmepack.publish import provenance, revision

SOURCE = Path(contract.__file__)
MODULES = sorted(SOURCE.parent.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_contract_imports_only_the_standard_library_and_parses_as_python_37(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 7))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    allowed = set(sys.stdlib_module_names) | {"mmepack_contract"}
    assert imported <= allowed, imported - allowed


def test_contract_holds_plain_values_only() -> None:
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        assert isinstance(node, ast.Assign), ast.dump(node)
        ast.literal_eval(node.value)
    assert isinstance(contract.CONTRACT_VERSION, int) and contract.CONTRACT_VERSION >= 1


def test_library_uses_the_contract_values() -> None:
    for name in (
        "CONFIG_FILE",
        "VERSION_FILE",
        "REQUIREMENTS_FILE",
        "LOCK_FILE",
        "ENV_ARCHIVE",
        "STUB_NAME",
        "PROGRESS_LOG",
        "CASES_GLOB",
        "ARTIFACT_SUFFIX",
    ):
        assert getattr(names, name) is getattr(contract, name), name
    assert report.REPORT_SCHEMA is contract.ENV_REPORT_SCHEMA
    assert cache.CACHE_VARIABLE is contract.ENV_CACHE_VARIABLE
    assert passthrough.VARIABLE is contract.PASSTHROUGH_VARIABLE
    assert weights.DVC_CACHE_VARIABLE is contract.DVC_CACHE_VARIABLE
    assert builders.CONDA_VARIABLE is contract.CONDA_VARIABLE
    assert rules.SAGEMAKER_ENSEMBLE_RE.pattern is contract.SAGEMAKER_ENSEMBLE_PATTERN
    assert revision.BRANCH_VARIABLES is contract.BRANCH_VARIABLES
    assert provenance._COMMIT_VARIABLES is contract.COMMIT_VARIABLES
    assert version._VERSION is contract.MODEL_VERSION_PATTERN


def test_patterns_mean_what_both_sides_expect() -> None:
    assert re.fullmatch(contract.MODEL_VERSION_PATTERN, "1.2.3")
    assert not re.fullmatch(contract.MODEL_VERSION_PATTERN, "1.2.3.4")
    assert not re.fullmatch(contract.MODEL_VERSION_PATTERN, "v1")
    assert re.search(contract.SAGEMAKER_ENSEMBLE_PATTERN, 'platform:  "ensemble"')
    assert not re.search(contract.SAGEMAKER_ENSEMBLE_PATTERN, "platform: 'ensemble'")


def test_cache_root_is_found_one_way(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The plugin names the builder's progress log from the same rule the library finds its
    cache with (mmepack_contract.paths)."""
    monkeypatch.delenv(contract.ENV_CACHE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.default_cache_root() == tmp_path / "mmepack" / "envs"
    monkeypatch.setenv(contract.ENV_CACHE_VARIABLE, os.fspath(tmp_path / "c"))
    assert cache.default_cache_root() == tmp_path / "c"
