"""screen_detector_postprocess: classifier LOGITS -> SCREEN_PROBABILITY, LABEL and RAW_LOGITS.

Input ``LOGITS`` [N, 2] FP32 ([document, screen] scores); outputs ``SCREEN_PROBABILITY`` [N, 1]
FP32, ``LABEL`` [N, 1] bytes ("screen" or "document") and ``RAW_LOGITS``, the input unchanged.
Passing the scores on here makes every ensemble output come from this last step, so a caller
may ask for any subset of them (an ensemble output that a later step also reads deadlocks a
subset request on Triton 2.51).

Done on the server so that every caller applies the same threshold; it is a config parameter
(``SCREEN_THRESHOLD``) so that it can be tuned per release without touching code.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

import numpy as np
import triton_python_backend_utils as pb_utils  # pants: no-infer-dep (Triton provides it)

LABELS = (b"document", b"screen")  # index = class index in LOGITS
DEFAULT_THRESHOLD = 0.5


def screen_probability(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, probability of class 1 ("screen"), shape [N, 1].

    Computed in float64 after subtracting the row maximum, so large logits cannot overflow.
    """
    scores = logits.astype(np.float64)
    scores -= scores.max(axis=-1, keepdims=True)
    exp = np.exp(scores)
    return (exp[:, 1:2] / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


class TritonPythonModel:
    """Turns scores into a probability and a label, one response per request."""

    def initialize(self, args: Dict[str, str]) -> None:
        """Read the decision threshold from the config's parameters."""
        config = json.loads(args["model_config"])
        parameters = config.get("parameters", {})
        raw = parameters.get("SCREEN_THRESHOLD", {}).get("string_value", "")
        self.threshold = float(raw) if raw else DEFAULT_THRESHOLD
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"SCREEN_THRESHOLD must be within [0, 1], got {self.threshold}")

    def execute(self, requests: List[Any]) -> List[Any]:
        responses = []
        for request in requests:
            try:
                logits = pb_utils.get_input_tensor_by_name(request, "LOGITS").as_numpy()
                if logits.ndim != 2 or logits.shape[1] != len(LABELS):
                    raise ValueError(f"LOGITS must be [N, {len(LABELS)}], got {logits.shape}")
                probability = screen_probability(logits)
                labels = np.array(
                    [[LABELS[1] if p >= self.threshold else LABELS[0]] for p in probability[:, 0]],
                    dtype=np.object_,
                )
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[
                            pb_utils.Tensor("SCREEN_PROBABILITY", probability),
                            pb_utils.Tensor("LABEL", labels),
                            pb_utils.Tensor("RAW_LOGITS", logits.astype(np.float32)),
                        ]
                    )
                )
            except Exception as error:  # reported to the caller; the model keeps serving others
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[],
                        error=pb_utils.TritonError(f"screen_detector_postprocess: {error}"),
                    )
                )
        return responses
