"""An independent numpy implementation of the screen_detector ensemble, for the tests.

It shares no code with the served model: the image is decoded here with Pillow, and the CNN is
recomputed with plain numpy from the weights stored in the packaged ONNX file, so that a wiring
mistake in the ensemble (wrong tensor, wrong layout, wrong class index, missing softmax) shows up
as a numeric difference.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import onnx
from onnx import numpy_helper
from PIL import Image, ImageOps

IMAGE_SIZE = 32
LABELS = ("document", "screen")  # index 1 of LOGITS is "screen"
THRESHOLD = 0.5


def load_weights(onnx_path: Path) -> Dict[str, np.ndarray]:
    """The initializers of the ONNX file, by name, as float64 for a precise reference."""
    model = onnx.load(str(onnx_path))
    return {
        init.name: numpy_helper.to_array(init).astype(np.float64)
        for init in model.graph.initializer
    }


def decode(image_bytes: bytes) -> np.ndarray:
    """Encoded image -> [3, 32, 32] float in [0, 1], the preprocessing the model promises."""
    with Image.open(io.BytesIO(image_bytes)) as encoded:
        rgb = ImageOps.exif_transpose(encoded).convert("RGB")
        small = rgb.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
        pixels = np.asarray(small, dtype=np.float64) / 255.0
    return pixels.transpose(2, 0, 1)


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, pad: int) -> np.ndarray:
    """Cross-correlation (ONNX Conv semantics), stride 1, for [N, C, H, W] input."""
    _, _, height, width = x.shape
    _, _, kh, kw = weight.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out_h, out_w = height + 2 * pad - kh + 1, width + 2 * pad - kw + 1
    out = np.zeros((x.shape[0], weight.shape[0], out_h, out_w))
    for i in range(kh):
        for j in range(kw):
            patch = padded[:, :, i : i + out_h, j : j + out_w]
            out += np.einsum("nchw,oc->nohw", patch, weight[:, :, i, j])
    return out + bias[None, :, None, None]


def max_pool_2x2(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def logits(pixels: np.ndarray, weights: Dict[str, np.ndarray]) -> np.ndarray:
    """[N, 3, 32, 32] -> [N, 2]: Conv (no pad), Relu, MaxPool, Conv (pad 1), Relu, GAP, Gemm."""
    x = np.maximum(conv2d(pixels, weights["conv1.weight"], weights["conv1.bias"], pad=0), 0.0)
    x = max_pool_2x2(x)
    x = np.maximum(conv2d(x, weights["conv2.weight"], weights["conv2.bias"], pad=1), 0.0)
    features = x.mean(axis=(2, 3))
    return features @ weights["fc.weight"].T + weights["fc.bias"]


def screen_probability(logit_rows: np.ndarray) -> np.ndarray:
    """Softmax over the two classes, probability of class 1 ("screen")."""
    shifted = logit_rows - logit_rows.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp[:, 1] / exp.sum(axis=1)


def predict(images: Sequence[bytes], onnx_path: Path) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Reference (logits [N, 2], screen probability [N], labels) for encoded images."""
    weights = load_weights(onnx_path)
    batch_logits = logits(np.stack([decode(image) for image in images]), weights)
    probability = screen_probability(batch_logits)
    labels = [LABELS[1] if p >= THRESHOLD else LABELS[0] for p in probability]
    return batch_logits, probability, labels
