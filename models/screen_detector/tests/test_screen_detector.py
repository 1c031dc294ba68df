"""End-to-end tests of the packaged screen_detector model on a real Triton server.

The server runs the packaged tar (``screen_detector_<version>.tar.gz``) as SageMaker would see
it: the ensemble, its three steps, the packed Python environment and the ONNX weights. Every
numeric check is against ``reference.py``, a numpy re-implementation that shares no code with
the served model.
"""

from __future__ import annotations

import io
import itertools
import os
import sys
from typing import Any, Dict, Iterator, List, Sequence, Set

import numpy as np
import pytest
import tritonclient.http as httpclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from mmepack.testing import find_artifact, python_stub_files, serve_artifact
from mmepack.testing.endpoint_client import BINARY_JSON, runtime_client
from models.screen_detector.tests import reference

MODEL = "screen_detector"
STEPS = ("screen_detector_preprocess", "screen_detector_classifier", "screen_detector_postprocess")
PYTHON_STEPS = ("screen_detector_preprocess", "screen_detector_postprocess")
OUTPUTS = ("SCREEN_PROBABILITY", "LABEL", "LOGITS")
MAX_BATCH_SIZE = 8
# The environment Python set by python_version in ../BUILD.
ENV_PYTHON = "3.12"


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with serve_artifact(find_artifact(MODEL)) as s:
        yield s


@pytest.fixture(scope="module")
def tolerance(server: Any) -> float:
    """1e-5 on CPU; on GPU cuDNN may compute convolutions in TF32 (about 3 decimal digits)."""
    return 1e-5 if server.device == "CPU" else 2e-3


# --- test images ---------------------------------------------------------------------------


def encode(pixels: np.ndarray, image_format: str) -> bytes:
    """uint8 array (HxW or HxWxC) -> encoded image bytes."""
    buffer = io.BytesIO()
    options: Dict[str, Any] = {"quality": 92} if image_format == "JPEG" else {}
    Image.fromarray(pixels).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def moire(height: int = 96, width: int = 128, period: float = 11.0) -> np.ndarray:
    """Two slightly rotated gratings: the interference pattern a camera sees on a screen."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    first = np.sin(2 * np.pi * x / period)
    second = np.sin(2 * np.pi * (x * np.cos(0.2) + y * np.sin(0.2)) / (period * 1.1))
    value = 0.5 + 0.25 * (first + second)
    rgb = np.stack([value, 0.9 * value + 0.05, 0.8 * value + 0.1], axis=-1)
    return (255 * rgb).round().astype(np.uint8)


def stripes(height: int = 64, width: int = 64, period: int = 8) -> np.ndarray:
    """Vertical black/white bars, like a display's pixel rows seen up close (greyscale image)."""
    x = np.arange(width)
    row = np.where((x // (period // 2)) % 2 == 0, 230, 25).astype(np.uint8)
    return np.tile(row, (height, 1))


def gradient(height: int = 80, width: int = 120) -> np.ndarray:
    """A smooth colour gradient, like paper under uneven light: little high-frequency energy."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.stack([x / width, y / height, 0.5 * (x / width + y / height)], axis=-1)
    return (255 * (0.2 + 0.6 * rgb)).round().astype(np.uint8)


def paper(height: int = 100, width: int = 70) -> np.ndarray:
    """An off-white page with a soft vignette (RGBA, to exercise the RGB conversion)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    shade = 1.0 - 0.25 * (((x - width / 2) / width) ** 2 + ((y - height / 2) / height) ** 2)
    rgb = np.stack([240 * shade, 235 * shade, 220 * shade], axis=-1)
    alpha = np.full((height, width, 1), 255.0)
    return np.concatenate([rgb, alpha], axis=-1).round().astype(np.uint8)


def sample_images() -> List[bytes]:
    return [
        encode(moire(), "PNG"),
        encode(gradient(), "JPEG"),
        encode(stripes(), "PNG"),
        encode(paper(), "PNG"),
        encode(moire(period=13.0), "JPEG"),
    ]


# --- helpers -------------------------------------------------------------------------------


def infer(server: Any, images: Sequence[bytes]) -> Dict[str, np.ndarray]:
    """One request with the images as a [N, 1] BYTES tensor; all outputs as numpy."""
    tensor = httpclient.InferInput("IMAGE_BYTES", [len(images), 1], "BYTES")
    tensor.set_data_from_numpy(np.array(list(images), dtype=np.object_).reshape(-1, 1))
    result = server.client.infer(
        server.model_name,
        [tensor],
        outputs=[httpclient.InferRequestedOutput(name) for name in OUTPUTS],
    )
    return {name: result.as_numpy(name) for name in OUTPUTS}


def check_against_reference(server: Any, images: Sequence[bytes], tolerance: float) -> List[str]:
    """Assert the served outputs equal the numpy reference; return the labels."""
    outputs = infer(server, images)
    onnx_path = server.model_dir / "screen_detector_classifier" / "1" / "model.onnx"
    logits, probability, labels = reference.predict(images, onnx_path)

    count = len(images)
    assert outputs["SCREEN_PROBABILITY"].shape == (count, 1)
    assert outputs["SCREEN_PROBABILITY"].dtype == np.float32
    assert outputs["LABEL"].shape == (count, 1)
    assert outputs["LOGITS"].shape == (count, 2)
    np.testing.assert_allclose(outputs["LOGITS"], logits, rtol=0, atol=tolerance)
    np.testing.assert_allclose(
        outputs["SCREEN_PROBABILITY"][:, 0], probability, rtol=0, atol=tolerance
    )
    served_labels = [bytes(label).decode() for label in outputs["LABEL"][:, 0]]
    assert served_labels == labels
    return served_labels


# --- tests ---------------------------------------------------------------------------------


def test_batch_matches_numpy_reference(server: Any, tolerance: float) -> None:
    labels = check_against_reference(server, sample_images(), tolerance)
    # The sample mixes screen-like and document-like images: both labels must come out, or the
    # threshold/label wiring is not really being tested.
    assert labels == ["screen", "document", "screen", "document", "screen"]


def test_single_image(server: Any, tolerance: float) -> None:
    assert check_against_reference(server, [encode(gradient(), "PNG")], tolerance) == ["document"]


def test_full_batch(server: Any, tolerance: float) -> None:
    images = (sample_images() * 2)[:MAX_BATCH_SIZE]
    check_against_reference(server, images, tolerance)


def test_batch_larger_than_max_batch_size_is_rejected(server: Any) -> None:
    with pytest.raises(InferenceServerException):
        infer(server, [encode(gradient(), "PNG")] * (MAX_BATCH_SIZE + 1))


def test_undecodable_bytes_give_a_decode_error(server: Any) -> None:
    images = [encode(gradient(), "PNG"), b"this is not an image"]
    with pytest.raises(InferenceServerException) as raised:
        infer(server, images)
    message = str(raised.value)
    assert "cannot decode image" in message
    assert "IMAGE_BYTES[1]" in message  # names the offending batch item


def test_server_still_serves_after_a_bad_request(server: Any, tolerance: float) -> None:
    with pytest.raises(InferenceServerException):
        infer(server, [b"\x89PNG\r\n\x1a\n truncated"])
    check_against_reference(server, [encode(moire(), "PNG")], tolerance)


def test_metadata_lists_inputs_and_outputs(server: Any) -> None:
    metadata = server.client.get_model_metadata(server.model_name)
    inputs = {tensor["name"]: tensor for tensor in metadata["inputs"]}
    outputs = {tensor["name"]: tensor for tensor in metadata["outputs"]}

    assert set(inputs) == {"IMAGE_BYTES"}
    assert inputs["IMAGE_BYTES"]["datatype"] == "BYTES"
    assert inputs["IMAGE_BYTES"]["shape"] == [-1, 1]
    assert {name: tensor["datatype"] for name, tensor in outputs.items()} == {
        "SCREEN_PROBABILITY": "FP32",
        "LABEL": "BYTES",
        "LOGITS": "FP32",
    }
    assert outputs["SCREEN_PROBABILITY"]["shape"] == [-1, 1]
    assert outputs["LABEL"]["shape"] == [-1, 1]
    assert outputs["LOGITS"]["shape"] == [-1, 2]


def test_ensemble_steps_are_ready(server: Any) -> None:
    for step in STEPS:
        assert server.client.is_model_ready(step), step


def test_python_steps_use_the_packed_environment(server: Any) -> None:
    """Both steps point, as Triton resolves the path, at the artifact's one environment.

    The configs in git say `$$TRITON_MODEL_DIRECTORY/python_env.tar.gz`; the packager ships the
    environment once and rewrites each step's path to it (mmepack.artifact.env_layout)."""
    resolved: Set[str] = set()
    for step in PYTHON_STEPS:
        parameters = server.client.get_model_config(step).get("parameters", {})
        assert "EXECUTION_ENV_PATH" in parameters, f"{step} does not use a packed environment"
        env_path = parameters["EXECUTION_ENV_PATH"]["string_value"]
        assert env_path.startswith("$$TRITON_MODEL_DIRECTORY/"), env_path
        packed = os.path.realpath(
            env_path.replace("$$TRITON_MODEL_DIRECTORY", str(server.model_dir / step), 1)
        )
        assert os.path.isfile(packed), f"{step}: {packed} is missing from the artifact"
        assert packed.startswith(str(server.model_dir.resolve()) + os.sep), packed
        resolved.add(packed)
    assert len(resolved) == 1, f"the Python steps use {len(resolved)} environments: {resolved}"
    shipped = sorted(p for p in server.model_dir.rglob("python_env*") if p.is_file())
    assert [str(p.resolve()) for p in shipped] == sorted(resolved), shipped


def test_python_steps_run_inside_the_packed_environment(server: Any) -> None:
    """The stubs really loaded libpython (and the preprocess step Pillow) from the artifact's
    packed environment, unpacked by the server, not from the Python the tests run on; both
    steps from the same unpacked copy.

    The environment's Python (ENV_PYTHON) differs from the test server's own stub (the tests'
    Python) and from the target server's (3.10): it runs only thanks to the stub the artifact
    carries beside each Python step's config."""
    assert f"{sys.version_info.major}.{sys.version_info.minor}" != ENV_PYTHON
    stubs = python_stub_files(server.server_pid)
    roots: Set[str] = set()
    for step in PYTHON_STEPS:
        assert (server.model_dir / step / "triton_python_backend_stub").is_file(), step
        libpython = [f for f in stubs.get(step, set()) if "/lib/libpython3." in f]
        assert len(libpython) == 1, f"{step}: libpython mapped from {libpython}"
        assert f"/lib/libpython{ENV_PYTHON}." in libpython[0], libpython
        env_root = libpython[0].rsplit("/lib/libpython3.", 1)[0]
        roots.add(env_root)
        assert not sys.prefix.startswith(env_root) and not sys.base_prefix.startswith(env_root)
        assert any(
            f.startswith(f"{env_root}/lib/python3.") and "/numpy/" in f for f in stubs[step]
        ), f"{step}: numpy was not loaded from {env_root}"
        if step == "screen_detector_preprocess":
            assert any(
                f.startswith(f"{env_root}/lib/python3.") and "/PIL/_imaging" in f
                for f in stubs[step]
            ), f"{step}: Pillow was not loaded from {env_root}"
    # One environment, unpacked once by the server and run by every Python step.
    assert len(roots) == 1, f"the Python steps run from {len(roots)} environments: {roots}"


def test_label_alone_through_boto3_sagemaker_runtime(server: Any) -> None:
    """A production caller: boto3's own client, invoke_endpoint with a TargetModel, asking for
    LABEL alone (an ensemble output that a later step also read used to deadlock this)."""
    images = [encode(gradient(), "PNG"), encode(moire(), "PNG")]
    tensor = httpclient.InferInput("IMAGE_BYTES", [len(images), 1], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_).reshape(-1, 1))
    body, header_size = httpclient.InferenceServerClient.generate_request_body(
        [tensor], outputs=[httpclient.InferRequestedOutput("LABEL")]
    )
    runtime = runtime_client(server.url)
    try:
        reply = runtime.invoke_endpoint(
            EndpointName=server.endpoint.name,
            TargetModel=server.target_model,
            ContentType=f"{BINARY_JSON};json-header-size={header_size}",
            Body=body,
        )
    finally:
        runtime.close()
    assert reply["ResponseMetadata"]["HTTPStatusCode"] == 200
    size = int(reply["ContentType"].split("json-header-size=")[1])
    result = httpclient.InferenceServerClient.parse_response_body(
        reply["Body"].read(), header_length=size
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["LABEL"]
    assert [bytes(v).decode() for v in result.as_numpy("LABEL")[:, 0]] == ["document", "screen"]


@pytest.mark.parametrize(
    "outputs",
    [subset for size in (1, 2) for subset in itertools.combinations(OUTPUTS, size)],
    ids=lambda subset: "+".join(subset),
)
def test_every_subset_of_outputs_answers(server: Any, outputs: Sequence[str]) -> None:
    tensor = httpclient.InferInput("IMAGE_BYTES", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[encode(paper(), "PNG")]], dtype=np.object_))
    result = server.client.infer(
        server.model_name,
        [tensor],
        outputs=[httpclient.InferRequestedOutput(name) for name in outputs],
    )
    for name in outputs:
        assert result.as_numpy(name) is not None, name
