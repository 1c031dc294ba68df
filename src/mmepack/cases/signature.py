"""What a case may send and expect: the inputs and outputs of the model SageMaker loads.

A case file never states a shape or a data type; both come from the ensemble's `config.pbtxt`,
read by the library's one config reader, so a case cannot drift from the model it tests and a
data scientist writes only values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmepack.errors import MmepackError
from mmepack.model.config import data_type_name
from mmepack.model.repository import read_model_directory

# Triton's data types as numpy holds them. BYTES (TYPE_STRING) tensors are object arrays of
# `bytes`, as tritonclient sends and returns them. TYPE_BF16 has no numpy type, so a case
# cannot state one; the loader says so instead of guessing.
NUMPY_DTYPES: dict[str, Any] = {
    "TYPE_BOOL": np.bool_,
    "TYPE_UINT8": np.uint8,
    "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32,
    "TYPE_UINT64": np.uint64,
    "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
    "TYPE_STRING": np.object_,
}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the loaded model, as its config declares it."""

    name: str
    data_type: str  # Triton's enum name, e.g. "TYPE_FP32"
    dims: tuple[int, ...]  # without the batch dimension; -1 is any size
    batching: bool  # max_batch_size > 0: every tensor has a leading batch dimension
    optional: bool = False

    @property
    def triton_datatype(self) -> str:
        """The name the inference protocol uses: FP32, BYTES, ..."""
        return "BYTES" if self.data_type == "TYPE_STRING" else self.data_type.removeprefix("TYPE_")

    @property
    def is_bytes(self) -> bool:
        return self.data_type == "TYPE_STRING"

    @property
    def is_float(self) -> bool:
        return self.data_type in ("TYPE_FP16", "TYPE_FP32", "TYPE_FP64")

    @property
    def numpy_dtype(self) -> np.dtype[Any] | None:
        found = NUMPY_DTYPES.get(self.data_type)
        return None if found is None else np.dtype(found)

    def describe(self) -> str:
        """`TYPE_FP32 [batch, 2]`, as a message shows what the config asks for."""
        dims = ["batch"] if self.batching else []
        dims += ["any" if d < 0 else str(d) for d in self.dims]
        return f"{self.data_type} [{', '.join(dims)}]"


@dataclass(frozen=True)
class Signature:
    """The loaded model's name, config file and tensors."""

    model: str
    config_path: Path
    max_batch_size: int
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]


def read_signature(model_dir: Path) -> Signature:
    """The signature of the model an artifact of `model_dir` loads (its top ensemble, or the
    single model of a directory without one)."""
    directory = read_model_directory(model_dir)
    model = directory.ensemble or (directory.models[0] if len(directory.models) == 1 else None)
    if model is None:
        raise MmepackError(
            f"{model_dir}: several models and no ensemble; cases test the model SageMaker loads, "
            "so the directory needs one ensemble"
        )
    batching = model.max_batch_size > 0

    def spec(io: Any) -> TensorSpec:
        return TensorSpec(
            name=str(io.name),
            data_type=data_type_name(int(io.data_type)),
            dims=tuple(int(d) for d in io.dims),
            batching=batching,
            optional=bool(getattr(io, "optional", False)),
        )

    return Signature(
        model=model.name,
        config_path=model.config_path,
        max_batch_size=model.max_batch_size,
        inputs={str(io.name): spec(io) for io in model.config.input},
        outputs={str(io.name): spec(io) for io in model.config.output},
    )
