"""`mmepack new models/<name>`: a model directory that validates, packages and passes its test
case as written, so a newcomer starts from a working ensemble instead of from Triton's manual.

The user names the steps and the ensemble's tensors (`--step tok:python --step clf:onnx
--input TEXT:TYPE_STRING:1 --output LABEL:TYPE_STRING:1`); without them the model is a Python
pre-processing step, an ONNX model step and a Python post-processing step on FP32 [4]. Whatever
the choice, it shows each thing a real model needs: the `EXECUTION_ENV_PATH` parameter on the
Python steps, `requirements.txt` with numpy held to what the target Triton supports,
`model_version.txt`, a BUILD target, ONNX files written at an IR version and opset the target's
ONNX Runtime reads (tracked by DVC when the repository uses DVC), a test case
(`tests/cases/example.json`) and a test that serves the packaged artifact on a real Triton
server; the tests folder is laid out as the example's (models/screen_detector/tests).

What the steps compute is a placeholder with one property: its answer is exact, so the case's
expected values hold on any server. Each step takes one number per batch row, the mean of its
inputs (text: the length in bytes), adds its position in the chain and a per-element offset
(0, 0.25, 0.5, ...), and writes that in each output's type and shape; between steps travels
FP32 [4]. The case fills each input with one value per row, so every sum is of equal small
numbers (or of four multiples of 1/4) and exact in float32 whatever order a runtime adds in,
and every division is one correctly rounded IEEE operation: numpy and ONNX Runtime get the same
bits, and integer and text outputs round the same way. The scaffold computes the
case's expected values with the very function the Python steps run (`_STEP_CODE`), and the ONNX
graphs do the same arithmetic.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
_STEP_RE = re.compile(r"(?P<name>[a-z][a-z0-9_]{0,30}):(?P<kind>[a-z]+)")
_TENSOR_RE = re.compile(
    r"(?P<name>[A-Za-z_][A-Za-z0-9_]{0,62}):(?P<type>[A-Za-z0-9_]+):(?P<dims>.*)"
)
STEP_KINDS = ("python", "onnx")
MAX_BATCH_SIZE = 8
# Between two steps travels FP32 [FEATURE_WIDTH]: four, so a mean of it is exact in float32.
FEATURE_WIDTH = 4
FEATURES_IN = "FEATURES_IN"
FEATURES_OUT = "FEATURES_OUT"
CASE_FILE = "tests/cases/example.json"
# The largest tensor a generated case writes inline (elements per row): a bigger one makes a
# case file nobody reads; choose smaller dims for the scaffold and grow them in your model.
_MAX_ELEMENTS = 4096
# Triton type -> (numpy dtype name, ONNX TensorProto name, JSON kind).
_TYPES: dict[str, tuple[str, str, str]] = {
    "TYPE_BOOL": ("bool_", "BOOL", "bool"),
    "TYPE_UINT8": ("uint8", "UINT8", "int"),
    "TYPE_UINT16": ("uint16", "UINT16", "int"),
    "TYPE_UINT32": ("uint32", "UINT32", "int"),
    "TYPE_UINT64": ("uint64", "UINT64", "int"),
    "TYPE_INT8": ("int8", "INT8", "int"),
    "TYPE_INT16": ("int16", "INT16", "int"),
    "TYPE_INT32": ("int32", "INT32", "int"),
    "TYPE_INT64": ("int64", "INT64", "int"),
    "TYPE_FP16": ("float16", "FLOAT16", "float"),
    "TYPE_FP32": ("float32", "FLOAT", "float"),
    "TYPE_FP64": ("float64", "DOUBLE", "float"),
    "TYPE_STRING": ("object_", "STRING", "text"),
}
_TEXT_VALUES = ("hello", "hello world")


@dataclass(frozen=True)
class StepSpec:
    """One step of the ensemble: `--step NAME:KIND`."""

    name: str
    kind: str


@dataclass(frozen=True)
class TensorSpec:
    """One ensemble input or output: `--input NAME:TYPE:DIMS` (dims without the batch)."""

    name: str
    data_type: str
    dims: tuple[int, ...]

    @property
    def numpy_type(self) -> str:
        return _TYPES[self.data_type][0]

    @property
    def config(self) -> str:
        dims = ", ".join(str(d) for d in self.dims)
        return f'{{ name: "{self.name}" data_type: {self.data_type} dims: [ {dims} ] }}'


DEFAULT_STEPS = (
    StepSpec("preprocess", "python"),
    StepSpec("model", "onnx"),
    StepSpec("postprocess", "python"),
)
DEFAULT_INPUTS = (TensorSpec("X", "TYPE_FP32", (FEATURE_WIDTH,)),)
DEFAULT_OUTPUTS = (TensorSpec("Y", "TYPE_FP32", (FEATURE_WIDTH,)),)


def parse_step(text: str) -> StepSpec:
    """`tok:python` -> StepSpec; a malformed value is an error naming the flag and the form."""
    match = _STEP_RE.fullmatch(text)
    if match is None or match.group("kind") not in STEP_KINDS:
        raise MmepackError(
            f"--step {text!r}: expected NAME:KIND, NAME in lower-case letters, digits and '_' "
            f"(starting with a letter), KIND one of {', '.join(STEP_KINDS)}; e.g. "
            "--step tok:python --step clf:onnx"
        )
    return StepSpec(match.group("name"), match.group("kind"))


def parse_tensor(flag: str, text: str) -> TensorSpec:
    """`TEXT:TYPE_STRING:1` -> TensorSpec (TYPE_ may be left out: `X:FP32:3,4`)."""
    example = f"{flag} TEXT:TYPE_STRING:1 or {flag} X:TYPE_FP32:3,4"
    match = _TENSOR_RE.fullmatch(text)
    if match is None:
        raise MmepackError(
            f"{flag} {text!r}: expected NAME:TYPE:DIMS, e.g. {example} (DIMS without the batch "
            "dimension, comma-separated)"
        )
    data_type = match.group("type").upper()
    data_type = data_type if data_type.startswith("TYPE_") else f"TYPE_{data_type}"
    if data_type == "TYPE_BYTES":
        data_type = "TYPE_STRING"
    if data_type not in _TYPES:
        raise MmepackError(
            f"{flag} {text!r}: type {match.group('type')!r} is not one of "
            f"{', '.join(_TYPES)}; e.g. {example}"
        )
    dims_text = match.group("dims")
    if not re.fullmatch(r"[1-9][0-9]*(,[1-9][0-9]*)*", dims_text):
        raise MmepackError(
            f"{flag} {text!r}: dims {dims_text!r} must be positive sizes without the batch "
            f"dimension, comma-separated, e.g. 1 or 3,4 ({example}); the scaffold writes fixed "
            "sizes so its test case is exact: make a size variable (-1) in config.pbtxt later"
        )
    dims = tuple(int(d) for d in dims_text.split(","))
    if math.prod(dims) > _MAX_ELEMENTS:
        raise MmepackError(
            f"{flag} {text!r}: {math.prod(dims)} elements per row; the generated case writes "
            f"every value inline, so keep it to {_MAX_ELEMENTS} (e.g. 3,32,32) and grow the "
            "dims in config.pbtxt afterwards"
        )
    return TensorSpec(match.group("name"), data_type, dims)


def _check_design(
    steps: Sequence[StepSpec], inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]
) -> None:
    """Refuse what would not make a working model, naming the flag and what to do."""
    names = [s.name for s in steps]
    for name in sorted({n for n in names if names.count(n) > 1}):
        raise MmepackError(f"--step {name}: given twice; each step needs its own name")
    seen: dict[str, str] = {}
    for flag, tensors in (("--input", inputs), ("--output", outputs)):
        for tensor in tensors:
            between = {FEATURES_IN, FEATURES_OUT} | {f"{s.name}_features" for s in steps}
            if tensor.name in between:
                raise MmepackError(
                    f"{flag} {tensor.name}: the scaffold's steps use that name between steps; "
                    "choose another"
                )
            if tensor.name in seen:
                raise MmepackError(
                    f"{flag} {tensor.name}: already given as {seen[tensor.name]}; every input "
                    "and output of the ensemble needs its own name"
                )
            seen[tensor.name] = flag
    text_in = [t.name for t in inputs if t.data_type == "TYPE_STRING"]
    text_out = [t.name for t in outputs if t.data_type == "TYPE_STRING"]
    if steps[0].kind == "onnx" and text_in:
        raise MmepackError(
            f"--step {steps[0].name}:onnx comes first, but input {text_in[0]} is TYPE_STRING and "
            "the scaffold's ONNX graphs compute on numbers; put a Python step first (e.g. "
            f"--step tok:python --step {steps[0].name}:onnx) or use a numeric --input"
        )
    if steps[-1].kind == "onnx" and text_out:
        raise MmepackError(
            f"--step {steps[-1].name}:onnx comes last, but output {text_out[0]} is TYPE_STRING "
            "and the scaffold's ONNX graphs compute on numbers; put a Python step last (e.g. "
            f"--step {steps[-1].name}:onnx --step post:python) or use a numeric --output"
        )


# The function each Python step runs, and the scaffold runs to write the case's expected
# values: one source, so the two cannot disagree.
_STEP_CODE = '''\
def answer(arrays, outputs, shift):
    """One number per batch row (the mean of every input; text counts its length in bytes),
    plus `shift` and a per-element offset, in each output's (name, numpy type, dims)."""
    levels = []
    for array in arrays:
        if array.dtype == np.object_:
            array = np.vectorize(len, otypes=[np.float32])(array)
        rows = array.reshape(array.shape[0], -1).astype(np.float32)
        levels.append(rows.sum(axis=1, dtype=np.float32) / np.float32(rows.shape[1]))
    level = np.sum(levels, axis=0, dtype=np.float32) / np.float32(len(levels))
    level = level + np.float32(shift)
    results = []
    for name, numpy_type, dims in outputs:
        offsets = np.arange(int(np.prod(dims)), dtype=np.float32).reshape(dims) * np.float32(0.25)
        values = level.reshape((-1,) + (1,) * len(dims)) + offsets
        if numpy_type == "object_":
            result = np.vectorize(lambda v: ("%g" % v).encode(), otypes=[np.object_])(values)
        elif numpy_type == "bool_":
            result = values != 0
        elif np.issubdtype(np.dtype(numpy_type), np.integer):
            result = np.round(values).astype(numpy_type)
        else:
            result = values.astype(numpy_type)
        results.append((name, result))
    return results
'''

_PYTHON_STEP = '''\
"""Step {step} of {model}: {role}

Replace `answer` with the step's work. As written it passes one number per batch row along
(see the function), so that ../../tests/cases/example.json holds exact expected values.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

INPUTS = {inputs}
# (name, numpy type, dims without the batch dimension)
OUTPUTS = {outputs}
SHIFT = {shift}


{code}

class TritonPythonModel:
    def execute(self, requests):
        # One response per request, in order; each request holds a batch.
        responses = []
        for request in requests:
            arrays = [pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in INPUTS]
            tensors = [pb_utils.Tensor(n, r) for n, r in answer(arrays, OUTPUTS, SHIFT)]
            responses.append(pb_utils.InferenceResponse(tensors))
        return responses
'''

_PYTHON_CONFIG = """\
# A Python step: {role} Its packages come from ../{requirements}, packed by
# mmepack into {env} beside this file ({parameter} below).
name: "{model}"
backend: "python"
max_batch_size: {batch}
input [ {inputs} ]
output [ {outputs} ]
instance_group [ {{ kind: KIND_CPU }} ]
parameters: {{
  key: "{parameter}"
  value: {{ string_value: "{env_path}" }}
}}
"""

_ONNX_CONFIG = """\
# An ONNX step: {role} 1/model.onnx is tracked by DVC (made by `mmepack new`; replace it with
# your exported model). Set backend explicitly: under SageMaker the model name does not end in
# .onnx, so Triton cannot guess it.
name: "{model}"
backend: "onnxruntime"
max_batch_size: {batch}
input [ {inputs} ]
output [ {outputs} ]
instance_group [ {{ kind: KIND_CPU }} ]
"""

_ENSEMBLE = """\
# The deployable: SageMaker loads the folder whose config says platform "ensemble" and
# serves it under the artifact's name. Each step names a model folder beside this one.
name: "{name}"
platform: "ensemble"
max_batch_size: {batch}
input [ {inputs} ]
output [ {outputs} ]
ensemble_scheduling {{
  step [
{steps}
  ]
}}
"""

_ENSEMBLE_STEP = """\
    {{
      model_name: "{model}"
      model_version: -1
{maps}
    }}"""

_TEST = '''\
"""{name} served from its packaged artifact by a real Triton server (see mmepack.testing).

What it answers is checked by the case in cases/ (`./pants test {root}:{name}`); this test
shows where code-level tests go.
"""

from typing import Any, Iterator

import pytest

from mmepack.testing import find_artifact, serve_artifact

MODEL = "{name}"
INPUTS = {inputs}
OUTPUTS = {outputs}


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with serve_artifact(find_artifact(MODEL)) as served:
        yield served


def test_serves_the_inputs_and_outputs_it_was_made_with(server: Any) -> None:
    metadata = server.client.get_model_metadata(server.model_name)
    assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == INPUTS
    assert [(t["name"], t["datatype"]) for t in metadata["outputs"]] == OUTPUTS
'''

_CONFTEST = '''\
"""Reports in the pytest summary which Triton and which device (GPU or CPU) ran the tests."""

from mmepack.testing.pytest_plugin import pytest_terminal_summary  # noqa: F401
'''

_BUILD = """\
# {name}: {chain}.
#
# `./pants package {root}:{name}`:
{how}
#   - writes dist/mme/{name}_<model_version.txt>.tar.gz.
# `./pants test {root}:{name}` runs the cases in tests/cases/ on a local endpoint;
# `./pants test {root}/tests:` runs the tests there.
triton_model(
    name="{name}",{dependencies}
    python_version="{python}",
)
{steps}"""

_TEST_BUILD = """\
# Runs against a real Triton server serving the packaged artifact (see mmepack.testing).
python_tests(
    name="tests",
    runtime_package_dependencies=["{root}:{name}"],
    timeout=900,
)

python_test_utils(name="conftest")
"""


def _literal(items: list[Any]) -> str:
    """A list as black writes it with a magic trailing comma: one item per line, double quotes,
    so the generated files pass `./pants lint` (black) as written, whatever their length."""
    lines = ["["]
    for item in items:
        lines.append(f"    {json.dumps(item) if isinstance(item, str) else _tuple(item)},")
    lines.append("]")
    return "\n".join(lines)


def _tuple(item: tuple[Any, ...]) -> str:
    parts = [
        json.dumps(p) if isinstance(p, str) else _tuple(p) if isinstance(p, tuple) else repr(p)
        for p in item
    ]
    return f"({', '.join(parts)}{',' if len(parts) == 1 else ''})"


def _metadata_type(data_type: str) -> str:
    return "BYTES" if data_type == "TYPE_STRING" else data_type.removeprefix("TYPE_")


def _step_tensors(
    index: int, count: int, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]
) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The tensors step `index` of `count` reads and writes: the ensemble's at the ends,
    FP32 [FEATURE_WIDTH] between steps."""
    features_in = [TensorSpec(FEATURES_IN, "TYPE_FP32", (FEATURE_WIDTH,))]
    features_out = [TensorSpec(FEATURES_OUT, "TYPE_FP32", (FEATURE_WIDTH,))]
    return (
        list(inputs) if index == 0 else features_in,
        list(outputs) if index == count - 1 else features_out,
    )


def _case_inputs(inputs: Sequence[TensorSpec]) -> dict[str, list[Any]]:
    """A batch of two rows; every element of input i in row r holds i + 1 + r (text: a
    word), so every mean the steps take is exact."""
    values: dict[str, list[Any]] = {}
    for number, tensor in enumerate(inputs):
        rows: list[Any] = []
        for row in range(2):
            if tensor.data_type == "TYPE_STRING":
                element: Any = _TEXT_VALUES[row]
            elif tensor.data_type == "TYPE_BOOL":
                element = row == 0
            else:
                element = number + 1 + row
            filled: Any = element
            for size in reversed(tensor.dims):
                filled = [filled] * size
            rows.append(filled)
        values[tensor.name] = rows
    return values


def _as_array(tensor: TensorSpec, rows: list[Any]) -> Any:
    import numpy as np

    if tensor.data_type == "TYPE_STRING":
        return np.vectorize(lambda s: s.encode(), otypes=[np.object_])(np.array(rows))
    return np.array(rows, dtype=tensor.numpy_type)


def _as_json(value: Any) -> Any:
    import numpy as np

    if value.dtype == np.object_:
        return np.vectorize(lambda b: b.decode(), otypes=[object])(value).tolist()
    return value.tolist()


def expected_outputs(
    steps: Sequence[StepSpec],
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    case_inputs: dict[str, list[Any]],
) -> dict[str, Any]:
    """What the whole ensemble answers to `case_inputs`: each step's `answer`, in turn."""
    import numpy as np

    scope: dict[str, Any] = {"np": np}
    exec(compile(_STEP_CODE, "<mmepack new: step code>", "exec"), scope)  # noqa: S102 (ours)
    answer = scope["answer"]
    arrays = [_as_array(t, case_inputs[t.name]) for t in inputs]
    results: list[tuple[str, Any]] = []
    for index, _ in enumerate(steps):
        _, writes = _step_tensors(index, len(steps), inputs, outputs)
        results = answer(arrays, [(t.name, t.numpy_type, t.dims) for t in writes], index + 1)
        arrays = [array for _, array in results]
    return {name: _as_json(array) for name, array in results}


def write_onnx_model(
    path: Path,
    target: TargetServer,
    reads: Sequence[TensorSpec] = (TensorSpec(FEATURES_IN, "TYPE_FP32", (FEATURE_WIDTH,)),),
    writes: Sequence[TensorSpec] = (TensorSpec(FEATURES_OUT, "TYPE_FP32", (FEATURE_WIDTH,)),),
    shift: int = 1,
) -> None:
    """An ONNX graph computing what `_STEP_CODE`'s `answer` computes for numeric tensors,
    written at the IR version and opset the target's runtime reads."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    limits = target.onnx_runtime
    nodes: list[Any] = []
    constants: list[Any] = []
    levels = []
    for tensor in reads:
        source = tensor.name
        if tensor.data_type != "TYPE_FP32":
            nodes.append(helper.make_node("Cast", [source], [f"{source}_f"], to=TensorProto.FLOAT))
            source = f"{source}_f"
        # A sum divided by the count, as `answer` computes it (not ReduceMean, which a runtime
        # may compute as a product with 1/count, a different float).
        axes = np.arange(1, len(tensor.dims) + 1, dtype=np.int64)
        constants.append(numpy_helper.from_array(axes, f"{tensor.name}_axes"))
        count = np.array(math.prod(tensor.dims), np.float32)
        constants.append(numpy_helper.from_array(count, f"{tensor.name}_count"))
        nodes.append(
            helper.make_node(
                "ReduceSum", [source, f"{tensor.name}_axes"], [f"{tensor.name}_sum"], keepdims=0
            )
        )
        nodes.append(
            helper.make_node(
                "Div", [f"{tensor.name}_sum", f"{tensor.name}_count"], [f"{tensor.name}_mean"]
            )
        )
        levels.append(f"{tensor.name}_mean")
    constants.append(numpy_helper.from_array(np.array(len(levels), np.float32), "count"))
    constants.append(numpy_helper.from_array(np.array(shift, np.float32), "shift"))
    nodes.append(helper.make_node("Sum", levels, ["total"]))
    nodes.append(helper.make_node("Div", ["total", "count"], ["mean"]))
    nodes.append(helper.make_node("Add", ["mean", "shift"], ["level"]))
    for tensor in writes:
        name = tensor.name
        rank = len(tensor.dims)
        constants.append(
            numpy_helper.from_array(np.array([-1] + [1] * rank, np.int64), f"{name}_rows")
        )
        offsets = np.arange(math.prod(tensor.dims), dtype=np.float32).reshape(tensor.dims)
        constants.append(numpy_helper.from_array(offsets * np.float32(0.25), f"{name}_offsets"))
        nodes.append(helper.make_node("Reshape", ["level", f"{name}_rows"], [f"{name}_level"]))
        nodes.append(
            helper.make_node("Add", [f"{name}_level", f"{name}_offsets"], [f"{name}_values"])
        )
        values = f"{name}_values"
        kind = _TYPES[tensor.data_type][2]
        if kind == "int":
            nodes.append(helper.make_node("Round", [values], [f"{name}_rounded"]))
            values = f"{name}_rounded"
        onnx_type = getattr(TensorProto, _TYPES[tensor.data_type][1])
        if onnx_type == TensorProto.FLOAT:
            nodes.append(helper.make_node("Identity", [values], [name]))
        else:
            nodes.append(helper.make_node("Cast", [values], [name], to=onnx_type))

    def value_info(tensor: TensorSpec) -> Any:
        onnx_type = getattr(TensorProto, _TYPES[tensor.data_type][1])
        shape: list[int | str] = ["batch", *tensor.dims]
        return helper.make_tensor_value_info(tensor.name, onnx_type, shape)

    graph = helper.make_graph(
        nodes,
        "mmepack_new_step",
        [value_info(t) for t in reads],
        [value_info(t) for t in writes],
        constants,
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


def _role(index: int, count: int) -> str:
    if count == 1:
        return "the only step, from the ensemble's inputs to its outputs."
    if index == 0:
        return "the first step, from the ensemble's inputs."
    if index == count - 1:
        return "the last step, to the ensemble's outputs."
    return f"step {index + 1} of {count}."


def _maps(
    reads: Sequence[TensorSpec], writes: Sequence[TensorSpec], index: int, steps: Sequence[StepSpec]
) -> str:
    """The ensemble's input_map/output_map lines of step `index`."""

    def between(position: int) -> str:
        return f"{steps[position].name}_features"

    lines = []
    for tensor in reads:
        source = tensor.name if tensor.name != FEATURES_IN else between(index - 1)
        lines.append(f'      input_map {{ key: "{tensor.name}" value: "{source}" }}')
    for tensor in writes:
        sink = tensor.name if tensor.name != FEATURES_OUT else between(index)
        lines.append(f'      output_map {{ key: "{tensor.name}" value: "{sink}" }}')
    return "\n".join(lines)


def new_model(
    model_dir: Path,
    *,
    python: str | None = None,
    target: TargetServer | None = None,
    repo_root: Path | None = None,
    steps: Sequence[str] = (),
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
) -> list[str]:
    """Create `model_dir` (e.g. models/tiny_adder) with the given steps (`tok:python`) and
    ensemble tensors (`TEXT:TYPE_STRING:1`), each in the form its flag takes; returns the lines
    to show the user. Every flag is checked before anything is written."""
    target = target or TargetServer()
    name = model_dir.name
    if not _NAME_RE.fullmatch(name):
        raise MmepackError(
            f"model name {name!r} is not valid; use lower-case letters, digits and '_', "
            "starting with a letter (it becomes the Triton model name and the S3 key)"
        )
    step_specs = [parse_step(s) for s in steps] or list(DEFAULT_STEPS)
    input_specs = [parse_tensor("--input", t) for t in inputs] or list(DEFAULT_INPUTS)
    output_specs = [parse_tensor("--output", t) for t in outputs] or list(DEFAULT_OUTPUTS)
    _check_design(step_specs, input_specs, output_specs)
    if model_dir.exists() and any(model_dir.iterdir()):
        raise MmepackError(f"{model_dir} already exists and is not empty; choose another name")
    python = python or SCAFFOLD_PYTHON
    numpy, why = target.numpy_requirement
    has_python = any(s.kind == "python" for s in step_specs)
    root = repo_root or Path.cwd()
    try:
        relative = model_dir.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        relative = model_dir.as_posix()

    files: dict[str, str] = {VERSION_FILE: "1\n"}
    if has_python:
        files[REQUIREMENTS_FILE] = f"# Packages the Python steps import. {why}.\n{numpy}\n"
    ensemble_steps = []
    onnx_steps: list[tuple[Path, list[TensorSpec], list[TensorSpec], int]] = []
    for index, step in enumerate(step_specs):
        model = f"{name}_{step.name}"
        reads, writes = _step_tensors(index, len(step_specs), input_specs, output_specs)
        role = _role(index, len(step_specs))
        tensors = {
            "model": model,
            "role": role,
            "batch": MAX_BATCH_SIZE,
            "inputs": ", ".join(t.config for t in reads),
            "outputs": ", ".join(t.config for t in writes),
        }
        if step.kind == "python":
            files[f"{model}/{CONFIG_FILE}"] = _PYTHON_CONFIG.format(
                requirements=REQUIREMENTS_FILE,
                env=ENV_ARCHIVE,
                parameter=ENV_PATH_PARAMETER,
                env_path=f"{MODEL_DIR_VARIABLE}{ENV_ARCHIVE}",
                **tensors,
            )
            files[f"{model}/1/model.py"] = _PYTHON_STEP.format(
                step=step.name,
                model=name,
                role=role,
                inputs=_literal([t.name for t in reads]),
                outputs=_literal([(t.name, t.numpy_type, t.dims) for t in writes]),
                shift=index + 1,
                code=_STEP_CODE,
            )
        else:
            files[f"{model}/{CONFIG_FILE}"] = _ONNX_CONFIG.format(**tensors)
            onnx_steps.append((model_dir / model / "1" / "model.onnx", reads, writes, index + 1))
        ensemble_steps.append(
            _ENSEMBLE_STEP.format(model=model, maps=_maps(reads, writes, index, step_specs))
        )
    files[f"{name}/{CONFIG_FILE}"] = _ENSEMBLE.format(
        name=name,
        batch=MAX_BATCH_SIZE,
        inputs=", ".join(t.config for t in input_specs),
        outputs=", ".join(t.config for t in output_specs),
        steps=",\n".join(ensemble_steps),
    )
    case_inputs = _case_inputs(input_specs)
    case = {
        "description": "what the scaffold's placeholder steps answer; replace with your model's",
        "inputs": {k: {"values": v} for k, v in case_inputs.items()},
        "expected": {
            k: {"values": v}
            for k, v in expected_outputs(step_specs, input_specs, output_specs, case_inputs).items()
        },
    }
    files[CASE_FILE] = json.dumps(case, indent=2) + "\n"
    files["tests/conftest.py"] = _CONFTEST
    files[f"tests/test_{name}.py"] = _TEST.format(
        name=name,
        root=relative,
        inputs=_literal([(t.name, _metadata_type(t.data_type)) for t in input_specs]),
        outputs=_literal([(t.name, _metadata_type(t.data_type)) for t in output_specs]),
    )
    chain = " -> ".join(f"{s.name} ({s.kind})" for s in step_specs)
    how = ["#   - checks every config (what `mmepack validate` checks),"]
    if has_python:
        how.append(
            f"#   - builds requirements.txt into a Python {python} environment, proven under\n"
            "#     Triton's stub, for the Python steps,"
        )
    if onnx_steps:
        how.append("#   - pulls the ONNX files from the DVC remote (//:dvc) and checks their md5,")
    files[BUILD_FILE] = _BUILD.format(
        name=name,
        chain=chain,
        root=relative,
        how="\n".join(how),
        dependencies='\n    dependencies=["//:dvc"],' if onnx_steps else "",
        python=python,
        steps=(
            '\npython_sources(name="steps", sources=["*/1/model.py"], skip_mypy=True)\n'
            if has_python
            else ""
        ),
    )
    files[f"tests/{BUILD_FILE}"] = _TEST_BUILD.format(name=name, root=relative)
    for rel, text in files.items():
        path = model_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    lines = [f"mmepack: created {model_dir} ({name}: {chain})"]
    for path, reads, writes, shift in onnx_steps:
        write_onnx_model(path, target, reads, writes, shift)
        lines.append(f"mmepack: {_dvc_add(path, root)}")
    next_steps = []
    if has_python:
        next_steps.append(
            f"./pants lock-envs {relative}:{name} (or mmepack lock {model_dir} --python {python})"
        )
    if onnx_steps:
        next_steps.append("dvc push (the build reads weights from the DVC remote only)")
    next_steps += [
        f"./pants lint check {relative}::",
        f"./pants package {relative}:{name}",
        f"./pants test {relative}:{name} {relative}/tests:",
    ]
    lines.append(f"mmepack: next: {'; '.join(next_steps)}")
    return lines
