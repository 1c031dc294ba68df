"""A generic ONNX Runtime backend for Triton, written as a Python-based backend.

Why this exists: the Triton server that ships inside the ``nvidia-pytriton`` wheel (which is what
we run in local tests, without Docker) has a Python backend but no ONNX Runtime backend. Triton
lets a directory ``<backend-dir>/<name>/model.py`` beside ``<backend-dir>/python/`` act as a
backend called ``<name>``; placing this file at ``<backend-dir>/onnxruntime/model.py`` therefore
lets the local server load any model whose ``config.pbtxt`` says ``backend: "onnxruntime"``,
unchanged. In production (SageMaker's Triton image) the real ONNX Runtime backend serves those
same models and this file is never shipped.

Because it stands in for the real backend, it is deliberately strict and generic:

* it knows nothing about any particular model; everything comes from the model config and the
  ONNX graph;
* it checks the config's inputs and outputs against the graph at load time, so that a config
  the real backend would reject (wrong name, type or shape) also fails locally, with a message
  naming the tensor;
* it returns outputs with the data types the config declares.

Not supported (the real backend has them, our models do not use them): ``reshape`` in tensor
configs, sequence batching state, and decoupled transactions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import triton_python_backend_utils as pb_utils  # pants: no-infer-dep (Triton provides it)
from numpy.typing import NDArray

if TYPE_CHECKING:
    import onnxruntime as ort  # pants: no-infer-dep (mmepack.testing depends on it)


def _onnxruntime() -> Any:
    """ONNX Runtime, imported when an instance starts rather than when this file loads.

    Why: Triton runs every Python-based model's file once more in an auto-complete stub before
    the instances start, and that stub never opens a session. Importing ONNX Runtime there
    (about half a second of CPU) delayed each cold load on the local endpoint by a cost the real
    C++ backend in production does not have, so load measurements overstated it.
    """
    import onnxruntime  # pants: no-infer-dep (mmepack.testing depends on it)

    return onnxruntime


# Triton config data types -> (numpy dtype, ONNX Runtime type string). TYPE_BF16 has no numpy
# dtype and is left out on purpose: a config using it fails with a clear message at load time.
_TRITON_TYPES: Dict[str, Tuple[Any, str]] = {
    "TYPE_BOOL": (np.bool_, "tensor(bool)"),
    "TYPE_UINT8": (np.uint8, "tensor(uint8)"),
    "TYPE_UINT16": (np.uint16, "tensor(uint16)"),
    "TYPE_UINT32": (np.uint32, "tensor(uint32)"),
    "TYPE_UINT64": (np.uint64, "tensor(uint64)"),
    "TYPE_INT8": (np.int8, "tensor(int8)"),
    "TYPE_INT16": (np.int16, "tensor(int16)"),
    "TYPE_INT32": (np.int32, "tensor(int32)"),
    "TYPE_INT64": (np.int64, "tensor(int64)"),
    "TYPE_FP16": (np.float16, "tensor(float16)"),
    "TYPE_FP32": (np.float32, "tensor(float)"),
    "TYPE_FP64": (np.float64, "tensor(double)"),
    "TYPE_STRING": (np.object_, "tensor(string)"),
}

# ONNX Runtime reports unknown dimensions as None or as a symbolic name (str).
OrtDim = Union[int, str, None]


class ModelConfigError(ValueError):
    """The model config does not match the ONNX graph (raised at load time)."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as the model config declares it, with the batch dim made explicit."""

    name: str
    triton_type: str
    numpy_dtype: Any
    ort_type: str
    shape: Tuple[int, ...]  # full shape, -1 for variable dims (including the batch dim)


def _tensor_specs(entries: Sequence[Dict[str, Any]], batched: bool, kind: str) -> List[TensorSpec]:
    """Turn the config's ``input``/``output`` entries into ``TensorSpec``s.

    With ``max_batch_size > 0`` Triton's ``dims`` leave the batch dim out; the ONNX graph has it,
    so we prepend a variable dim to compare like with like.
    """
    specs = []
    for entry in entries:
        name = entry["name"]
        if entry.get("reshape"):
            raise ModelConfigError(f"{kind} '{name}': 'reshape' is not supported by this backend")
        triton_type = entry["data_type"]
        if triton_type not in _TRITON_TYPES:
            raise ModelConfigError(f"{kind} '{name}': data type {triton_type} is not supported")
        numpy_dtype, ort_type = _TRITON_TYPES[triton_type]
        dims = tuple(int(d) for d in entry.get("dims", []))
        shape = ((-1,) if batched else ()) + dims
        specs.append(TensorSpec(name, triton_type, numpy_dtype, ort_type, shape))
    return specs


def _dims_compatible(config_shape: Sequence[int], graph_shape: Sequence[OrtDim]) -> bool:
    """True when every dim is equal or variable on at least one side."""
    if len(config_shape) != len(graph_shape):
        return False
    for config_dim, graph_dim in zip(config_shape, graph_shape):
        if config_dim == -1 or not isinstance(graph_dim, int) or graph_dim < 0:
            continue
        if config_dim != graph_dim:
            return False
    return True


def _check_against_graph(
    specs: Sequence[TensorSpec],
    graph_args: Sequence[ort.NodeArg],
    kind: str,
    max_batch_size: int,
) -> None:
    """Fail with a message naming the tensor when config and graph disagree.

    Done at load time because a mismatch would otherwise show up only as an obscure ONNX Runtime
    error on the first request, and the real backend refuses such configs up front too.
    """
    graph = {arg.name: arg for arg in graph_args}
    for spec in specs:
        arg = graph.get(spec.name)
        if arg is None:
            raise ModelConfigError(
                f"{kind} '{spec.name}' is in the model config but not in the ONNX graph "
                f"(graph {kind}s: {sorted(graph)})"
            )
        if arg.type != spec.ort_type:
            raise ModelConfigError(
                f"{kind} '{spec.name}': config says {spec.triton_type} ({spec.ort_type}) "
                f"but the ONNX graph has {arg.type}"
            )
        if not _dims_compatible(spec.shape, arg.shape):
            raise ModelConfigError(
                f"{kind} '{spec.name}': config shape {list(spec.shape)} (batch dim first when "
                f"max_batch_size > 0) does not match the ONNX graph shape {list(arg.shape)}"
            )
        if max_batch_size > 0:
            batch_dim = arg.shape[0]
            if isinstance(batch_dim, int) and 0 <= batch_dim < max_batch_size:
                raise ModelConfigError(
                    f"{kind} '{spec.name}': the ONNX graph fixes the batch dim to {batch_dim}, "
                    f"smaller than max_batch_size {max_batch_size}"
                )


class TritonPythonModel:
    """Serves one ONNX model instance through ONNX Runtime."""

    def initialize(self, args: Dict[str, str]) -> None:
        """Open the ONNX file and check the config against it.

        ``args["model_repository"]`` is this model's folder; the file lives in its version
        sub-folder under ``default_model_filename`` (``model.onnx`` when unset), as with the real
        backend.
        """
        self.model_config: Dict[str, Any] = json.loads(args["model_config"])
        self.model_name: str = args["model_name"]
        self.max_batch_size: int = int(self.model_config.get("max_batch_size", 0))
        batched = self.max_batch_size > 0

        filename = self.model_config.get("default_model_filename") or "model.onnx"
        model_path = os.path.join(args["model_repository"], args["model_version"], filename)
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"model '{self.model_name}': no ONNX file at {model_path}")

        self.session = _onnxruntime().InferenceSession(
            model_path,
            sess_options=self._session_options(),
            providers=self._providers(args),
        )

        self.inputs = _tensor_specs(self.model_config.get("input", []), batched, "input")
        self.outputs = _tensor_specs(self.model_config.get("output", []), batched, "output")
        _check_against_graph(self.inputs, self.session.get_inputs(), "input", self.max_batch_size)
        _check_against_graph(
            self.outputs, self.session.get_outputs(), "output", self.max_batch_size
        )
        # ONNX Runtime needs a value for every graph input, so a graph input the config does not
        # declare could never be fed: refuse it now rather than on every request.
        declared = {spec.name for spec in self.inputs}
        missing = [arg.name for arg in self.session.get_inputs() if arg.name not in declared]
        if missing:
            raise ModelConfigError(
                f"model '{self.model_name}': ONNX graph inputs {missing} are not in the model config"
            )
        self._output_names = [spec.name for spec in self.outputs]

        pb_utils.Logger.log_info(
            f"onnxruntime (python-based) loaded '{self.model_name}' from {model_path} with "
            f"providers {self.session.get_providers()}"
        )

    def _session_options(self) -> ort.SessionOptions:
        """Keep each instance to a few threads.

        Triton may run several instances side by side; letting each one take every core (ONNX
        Runtime's default) makes them fight over the CPU.
        """
        options = _onnxruntime().SessionOptions()
        options.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
        options.inter_op_num_threads = 1
        return options

    @staticmethod
    def _providers(args: Dict[str, str]) -> List[Union[str, Tuple[str, Dict[str, Any]]]]:
        """CUDA on the instance's GPU when Triton placed it on one and ORT can use CUDA.

        CPU is always kept as the fallback so that ops without a CUDA kernel still run.
        """
        providers: List[Union[str, Tuple[str, Dict[str, Any]]]] = []
        if (
            args.get("model_instance_kind") == "GPU"
            and "CUDAExecutionProvider" in _onnxruntime().get_available_providers()
        ):
            device_id = int(args.get("model_instance_device_id", "0"))
            providers.append(("CUDAExecutionProvider", {"device_id": device_id}))
        providers.append("CPUExecutionProvider")
        return providers

    def execute(self, requests: List[Any]) -> List[Any]:
        """Run every request; a failing request gets its own error and does not sink the others.

        With batching on, Triton may hand us several requests at once (dynamic batching); they are
        concatenated along the batch dim into one ONNX Runtime call, which is where batching pays
        off. If that combined call fails, each request is run alone so the error lands only on the
        request(s) that caused it.
        """
        feeds: List[Optional[Dict[str, NDArray[Any]]]] = []
        responses: List[Optional[Any]] = [None] * len(requests)
        for i, request in enumerate(requests):
            try:
                feeds.append(self._read_inputs(request))
            except Exception as error:  # noqa: BLE001 - reported to the client, not swallowed
                feeds.append(None)
                responses[i] = self._error_response(error)

        ready = [i for i, feed in enumerate(feeds) if feed is not None]
        if self.max_batch_size > 0 and len(ready) > 1:
            try:
                batched = self._run_concatenated([feeds[i] for i in ready])  # type: ignore[misc]
                for i, outputs in zip(ready, batched):
                    responses[i] = self._make_response(outputs)
                ready = []
            except Exception:  # noqa: BLE001 - fall back to one call per request below
                pass

        for i in ready:
            try:
                responses[i] = self._make_response(self._run(feeds[i]))  # type: ignore[arg-type]
            except Exception as error:  # noqa: BLE001 - reported to the client
                responses[i] = self._error_response(error)
        return responses

    def _read_inputs(self, request: Any) -> Dict[str, NDArray[Any]]:
        """Fetch the declared inputs as numpy arrays of the dtype the graph wants."""
        feed: Dict[str, NDArray[Any]] = {}
        for spec in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, spec.name)
            if tensor is None:
                raise ValueError(f"input '{spec.name}' is missing from the request")
            array = tensor.as_numpy()
            feed[spec.name] = (
                array if array.dtype == spec.numpy_dtype else array.astype(spec.numpy_dtype)
            )
        return feed

    def _run(self, feed: Dict[str, NDArray[Any]]) -> Dict[str, NDArray[Any]]:
        """One ONNX Runtime call; outputs keyed by name."""
        values = self.session.run(self._output_names, feed)
        return dict(zip(self._output_names, values))

    def _run_concatenated(
        self, feeds: Sequence[Dict[str, NDArray[Any]]]
    ) -> List[Dict[str, NDArray[Any]]]:
        """Run several requests as one batch and split the outputs back per request."""
        sizes = [int(next(iter(feed.values())).shape[0]) for feed in feeds]
        combined = {
            spec.name: np.concatenate([feed[spec.name] for feed in feeds], axis=0)
            for spec in self.inputs
        }
        outputs = self._run(combined)
        bounds = np.cumsum(sizes)[:-1]
        split = {name: np.split(value, bounds, axis=0) for name, value in outputs.items()}
        return [{name: parts[k] for name, parts in split.items()} for k in range(len(feeds))]

    def _make_response(self, outputs: Dict[str, NDArray[Any]]) -> Any:
        """Build the response with the data types the config promises to clients."""
        tensors = []
        for spec in self.outputs:
            value = np.asarray(outputs[spec.name])
            if value.dtype != spec.numpy_dtype:
                value = value.astype(spec.numpy_dtype)
            tensors.append(pb_utils.Tensor(spec.name, value))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _error_response(self, error: Exception) -> Any:
        """A per-request error that names the model, so ensemble callers know which step failed."""
        message = f"model '{self.model_name}': {type(error).__name__}: {error}"
        return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))

    def finalize(self) -> None:
        """Drop the session so its memory (GPU memory included) is freed on unload."""
        self.session = None
