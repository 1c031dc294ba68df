"""Request bodies for `invoke_endpoint`: from a model's test cases, or from a payload file.

The model's test cases (`<model_dir>/tests/cases/*.json`, read by `mmepack.cases.load_cases`,
typed and shaped from the model's own config) are the usual source: each case without an
`expected_error` becomes one request, and a model's requests take turns.

A payload file serves where no model directory is at hand (e.g. against a deployed endpoint).
It holds `inputs` keyed by input name, as a case file does, and a case file whose inputs are
`values` is a valid payload file:

    {"inputs": {"IN": [[1.0, 2.0]],
                "IMAGE_BYTES": {"datatype": "BYTES", "values": [[{"file": "cat.png"}]]}}}

An input is either its values (nested lists; the nesting is the shape, batch included) or an
object with `values` and optional `datatype` and `shape`. BYTES items are text, `{"b64": ...}`
or `{"file": path}` (relative to the payload file). A missing datatype is taken from the
artifact's top-level config, the one SageMaker loads. Optional `outputs` names the outputs to
ask for; by default all are returned (asking an ensemble for a subset can fail on Triton 2.51).

The body is KServe v2 with binary tensors (`application/vnd.sagemaker-triton.binary+json;
json-header-size=N`), what Triton's SageMaker front end takes, built by tritonclient so the
encoding is Triton's own.
"""

from __future__ import annotations

import base64
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from mmepack.errors import MmepackError
from mmepack.model.config import ConfigSchemaError, data_type_name, parse_model_config
from mmepack.model.rules import SAGEMAKER_ENSEMBLE_RE
from mmepack.names import CASES_GLOB, CONFIG_FILE

BINARY_JSON = "application/vnd.sagemaker-triton.binary+json"
_NUMPY_TYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


@dataclass(frozen=True)
class Request:
    """One ready-to-send body; `source` says where it came from (for the report)."""

    body: bytes
    content_type: str
    source: str


def artifact_input_types(artifact: Path) -> dict[str, str]:
    """Input name -> KServe datatype (FP32, BYTES, ...) of the model SageMaker loads from a tar.

    That model is the folder whose config matches SageMaker's ensemble pattern, or the only
    model; its config sits at `<folder>/config.pbtxt` at the tar's root.
    """
    configs: dict[str, str] = {}
    try:
        with tarfile.open(artifact, "r:gz") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                if member.isfile() and len(path.parts) == 2 and path.name == CONFIG_FILE:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        configs[member.name] = handle.read().decode("utf-8", errors="replace")
    except (OSError, tarfile.TarError) as exc:
        raise MmepackError(f"{artifact}: cannot read the artifact ({exc})") from None
    chosen = [n for n, text in configs.items() if SAGEMAKER_ENSEMBLE_RE.search(text)]
    if not chosen and len(configs) == 1:
        chosen = list(configs)
    if len(chosen) != 1:
        raise MmepackError(
            f"{artifact}: cannot tell which model SageMaker loads (ensemble configs: "
            f"{chosen or 'none'}); give each input's datatype in the payload file"
        )
    name = chosen[-1]
    try:
        config = parse_model_config(configs[name], Path(f"{artifact}!{name}"))
    except ConfigSchemaError as exc:
        raise MmepackError(str(exc)) from None
    return {
        tensor.name: data_type_name(tensor.data_type)
        .removeprefix("TYPE_")
        .replace("STRING", "BYTES")
        for tensor in config.input
    }


def _bytes_item(item: Any, where: str, base: Path) -> bytes:
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, dict) and set(item) == {"b64"} and isinstance(item["b64"], str):
        try:
            return base64.b64decode(item["b64"], validate=True)
        except ValueError:
            raise MmepackError(f"{where}: 'b64' is not valid base64") from None
    if isinstance(item, dict) and set(item) == {"file"} and isinstance(item["file"], str):
        path = base / item["file"]
        try:
            return path.read_bytes()
        except OSError as exc:
            raise MmepackError(
                f"{where}: cannot read {path} ({exc.strerror}); 'file' is relative to the "
                "payload file's folder"
            ) from None
    raise MmepackError(
        f'{where}: a BYTES item must be text, {{"b64": "..."}} or {{"file": "path"}}, '
        f"got {json.dumps(item)[:80]}"
    )


def _to_bytes(value: Any, where: str, base: Path) -> Any:
    if isinstance(value, list):
        return [_to_bytes(v, where, base) for v in value]
    return _bytes_item(value, where, base)


def _tensor(name: str, spec: Any, datatype: str | None, where: str, base: Path) -> Any:
    import tritonclient.http as httpclient

    shape = None
    if isinstance(spec, dict):
        unknown = set(spec) - {"values", "datatype", "shape"}
        if "values" not in spec or unknown:
            raise MmepackError(
                f"{where}: an input object needs 'values' and may have 'datatype' and 'shape'"
                + (f"; unknown keys: {sorted(unknown)}" if unknown else "")
            )
        datatype = spec.get("datatype") or datatype
        shape = spec.get("shape")
        data = spec["values"]
    else:
        data = spec
    if datatype is None:
        raise MmepackError(
            f'{where}: no datatype for input {name!r}: add "datatype" (FP32, BYTES, ...) or '
            "load test an artifact whose config declares this input"
        )
    datatype = str(datatype).upper()
    if datatype not in _NUMPY_TYPES:
        raise MmepackError(
            f"{where}: datatype {datatype!r} is not one of {', '.join(sorted(_NUMPY_TYPES))}"
        )
    try:
        if datatype == "BYTES":
            array = np.array(_to_bytes(data, where, base), dtype=np.object_)
        else:
            array = np.array(data, dtype=_NUMPY_TYPES[datatype])
        if shape is not None:
            array = array.reshape([int(d) for d in shape])
    except (ValueError, TypeError) as exc:
        raise MmepackError(f"{where}: values do not fit {datatype} {shape or ''}: {exc}") from None
    if array.ndim == 0:
        raise MmepackError(
            f"{where}: values must be a list (its nesting is the shape, batch first)"
        )
    tensor = httpclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=True)
    return tensor


def read_payload(path: Path, datatypes: dict[str, str] | None = None) -> Request:
    """The request a payload file describes; errors name the file and the input."""
    import tritonclient.http as httpclient

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MmepackError(f"{path}: cannot read the payload file ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise MmepackError(f"{path}: not valid JSON ({exc})") from None
    inputs = document.get("inputs") if isinstance(document, dict) else None
    if not isinstance(inputs, dict) or not inputs:
        raise MmepackError(
            f'{path}: expected an object with "inputs": {{"<input name>": [values], ...}}'
        )
    known = datatypes or {}
    if known:
        unknown = sorted(set(inputs) - set(known))
        if unknown:
            raise MmepackError(
                f"{path}: inputs {unknown} are not inputs of the model (it has "
                f"{sorted(known)}); rename them to the names in its config.pbtxt"
            )
    tensors = [
        _tensor(name, spec, known.get(name), f"{path}: inputs.{name}", path.parent)
        for name, spec in inputs.items()
    ]
    outputs = document.get("outputs")
    if outputs is not None and not (
        isinstance(outputs, list) and all(isinstance(o, str) for o in outputs)
    ):
        raise MmepackError(f'{path}: "outputs" must be a list of output names')
    requested = [httpclient.InferRequestedOutput(o, binary_data=True) for o in outputs or []]
    return _request(tensors, requested, str(path))


def _request(tensors: list[Any], outputs: list[Any], source: str) -> Request:
    import tritonclient.http as httpclient

    body, json_size = httpclient.InferenceServerClient.generate_request_body(
        tensors, outputs=outputs or None
    )
    content_type = (
        f"{BINARY_JSON};json-header-size={json_size}"
        if json_size is not None
        else "application/json"
    )
    return Request(body=bytes(body), content_type=content_type, source=source)


def case_requests(model_dir: Path) -> list[Request]:
    """One request per test case of `model_dir` that expects an answer (not an error).

    Cases that expect an error are left out: under load they would count as failures.
    """
    from mmepack.cases import load_cases, read_signature
    from mmepack.cases.invoke import case_tensors

    cases = [c for c in load_cases(model_dir, require_expected=False) if c.expected_error is None]
    if not cases:
        raise MmepackError(
            f"{model_dir}: no test case that expects an answer under {CASES_GLOB}; add one, or "
            "give a payload file with --payload"
        )
    signature = read_signature(model_dir)
    return [_request(case_tensors(case, signature), [], str(case.path)) for case in cases]
