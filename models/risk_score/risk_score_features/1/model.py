"""risk_score_features: FEATURES_JSON (one JSON object per batch item) -> FEATURES [N, 6] FP32.

The fields, in the model's feature order (the order weights/make_risk_model_onnx.py trained on):

| field | type | when missing |
|---|---|---|
| amount | number >= 0 | refused |
| account_age_days | integer >= 0 | refused |
| failed_logins_24h | integer >= 0 | 0 |
| txn_count_1h | integer >= 0 | 0 |
| country_mismatch | boolean | refused |
| credit_utilization | number in [0, 1] | 0.4, the training data's mean |

Validation is done here, on the server, so that every caller gets the same rules and a record
the model cannot score is refused with a reason rather than scored as zeros: the whole request
fails with a message that names the batch item and the field (``FEATURES_JSON[1]: field
'amount' must be a number, got string``). Unknown fields are refused too, since a misspelt
optional field would otherwise silently take its default. ``null`` counts as missing.
"""

from __future__ import annotations

import json
import math
from typing import Any, List, Optional, Tuple

import numpy as np
import triton_python_backend_utils as pb_utils  # pants: no-infer-dep (Triton provides it)

# (name, kind, default when missing or None when required, lowest, highest)
FIELDS: Tuple[Tuple[str, str, Optional[float], float, float], ...] = (
    ("amount", "number", None, 0.0, math.inf),
    ("account_age_days", "integer", None, 0.0, math.inf),
    ("failed_logins_24h", "integer", 0.0, 0.0, math.inf),
    ("txn_count_1h", "integer", 0.0, 0.0, math.inf),
    ("country_mismatch", "boolean", None, 0.0, 1.0),
    ("credit_utilization", "number", 0.4, 0.0, 1.0),
)
KNOWN = {field[0] for field in FIELDS}


def _type_name(value: Any) -> str:
    return {bool: "boolean", str: "string", list: "array", dict: "object"}.get(
        type(value), "integer" if isinstance(value, int) else "number"
    )


def _value(name: str, kind: str, value: Any) -> float:
    """One field's value as a float, or ValueError saying what was expected."""
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"field '{name}' must be a boolean, got {_type_name(value)}")
        return 1.0 if value else 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"field '{name}' must be a {kind}, got {_type_name(value)}")
    if kind == "integer" and not (isinstance(value, int) or float(value).is_integer()):
        raise ValueError(f"field '{name}' must be an integer, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"field '{name}' must be finite, got {value!r}")
    return float(value)


def parse_record(text: bytes) -> List[float]:
    """One JSON record -> its feature vector, or ValueError naming the field at fault."""
    try:
        record = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not valid JSON ({error})") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {_type_name(record)}")
    unknown = sorted(set(record) - KNOWN)
    if unknown:
        raise ValueError(
            f"unknown field '{unknown[0]}'; the fields are {', '.join(f[0] for f in FIELDS)}"
        )
    vector = []
    for name, kind, default, lowest, highest in FIELDS:
        raw = record.get(name)
        if raw is None:
            if default is None:
                raise ValueError(f"field '{name}' is missing; it is required ({kind})")
            vector.append(default)
            continue
        value = _value(name, kind, raw)
        if not lowest <= value <= highest:
            bounds = (
                f"at least {lowest:g}" if highest == math.inf else f"in [{lowest:g}, {highest:g}]"
            )
            raise ValueError(f"field '{name}' must be {bounds}, got {raw!r}")
        vector.append(value)
    return vector


class TritonPythonModel:
    """Parses and validates each request's records; one response per request."""

    def execute(self, requests: List[Any]) -> List[Any]:
        responses = []
        for request in requests:
            try:
                texts = pb_utils.get_input_tensor_by_name(request, "FEATURES_JSON").as_numpy()
                rows = []
                for index, text in enumerate(texts.reshape(-1)):
                    try:
                        rows.append(parse_record(bytes(text)))
                    except ValueError as error:
                        raise ValueError(f"FEATURES_JSON[{index}]: {error}") from None
                features = np.array(rows, dtype=np.float32).reshape(len(rows), len(FIELDS))
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[pb_utils.Tensor("FEATURES", features)]
                    )
                )
            except Exception as error:  # reported to the caller; the model keeps serving others
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[],
                        error=pb_utils.TritonError(f"risk_score_features: {error}"),
                    )
                )
        return responses
