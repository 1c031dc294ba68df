"""The tailor rule in a real Pants engine (RuleRunner), on an in-memory repository."""

from __future__ import annotations

from typing import Any, Dict, Tuple, Union

# pytest runs these tests from its own tool resolve; pants-plugins holds no pytest requirement.
import pytest  # pants: no-infer-dep
from pants.backend.python.target_types import PythonSourcesGeneratorTarget
from pants.backend.python.typecheck.mypy import skip_field as mypy_skip_field
from pants.backend.python.typecheck.mypy.skip_field import SkipMyPyField
from pants.core.goals.tailor import AllOwnedSources, PutativeTarget, PutativeTargets
from pants.engine.rules import QueryRule
from pants.testutil.rule_runner import RuleRunner

from mmepack_pants import tailor
from mmepack_pants.target_types import TritonModelTarget


@pytest.fixture(params=[True, False], ids=["mypy backend", "no mypy backend"])
def rule_runner(request: Any) -> RuleRunner:
    # The mypy backend registers `skip_mypy` on python_sources; without it the field is unknown.
    return RuleRunner(
        rules=[
            *tailor.rules(),
            *(mypy_skip_field.rules() if request.param else ()),
            QueryRule(PutativeTargets, (tailor.PutativeTritonModelTargetsRequest, AllOwnedSources)),
        ],
        target_types=[TritonModelTarget, PythonSourcesGeneratorTarget],
    )


def test_new_model_folders_get_a_target_and_owned_ones_do_not(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "models/new/model_version.txt": "1",
            "models/new/new/config.pbtxt": 'platform: "ensemble"',
            "models/new/new_onnx/1/model.onnx.dvc": "outs: []",
            "models/new/new_pre/config.pbtxt": 'backend: "python"',
            "models/new/new_pre/1/model.py": "import triton_python_backend_utils",
            "models/new/new_pre/2/model.py": "import triton_python_backend_utils",
            "models/new/weights/make.py": "print()",
            "models/plain/model_version.txt": "2",
            "models/plain/plain/config.pbtxt": 'backend: "python"',
            "models/owned/model_version.txt": "1",
            "models/owned/owned/config.pbtxt": 'backend: "python"',
            "models/not_a_model/model_version.txt": "1",
        }
    )
    result = rule_runner.request(
        PutativeTargets,
        [
            tailor.PutativeTritonModelTargetsRequest(
                ("models/new", "models/plain", "models/owned", "models/not_a_model")
            ),
            AllOwnedSources(["models/owned/model_version.txt"]),
        ],
    )
    # A BUILD file that names `skip_mypy` does not parse in a repository without mypy.
    mypy = PythonSourcesGeneratorTarget.class_has_field(SkipMyPyField, rule_runner.union_membership)
    steps_kwargs: Dict[str, Union[str, int, bool, Tuple[str, ...]]] = {"sources": ("*/*/model.py",)}
    if mypy:
        steps_kwargs["skip_mypy"] = True
    assert result == PutativeTargets(
        [
            PutativeTarget.for_target_type(
                TritonModelTarget,
                path="models/new",
                name="new",
                triggering_sources=["model_version.txt"],
                kwargs={"dependencies": ("//:dvc",)},
            ),
            PutativeTarget.for_target_type(
                PythonSourcesGeneratorTarget,
                path="models/new",
                name="steps",
                triggering_sources=["new_pre/1/model.py", "new_pre/2/model.py"],
                kwargs=steps_kwargs,
                comments=(
                    "# The Python steps: black-formatted, not type-checked (Triton supplies",
                    "# triton_python_backend_utils only inside the server).",
                ),
            ),
            PutativeTarget.for_target_type(
                TritonModelTarget,
                path="models/plain",
                name="plain",
                triggering_sources=["model_version.txt"],
            ),
        ]
    )
