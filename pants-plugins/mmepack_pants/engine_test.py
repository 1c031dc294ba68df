"""Engine calls live in engine.py, and Pants 2.17's rule parser still sees them from the rules
that await its helpers (docs/design/call-by-name.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Set, Tuple

from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
from pants.engine.fs import Digest, DigestSubset, MergeDigests
from pants.engine.process import FallibleProcessResult

import mmepack_pants.register  # noqa: F401  (loads every plugin module)
from mmepack_pants.cli import EnvBuilderRequest
from mmepack_pants.engine import PythonEnv, PythonEnvRequest
from mmepack_pants.environment import build_python_env
from mmepack_pants.package import build_triton_model

# Modules whose rules still make their own requests (the tool's PEXes; see the design page),
# and tool28's two new modules (`check`, the tool lockfile's codegen), written beside the
# gathering and not yet moved onto engine.py's helpers.
_NOT_YET = {"mmepack_pants.cli", "mmepack_pants.check", "mmepack_pants.tool_lock"}


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
    elsewhere = {n: c for n, c in calls.items() if c and n != "mmepack_pants.engine"}
    assert set(elsewhere) <= _NOT_YET, elsewhere


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
