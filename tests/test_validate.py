"""Static validation of model directories: a broken-repository corpus, one mistake per case.

The corpus is generated from one good baseline (`GOOD_FILES`, a small but realistic ensemble of
a Python preprocess step, an ONNX model tracked by DVC and a Python postprocess step) by the
edits in `CASES`. Keeping the corpus as a table rather than as folders on disk keeps each
mistake next to the exact problem it must produce, and keeps broken `model_version.txt` folders
out of the repository, where `./pants tailor` would take them for real models.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import pytest

from mmepack.cli import main
from mmepack.environment.lock import Pin, render_lock, requirements_digest
from mmepack.model.config import ConfigSchemaError, parse_model_config
from mmepack.validate import (
    Problem,
    discover_model_directories,
    validate_model_directory,
    validate_tree,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

ENSEMBLE = """# The entry point SageMaker loads.
name: "demo"
platform: "ensemble"
max_batch_size: 8
input [
  {
    name: "IMAGE"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }
]
output [
  {
    name: "LABEL"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }
]
# SCORES stays internal: an ensemble output that a later step also reads makes subset requests
# fail on Triton 2.51 (see test_ensemble_output_read_by_a_later_step_warns).
ensemble_scheduling {
  step [
    {
      model_name: "demo_pre"
      model_version: -1
      input_map { key: "IMAGE_BYTES" value: "IMAGE" }
      output_map { key: "PIXELS" value: "pixels" }
    },
    {
      model_name: "demo_net"
      model_version: -1
      input_map { key: "INPUT" value: "pixels" }
      output_map { key: "LOGITS" value: "SCORES" }
    },
    {
      model_name: "demo_post"
      model_version: -1
      input_map { key: "LOGITS" value: "SCORES" }
      output_map { key: "LABEL" value: "LABEL" }
    }
  ]
}
"""

PRE = """name: "demo_pre"
backend: "python"
max_batch_size: 8
input [
  {
    name: "IMAGE_BYTES"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }
]
output [
  {
    name: "PIXELS"
    data_type: TYPE_FP32
    dims: [ 3, 16, 16 ]
  }
]
instance_group [
  {
    kind: KIND_CPU
  }
]
parameters: {
  key: "EXECUTION_ENV_PATH"
  value: { string_value: "$$TRITON_MODEL_DIRECTORY/python_env.tar.gz" }
}
"""

NET = """name: "demo_net"
backend: "onnxruntime"
max_batch_size: 8
input [
  {
    name: "INPUT"
    data_type: TYPE_FP32
    dims: [ 3, -1, -1 ]
  }
]
output [
  {
    name: "LOGITS"
    data_type: TYPE_FP32
    dims: [ 2 ]
  }
]
"""

POST = """name: "demo_post"
backend: "python"
max_batch_size: 8
input [
  {
    name: "LOGITS"
    data_type: TYPE_FP32
    dims: [ 2 ]
  }
]
output [
  {
    name: "LABEL"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }
]
"""

PRE_MODEL = """import io

import numpy as np
import triton_python_backend_utils as pb_utils
from PIL import Image


class TritonPythonModel:
    def execute(self, requests):
        return []
"""

POST_MODEL = """import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return []
"""

DVC_FILE = """outs:
- md5: 6785ca37c681a417b05284b30c68ad6d
  size: 4087
  hash: md5
  path: model.onnx
"""

GOOD_FILES = {
    "model_version.txt": "1\n",
    "requirements.txt": "pillow\n",
    "demo/config.pbtxt": ENSEMBLE,
    "demo_pre/config.pbtxt": PRE,
    "demo_pre/1/model.py": PRE_MODEL,
    "demo_net/config.pbtxt": NET,
    "demo_net/1/model.onnx.dvc": DVC_FILE,
    "demo_post/config.pbtxt": POST,
    "demo_post/1/model.py": POST_MODEL,
}


def write_good(root: Path) -> Path:
    for rel, text in GOOD_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    # A good model is locked: its requirements.lock was made from this requirements.txt.
    digest = requirements_digest(root / "requirements.txt")
    pins = [Pin("pillow", "13.0.0", "42" * 32), Pin("numpy", "1.26.4", "67" * 32)]
    lock = render_lock(root.name, "3.11", "manylinux_2_35_x86_64", digest, "pip", pins)
    (root / "requirements.lock").write_text(lock)
    return root


# --------------------------------------------------------------------------------------------
# Edits that turn the baseline into a broken repository
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replace:
    """Replace text that occurs exactly once in a file."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class Write:
    path: str
    text: str


@dataclass(frozen=True)
class Remove:
    path: str


@dataclass(frozen=True)
class Rename:
    path: str
    to: str


Edit = Union[Replace, Write, Remove, Rename]


def apply(root: Path, edit: Edit) -> None:
    if isinstance(edit, Replace):
        target = root / edit.path
        text = target.read_text()
        assert text.count(edit.old) == 1, f"{edit.old!r} must occur once in {edit.path}"
        target.write_text(text.replace(edit.old, edit.new))
    elif isinstance(edit, Write):
        (root / edit.path).parent.mkdir(parents=True, exist_ok=True)
        (root / edit.path).write_text(edit.text)
    elif isinstance(edit, Remove):
        target = root / edit.path
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    else:
        (root / edit.path).rename(root / edit.to)


@dataclass(frozen=True)
class Expect:
    """One expected problem: file relative to the model directory, field, message part.

    `line_has` is text the reported line must contain (None: no line is expected).
    """

    file: str
    field: str
    message: str
    line_has: str | None
    severity: str = "error"


@dataclass(frozen=True)
class Case:
    id: str
    edits: tuple[Edit, ...]
    expected: tuple[Expect, ...]


def case(id: str, edits: Edit | tuple[Edit, ...], *expected: Expect) -> Case:
    return Case(id, edits if isinstance(edits, tuple) else (edits,), expected)


ENS = "demo/config.pbtxt"
NET_CFG = "demo_net/config.pbtxt"
PRE_CFG = "demo_pre/config.pbtxt"
POST_CFG = "demo_post/config.pbtxt"
ENV_VALUE = '"$$TRITON_MODEL_DIRECTORY/python_env.tar.gz"'
NET_STEP = 'model_name: "demo_net"\n      model_version: -1\n'
POST_STEP_INPUT = 'input_map { key: "LOGITS" value: "SCORES" }'
STEPS_END = "    }\n  ]\n}\n"

CASES = [
    # --- config syntax, against Triton's schema -----------------------------------------
    case(
        "syntax_bad_value",
        Replace(NET_CFG, "max_batch_size: 8", "max_batch_size: eight"),
        Expect(NET_CFG, "syntax", "Couldn't parse integer: eight", "eight"),
    ),
    case(
        "syntax_unknown_field",
        Replace(NET_CFG, "max_batch_size: 8", "max_batch_sizes: 8"),
        Expect(NET_CFG, "syntax", 'has no field named "max_batch_sizes"', "max_batch_sizes"),
    ),
    case(
        "syntax_unknown_enum",
        Replace(POST_CFG, "TYPE_STRING", "TYPE_STR"),
        Expect(POST_CFG, "syntax", "has no value named TYPE_STR", "TYPE_STR"),
    ),
    case(
        "syntax_unclosed_message",
        Replace(NET_CFG, "    dims: [ 2 ]\n  }\n]", "    dims: [ 2 ]\n  }\n"),
        Expect(NET_CFG, "syntax", "Expected", "}"),
    ),
    # --- names and platform ---------------------------------------------------------------
    case(
        "name_differs_from_folder",
        Replace(NET_CFG, 'name: "demo_net"', 'name: "demo_nets"'),
        Expect(NET_CFG, "name", "name is 'demo_nets' but the folder is 'demo_net'", "name:"),
    ),
    case(
        "model_name_not_an_s3_key",
        (
            Rename("demo", "demo.v2"),
            Replace("demo.v2/config.pbtxt", 'name: "demo"', 'name: "demo.v2"'),
        ),
        Expect("demo.v2/config.pbtxt", "name", "'demo.v2' is not valid", "name:"),
    ),
    case(
        "step_backend_not_inferable",
        (Replace(NET_CFG, 'backend: "onnxruntime"\n', ""), Remove("demo_net/1/model.onnx.dvc")),
        Expect(NET_CFG, "backend", "Could not determine backend for model 'demo_net'", None),
    ),
    case(
        "ensemble_in_single_quotes",
        Replace(ENS, 'platform: "ensemble"', "platform: 'ensemble'"),
        Expect(ENS, "platform", 'pattern platform:(\\s)*"ensemble"', "platform:"),
    ),
    case(
        "no_ensemble",
        Remove("demo"),
        Expect(".", "ensemble", "holds 3 Triton models and 0 top-level ensembles (none)", None),
    ),
    case(
        "two_ensembles",
        Write("demo_copy/config.pbtxt", ENSEMBLE.replace('name: "demo"', 'name: "demo_copy"')),
        Expect(
            ".",
            "ensemble",
            "holds 5 Triton models and 2 top-level ensembles (demo, demo_copy)",
            None,
        ),
    ),
    case(
        "plain_model_matches_sagemaker_ensemble_pattern",
        Write(NET_CFG, '# Not platform: "ensemble", a plain ONNX model.\n' + NET),
        Expect(NET_CFG, "platform", "matches SageMaker's ensemble pattern", "# Not platform"),
    ),
    case(
        "ensemble_scheduling_on_a_plain_model",
        Write(NET_CFG, NET + "ensemble_scheduling { }\n"),
        Expect(NET_CFG, "ensemble_scheduling", "only allowed with platform", "ensemble_sched"),
    ),
    case(
        "ensemble_without_steps",
        Write(ENS, ENSEMBLE[: ENSEMBLE.index("ensemble_scheduling")]),
        Expect(ENS, "ensemble_scheduling", "needs ensemble_scheduling with at least one", None),
    ),
    case(
        "step_overwrites_ensemble_input",
        Replace(
            ENS,
            'output_map { key: "LABEL" value: "LABEL" }',
            'output_map { key: "LABEL" value: "IMAGE" }',
        ),
        Expect(ENS, "output_map", "writes tensor 'IMAGE', which is an ensemble input", '"IMAGE" }'),
        Expect(ENS, "output", "ensemble output 'LABEL' is not produced", 'name: "LABEL"'),
    ),
    # --- versions and model files ---------------------------------------------------------
    case(
        "no_version_folder",
        Remove("demo_net/1"),
        Expect(NET_CFG, "version_policy", "no version folder (e.g. 1/)", None),
    ),
    case(
        "non_numeric_version_folder",
        Write("demo_net/v2/notes.txt", "old weights\n"),
        Expect("demo_net/v2", "version", "'v2' is not a positive integer", None, "warning"),
    ),
    case(
        "leading_zero_version_folder",
        Write("demo_net/02/model.onnx.dvc", DVC_FILE),
        Expect("demo_net/02", "version", "'02' is not a positive integer", None, "warning"),
    ),
    case(
        "version_policy_selects_nothing",
        Write(NET_CFG, NET + "version_policy: { latest: { num_versions: 0 } }\n"),
        Expect(NET_CFG, "version_policy", "selects none of the version folders (1)", "version_"),
    ),
    case(
        "version_policy_specific_missing_folder",
        Write(NET_CFG, NET + "version_policy: { specific: { versions: [ 1, 2 ] } }\n"),
        Expect(
            NET_CFG, "version_policy", "specific version 2 has no version folder", "2 ]", "warning"
        ),
    ),
    case(
        "onnx_weights_neither_present_nor_tracked",
        Remove("demo_net/1/model.onnx.dvc"),
        Expect(NET_CFG, "default_model_filename", "1/model.onnx is missing", "backend:"),
    ),
    case(
        "default_model_filename_missing",
        Write(NET_CFG, NET + 'default_model_filename: "net.onnx"\n'),
        Expect(NET_CFG, "default_model_filename", "1/net.onnx is missing", "default_model_"),
    ),
    case(
        "python_model_file_missing",
        Remove("demo_post/1/model.py"),
        Expect(POST_CFG, "default_model_filename", "1/model.py is missing", "backend:"),
    ),
    case(
        "python_model_does_not_parse",
        Replace(
            "demo_post/1/model.py", "def execute(self, requests):", "def execute(self, requests)"
        ),
        Expect("demo_post/1/model.py", "model.py", "does not parse", "def execute"),
    ),
    # --- ensemble steps and tensors -------------------------------------------------------
    case(
        "step_names_unknown_model",
        Replace(ENS, 'model_name: "demo_post"', 'model_name: "demo_postprocess"'),
        Expect(ENS, "model_name", "names model 'demo_postprocess', which is not a model", "demo_p"),
    ),
    case(
        "step_asks_for_missing_version",
        Replace(ENS, NET_STEP, NET_STEP.replace("-1", "3")),
        Expect(ENS, "model_version", "asks for version 3, which 'demo_net' does not load", "3"),
    ),
    case(
        "input_map_names_missing_input",
        Replace(ENS, 'key: "INPUT"', 'key: "IMAGE_IN"'),
        Expect(ENS, "input_map", "maps 'pixels' to input 'IMAGE_IN'", "IMAGE_IN"),
        Expect(ENS, "input_map", "input 'INPUT' of 'demo_net' is not mapped", "demo_net"),
    ),
    case(
        "step_input_not_mapped",
        Replace(
            POST_CFG,
            "    dims: [ 2 ]\n  }\n]\noutput",
            '    dims: [ 2 ]\n  },\n  { name: "MASK" data_type: TYPE_BOOL dims: [ 2 ] }\n]\noutput',
        ),
        Expect(ENS, "input_map", "input 'MASK' of 'demo_post' is not mapped", "demo_post"),
    ),
    case(
        "optional_input_may_stay_unmapped",
        Replace(
            POST_CFG,
            "    dims: [ 2 ]\n  }\n]\noutput",
            '    dims: [ 2 ]\n  },\n  { name: "MASK" data_type: TYPE_BOOL dims: [ 2 ] '
            "optional: true }\n]\noutput",
        ),
    ),
    case(
        "output_map_names_missing_output",
        Replace(
            ENS, 'key: "LOGITS" value: "SCORES" }\n    },', 'key: "LOGIT" value: "SCORES" }\n    },'
        ),
        Expect(
            ENS, "output_map", "maps output 'LOGIT' to 'SCORES', but 'demo_net' has no", "LOGIT"
        ),
    ),
    case(
        "data_type_mismatch",
        Replace(POST_CFG, "TYPE_FP32", "TYPE_FP16"),
        Expect(
            ENS,
            "input_map",
            "tensor 'SCORES' is TYPE_FP16 in model 'demo_post' input 'LOGITS' but TYPE_FP32 in "
            "model 'demo_net' output 'LOGITS'",
            POST_STEP_INPUT,
        ),
    ),
    case(
        "dims_mismatch",
        Replace(POST_CFG, "dims: [ 2 ]", "dims: [ 3 ]"),
        Expect(
            ENS,
            "input_map",
            "tensor 'SCORES' has shape [-1, 3] in model 'demo_post' input 'LOGITS' but [-1, 2]",
            POST_STEP_INPUT,
        ),
    ),
    case(
        "rank_mismatch_despite_wildcards",
        Replace(NET_CFG, "dims: [ 3, -1, -1 ]", "dims: [ 3, -1 ]"),
        Expect(
            ENS,
            "input_map",
            "tensor 'pixels' has shape [-1, 3, -1] in model 'demo_net' input 'INPUT' but "
            "[-1, 3, 16, 16] in model 'demo_pre' output 'PIXELS'",
            'key: "INPUT"',
        ),
    ),
    case(
        "ensemble_input_unused",
        Replace(
            ENS,
            "dims: [ 1 ]\n  }\n]\noutput",
            'dims: [ 1 ]\n  },\n  { name: "EXTRA" data_type: TYPE_FP32 dims: [ 1 ] }\n]\noutput',
        ),
        Expect(ENS, "input", "ensemble input 'EXTRA' is not used by any step", "EXTRA"),
    ),
    case(
        "ensemble_output_not_produced",
        Replace(
            ENS,
            "dims: [ 1 ]\n  }\n]\n# SCORES",
            'dims: [ 1 ]\n  },\n  { name: "CONFIDENCE" data_type: TYPE_FP32 dims: [ 1 ] }\n]\n# SCORES',
        ),
        Expect(ENS, "output", "ensemble output 'CONFIDENCE' is not produced", "CONFIDENCE"),
    ),
    case(
        "step_reads_unknown_tensor",
        Replace(ENS, POST_STEP_INPUT, 'input_map { key: "LOGITS" value: "SCORE" }'),
        Expect(
            ENS, "input_map", "reads tensor 'SCORE', which is neither an ensemble input", '"SCORE"'
        ),
        Expect(ENS, "output_map", "writes tensor 'SCORES', which no step reads", '"SCORES"'),
    ),
    case(
        "step_writes_wrong_name",
        Replace(
            ENS,
            'output_map { key: "LABEL" value: "LABEL" }',
            'output_map { key: "LABEL" value: "label" }',
        ),
        Expect(ENS, "output", "ensemble output 'LABEL' is not produced", 'name: "LABEL"'),
        Expect(ENS, "output_map", "writes tensor 'label', which no step reads", '"label"'),
    ),
    case(
        "tensor_written_twice",
        Replace(
            ENS,
            STEPS_END,
            '    },\n    {\n      model_name: "demo_net"\n      model_version: -1\n'
            '      input_map { key: "INPUT" value: "pixels" }\n'
            '      output_map { key: "LOGITS" value: "SCORES" }\n' + STEPS_END,
        ),
        Expect(
            ENS, "output_map", "step 4 (demo_net) writes tensor 'SCORES', which step 2", "SCORES"
        ),
    ),
    case(
        "step_batches_less_than_ensemble",
        Replace(NET_CFG, "max_batch_size: 8", "max_batch_size: 4"),
        Expect(ENS, "max_batch_size", "allows batches of 8 but 'demo_net' only 4", "max_batch"),
    ),
    case(
        "step_does_not_batch",
        Replace(POST_CFG, "max_batch_size: 8", "max_batch_size: 0"),
        Expect(
            ENS, "max_batch_size", "'demo_post' does not (max_batch_size 0)", "max_b", "warning"
        ),
    ),
    # --- instances ------------------------------------------------------------------------
    case(
        "gpu_instance_group",
        Replace(PRE_CFG, "KIND_CPU", "KIND_GPU"),
        Expect(
            PRE_CFG,
            "instance_group",
            "needs a GPU host; fails to load on CPU-only",
            "KIND_GPU",
            "warning",
        ),
    ),
    case(
        "instance_group_on_ensemble",
        Write(ENS, ENSEMBLE + "instance_group [ { kind: KIND_CPU } ]\n"),
        Expect(ENS, "instance_group", "an ensemble must not set instance_group", "instance_group"),
    ),
    # --- Python environment ---------------------------------------------------------------
    case(
        "env_path_not_relative_to_model_dir",
        Replace(PRE_CFG, ENV_VALUE, '"/opt/env/python_env.tar.gz"'),
        Expect(
            PRE_CFG,
            "EXECUTION_ENV_PATH",
            "must start with '$$TRITON_MODEL_DIRECTORY/'",
            "EXECUTION",
        ),
    ),
    case(
        "env_path_leaves_model_dir",
        Replace(PRE_CFG, ENV_VALUE, '"$$TRITON_MODEL_DIRECTORY/../python_env.tar.gz"'),
        Expect(
            PRE_CFG,
            "EXECUTION_ENV_PATH",
            "must name a .tar.gz inside the model folder",
            "EXECUTION",
        ),
    ),
    case(
        "env_path_not_a_tarball",
        Replace(PRE_CFG, ENV_VALUE, '"$$TRITON_MODEL_DIRECTORY/python_env"'),
        Expect(PRE_CFG, "EXECUTION_ENV_PATH", "must name a .tar.gz", "EXECUTION"),
    ),
    case(
        "env_path_without_requirements",
        Remove("requirements.txt"),
        Expect(PRE_CFG, "EXECUTION_ENV_PATH", "requirements.txt is missing", "EXECUTION"),
    ),
    case(
        "lock_older_than_requirements",
        Write("requirements.txt", "pillow\nrequests\n"),
        Expect(
            "requirements.lock",
            "requirements-sha256",
            "requirements.txt (or a file it includes) changed after requirements.lock was made; "
            "run `mmepack lock",
            "# requirements-sha256:",
        ),
    ),
    case(
        "requirements_without_lock",
        Remove("requirements.lock"),
        Expect(
            "requirements.txt", "requirements.lock", "has no requirements.lock", None, "warning"
        ),
    ),
    case(
        "requirements_without_env_path",
        Replace(PRE_CFG, 'key: "EXECUTION_ENV_PATH"', 'key: "ENV_PATH"'),
        Expect(
            "requirements.txt",
            "requirements.txt",
            "no model sets EXECUTION_ENV_PATH",
            None,
            "warning",
        ),
        Expect("demo_pre/1/model.py", "EXECUTION_ENV_PATH", "imports PIL but", None, "warning"),
    ),
    case(
        "python_step_imports_package_without_env",
        Replace(
            "demo_post/1/model.py",
            "import numpy as np\n",
            "import numpy as np\nimport scipy.special\n",
        ),
        Expect("demo_post/1/model.py", "EXECUTION_ENV_PATH", "imports scipy but", None, "warning"),
    ),
    # --- model_version.txt and the artifact name ------------------------------------------
    case(
        "model_version_missing",
        Remove("model_version.txt"),
        Expect("model_version.txt", "model_version.txt", "is missing", None),
    ),
    case(
        "model_version_invalid",
        Write("model_version.txt", "v1\n"),
        Expect("model_version.txt", "model_version.txt", "version 'v1' is not valid", "v1"),
    ),
    case(
        "model_version_two_lines",
        Write("model_version.txt", "1\n2\n"),
        Expect("model_version.txt", "model_version.txt", "exactly one non-empty line", "1"),
    ),
    case(
        "artifact_name_too_long",
        Write("model_version.txt", "1" * 1100 + "\n"),
        Expect(
            "model_version.txt",
            "model_version.txt",
            "longer than 255 bytes, the limit of a file name",
            "1111",
        ),
    ),
]


def _line(path: Path, number: int) -> str:
    return path.read_text().splitlines()[number - 1]


def _describe(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems)


def test_baseline_is_clean(tmp_path: Path) -> None:
    assert validate_model_directory(write_good(tmp_path / "demo")) == []


def test_corpus_has_enough_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("broken", CASES, ids=[c.id for c in CASES])
def test_broken_repository(tmp_path: Path, broken: Case) -> None:
    root = write_good(tmp_path / "demo")
    for edit in broken.edits:
        apply(root, edit)
    problems = validate_model_directory(root)
    assert len(problems) == len(broken.expected), _describe(problems)
    for expected in broken.expected:
        matching = [p for p in problems if _matches(root, p, expected)]
        assert len(matching) == 1, f"{expected} not reported:\n{_describe(problems)}"
        problem = matching[0]
        if expected.line_has is None:
            assert problem.line is None, str(problem)
        else:
            assert problem.line is not None, str(problem)
            assert expected.line_has in _line(problem.file, problem.line), str(problem)


def _matches(root: Path, problem: Problem, expected: Expect) -> bool:
    rel = problem.file.relative_to(root).as_posix() if problem.file != root else "."
    return (rel, problem.field, problem.severity) == (
        expected.file,
        expected.field,
        expected.severity,
    ) and (expected.message in problem.message)


# --------------------------------------------------------------------------------------------
# Rules that need more than one edit to show
# --------------------------------------------------------------------------------------------

IDENTITY = """name: "{name}"
backend: "python"
max_batch_size: 8
input [ {{ name: "X" data_type: TYPE_FP32 dims: [ 2 ] }} ]
output [ {{ name: "Y" data_type: TYPE_FP32 dims: [ 2 ] }} ]
"""

CYCLE_ENSEMBLE = """name: "loop"
platform: "ensemble"
max_batch_size: 8
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] } ]
ensemble_scheduling {
  step [
    {
      model_name: "loop_a"
      model_version: -1
      input_map { key: "X" value: "b_out" }
      output_map { key: "Y" value: "a_out" }
    },
    {
      model_name: "loop_b"
      model_version: -1
      input_map { key: "X" value: "a_out" }
      output_map { key: "Y" value: "b_out" }
    },
    {
      model_name: "loop_c"
      model_version: -1
      input_map { key: "X" value: "IN" }
      output_map { key: "Y" value: "OUT" }
    }
  ]
}
"""


def test_cycle_between_steps(tmp_path: Path) -> None:
    root = tmp_path / "loop"
    (root / "loop").mkdir(parents=True)
    (root / "loop" / "config.pbtxt").write_text(CYCLE_ENSEMBLE)
    for step in ("loop_a", "loop_b", "loop_c"):
        (root / step / "1").mkdir(parents=True)
        (root / step / "config.pbtxt").write_text(IDENTITY.format(name=step))
        (root / step / "1" / "model.py").write_text(POST_MODEL)
    (root / "model_version.txt").write_text("1\n")
    problems = validate_model_directory(root)
    assert [(p.field, p.message) for p in problems] == [
        (
            "ensemble_scheduling",
            "steps form a cycle: loop_a -> loop_b -> loop_a; no step on it can ever run",
        )
    ], _describe(problems)
    assert problems[0].line is not None
    assert 'model_name: "loop_a"' in _line(problems[0].file, problems[0].line)


def test_weights_tracked_as_a_version_folder(tmp_path: Path) -> None:
    root = write_good(tmp_path / "demo")
    (root / "demo_net" / "1" / "model.onnx.dvc").unlink()
    (root / "demo_net" / "1").rmdir()
    (root / "demo_net" / "1.dvc").write_text(DVC_FILE.replace("model.onnx", "1"))
    # A folder tracked as a whole is not in the checkout at all, so Triton's version folder is
    # missing until `dvc pull`; the validator reports it rather than guessing.
    problems = validate_model_directory(root)
    assert [p.field for p in problems] == ["version_policy"]


def test_non_batching_step_with_explicit_batch_dim_is_compatible(tmp_path: Path) -> None:
    root = write_good(tmp_path / "demo")
    post = root / "demo_post" / "config.pbtxt"
    post.write_text(
        POST.replace("max_batch_size: 8", "max_batch_size: 0").replace(
            "dims: [ 2 ]", "dims: [ -1, 2 ]"
        )
    )
    problems = validate_model_directory(root)
    # Only the batching warning: the full shapes [-1, 2] agree, as Triton's own check decides.
    assert [(p.field, p.severity) for p in problems] == [("max_batch_size", "warning")], _describe(
        problems
    )


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    root = write_good(tmp_path / "demo")
    by_id = {c.id: c for c in CASES}
    chosen = (
        "name_differs_from_folder",
        "ensemble_in_single_quotes",
        "data_type_mismatch",
        "model_version_invalid",
    )
    for broken in (by_id[i] for i in chosen):
        for edit in broken.edits:
            apply(root, edit)
    fields = sorted(p.field for p in validate_model_directory(root))
    assert fields == ["input_map", "model_version.txt", "name", "platform"]


# --------------------------------------------------------------------------------------------
# Problem, schema parse, discovery, the real example and the command line
# --------------------------------------------------------------------------------------------


def test_problem_str() -> None:
    problem = Problem(Path("models/x/x_pre/config.pbtxt"), 12, "input_map", "bad")
    assert str(problem) == "models/x/x_pre/config.pbtxt:12: input_map: bad"
    warning = Problem(Path("m/config.pbtxt"), None, "instance_group", "gpu", "warning")
    assert str(warning) == "m/config.pbtxt: warning: instance_group: gpu"


def test_schema_parse_error_has_position() -> None:
    with pytest.raises(ConfigSchemaError) as caught:
        parse_model_config('name: "x"\n\ninput [ { dims: [ 1, ] } ]', Path("c.pbtxt"))
    problem = caught.value.problem
    assert (problem.file, problem.line, problem.field) == (Path("c.pbtxt"), 3, "syntax")
    assert problem.message.startswith("column 22: Couldn't parse integer: ]")


def test_schema_parse_reads_triton_fields() -> None:
    config = parse_model_config(NET, Path("c.pbtxt"))
    assert (config.name, config.backend, config.max_batch_size) == ("demo_net", "onnxruntime", 8)
    assert list(config.input[0].dims) == [3, -1, -1]


def test_tree_discovery_reports_folder_without_model_version(tmp_path: Path) -> None:
    write_good(tmp_path / "models" / "good")
    stray = write_good(tmp_path / "models" / "team" / "stray")
    (stray / "model_version.txt").unlink()
    (tmp_path / "models" / "good" / "tests").mkdir()
    assert discover_model_directories(tmp_path / "models") == [
        tmp_path / "models" / "good",
        tmp_path / "models" / "team" / "stray",
    ]
    problems = validate_tree(tmp_path / "models")
    assert [(p.file, p.field) for p in problems] == [
        (stray / "model_version.txt", "model_version.txt")
    ]


def test_tree_without_models(tmp_path: Path) -> None:
    problems = validate_tree(tmp_path)
    assert [p.field for p in problems] == ["directory"]
    assert "no model directory found" in problems[0].message


def test_real_screen_detector_has_no_errors() -> None:
    model = REPO_ROOT / "models" / "screen_detector"
    assert (model / "screen_detector" / "config.pbtxt").is_file(), "model files not in sandbox"
    problems = validate_model_directory(model)
    assert [p for p in problems if p.severity == "error"] == [], _describe(problems)


def test_real_risk_score_has_no_errors() -> None:
    """The tabular example (its ONNX file is DVC-tracked, so not pulled here: the configs)."""
    model = REPO_ROOT / "models" / "risk_score"
    assert (model / "risk_score" / "config.pbtxt").is_file(), "model files not in sandbox"
    assert validate_model_directory(model) == []


def test_cli_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_good(tmp_path / "models" / "good")
    assert main(["validate", str(good)]) == 0
    assert capsys.readouterr().out.splitlines() == ["0 problems in 1 models (0 errors, 0 warnings)"]

    apply(good, Replace(PRE_CFG, "KIND_CPU", "KIND_GPU"))
    assert main(["validate", str(tmp_path / "models")]) == 0  # warnings do not fail
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "1 problems in 1 models (0 errors, 1 warnings)"

    broken = write_good(tmp_path / "models" / "broken")
    apply(broken, Replace(NET_CFG, 'name: "demo_net"', 'name: "other"'))
    assert main(["validate", str(tmp_path / "models")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{broken / NET_CFG}:1: name: name is 'other'" in out[0] + out[1]
    assert out[-1] == "2 problems in 2 models (1 errors, 1 warnings)"


# --------------------------------------------------------------------------------------------
# The ensemble-output pitfall (seen on Triton 2.51): a warning with the fix
# --------------------------------------------------------------------------------------------


def test_ensemble_output_read_by_a_later_step_warns(tmp_path: Path) -> None:
    root = write_good(tmp_path / "demo")
    apply(
        root,
        Replace(
            ENS,
            "dims: [ 1 ]\n  }\n]\n# SCORES",
            'dims: [ 1 ]\n  },\n  { name: "SCORES" data_type: TYPE_FP32 dims: [ 2 ] }\n]\n# SCORES',
        ),
    )
    problems = validate_model_directory(root)
    assert [(p.field, p.severity) for p in problems] == [("output_map", "warning")], _describe(
        problems
    )
    warning = problems[0]
    assert "ensemble output 'SCORES' is also read by step 3 (demo_post)" in warning.message
    assert "seen on Triton 2.51" in warning.message
    assert "fix:" in warning.message and "pass it through" in warning.message
    assert warning.line is not None
    assert POST_STEP_INPUT in _line(warning.file, warning.line)


def test_real_screen_detector_has_no_ensemble_output_warning() -> None:
    problems = validate_model_directory(REPO_ROOT / "models" / "screen_detector")
    assert not [p for p in problems if "is also read by" in p.message], _describe(problems)
