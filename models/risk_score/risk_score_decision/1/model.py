"""risk_score_decision: PROBABILITIES [N, 2] and FEATURES [N, 6] -> RISK_SCORE, DECISION and
REASON_CODES.

``RISK_SCORE`` [N, 1] FP32 is the probability of the "risky" class. ``DECISION`` [N, 1] bytes is
"decline" at or above DECLINE_THRESHOLD, "review" at or above REVIEW_THRESHOLD, else "approve"
(config parameters, so a release can tune them without touching code). ``REASON_CODES`` [N, 3]
bytes lists the risk factors the record shows, most important to the model first (the order of
the feature importances weights/make_risk_model_onnx.py prints), padded with "": what a reviewer
or a declined customer is told. A tree ensemble has no per-feature weights to read back, so the
codes come from fixed, documented rules on the features rather than from the trees.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import triton_python_backend_utils as pb_utils  # pants: no-infer-dep (Triton provides it)

# Column of each feature in FEATURES (risk_score_features' order).
AMOUNT, ACCOUNT_AGE, FAILED_LOGINS, TXN_COUNT, MISMATCH, UTILIZATION = range(6)
# (code, rule on one feature row), by the model's feature importance, highest first.
REASONS: Tuple[Tuple[str, Callable[[np.ndarray], bool]], ...] = (
    ("COUNTRY_MISMATCH", lambda row: row[MISMATCH] >= 0.5),
    ("HIGH_AMOUNT", lambda row: row[AMOUNT] >= 1000.0),
    ("HIGH_UTILIZATION", lambda row: row[UTILIZATION] >= 0.8),
    ("HIGH_VELOCITY", lambda row: row[TXN_COUNT] >= 5.0),
    ("NEW_ACCOUNT", lambda row: row[ACCOUNT_AGE] < 30.0),
    ("FAILED_LOGINS", lambda row: row[FAILED_LOGINS] >= 3.0),
)
MAX_REASONS = 3
DEFAULTS = {"REVIEW_THRESHOLD": 0.3, "DECLINE_THRESHOLD": 0.7}


def reason_codes(row: np.ndarray) -> List[bytes]:
    codes = [code.encode() for code, applies in REASONS if applies(row)][:MAX_REASONS]
    return codes + [b""] * (MAX_REASONS - len(codes))


class TritonPythonModel:
    """Turns probabilities into a decision with reasons, one response per request."""

    def initialize(self, args: Dict[str, str]) -> None:
        """Read the thresholds from the config's parameters."""
        parameters = json.loads(args["model_config"]).get("parameters", {})
        values = {}
        for key, default in DEFAULTS.items():
            raw = parameters.get(key, {}).get("string_value", "")
            values[key] = float(raw) if raw else default
        self.review = values["REVIEW_THRESHOLD"]
        self.decline = values["DECLINE_THRESHOLD"]
        if not 0.0 <= self.review <= self.decline <= 1.0:
            raise ValueError(
                "need 0 <= REVIEW_THRESHOLD <= DECLINE_THRESHOLD <= 1, got "
                f"{self.review} and {self.decline}"
            )

    def decide(self, score: float) -> bytes:
        if score >= self.decline:
            return b"decline"
        return b"review" if score >= self.review else b"approve"

    def execute(self, requests: List[Any]) -> List[Any]:
        responses = []
        for request in requests:
            try:
                probabilities = pb_utils.get_input_tensor_by_name(
                    request, "PROBABILITIES"
                ).as_numpy()
                features = pb_utils.get_input_tensor_by_name(request, "FEATURES").as_numpy()
                score = probabilities[:, 1:2].astype(np.float32)
                decisions = np.array([[self.decide(s)] for s in score[:, 0]], dtype=np.object_)
                reasons = np.array([reason_codes(row) for row in features], dtype=np.object_)
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[
                            pb_utils.Tensor("RISK_SCORE", score),
                            pb_utils.Tensor("DECISION", decisions),
                            pb_utils.Tensor("REASON_CODES", reasons.reshape(-1, MAX_REASONS)),
                        ]
                    )
                )
            except Exception as error:  # reported to the caller; the model keeps serving others
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[],
                        error=pb_utils.TritonError(f"risk_score_decision: {error}"),
                    )
                )
        return responses
