"""Builds ``screen_detector_classifier/1/model.onnx``: this is how the committed weights were made.

The classifier is a deliberately tiny CNN (about 900 parameters) so that the example model
repository stays small and fast on CPU, while still looking like a real image model:

    PIXELS [N, 3, 32, 32]
      -> Conv 3->8, 3x3, no pad -> Relu -> MaxPool 2x2       [N, 8, 15, 15]
      -> Conv 8->8, 3x3, pad 1 -> Relu -> GlobalAveragePool  [N, 8, 1, 1]
      -> Flatten -> Gemm 8->2                                [N, 2] = LOGITS

``LOGITS[:, 0]`` is "document", ``LOGITS[:, 1]`` is "screen".

The weights are not trained. They are hand-made so the model behaves plausibly, plus a little
seeded noise so that every channel carries non-trivial values:

* the first four conv1 filters are horizontal/vertical derivatives of the grey image (positive
  and negative, so that Relu keeps both signs of an edge); conv1 has no padding because zero
  padding would turn the image border into a strong fake edge;
* conv2 channel 0 sums those edge maps: the average high-frequency energy of the image;
* the Gemm turns that energy into a "screen" logit. Photos of screens show moire and pixel-grid
  patterns, i.e. much more high-frequency energy than a photo of a paper document, so stripes
  come out as "screen" and smooth gradients as "document".

Everything is deterministic (fixed numpy seed, fixed opset and IR version), so rerunning this
script produces a byte-identical file. The file itself is tracked by DVC (see the ``.dvc`` file
beside it), not by git:

    python models/screen_detector/weights/make_classifier_onnx.py
    dvc add models/screen_detector/screen_detector_classifier/1/model.onnx
    dvc push

Requires ``numpy`` and ``onnx``.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Dict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 20240601
OPSET = 17
# IR version 8 is the one that goes with opset 17 (onnx 1.12); it loads in every ONNX Runtime
# since 1.12, including the one in SageMaker's Triton images.
IR_VERSION = 8
IMAGE_SIZE = 32
INPUT_NAME = "PIXELS"
OUTPUT_NAME = "LOGITS"
DEFAULT_OUTPUT = (
    Path(__file__).resolve().parent.parent / "screen_detector_classifier" / "1" / "model.onnx"
)


def make_weights(seed: int = SEED) -> Dict[str, np.ndarray]:
    """The initializers, by name. Names are what the tests' numpy reference reads back."""
    rng = np.random.default_rng(seed)

    conv1_w = rng.normal(0.0, 0.05, size=(8, 3, 3, 3)).astype(np.float32)
    dx = np.array([[0, 0, 0], [-1, 0, 1], [0, 0, 0]], dtype=np.float32)
    dy = dx.T
    # Grey = mean of R, G, B, hence the 1/3 spread over the three input channels.
    for channel, kernel in enumerate((dx, -dx, dy, -dy)):
        conv1_w[channel] = np.stack([kernel / 3.0] * 3)
    conv1_b = np.concatenate([np.zeros(4), rng.normal(0.0, 0.01, size=4)]).astype(np.float32)

    conv2_w = rng.normal(0.0, 0.05, size=(8, 8, 3, 3)).astype(np.float32)
    conv2_w[0] = 0.0
    conv2_w[0, :4, 1, 1] = 1.0  # edge energy = sum of the four derivative maps
    conv2_b = rng.normal(0.0, 0.01, size=8).astype(np.float32)
    conv2_b[0] = 0.0

    fc_w = rng.normal(0.0, 0.1, size=(2, 8)).astype(np.float32)
    fc_w[0, 0] = -8.0  # document: less edge energy
    fc_w[1, 0] = 8.0  # screen: more edge energy
    fc_b = np.array([1.2, -1.2], dtype=np.float32)  # screen wins above ~0.15 mean edge energy
    return {
        "conv1.weight": conv1_w,
        "conv1.bias": conv1_b,
        "conv2.weight": conv2_w,
        "conv2.bias": conv2_b,
        "fc.weight": fc_w,
        "fc.bias": fc_b,
    }


def make_model(weights: Dict[str, np.ndarray]) -> onnx.ModelProto:
    """The graph, with a symbolic batch dim so Triton can batch requests."""
    nodes = [
        helper.make_node(
            "Conv",
            [INPUT_NAME, "conv1.weight", "conv1.bias"],
            ["conv1"],
            kernel_shape=[3, 3],
            pads=[0, 0, 0, 0],
        ),
        helper.make_node("Relu", ["conv1"], ["relu1"]),
        helper.make_node("MaxPool", ["relu1"], ["pool1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node(
            "Conv",
            ["pool1", "conv2.weight", "conv2.bias"],
            ["conv2"],
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Relu", ["conv2"], ["relu2"]),
        helper.make_node("GlobalAveragePool", ["relu2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], [OUTPUT_NAME], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "screen_detector_classifier",
        inputs=[
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["batch", 3, IMAGE_SIZE, IMAGE_SIZE]
            )
        ],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 2])],
        initializer=[numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="mmepack-make_classifier_onnx",
        producer_version="1",
        doc_string="Tiny screen-vs-document classifier (hand-made weights, see the build script).",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    data = make_model(make_weights()).SerializeToString()
    args.output.write_bytes(data)
    print(f"wrote {args.output} ({len(data)} bytes, md5 {hashlib.md5(data).hexdigest()})")


if __name__ == "__main__":
    main()
