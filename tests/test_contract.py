"""mmepack.contract is what the Pants plugin may import: plain values and the standard library
only, on the oldest Python Pants 2.17 runs (3.7); and the library's own names are its values."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from mmepack import contract, names
from mmepack.environment import report
from mmepack.model import rules, version
from mmepack.publish import provenance, revision

SOURCE = Path(contract.__file__)


def test_contract_imports_only_the_standard_library_and_parses_as_python_37() -> None:
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"), feature_version=(3, 7))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


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
