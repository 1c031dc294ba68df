"""Triton core's load-time checks of one model configuration, decided from the files alone.

Triton 2.51 (core r24.10) applies these in `model_config_utils.cc` (`ValidateModelConfig`,
`ValidateModelIOConfig`, `ValidateInstanceGroup`, the ensemble-only fields of
`ValidateEnsembleSchedulingConfig`) and `backend_model.cc` (the `runtime` library path). It stops
at the first failure and reports it only when the model is loaded, which under SageMaker MME
means on the first invoke of a published artifact; here every failure is reported at once.

One principle decides the severity: what Triton refuses is an error, what Triton accepts is
never an error. Triton runs these checks on the config *after* its autofill, so the platform
and backend it infers from the version folder's file names (`AutoCompleteBackendFields`) are
inferred here the same way (`inferred_platform_backend`) before the pair is judged. Rules that
depend on the host (which GPUs exist) or on what a backend reads from the model file are left
to the server; docs/validation-rules.md lists each rule and why.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from pathlib import Path

from mmepack.model.config import ModelConfig, Positions, Problem, model_config_pb2
from mmepack.model.repository import TritonModel

_ENSEMBLE = "ensemble"
_WILDCARD = -1

# Triton's platform names and the backend each implies (GetBackendTypeFromPlatform); backends
# outside this table are "unknown" to core and may pair with any platform.
_PLATFORM_BACKENDS = {
    "tensorflow_graphdef": "tensorflow",
    "tensorflow_savedmodel": "tensorflow",
    "tensorrt_plan": "tensorrt",
    "onnxruntime_onnx": "onnxruntime",
    "pytorch_libtorch": "pytorch",
}
_KNOWN_BACKENDS = frozenset(_PLATFORM_BACKENDS.values())
# The platform Triton's autofill writes for a backend set without one (TensorFlow needs both).
_PLATFORM_OF_BACKEND = {
    "tensorrt": "tensorrt_plan",
    "onnxruntime": "onnxruntime_onnx",
    "pytorch": "pytorch_libtorch",
}

_TYPE_INVALID = model_config_pb2.TYPE_INVALID
_KIND = model_config_pb2.ModelSequenceBatching.Control.Kind
_BOOLEAN_CONTROLS = ("CONTROL_SEQUENCE_START", "CONTROL_SEQUENCE_END", "CONTROL_SEQUENCE_READY")
_CORRID = "CONTROL_SEQUENCE_CORRID"
_CORRID_TYPES = frozenset(
    model_config_pb2.DataType.Value(name)
    for name in ("TYPE_UINT64", "TYPE_INT64", "TYPE_UINT32", "TYPE_INT32", "TYPE_STRING")
)
_BATCH_INPUT_TYPES = frozenset({model_config_pb2.TYPE_INT32, model_config_pb2.TYPE_FP32})
_DELAY = model_config_pb2.ModelQueuePolicy.DELAY
_LAYOUT_FORMATS = frozenset(
    {model_config_pb2.ModelInput.FORMAT_NHWC, model_config_pb2.ModelInput.FORMAT_NCHW}
)
_KIND_CPU = model_config_pb2.ModelInstanceGroup.KIND_CPU
_KIND_MODEL = model_config_pb2.ModelInstanceGroup.KIND_MODEL


def _refused(
    model: TritonModel, line: int | None, field: str, triton_says: str, fix: str
) -> Problem:
    """A finding in one shape: what Triton answers at load time, then how to fix it."""
    return model.problem(line, field, f'Triton refuses to load it: "{triton_says}"; {fix}')


# --------------------------------------------------------------------------------------------
# Platform and backend, as Triton's autofill leaves them
# --------------------------------------------------------------------------------------------


def version_folder_contents(folder: Path) -> tuple[bool, set[str], set[str]]:
    """Whether a version folder exists, and the file and folder names of the first one.

    Triton inspects the first sub-folder in name order. A DVC-tracked file (`model.onnx.dvc`)
    or version folder (`1.dvc`) counts as present: the packager pulls it before Triton looks.
    """
    try:
        entries = list(folder.iterdir())
    except OSError:
        return False, set(), set()
    subdirs = {p.name for p in entries if p.is_dir()}
    subdirs |= {p.name[: -len(".dvc")] for p in entries if p.name.endswith(".dvc") and p.is_file()}
    if not subdirs:
        return False, set(), set()
    first = folder / min(subdirs)
    files: set[str] = set()
    dirs: set[str] = set()
    try:
        for entry in first.iterdir():
            name = entry.name.removesuffix(".dvc") if entry.is_file() else entry.name
            (dirs if entry.is_dir() else files).add(name)
            if entry.name.endswith(".dvc"):
                dirs.add(name)  # a tracked path may be a file or a folder once pulled
    except OSError:
        pass
    return True, files, dirs


def inferred_platform_backend(model: TritonModel) -> tuple[str, str]:
    """(platform, backend) after Triton's AutoCompleteBackendFields, from file names only.

    Last comes Triton's custom-backend fallback: with no platform, no backend and no
    default_model_filename, and no file that names a backend, a folder named `<name>.<suffix>`
    runs on the backend named by the whole text after its first dot (`scale.identity` ->
    "identity", `a.b.c` -> "b.c"), with default_model_filename `model.<suffix>` (core r24.10,
    model_config_utils.cc); a name without a dot is "Could not determine backend". For the
    model SageMaker loads, that name is the TargetModel string (`tar.gz` after the dot), which is
    why `mmepack.model.rules` requires that model to set platform or backend itself.
    """
    config = model.config
    platform, backend = str(config.platform), str(config.backend)
    filename = str(config.default_model_filename)
    if (platform and backend) or platform == _ENSEMBLE:
        return platform, backend
    if not platform and backend in _PLATFORM_OF_BACKEND:
        # No file name can change the answer: Triton fills the platform from the backend.
        return _PLATFORM_OF_BACKEND[backend], backend
    if backend and backend != "tensorflow":
        return platform, backend
    has_version, files, dirs = version_folder_contents(model.folder)
    probe = not platform and not filename and has_version
    if not platform and backend in ("", "tensorflow"):
        if filename == "model.savedmodel":
            platform = "tensorflow_savedmodel"
        elif filename == "model.graphdef":
            platform = "tensorflow_graphdef"
        elif not filename and has_version:
            if "model.savedmodel" in dirs:
                platform = "tensorflow_savedmodel"
            if "model.graphdef" in files:
                platform = "tensorflow_graphdef"
    if platform in ("tensorflow_savedmodel", "tensorflow_graphdef"):
        return platform, backend or "tensorflow"
    for name, platform_name, file_name in (
        ("tensorrt", "tensorrt_plan", "model.plan"),
        ("onnxruntime", "onnxruntime_onnx", "model.onnx"),
        ("pytorch", "pytorch_libtorch", "model.pt"),
    ):
        if not backend and (platform == platform_name or filename == file_name):
            backend = name
        elif not backend and probe and (file_name in files or file_name in dirs):
            backend = name
        if backend == name:
            return platform or platform_name, backend
    for name, file_name in (("openvino", "model.xml"), ("python", "model.py")):
        if not backend and (filename == file_name or (probe and file_name in files)):
            backend = name
        if backend == name:
            return platform, backend
    if not backend and not platform and not filename:
        backend = custom_backend_of(model.folder.name) or ""
    return platform, backend


def custom_backend_of(folder_name: str) -> str | None:
    """The backend Triton's custom-backend fallback reads from a model name: the text after the
    first dot, or None without one."""
    _, dot, suffix = folder_name.partition(".")
    return suffix if dot and suffix else None


def check_platform_backend(model: TritonModel) -> list[Problem]:
    """The platform/backend pair Triton accepts (ValidateModelConfig, after autofill)."""
    platform, backend = inferred_platform_backend(model)
    line = model.positions.line("backend") or model.positions.line("platform")
    if not platform and not backend:
        return [
            _refused(
                model,
                None,
                "backend",
                f"Invalid model name: Could not determine backend for model '{model.name}'",
                'set backend (e.g. backend: "python") or put the model file Triton recognises '
                "(model.py, model.onnx, model.plan, model.pt, model.savedmodel) in the first "
                "version folder, or name the folder <name>.<backend> as Triton's custom "
                "backends expect",
            )
        ]
    if platform == _ENSEMBLE and backend:
        return [
            _refused(
                model,
                model.positions.line("backend"),
                "backend",
                f"Ensemble model '{model.name}' must have platform type 'ensemble' and empty "
                "backend type",
                "remove the backend line",
            )
        ]
    if not backend and platform != _ENSEMBLE:
        return [
            _refused(
                model,
                model.positions.line("platform"),
                "platform",
                f"unexpected platform type '{platform}' for {model.name}",
                f"use one of {', '.join(sorted(_PLATFORM_BACKENDS))} or \"ensemble\", or set "
                "backend instead",
            )
        ]
    if backend in _KNOWN_BACKENDS and _PLATFORM_BACKENDS.get(platform) != backend:
        return [
            _refused(
                model,
                line,
                "backend",
                f"unexpected 'platform' and 'backend' pair, got:{platform}, {backend}",
                f"drop platform, or write the platform of backend {backend!r} ("
                + ", ".join(p for p, b in _PLATFORM_BACKENDS.items() if b == backend)
                + ")",
            )
        ]
    return []


def check_runtime(model: TritonModel) -> list[Problem]:
    """`runtime` names a library inside the backend's folder (backend_model.cc)."""
    runtime = str(model.config.runtime)
    if not runtime:
        return []
    normal = posixpath.normpath(runtime)
    if not (posixpath.isabs(runtime) or normal == ".." or normal.startswith("../")):
        return []
    # Triton looks the library up first: a path that leads nowhere is "unable to find", one that
    # exists outside the backend's folder "escapes"; either way the model does not load.
    return [
        model.problem(
            model.positions.line("runtime"),
            "runtime",
            f"Triton refuses to load it: \"unable to find backend library '{runtime}' for model "
            f"'{model.name}'\" (or, where that path exists, \"backend library name '{runtime}' "
            "escapes backend directory\"); give a file name inside the backend's folder (e.g. "
            "libtriton_onnxruntime.so or model.py), without '/' at the start or '..'",
        )
    ]


# --------------------------------------------------------------------------------------------
# Inputs and outputs (ValidateIOShape, ValidateModelInput/Output, ValidateBatchIO)
# --------------------------------------------------------------------------------------------


# The fields of ValidateIOShape's findings; the layout and TensorRT-only findings come after it.
_SHAPE_FIELDS = frozenset({"name", "data_type", "dims", "reshape"})


def _element_count(dims: Iterable[int]) -> int:
    """Triton's GetElementCount: -1 when any dimension is variable."""
    count = 1
    for dim in dims:
        if dim == _WILDCARD:
            return -1
        count *= dim
    return count


def _segments(dims: Iterable[int]) -> list[int]:
    """Element counts of the runs between variable dimensions ([2, 4, -1, 6] -> [8, 6])."""
    counts, current = [], 1
    for dim in dims:
        if dim == _WILDCARD:
            counts.append(current)
            current = 1
        else:
            current *= dim
    return [*counts, current]


def _io_shape_problem(io: ModelConfig, max_batch_size: int) -> tuple[str, str, str] | None:
    """(field, Triton's message, fix) for the first shape rule `io` breaks, as Triton orders them."""
    name = str(io.name)
    if not name:
        return "name", "must specify 'name'", "give the tensor a name"
    if io.data_type == _TYPE_INVALID:
        return (
            "data_type",
            f"'{name}' must specify 'data_type'",
            "add data_type (e.g. TYPE_FP32)",
        )
    dims = [int(d) for d in io.dims]
    if not dims:
        return "dims", f"'{name}' must specify 'dims'", "add dims (e.g. dims: [ -1 ])"
    shape = [int(d) for d in io.reshape.shape]
    if io.HasField("reshape") and not shape and max_batch_size == 0:
        return (
            "reshape",
            f"'{name}' cannot have empty reshape for non-batching model as scalar tensors are "
            "not supported",
            "remove the reshape or give it a shape",
        )
    if any(d < 1 and d != _WILDCARD for d in dims):
        return (
            "dims",
            f"'{name}' dimension must be integer >= 1, or -1 to indicate a variable-size "
            "dimension",
            "replace 0 (or a negative size) with the real size or -1",
        )
    if not io.HasField("reshape"):
        return None
    if any(d < 1 and d != _WILDCARD for d in shape):
        return (
            "reshape",
            f"'{name}' reshape dimensions must be integer >= 1, or -1 to indicate a "
            "variable-size dimension",
            "replace 0 (or a negative size) in reshape with the real size or -1",
        )
    dims_size, reshape_size = _element_count(dims), _element_count(shape)
    size_message = f"'{name}' has different size for dims and reshape"
    size_fix = f"make reshape hold as many elements as dims {dims}"
    if dims_size != reshape_size and (reshape_size != 0 or dims_size != 1):
        return "reshape", size_message, size_fix
    if dims_size == -1:
        left, right = _segments(dims), _segments(shape)
        if len(left) != len(right):
            return (
                "reshape",
                f"'{name}' has different number of variable-size dimensions for dims and "
                "reshape",
                "use as many -1 in reshape as in dims",
            )
        if left != right:
            return "reshape", size_message, size_fix + " between each pair of -1"
    return None


def _io_problem(
    io: ModelConfig, config: ModelConfig, is_input: bool
) -> tuple[str, str, str] | None:
    found = _io_shape_problem(io, int(config.max_batch_size))
    if found is not None:
        return found
    platform = str(config.platform)
    tensorrt = platform == "tensorrt_plan"
    if is_input and io.format in _LAYOUT_FORMATS and len(io.dims) != 3:
        return "format", "model input NHWC/NCHW require 3 dims", "give 3 dims or drop format"
    if io.is_shape_tensor and not tensorrt:
        return (
            "is_shape_tensor",
            "shape tensors are only supported for TensorRT platform",
            "remove is_shape_tensor",
        )
    if io.is_non_linear_format_io:
        if not tensorrt:
            return (
                "is_non_linear_format_io",
                "Non-linear IO format is only supported for the TensorRT platform",
                "remove is_non_linear_format_io",
            )
        if len(io.dims) != 3:
            kind = "input" if is_input else "output"
            return (
                "is_non_linear_format_io",
                f"Non-linear IO format {kind} requires 3 dims",
                "give 3 dims",
            )
    return None


def check_io(model: TritonModel) -> list[Problem]:
    """Each input and output: name, data type, dims, reshape, layout (ValidateModelIOConfig)."""
    problems: list[Problem] = []
    for io_field, ios, is_input in (
        ("input", model.config.input, True),
        ("output", model.config.output, False),
    ):
        for index, io in enumerate(ios):
            found = _io_problem(io, model.config, is_input)
            if found is None:
                continue
            field, message, fix = found
            where = model.positions.child(io_field, index)
            line = where.line(field) or where.line("name") or model.positions.line(io_field, index)
            # Triton names the tensor kind only in the shape messages (ValidateIOShape's prefix).
            shape_rule = field in _SHAPE_FIELDS
            prefix = f"model {io_field} " if shape_rule else ""
            problems.append(
                _refused(
                    model, line, f"{io_field}.{field}", f"{prefix}{message} for {model.name}", fix
                )
            )
    return problems


def check_batch_io(model: TritonModel) -> list[Problem]:
    """batch_input and batch_output: one source each, known sources and targets (ValidateBatchIO)."""
    config = model.config
    inputs = {str(io.name) for io in config.input}
    outputs = {str(io.name) for io in config.output}
    problems: list[Problem] = []
    for index, batch in enumerate(config.batch_input):
        where = model.positions.child("batch_input", index)
        line = where.line("kind") or model.positions.line("batch_input", index)
        kind = model_config_pb2.BatchInput.Kind.Name(batch.kind)
        sources = [str(s) for s in batch.source_input]
        if len(sources) != 1:
            problems.append(
                _refused(
                    model,
                    where.line("source_input") or line,
                    "batch_input.source_input",
                    f"batch input kind '{kind}' expects 1 source input, got {len(sources)}",
                    "list exactly one source_input",
                )
            )
        elif batch.data_type not in _BATCH_INPUT_TYPES:
            problems.append(
                _refused(
                    model,
                    where.line("data_type") or line,
                    "batch_input.data_type",
                    "batch input data type must be TYPE_INT32 or TYPE_FP32",
                    "set data_type: TYPE_INT32 or TYPE_FP32",
                )
            )
        else:
            problems.extend(_unknown_sources(model, where, line, "batch_input", sources, inputs))
    for index, batch in enumerate(config.batch_output):
        where = model.positions.child("batch_output", index)
        line = where.line("kind") or model.positions.line("batch_output", index)
        kind = model_config_pb2.BatchOutput.Kind.Name(batch.kind)
        sources = [str(s) for s in batch.source_input]
        if len(sources) != 1:
            problems.append(
                _refused(
                    model,
                    where.line("source_input") or line,
                    "batch_output.source_input",
                    f"batch output kind '{kind}' expects 1 source input, got {len(sources)}",
                    "list exactly one source_input",
                )
            )
            continue
        unknown = _unknown_sources(model, where, line, "batch_output", sources, inputs)
        if unknown:
            problems.extend(unknown)
            continue
        seen: set[str] = set()
        for target_index, target in enumerate(str(t) for t in batch.target_name):
            target_line = where.line("target_name", target_index) or line
            if target not in outputs:
                problems.append(
                    _refused(
                        model,
                        target_line,
                        "batch_output.target_name",
                        f"unknown target output name '{target}'",
                        f"name one of the outputs ({', '.join(sorted(outputs)) or 'none'})",
                    )
                )
                break
            if target in seen:
                problems.append(
                    _refused(
                        model,
                        target_line,
                        "batch_output.target_name",
                        f"target output name '{target}' can only be specified once",
                        "remove the repeated name",
                    )
                )
                break
            seen.add(target)
    return problems


def _unknown_sources(
    model: TritonModel,
    where: Positions,
    line: int | None,
    field: str,
    sources: list[str],
    inputs: set[str],
) -> list[Problem]:
    for source in sources:
        if source not in inputs:
            return [
                _refused(
                    model,
                    where.line("source_input") or line,
                    f"{field}.source_input",
                    f"unknown source input name '{source}'",
                    f"name one of the inputs ({', '.join(sorted(inputs)) or 'none'})",
                )
            ]
    return []


# --------------------------------------------------------------------------------------------
# Batching, scheduling and instances (ValidateModelConfig, ValidateInstanceGroup)
# --------------------------------------------------------------------------------------------


def check_max_batch_size(model: TritonModel) -> list[Problem]:
    if model.max_batch_size >= 0:
        return []
    return [
        _refused(
            model,
            model.positions.line("max_batch_size"),
            "max_batch_size",
            f"'max_batch_size' must be non-negative value for {model.name}",
            "use 0 for a model that does not batch, or the largest batch it takes",
        )
    ]


def check_dynamic_batching(model: TritonModel) -> list[Problem]:
    """Preferred sizes, priority levels and queue policies of the dynamic batcher."""
    config = model.config
    if not config.HasField("dynamic_batching"):
        return []
    batching = config.dynamic_batching
    where = model.positions.child("dynamic_batching")
    at = where.line
    fallback = model.positions.line("dynamic_batching")
    name = model.name
    for index, size in enumerate(int(s) for s in batching.preferred_batch_size):
        line = at("preferred_batch_size", index) or fallback
        if size <= 0:
            return [
                _refused(
                    model,
                    line,
                    "dynamic_batching.preferred_batch_size",
                    f"dynamic batching preferred size must be positive for {name}",
                    "list sizes of at least 1",
                )
            ]
        if size > model.max_batch_size:
            return [
                _refused(
                    model,
                    line,
                    "dynamic_batching.preferred_batch_size",
                    f"dynamic batching preferred size must be <= max batch size for {name}",
                    f"list sizes up to max_batch_size ({model.max_batch_size})",
                )
            ]
    levels = int(batching.priority_levels)
    if levels != 0:
        default = int(batching.default_priority_level)
        if default == 0 or default > levels:
            return [
                _refused(
                    model,
                    at("default_priority_level") or at("priority_levels") or fallback,
                    "dynamic_batching.default_priority_level",
                    f"default priority level must be in range [1, {levels}] for {name}",
                    f"set default_priority_level between 1 and priority_levels ({levels})",
                )
            ]
        for level in sorted(int(k) for k in batching.priority_queue_policy):
            if level == 0 or level > levels:
                line = where.entry("priority_queue_policy", "key", str(level)).line("key")
                return [
                    _refused(
                        model,
                        line or at("priority_queue_policy") or fallback,
                        "dynamic_batching.priority_queue_policy",
                        f"priority queue policy must have priority level in range [1, {levels}] "
                        f"for {name}",
                        f"use keys between 1 and priority_levels ({levels})",
                    )
                ]
    if not batching.preserve_ordering:
        return []
    ordering_line = at("preserve_ordering") or fallback
    if levels > 1:
        return [
            _refused(
                model,
                ordering_line,
                "dynamic_batching.preserve_ordering",
                f"Only one priority level is allowed when 'preserve_ordering' is true for {name}",
                "drop preserve_ordering or use a single priority level",
            )
        ]
    policies = [batching.default_queue_policy, *batching.priority_queue_policy.values()]
    for policy in policies:
        if policy.default_timeout_microseconds != 0 and policy.timeout_action == _DELAY:
            return [
                _refused(
                    model,
                    ordering_line,
                    "dynamic_batching.preserve_ordering",
                    "Queue policy can not have DELAY as timeout action when 'preserve_ordering' "
                    f"is true for {name}",
                    "use timeout_action: REJECT, or drop preserve_ordering",
                )
            ]
    return []


def _control_problem(batcher: ModelConfig, kind_name: str, name: str) -> tuple[str, str] | None:
    """(Triton's message, fix) for the first control-tensor rule broken for one control kind."""
    kind = _KIND.Value(kind_name)
    boolean = kind_name != _CORRID
    seen_tensors: set[str] = set()
    seen_kind = False
    for control_input in batcher.control_input:
        tensor = str(control_input.name)
        if not tensor:
            return (
                f"sequence batching control tensor must have a name for {name}",
                "name the control tensor",
            )
        if tensor in seen_tensors:
            return (
                f"sequence batching control tensor '{tensor}' is specified for multiple "
                f"control kinds for {name}",
                "give each control tensor one control_input entry",
            )
        seen_tensors.add(tensor)
        for control in control_input.control:
            if control.kind != kind:
                continue
            if seen_kind:
                return (
                    f"sequence batching specifies multiple {kind_name} tensors for {name}",
                    f"keep one control tensor of kind {kind_name}",
                )
            seen_kind = True
            value_lists = [
                ("int32_false_true", len(control.int32_false_true)),
                ("fp32_false_true", len(control.fp32_false_true)),
                ("bool_false_true", len(control.bool_false_true)),
            ]
            given = [(field, count) for field, count in value_lists if count]
            if not boolean:
                if given:
                    return (
                        "sequence batching must not specify either 'int32_false_true', "
                        f"'fp32_false_true' or 'bool_false_true' for {kind_name} for {name}",
                        "give the CORRID control a data_type instead of false/true values",
                    )
                if control.data_type not in _CORRID_TYPES:
                    return (
                        f"unexpected data type for control {kind_name} for {name}. Allowed data "
                        "types are TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32 and "
                        "TYPE_STRING",
                        "set data_type to one of those",
                    )
                continue
            if not given:
                return (
                    "sequence batching must specify either 'int32_false_true', "
                    f"'fp32_false_true' or 'bool_false_true' for {kind_name} for {name}",
                    "add the value type with its two values, e.g. int32_false_true: [ 0, 1 ]",
                )
            if len(given) > 1:
                return (
                    "sequence batching specifies more than one from 'int32_false_true', "
                    f"'fp32_false_true' and 'bool_false_true' for {kind_name} for {name}",
                    "keep one of them",
                )
            field, count = given[0]
            if count != 2:
                return (
                    f"sequence batching control '{field}' must have exactly 2 entries for "
                    f"{kind_name} for {name}",
                    f"write {field}: [ <false>, <true> ]",
                )
    return None


def check_sequence_batching(model: TritonModel) -> list[Problem]:
    """Control tensors, strategies and the response cache of the sequence batcher."""
    config = model.config
    if not config.HasField("sequence_batching"):
        return []
    batcher = config.sequence_batching
    where = model.positions.child("sequence_batching")
    line = model.positions.line("sequence_batching")
    name = model.name
    if config.response_cache.enable:
        return [
            _refused(
                model,
                model.positions.line("response_cache") or line,
                "response_cache",
                f"Response Cache does not currently support model {name} with sequence "
                "batching scheduler. Please disable the response cache.",
                "remove response_cache (or set enable: false)",
            )
        ]
    for kind_name in (*_BOOLEAN_CONTROLS, _CORRID):
        found = _control_problem(batcher, kind_name, name)
        if found is not None:
            message, fix = found
            control_line = where.line("control_input") or line
            return [_refused(model, control_line, "sequence_batching.control_input", message, fix)]
    if batcher.HasField("oldest"):
        oldest = where.child("oldest")
        for index, size in enumerate(int(s) for s in batcher.oldest.preferred_batch_size):
            if size <= 0 or size > model.max_batch_size:
                what = "positive" if size <= 0 else "<= max batch size"
                return [
                    _refused(
                        model,
                        oldest.line("preferred_batch_size", index) or line,
                        "sequence_batching.oldest.preferred_batch_size",
                        f"sequence batching preferred batch size must be {what} for {name}",
                        f"list sizes from 1 to max_batch_size ({model.max_batch_size})",
                    )
                ]
    if batcher.HasField("direct"):
        utilization = float(batcher.direct.minimum_slot_utilization)
        if utilization < 0.0 or utilization > 1.0:
            return [
                _refused(
                    model,
                    where.child("direct").line("minimum_slot_utilization") or line,
                    "sequence_batching.direct.minimum_slot_utilization",
                    "sequence batching minimum slot utilization must be in range (0.0, 1.0] "
                    f"for {name}",
                    "use a value between 0 and 1",
                )
            ]
    return []


def check_decoupled_cache(model: TritonModel) -> list[Problem]:
    config = model.config
    if not (config.model_transaction_policy.decoupled and config.response_cache.enable):
        return []
    return [
        _refused(
            model,
            model.positions.line("response_cache"),
            "response_cache",
            f"Response Cache does not currently support model {model.name} with 'decoupled' "
            "transaction policy. Please disable the response cache.",
            "remove response_cache (or set enable: false)",
        )
    ]


def check_ensemble_only_fields(model: TritonModel) -> list[Problem]:
    """An ensemble has no optimization and no warmup of its own (its steps do)."""
    if not model.is_ensemble or not model.config.HasField("ensemble_scheduling"):
        return []
    problems: list[Problem] = []
    if model.config.HasField("optimization"):
        problems.append(
            _refused(
                model,
                model.positions.line("optimization"),
                "optimization",
                f"optimization should not be specified for ensemble '{model.name}'",
                "move optimization to the step models",
            )
        )
    if len(model.config.model_warmup):
        problems.append(
            _refused(
                model,
                model.positions.line("model_warmup"),
                "model_warmup",
                f"model_warmup can not be specified for ensemble '{model.name}'",
                "move model_warmup to the step models",
            )
        )
    return problems


def check_instance_gpus(model: TritonModel) -> list[Problem]:
    """KIND_CPU and KIND_MODEL groups name no GPUs, GPU ids are not negative; profiles are
    for TensorRT only."""
    if model.is_ensemble:
        return []
    problems: list[Problem] = []
    for index, group in enumerate(model.config.instance_group):
        where = model.positions.child("instance_group", index)
        line = where.line("gpus") or where.line("kind") or model.positions.line("instance_group")
        # Triton names an unnamed group `<model>_<index>` before it validates.
        label = f"instance group {group.name or f'{model.name}_{index}'} of model {model.name}"
        if group.kind in (_KIND_CPU, _KIND_MODEL) and len(group.gpus):
            kind = "KIND_CPU" if group.kind == _KIND_CPU else "KIND_MODEL"
            problems.append(
                _refused(
                    model,
                    line,
                    "instance_group.gpus",
                    f"{label} has kind {kind} but specifies one or more GPUs",
                    "remove gpus, or use kind: KIND_GPU",
                )
            )
        elif any(gpu < 0 for gpu in group.gpus):
            # No host has a negative device index: Triton's check against the GPUs it finds
            # (ValidateInstanceGroup) refuses it everywhere, so it is decidable from the file.
            gpu = next(gpu for gpu in group.gpus if gpu < 0)
            problems.append(
                _refused(
                    model,
                    line,
                    "instance_group.gpus",
                    f"{label} specifies invalid or unsupported gpu id {gpu}",
                    "GPU ids are device indexes, 0 and up: write e.g. gpus: [ 0 ], or leave gpus "
                    "out to use every GPU",
                )
            )
        elif len(group.profile) and str(model.config.platform) != "tensorrt_plan":
            problems.append(
                _refused(
                    model,
                    where.line("profile") or line,
                    "instance_group.profile",
                    f"{label} and platform {model.config.platform}specifies profile field "
                    "which is only supported for TensorRT models",
                    "remove profile",
                )
            )
    return problems


def check_model_metrics(model: TritonModel) -> list[Problem]:
    """`model_metrics` is newer than Triton 2.51: its config reader does not know the field.

    The schema mmepack parses with (tritonclient's model_config.proto) already has it, but the
    2.51 server, run on such a config, stops at "failed to read text proto" (seen with the
    nvidia-pytriton server); so it is an error for that target, whatever its contents.
    """
    if not model.config.HasField("model_metrics"):
        return []
    return [
        model.problem(
            model.positions.line("model_metrics"),
            "model_metrics",
            f'Triton 2.51 refuses to load it: "failed to read text proto from '
            f'{model.name}/config.pbtxt" (model_metrics came after 2.51); remove it for this '
            "server, or give each metric_control a metric_identifier.family and "
            "histogram_options.buckets on a release that reads it",
        )
    ]


def check_triton_rules(model: TritonModel) -> list[Problem]:
    """Every rule above, for one model; each rule reports at most what Triton would stop at."""
    return [
        *check_platform_backend(model),
        *check_runtime(model),
        *check_max_batch_size(model),
        *check_io(model),
        *check_batch_io(model),
        *check_dynamic_batching(model),
        *check_sequence_batching(model),
        *check_decoupled_cache(model),
        *check_ensemble_only_fields(model),
        *check_instance_gpus(model),
        *check_model_metrics(model),
    ]
