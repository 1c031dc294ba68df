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

The default rows: `before` is the artifact as mmepack built it when issue 15 was filed (one
environment copy per Python step, and an environment without the standard-library bytecode that
`mmepack.environment.startup` now ships: the same archive with those `.pyc` files taken out);
`per-step` is that layout with today's environment (so the layout's own effect shows apart);
`shared-tar` is today's default. Ratios are taken against the first row.

Run from the repository root (takes a few minutes on 2 busy cores):
`PYTHONPATH=src:. python benchmarks/env_layout_bench.py [--runs 3] [--layouts before,per-step,shared-tar]`
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient
from PIL import Image

from mmepack.artifact.env_layout import EnvLayout, check_layout_name
from mmepack.build import package_model, python_tensor_types
from mmepack.endpoint import LocalEndpoint
from mmepack.environment.build import build_environment
from mmepack.environment.determinism import _COMPRESS_LEVEL as ENV_COMPRESS_LEVEL
from mmepack.environment.request import EnvRequest
from mmepack.model.repository import read_model_directory
from mmepack.names import ENV_ARCHIVE, REQUIREMENTS_FILE, STUB_NAME
from mmepack.testing.endpoint_client import BINARY_JSON, runtime_client

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "models" / "screen_detector"
PYTHON = "3.12"
# Issue 15's baseline: per-step layout, environment without the start-up bytecode.
# A row ending in this suffix loads the same artifact on an endpoint whose container sets
# SAGEMAKER_TRITON_ADDITIONAL_ARGS=--disable-auto-complete-config (README "Cold loads: the
# endpoint's auto-complete setting").
NO_AUTOCOMPLETE = "+no-autocomplete"
NO_AUTOCOMPLETE_ENVIRON = {"SAGEMAKER_TRITON_ADDITIONAL_ARGS": "--disable-auto-complete-config"}
BEFORE = "before"
_STDLIB_PYC = re.compile(r"^(?:\./)?lib/python3\.\d+/(?!site-packages/).*\.pyc$")

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


def environment_before(model_dir: Path, scratch: Path) -> tuple[Path, Path]:
    """Today's environment for `model_dir` (from mmepack's cache) less its standard-library
    bytecode, and the stub: what the issue's baseline artifact carried."""
    directory = read_model_directory(model_dir)
    request = EnvRequest(
        model_dir / REQUIREMENTS_FILE,
        PYTHON,
        directory.name,
        tensor_types=python_tensor_types(directory),
    )
    scratch.mkdir(parents=True, exist_ok=True)
    built = build_environment(
        request, scratch / ENV_ARCHIVE, stub_output=scratch / STUB_NAME, log=lambda _: None
    )
    before = scratch / f"before-{ENV_ARCHIVE}"
    removed = 0
    with tarfile.open(built.archive, mode="r|gz") as source, tarfile.open(
        before, mode="w:gz", compresslevel=ENV_COMPRESS_LEVEL, format=tarfile.PAX_FORMAT
    ) as target:
        for member in source:
            if _STDLIB_PYC.match(member.name):
                removed += 1
                continue
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
    if removed == 0:
        raise SystemExit(f"{built.archive}: no standard-library bytecode to take out")
    assert built.stub is not None
    return before, built.stub


def load_to_first_answer(
    artifact: Path, request: tuple[bytes, str, bytes], no_autocomplete: bool = False
) -> float:
    """Seconds from the first invoke_endpoint (cold: unpack, load) to its checked answer."""
    body, content_type, expected = request
    environ = NO_AUTOCOMPLETE_ENVIRON if no_autocomplete else {}
    with LocalEndpoint([artifact], log=None, environ=environ) as local:
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
        default=f"{BEFORE},{EnvLayout.PER_STEP.value},{EnvLayout.default().value},"
        f"{EnvLayout.default().value}{NO_AUTOCOMPLETE}",
        help=f"comma-separated layouts or {BEFORE!r} (see above), each optionally followed by "
        f"{NO_AUTOCOMPLETE!r}; the first is the baseline the ratios are taken against",
    )
    args = parser.parse_args()
    rows = args.layouts.split(",")
    packaged = list(dict.fromkeys(row.removesuffix(NO_AUTOCOMPLETE) for row in rows))
    layouts = {
        row: EnvLayout.PER_STEP if row == BEFORE else check_layout_name(row) for row in packaged
    }
    with tempfile.TemporaryDirectory(prefix="mmepack-layout-bench-") as scratch:
        root = Path(scratch)
        models = {
            "screen_detector": (EXAMPLE, _example_request()),
            "triple (3 Python steps)": (write_triple(root / "src"), _triple_request()),
        }
        artifacts: dict[tuple[str, str], Path] = {}
        package_seconds: dict[tuple[str, str], float] = {}
        sizes: dict[tuple[str, str], int] = {}
        for index, (label, (model_dir, _)) in enumerate(models.items()):
            for row, layout in layouts.items():
                out = root / "dist" / row
                env: Path | None = None
                stub: Path | None = None
                if row == BEFORE:
                    env, stub = environment_before(model_dir, root / "before" / str(index))
                started = time.monotonic()
                result = package_model(
                    model_dir,
                    out,
                    pull=model_dir == EXAMPLE,
                    repo_root=REPO,
                    python=PYTHON,
                    layout=layout,
                    env_archive=env,
                    stub=stub,
                )
                package_seconds[(label, row)] = time.monotonic() - started
                artifacts[(label, row)] = result.path
                sizes[(label, row)] = result.path.stat().st_size
        loads: dict[tuple[str, str], list[float]] = {(m, row): [] for m in models for row in rows}
        for _ in range(args.runs):
            for label, (_, request) in models.items():
                for row in rows:
                    base = row.removesuffix(NO_AUTOCOMPLETE)
                    loads[(label, row)].append(
                        load_to_first_answer(
                            artifacts[(label, base)], request, row.endswith(NO_AUTOCOMPLETE)
                        )
                    )
    print(
        f"{args.runs} cold loads per row on the local multi-model endpoint (Triton 2.51), "
        "alternating; load = invoke_endpoint to checked first answer"
    )
    print(
        f"{'model':<25}{'layout':<27}{'MB':>7}{'x base':>8}{'load s median (min-max)':>27}"
        f"{'x base':>8}{'package s':>11}"
    )
    for label in models:
        base_size = sizes[(label, rows[0].removesuffix(NO_AUTOCOMPLETE))]
        base_load = statistics.median(loads[(label, rows[0])])
        for row in rows:
            base = row.removesuffix(NO_AUTOCOMPLETE)
            size = sizes[(label, base)]
            runs = loads[(label, row)]
            median = statistics.median(runs)
            spread = f"{median:.2f} ({min(runs):.2f}-{max(runs):.2f})"
            print(
                f"{label:<25}{row:<27}{size / 1e6:>7.1f}{size / base_size:>8.2f}"
                f"{spread:>27}{median / base_load:>8.2f}"
                f"{package_seconds[(label, base)]:>11.1f}"
            )


if __name__ == "__main__":
    main()
