"""Artifact size and cold load time: the environment layout before (one copy per Python step)
against the new one (one environment for all steps), side by side in one run.

For the example (`models/screen_detector`, two Python steps) and a three-Python-step variant
written here (`triple`: X -> +1 -> *2 -> -1, each step a Python model that imports numpy and
Pillow from the packed environment, the example's requirements and lock), each layout is packaged
through `mmepack.build.package_model` (the example's weights from its DVC remote, the environment
from mmepack's cache), then loaded on a fresh local SageMaker-style multi-model endpoint (the real
Triton 2.51 from nvidia-pytriton) by its first `invoke_endpoint`, alternating layouts, and the
answer checked. load_to_first_answer is SageMaker's cold path: unpack the tar, Triton loads the
ensemble (unpacking the environment for its Python steps), first answer.

Run from the repository root (takes a few minutes on 2 busy cores):
`PYTHONPATH=src:. python benchmarks/env_layout_bench.py [--runs 3] [--layouts per-step,shared-tar]`
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient
from PIL import Image

from mmepack.artifact.env_layout import EnvLayout, check_layout_name
from mmepack.build import package_model
from mmepack.endpoint import LocalEndpoint
from mmepack.testing.endpoint_client import BINARY_JSON, runtime_client

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "models" / "screen_detector"
PYTHON = "3.12"

_STEP_CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 8
input [ {{ name: "IN" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] }} ]
instance_group [ {{ kind: KIND_CPU }} ]
parameters: {{
  key: "EXECUTION_ENV_PATH"
  value: {{ string_value: "$$TRITON_MODEL_DIRECTORY/python_env.tar.gz" }}
}}
"""

_STEP_CODE = '''"""One step of the benchmark's three-step ensemble."""

import numpy as np
import PIL  # noqa: F401  (the environment's Pillow, as the example's preprocess imports it)
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            y = ({op}).astype(np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", y)]))
        return responses
'''

_ENSEMBLE = """name: "triple"
platform: "ensemble"
max_batch_size: 8
input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] } ]
ensemble_scheduling {
  step [
    { model_name: "triple_a" model_version: -1
      input_map { key: "IN" value: "X" } output_map { key: "OUT" value: "a" } },
    { model_name: "triple_b" model_version: -1
      input_map { key: "IN" value: "a" } output_map { key: "OUT" value: "b" } },
    { model_name: "triple_c" model_version: -1
      input_map { key: "IN" value: "b" } output_map { key: "OUT" value: "Y" } }
  ]
}
"""


def write_triple(root: Path) -> Path:
    """The three-Python-step model directory, with the example's requirements and lock."""
    model = root / "triple"
    (model / "triple").mkdir(parents=True)
    (model / "triple" / "config.pbtxt").write_text(_ENSEMBLE)
    for step, op in (("triple_a", "x + 1"), ("triple_b", "x * 2"), ("triple_c", "x - 1")):
        (model / step / "1").mkdir(parents=True)
        (model / step / "config.pbtxt").write_text(_STEP_CONFIG.format(name=step))
        (model / step / "1" / "model.py").write_text(_STEP_CODE.format(op=op))
    for name in ("requirements.txt", "requirements.lock"):
        shutil.copy(EXAMPLE / name, model / name)
    (model / "model_version.txt").write_text("1\n")
    return model


def _example_request() -> tuple[bytes, str, bytes]:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 190, 180)).save(buffer, format="PNG")
    tensor = httpclient.InferInput("IMAGE_BYTES", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[buffer.getvalue()]], dtype=np.object_))
    wanted = [httpclient.InferRequestedOutput(n, binary_data=False) for n in ("LABEL", "LOGITS")]
    body, size = httpclient.InferenceServerClient.generate_request_body([tensor], outputs=wanted)
    return body, f"{BINARY_JSON};json-header-size={size}", b'"document"'


def _triple_request() -> tuple[bytes, str, bytes]:
    body = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    return json.dumps(body).encode(), "application/json", b"[3.0,5.0,7.0,9.0]"


def load_to_first_answer(artifact: Path, request: tuple[bytes, str, bytes]) -> float:
    """Seconds from the first invoke_endpoint (cold: unpack, load) to its checked answer."""
    body, content_type, expected = request
    with LocalEndpoint([artifact], log=None) as local:
        runtime = runtime_client(local.url)
        started = time.monotonic()
        reply = runtime.invoke_endpoint(
            EndpointName=local.name,
            TargetModel=artifact.name,
            ContentType=content_type,
            Body=body,
        )
        answer = reply["Body"].read()
        elapsed = time.monotonic() - started
        runtime.close()
    if expected not in answer.replace(b" ", b""):
        raise SystemExit(f"{artifact}: unexpected answer {answer[:300]!r}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--layouts",
        default=f"{EnvLayout.PER_STEP.value},{EnvLayout.default().value}",
        help="comma-separated; the first is the baseline the ratios are taken against",
    )
    args = parser.parse_args()
    layouts = [check_layout_name(name) for name in args.layouts.split(",")]
    with tempfile.TemporaryDirectory(prefix="mmepack-layout-bench-") as scratch:
        root = Path(scratch)
        models = {
            "screen_detector": (EXAMPLE, _example_request()),
            "triple (3 Python steps)": (write_triple(root / "src"), _triple_request()),
        }
        artifacts: dict[tuple[str, EnvLayout], Path] = {}
        package_seconds: dict[tuple[str, EnvLayout], float] = {}
        sizes: dict[tuple[str, EnvLayout], int] = {}
        for label, (model_dir, _) in models.items():
            for layout in layouts:
                out = root / "dist" / layout.value
                started = time.monotonic()
                result = package_model(
                    model_dir,
                    out,
                    pull=model_dir == EXAMPLE,
                    repo_root=REPO,
                    python=PYTHON,
                    layout=layout,
                )
                package_seconds[(label, layout)] = time.monotonic() - started
                artifacts[(label, layout)] = result.path
                sizes[(label, layout)] = result.path.stat().st_size
        loads: dict[tuple[str, EnvLayout], list[float]] = {key: [] for key in artifacts}
        for _ in range(args.runs):
            for label, (_, request) in models.items():
                for layout in layouts:
                    loads[(label, layout)].append(
                        load_to_first_answer(artifacts[(label, layout)], request)
                    )
    print(
        f"{args.runs} cold loads per row on the local multi-model endpoint (Triton 2.51), "
        "alternating; load = invoke_endpoint to checked first answer"
    )
    print(
        f"{'model':<25}{'layout':<15}{'MB':>7}{'x base':>8}{'load s median (min-max)':>27}"
        f"{'x base':>8}{'package s':>11}"
    )
    for label in models:
        base_size = sizes[(label, layouts[0])]
        base_load = statistics.median(loads[(label, layouts[0])])
        for layout in layouts:
            size = sizes[(label, layout)]
            runs = loads[(label, layout)]
            median = statistics.median(runs)
            spread = f"{median:.2f} ({min(runs):.2f}-{max(runs):.2f})"
            print(
                f"{label:<25}{layout.value:<15}{size / 1e6:>7.1f}{size / base_size:>8.2f}"
                f"{spread:>27}{median / base_load:>8.2f}"
                f"{package_seconds[(label, layout)]:>11.1f}"
            )


if __name__ == "__main__":
    main()
