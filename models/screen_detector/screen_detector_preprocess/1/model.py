"""screen_detector_preprocess: encoded images -> PIXELS for the classifier.

Input ``IMAGE_BYTES`` [N, 1] (PNG or JPEG bytes); output ``PIXELS`` [N, 3, 32, 32] FP32: RGB,
scaled to [0, 1], channels first, which is the layout the ONNX classifier was built for.

Decoding happens on the server rather than the client so that every caller (web, mobile, batch
jobs) gets exactly the same resizing; a model is only as good as the consistency of its input.
"""

from __future__ import annotations

import io
import json
from typing import Any, Dict, List

import numpy as np
import triton_python_backend_utils as pb_utils  # pants: no-infer-dep (Triton provides it)
from PIL import Image, ImageOps

IMAGE_SIZE = 32
INPUT_NAME = "IMAGE_BYTES"
OUTPUT_NAME = "PIXELS"


class ImageDecodeError(ValueError):
    """One item of a request is not an image Pillow can read."""


def decode_image(data: bytes, size: int = IMAGE_SIZE) -> np.ndarray:
    """Encoded image bytes -> [3, size, size] float32 in [0, 1].

    EXIF orientation is applied first because phone photos are often stored sideways with an
    orientation tag; the classifier must see the picture the way the user took it. Any mode
    (grey, palette, RGBA, CMYK) is converted to RGB so that the channel count is always 3.
    """
    try:
        with Image.open(io.BytesIO(data)) as encoded:
            rgb = ImageOps.exif_transpose(encoded).convert("RGB")
            small = rgb.resize((size, size), Image.Resampling.BILINEAR)
            pixels = np.asarray(small, dtype=np.float32) / np.float32(255.0)
    except Exception as error:  # Pillow raises several types (OSError, SyntaxError, ...)
        raise ImageDecodeError(f"cannot decode image: {type(error).__name__}: {error}") from error
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


class TritonPythonModel:
    """Decodes each request's images; a bad image fails its own request only."""

    def initialize(self, args: Dict[str, str]) -> None:
        """Check the config still matches what this code produces.

        A config edited without the code (or the reverse) would otherwise fail later, in the
        classifier, with a shape error that hides where the mistake is.
        """
        config = json.loads(args["model_config"])
        output = pb_utils.get_output_config_by_name(config, OUTPUT_NAME)
        if output is None or [int(d) for d in output["dims"]] != [3, IMAGE_SIZE, IMAGE_SIZE]:
            raise ValueError(f"config must declare output {OUTPUT_NAME} with dims [3, 32, 32]")
        self.output_dtype = pb_utils.triton_string_to_numpy(output["data_type"])

    def execute(self, requests: List[Any]) -> List[Any]:
        """One response per request, in order; undecodable input becomes a TritonError."""
        return [self._handle(request) for request in requests]

    def _handle(self, request: Any) -> Any:
        try:
            items = pb_utils.get_input_tensor_by_name(request, INPUT_NAME).as_numpy()
            images = []
            # [N, 1] object array of bytes (the batch dim first).
            for index, item in enumerate(items.reshape(items.shape[0], -1)[:, 0]):
                try:
                    images.append(decode_image(bytes(item)))
                except ImageDecodeError as error:
                    raise ImageDecodeError(f"{INPUT_NAME}[{index}]: {error}") from error
            pixels = np.stack(images).astype(self.output_dtype, copy=False)
            return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT_NAME, pixels)])
        except Exception as error:  # reported to the caller; the model keeps serving others
            return pb_utils.InferenceResponse(
                output_tensors=[],
                error=pb_utils.TritonError(f"screen_detector_preprocess: {error}"),
            )
