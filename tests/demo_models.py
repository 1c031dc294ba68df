"""Tiny model directories written on the fly, shared by the library's tests."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from mmepack.artifact.gzip_member import SpliceableGzipWriter

PYTHON_CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 4
input [ {{ name: "IN" data_type: TYPE_FP32 dims: [ 2 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] }} ]
{extra}
"""

ENSEMBLE_CONFIG = """name: "{name}"
platform: "ensemble"
max_batch_size: 4
input [ {{ name: "IN" data_type: TYPE_FP32 dims: [ 2 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] }} ]
ensemble_scheduling {{ step [ {{ model_name: "{step}" model_version: -1
  input_map {{ key: "IN" value: "IN" }} output_map {{ key: "OUT" value: "OUT" }} }} ] }}
"""

ENV_PARAMETER = (
    'parameters: { key: "EXECUTION_ENV_PATH" '
    'value: { string_value: "$$TRITON_MODEL_DIRECTORY/python_env.tar.gz" } }'
)

DOUBLING_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            out = pb_utils.Tensor("OUT", (data * 2).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
"""


def write_ensemble_model(
    root: Path, name: str = "demo", *, version: str | None = "1", env: bool = False
) -> Path:
    """A model directory with an ensemble `name` and one Python step `name_double`."""
    step = f"{name}_double"
    (root / name).mkdir(parents=True)
    (root / name / "config.pbtxt").write_text(ENSEMBLE_CONFIG.format(name=name, step=step))
    (root / step / "1").mkdir(parents=True)
    (root / step / "config.pbtxt").write_text(
        PYTHON_CONFIG.format(name=step, extra=ENV_PARAMETER if env else "")
    )
    (root / step / "1" / "model.py").write_text(DOUBLING_MODEL)
    if version is not None:
        (root / "model_version.txt").write_text(f"{version}\n")
    if env:  # package validates first, and a step with an environment needs its requirements
        (root / "requirements.txt").write_text("# numpy only: it is always added\n")
    return root


def write_env_archive(path: Path, files: dict[str, bytes] | None = None) -> Path:
    """A tiny gzip tar standing in for a packed environment: the packager only places it (and,
    for the artifact's shared plain tar, splices its deflate bytes), so it need not hold a real
    Python. Written in the spliceable shape the environment build writes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in sorted((files or {"bin/activate": b"# stand-in\n"}).items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out, SpliceableGzipWriter(out, 4) as gz:
        gz.write(raw.getvalue())
    return path
