"""Configs of Triton's FIL backend (tree models: XGBoost, LightGBM, Treelite checkpoints).

The FIL backend of Triton 2.51 (fil_backend r24.10, `src/shared_state.h`, `src/serialization.h`,
`src/model.h`) reads its settings from the config's `parameters` when the model loads:

- `output_class` has no default: without it the model does not load. When it is "true",
  `threshold` has no default either.
- `model_type` defaults to "xgboost" and must be one of xgboost, xgboost_json, xgboost_ubj,
  lightgbm or treelite_checkpoint; anything else fails the load ("not recognized as a valid
  serialization format").
- The file read from each version folder is `default_model_filename` or, without one, the
  model type's own name (xgboost.model, xgboost.json, xgboost.ubj, model.txt, checkpoint.tl).

Under SageMaker MME each of those failures surfaces as the first invoke's load error, so they
are errors here. The local test server has no FIL backend at all (see
`mmepack.triton.local_backends`): a warning says so, with the way to test a tree model locally.
"""

from __future__ import annotations

from mmepack.model.config import ModelConfig, Problem
from mmepack.model.repository import TritonModel
from mmepack.triton.local_backends import FIL_ADVICE, FIL_BACKEND

# model_type -> the file FIL reads from a version folder without default_model_filename.
FIL_MODEL_FILES = {
    "xgboost": "xgboost.model",
    "xgboost_json": "xgboost.json",
    "xgboost_ubj": "xgboost.ubj",
    "lightgbm": "model.txt",
    "treelite_checkpoint": "checkpoint.tl",
}
DEFAULT_MODEL_TYPE = "xgboost"
_BOOLEAN_PARAMETERS = (
    "output_class",
    "predict_proba",
    "use_experimental_optimizations",
    "xgboost_allow_unknown_field",
)


def _parameter(config: ModelConfig, key: str) -> str | None:
    if key not in config.parameters:
        return None
    return str(config.parameters[key].string_value)


def fil_model_file(config: ModelConfig) -> str | None:
    """The file FIL loads from each version folder, or None when model_type is unknown (that
    is reported by check_fil_config)."""
    if config.default_model_filename:
        return str(config.default_model_filename)
    return FIL_MODEL_FILES.get(_parameter(config, "model_type") or DEFAULT_MODEL_TYPE)


def check_fil_config(model: TritonModel) -> list[Problem]:
    """The FIL backend's required parameters and their values, for a model with backend fil."""
    config = model.config
    if str(config.backend) != FIL_BACKEND:
        return []
    line = model.positions.line("parameters") or model.positions.line("backend")
    example = 'parameters: {{ key: "{}" value: {{ string_value: "{}" }} }}'
    problems = [
        model.problem(
            model.positions.line("backend"),
            "backend",
            f'backend "{FIL_BACKEND}" is served by Triton\'s FIL backend on the endpoint, but '
            f"model tests cannot load it: {FIL_ADVICE}",
            "warning",
        )
    ]
    model_type = _parameter(config, "model_type")
    if model_type is not None and model_type not in FIL_MODEL_FILES:
        problems.append(
            model.problem(
                line,
                "parameters.model_type",
                f"FIL does not load it: model_type {model_type!r} is not a serialization format "
                f"it reads; expected one of {', '.join(FIL_MODEL_FILES)} (default "
                f"{DEFAULT_MODEL_TYPE!r}, XGBoost's binary format)",
            )
        )
    output_class = _parameter(config, "output_class")
    if output_class is None:
        problems.append(
            model.problem(
                line,
                "parameters.output_class",
                "FIL does not load it: the parameter output_class is required (no default); "
                'add "true" for a classifier or "false" for a regressor: '
                + example.format("output_class", "true"),
            )
        )
    elif output_class == "true" and _parameter(config, "threshold") is None:
        problems.append(
            model.problem(
                line,
                "parameters.threshold",
                'FIL does not load it: with output_class "true" the parameter threshold is '
                "required (the score above which the class is 1); add "
                + example.format("threshold", "0.5"),
            )
        )
    threshold = _parameter(config, "threshold")
    if threshold is not None:
        try:
            float(threshold)
        except ValueError:
            problems.append(
                model.problem(
                    line,
                    "parameters.threshold",
                    f"FIL does not load it: threshold {threshold!r} is not a number; write "
                    'e.g. "0.5"',
                )
            )
    for key in _BOOLEAN_PARAMETERS:
        value = _parameter(config, key)
        if value is not None and value not in ("true", "false"):
            problems.append(
                model.problem(
                    line,
                    f"parameters.{key}",
                    f'{key} is {value!r}; FIL\'s documented values are "true" and "false"',
                    "warning",
                )
            )
    return problems
