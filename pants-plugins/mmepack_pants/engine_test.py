"""Engine calls live in engine.py, and Pants 2.17's rule parser still sees them from the rules
that await its helpers (docs/design/call-by-name.md)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Set, Tuple

# pytest runs these tests from its own tool resolve; pants-plugins holds no pytest requirement.
import pytest  # pants: no-infer-dep
from pants.backend.python.subsystems.setuptools import PythonDistributionFieldSet
from pants.backend.python.util_rules.pex import PexRequest, VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.core.goals.package import BuiltPackage
from pants.engine.addresses import UnparsedAddressInputs
from pants.engine.fs import Digest, DigestContents, DigestSubset, MergeDigests, PathGlobs, Snapshot
from pants.engine.process import FallibleProcessResult
from pants.engine.target import Targets

import mmepack_pants.register  # noqa: F401  (loads every plugin module)
from mmepack_pants.check import check_model_cases
from mmepack_pants.cli import build_mmepack_cli, build_program
from mmepack_pants.engine import (
    EnvBuilderRequest,
    MmepackCliRequest,
    ProgramRequest,
    PythonEnv,
    PythonEnvRequest,
)
from mmepack_pants.environment import build_python_env
from mmepack_pants.package import build_triton_model
from mmepack_pants.tool_lock import generate_tool_lock


def _engine_calls(path: str) -> int:
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    return sum(
        1
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("Get", "MultiGet")
    )


def test_only_engine_py_calls_the_engine() -> None:
    calls = {
        name: _engine_calls(module.__file__)
        for name, module in sorted(sys.modules.items())
        if name.startswith("mmepack_pants.") and module.__file__
    }
    assert calls["mmepack_pants.engine"] > 0
    # Modules that must be loaded for this test to mean anything (the last three moved last).
    assert {"mmepack_pants.check", "mmepack_pants.cli", "mmepack_pants.tool_lock"} <= set(calls)
    elsewhere = {n: c for n, c in calls.items() if c and n != "mmepack_pants.engine"}
    assert not elsewhere, elsewhere


def _declared(rule: object) -> Set[Tuple[type, Tuple[type, ...]]]:
    return {(a.output_type, tuple(a.input_types)) for a in rule.rule.input_gets}  # type: ignore[attr-defined]


def test_the_rule_parser_sees_the_requests_made_through_helpers() -> None:
    """Pants records a rule's requests by parsing it and the coroutines it calls: the helpers'
    requests must be the rule's own, or the engine refuses them when awaited."""
    env_rule = _declared(build_python_env)
    assert (VenvPex, (EnvBuilderRequest,)) in env_rule  # env_builder_inputs' MultiGet
    assert (FallibleProcessResult, (VenvPexProcess,)) in env_rule  # engine.run
    assert (Digest, (MergeDigests,)) in env_rule and (Digest, (DigestSubset,)) in env_rule
    # Through the package rule's own helper (_build) into engine.python_env.
    assert (PythonEnv, (PythonEnvRequest,)) in _declared(build_triton_model)


def test_the_last_modules_moved_still_declare_their_requests() -> None:
    """check.py, tool_lock.py and cli.py moved onto helpers last: the same requests as before."""
    check = _declared(check_model_cases)
    assert (Snapshot, (PathGlobs,)) in check  # engine.snapshots_each
    assert (VenvPex, (MmepackCliRequest,)) in check  # engine.mmepack_cli
    assert (FallibleProcessResult, (VenvPexProcess,)) in check  # engine.run_each
    lock = _declared(generate_tool_lock)
    assert (Targets, (UnparsedAddressInputs,)) in lock
    assert (DigestContents, (PathGlobs,)) in lock and (DigestContents, (Digest,)) in lock
    assert (BuiltPackage, (PythonDistributionFieldSet,)) in lock
    assert (Snapshot, (Digest,)) in lock
    # Through cli.py's own helper (_program) into engine.program and engine.venv_pex.
    cli = _declared(build_mmepack_cli)
    assert (VenvPex, (ProgramRequest,)) in cli and (VenvPex, (PexRequest,)) in cli
    program = _declared(build_program)
    assert (Targets, (UnparsedAddressInputs,)) in program
    assert (PexRequest, (PexFromTargetsRequest,)) in program


@pytest.mark.parametrize("first", ["subsystem", "tool_lock", "engine", "cli", "dist_version"])
def test_no_import_cycle_whichever_module_loads_first(first: str) -> None:
    """tool_lock.py imports engine.py now, and the subsystem imports tool_lock.py: engine.py must
    not import a module that imports the subsystem (as it did cli.py), in any import order."""
    code = f"import mmepack_pants.{first}; import mmepack_pants.register"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
