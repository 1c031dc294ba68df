"""What the local test server cannot run, refused before it loads anything.

The Triton in nvidia-pytriton carries the Python backend only; mmepack adds a Python-based
stand-in for ONNX Runtime (`mmepack/triton/backends/onnxruntime`). Triton's FIL backend, which
serves tree models from XGBoost, LightGBM and Treelite checkpoints, is a CUDA library that no
package reachable here carries, and a stand-in that scored the trees some other way would test
something the endpoint does not run. Left to Triton, such a model fails at load time with an
"unable to find backend library" line that says nothing about what to do. So the local server
refuses it first, naming the step and the way to test a tree model locally: convert it to
ONNX-ML and serve it with ONNX Runtime, which runs on both the local server and the endpoint.
"""

from __future__ import annotations

from pathlib import Path

from mmepack.errors import MmepackError
from mmepack.model.config import read_model_config
from mmepack.names import CONFIG_FILE

FIL_BACKEND = "fil"


FIL_ADVICE = (
    "the local test server has no FIL backend (Triton's FIL backend is a CUDA build that "
    "nvidia-pytriton does not carry), and mmepack does not stand in for it with another tree "
    "runtime. To test a tree model locally, convert it to ONNX-ML and serve it with backend "
    '"onnxruntime" (scikit-learn: skl2onnx; XGBoost and LightGBM: onnxmltools; keep ai.onnx.ml '
    "within what the target server's ONNX Runtime implements, which `mmepack validate` checks); "
    "models/risk_score is an example. Keep the FIL config for a GPU endpoint, tested there"
)


def fil_steps(repository: Path) -> list[Path]:
    """Config files under an unpacked artifact (the folder itself, or its model folders) whose
    backend is FIL. A config that does not parse is left to Triton, which reports it."""
    configs = [repository / CONFIG_FILE, *sorted(repository.glob(f"*/{CONFIG_FILE}"))]
    found = []
    for path in configs:
        if not path.is_file():
            continue
        try:
            backend = str(read_model_config(path).backend)
        except MmepackError:
            continue
        if backend == FIL_BACKEND:
            found.append(path)
    return found


def refuse_unavailable_backends(repository: Path, label: str) -> None:
    """MmepackError when the unpacked artifact `label` needs a backend the local server lacks."""
    found = fil_steps(repository)
    if found:
        steps = ", ".join(f"'{path.parent.name}'" for path in found)
        raise MmepackError(
            f'{label}: step {steps} uses backend "{FIL_BACKEND}" ({found[0].name}: backend: '
            f'"{FIL_BACKEND}"); not loaded: {FIL_ADVICE}'
        )
