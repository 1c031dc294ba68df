"""`mmepack new models/<name>`: a model directory that validates, packages and passes its test
as written, so a newcomer starts from a working ensemble instead of from Triton's manual.

The model: a Python pre-processing step (X * 2), an ONNX model step (+ a bias), a Python
post-processing step (rounding), wired by an ensemble. It shows each thing a real model needs:
the `EXECUTION_ENV_PATH` parameter on the Python steps, `requirements.txt` with numpy held to
what the target Triton supports, `model_version.txt`, a BUILD target, an ONNX file written at
an IR version and opset the target's ONNX Runtime reads (tracked by DVC when the repository
uses DVC), and a test that serves the packaged artifact on a real Triton server.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mmepack.errors import MmepackError
from mmepack.names import (
    BUILD_FILE,
    CONFIG_FILE,
    ENV_ARCHIVE,
    ENV_PATH_PARAMETER,
    MODEL_DIR_VARIABLE,
    REQUIREMENTS_FILE,
    VERSION_FILE,
)
from mmepack.triton.target import TargetServer

# The environment Python of a new model. Not the target server's own stub Python (3.10): a
# model on another Python ships its own stub beside each Python step, so the local test server
# (whose own stub runs the test's Python and the ONNX stand-in) runs the same stub the endpoint
# will. With 3.10 and no shipped stub, the local server's 3.11 stub returned empty tensors from
# the 3.10 environment ("Expected 32, got 0"), while the proof under the real 3.10 stub passed.
SCAFFOLD_PYTHON = "3.12"
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
BIAS = (1.0, 2.0, 3.0, 4.0)
WIDTH = len(BIAS)

_ENSEMBLE = """\
# The deployable: SageMaker loads the folder whose config says platform "ensemble" and
# serves it under the artifact's name. Each step names a model folder beside this one.
name: "{name}"
platform: "ensemble"
max_batch_size: 8
input [ {{ name: "X" data_type: TYPE_FP32 dims: [ {width} ] }} ]
output [ {{ name: "Y" data_type: TYPE_FP32 dims: [ {width} ] }} ]
ensemble_scheduling {{
  step [
    {{
      model_name: "{name}_preprocess"
      model_version: -1
      input_map {{ key: "X" value: "X" }}
      output_map {{ key: "SCALED" value: "scaled" }}
    }},
    {{
      model_name: "{name}_model"
      model_version: -1
      input_map {{ key: "SCALED" value: "scaled" }}
      output_map {{ key: "SUM" value: "sum" }}
    }},
    {{
      model_name: "{name}_postprocess"
      model_version: -1
      input_map {{ key: "SUM" value: "sum" }}
      output_map {{ key: "Y" value: "Y" }}
    }}
  ]
}}
"""

_PYTHON_CONFIG = """\
# A Python step. {purpose} Its packages come from ../{requirements}, packed by
# mmepack into {env} beside this file ({parameter} below).
name: "{model}"
backend: "python"
max_batch_size: 8
input [ {{ name: "{inp}" data_type: TYPE_FP32 dims: [ {width} ] }} ]
output [ {{ name: "{out}" data_type: TYPE_FP32 dims: [ {width} ] }} ]
instance_group [ {{ kind: KIND_CPU }} ]
parameters: {{
  key: "{parameter}"
  value: {{ string_value: "{env_path}" }}
}}
"""

_ONNX_CONFIG = """\
# The model step: 1/model.onnx (tracked by DVC, made by `mmepack new`). Set backend explicitly:
# under SageMaker the model name does not end in .onnx, so Triton cannot guess it.
name: "{model}"
backend: "onnxruntime"
max_batch_size: 8
input [ {{ name: "SCALED" data_type: TYPE_FP32 dims: [ {width} ] }} ]
output [ {{ name: "SUM" data_type: TYPE_FP32 dims: [ {width} ] }} ]
instance_group [ {{ kind: KIND_CPU }} ]
"""

_PYTHON_STEP = '''\
"""{purpose}"""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        # One response per request, in order; each request holds a batch.
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "{inp}").as_numpy()
            result = ({expression}).astype(np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("{out}", result)]))
        return responses
'''

_TEST = '''\
"""{name} served from its packaged artifact by a real Triton server (see mmepack.testing)."""

from typing import Any, Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient

from mmepack.testing import find_artifact, serve_artifact

MODEL = "{name}"
BIAS = np.array({bias!r}, dtype=np.float32)


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with serve_artifact(find_artifact(MODEL)) as served:
        yield served


def test_ensemble_scales_adds_bias_and_rounds(server: Any) -> None:
    x = np.array([[0.5, -1.0, 2.25, 10.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    request = httpclient.InferInput("X", list(x.shape), "FP32")
    request.set_data_from_numpy(x)
    result = server.client.infer(server.model_name, [request]).as_numpy("Y")
    np.testing.assert_allclose(result, np.round(x * 2 + BIAS, 3), rtol=0, atol=1e-6)
'''

_BUILD = """\
# {name}: `./pants package {root}:{name}` builds requirements.txt into a Python {python}
# environment (proven under Triton's stub), pulls 1/model.onnx from the DVC remote and writes
# dist/mme/{name}_<model_version.txt>.tar.gz. `./pants test {root}/tests:` serves it.
triton_model(
    name="{name}",
    dependencies=["//:dvc"],
    python_version="{python}",
)

python_sources(name="steps", sources=["*/1/model.py"], skip_mypy=True)
"""

_TEST_BUILD = """\
python_tests(
    name="tests",
    runtime_package_dependencies=["{root}:{name}"],
    timeout=900,
)
"""


def write_onnx_model(path: Path, target: TargetServer) -> None:
    """SUM = SCALED + BIAS, written at the IR version and opset the target's runtime reads."""
    import onnx
    from onnx import TensorProto, helper

    limits = target.onnx_runtime
    shape: list[int | str] = ["batch", WIDTH]
    graph = helper.make_graph(
        [helper.make_node("Add", ["SCALED", "BIAS"], ["SUM"])],
        "add_bias",
        [helper.make_tensor_value_info("SCALED", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("SUM", TensorProto.FLOAT, shape)],
        [helper.make_tensor("BIAS", TensorProto.FLOAT, [WIDTH], list(BIAS))],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", min(limits.max_opset, 17))],
        producer_name="mmepack new",
    )
    model.ir_version = min(limits.max_ir_version, 8)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())


def _dvc_add(path: Path, repo_root: Path) -> str:
    """`dvc add` the file when the repository uses DVC; what happened, for the user.

    DVC runs in this process, not as `python -m dvc`: from the CLI PEX (`./pants run
    src/mmepack:cli -- new ...`) the interpreter alone cannot import the PEX's packages.
    """
    if not (repo_root / ".dvc").is_dir():
        return f"{path} is not tracked: {repo_root} has no .dvc/ (run `dvc add {path}` later)"
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(repo_root)) as repo:
            repo.add(str(path.resolve()))
    except DvcException as exc:
        raise MmepackError(
            f"`dvc add {path}` failed: {exc}; fix DVC in {repo_root}, then run it yourself"
        ) from None
    return f"{path} is tracked by DVC ({path.name}.dvc); `dvc push` sends it to the remote"


def new_model(
    model_dir: Path,
    *,
    python: str | None = None,
    target: TargetServer | None = None,
    repo_root: Path | None = None,
) -> list[str]:
    """Create `model_dir` (e.g. models/tiny_adder); returns the lines to show the user."""
    target = target or TargetServer()
    name = model_dir.name
    if not _NAME_RE.fullmatch(name):
        raise MmepackError(
            f"model name {name!r} is not valid; use lower-case letters, digits and '_', "
            "starting with a letter (it becomes the Triton model name and the S3 key)"
        )
    if model_dir.exists() and any(model_dir.iterdir()):
        raise MmepackError(f"{model_dir} already exists and is not empty; choose another name")
    python = python or SCAFFOLD_PYTHON
    numpy, why = target.numpy_requirement
    env_path = f"{MODEL_DIR_VARIABLE}{ENV_ARCHIVE}"
    files: dict[str, str] = {
        f"{name}/{CONFIG_FILE}": _ENSEMBLE.format(name=name, width=WIDTH),
        f"{name}_model/{CONFIG_FILE}": _ONNX_CONFIG.format(model=f"{name}_model", width=WIDTH),
        VERSION_FILE: "1\n",
        REQUIREMENTS_FILE: f"# Packages the Python steps import. {why}.\n{numpy}\n",
        "tests/__init__.py": "",
        f"tests/test_{name}.py": _TEST.format(name=name, bias=list(BIAS)),
    }
    for step, inp, out, purpose, expression in (
        ("preprocess", "X", "SCALED", "Pre-processing: scales the input by 2.", "data * 2.0"),
        ("postprocess", "SUM", "Y", "Post-processing: rounds to 3 decimals.", "np.round(data, 3)"),
    ):
        model = f"{name}_{step}"
        files[f"{model}/{CONFIG_FILE}"] = _PYTHON_CONFIG.format(
            purpose=purpose,
            requirements=REQUIREMENTS_FILE,
            env=ENV_ARCHIVE,
            parameter=ENV_PATH_PARAMETER,
            model=model,
            inp=inp,
            out=out,
            width=WIDTH,
            env_path=env_path,
        )
        files[f"{model}/1/model.py"] = _PYTHON_STEP.format(
            purpose=purpose, inp=inp, out=out, expression=expression
        )
    root = repo_root or Path.cwd()
    try:
        relative = model_dir.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        relative = model_dir.as_posix()
    files[BUILD_FILE] = _BUILD.format(name=name, root=relative, python=python)
    files[f"tests/{BUILD_FILE}"] = _TEST_BUILD.format(name=name, root=relative)
    for rel, text in files.items():
        path = model_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    onnx_path = model_dir / f"{name}_model" / "1" / "model.onnx"
    write_onnx_model(onnx_path, target)
    return [
        f"mmepack: created {model_dir} ({name}: preprocess -> model.onnx -> postprocess)",
        f"mmepack: {_dvc_add(onnx_path, root)}",
        f"mmepack: next: ./pants lock-envs {relative}:{name} (or mmepack lock {model_dir} "
        f"--python {python}); dvc push (the build reads weights from the DVC remote only); "
        f"./pants lint check {relative}::; ./pants package {relative}:{name}; "
        f"./pants test {relative}/tests:",
    ]
