"""ONNX model files against the ONNX Runtime of the target Triton release.

The `onnx` package writes the newest IR version it knows by default, and a newer onnxruntime on
a developer's machine loads it; the endpoint's Triton ships an older ONNX Runtime that refuses
it at load time ("Unsupported model IR version"), which under SageMaker MME is the first invoke
of a published artifact. So lint reads each ONNX file's IR version and opsets (the default
domain's and `ai.onnx.ml`'s, which tree models converted to ONNX-ML use) and compares them with
what the target release accepts (`mmepack.triton.target.ONNX_RUNTIME_BY_TRITON`).

Only the file's header fields are read (no external data). A file that DVC tracks but that was
not pulled is skipped: its absence is not a problem here, and `mmepack package` pulls it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mmepack.errors import MmepackError
from mmepack.model.config import Problem
from mmepack.model.repository import TritonModel
from mmepack.triton.target import TargetServer
from mmepack.validate.model_checks import expected_model_file

_ONNX_PLATFORM = "onnxruntime_onnx"
_ONNX_BACKEND = "onnxruntime"
_DEFAULT_DOMAINS = ("", "ai.onnx")
_ML_DOMAIN = "ai.onnx.ml"


def _is_onnx(model: TritonModel) -> bool:
    """Served by ONNX Runtime, and only by it: a config that pairs the ONNX backend with another
    platform is refused by Triton before any file is read (triton_rules reports that)."""
    platform_ok = model.platform in ("", _ONNX_PLATFORM)
    backend_ok = model.backend in ("", _ONNX_BACKEND)
    return platform_ok and backend_ok and (model.platform or model.backend) != ""


def _fix(limits_ir: int, limits_opset: int) -> str:
    return (
        "re-export with the exporter's opset option (torch.onnx.export(..., "
        f"opset_version={limits_opset}), skl2onnx target_opset={limits_opset}, "
        f"onnx.helper.make_model(..., ir_version={limits_ir}, opset_imports=[make_opsetid('', "
        f"{limits_opset})])), or convert the file: model = onnx.version_converter."
        f"convert_version(onnx.load(path), {limits_opset}); model.ir_version = {limits_ir}; "
        "onnx.save(model, path)"
    )


def _ml_fix(limits_opset: int, limits_ml_opset: int) -> str:
    return (
        "convert the model again for that opset (skl2onnx: convert_sklearn(..., target_opset="
        f"{{'': {limits_opset}, '{_ML_DOMAIN}': {limits_ml_opset}}}); onnxmltools converters "
        "take the same target_opset); onnx.version_converter does not convert this domain"
    )


def check_onnx_file(path: Path, target: TargetServer) -> list[Problem]:
    """Problems of one ONNX file that exists: unreadable, IR version or opset too new."""
    import onnx

    limits = target.onnx_runtime
    where = f"Triton {target.triton_version}'s ONNX Runtime {limits.onnxruntime}"
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError...
        return [Problem(path, None, "onnx", f"not a readable ONNX model ({exc}); re-export it")]
    problems: list[Problem] = []
    fix = _fix(limits.max_ir_version, limits.max_opset)
    if model.ir_version > limits.max_ir_version:
        problems.append(
            Problem(
                path,
                None,
                "ir_version",
                f"IR version {model.ir_version}, but {where} reads at most IR version "
                f"{limits.max_ir_version}, so the endpoint cannot load it; {fix}",
            )
        )
    for opset in model.opset_import:
        if opset.domain in _DEFAULT_DOMAINS and opset.version > limits.max_opset:
            problems.append(
                Problem(
                    path,
                    None,
                    "opset_import",
                    f"opset {opset.version} of the default domain, but {where} implements up "
                    f"to opset {limits.max_opset}; {fix}",
                )
            )
        if opset.domain == _ML_DOMAIN and opset.version > limits.max_ml_opset:
            problems.append(
                Problem(
                    path,
                    None,
                    "opset_import",
                    f"opset {opset.version} of the {_ML_DOMAIN} domain (tree ensembles and other "
                    f"classic ML operators), but {where} implements up to {_ML_DOMAIN} opset "
                    f"{limits.max_ml_opset}, so the endpoint cannot load it; "
                    f"{_ml_fix(limits.max_opset, limits.max_ml_opset)}",
                )
            )
    return problems


def check_onnx_files(
    models: Sequence[TritonModel],
    versions: Mapping[str, list[int]],
    target: TargetServer | None = None,
) -> list[Problem]:
    """Every ONNX file the ONNX Runtime models load, in each version folder Triton loads."""
    target = target or TargetServer()
    problems: list[Problem] = []
    for model in models:
        filename = expected_model_file(model)
        if not _is_onnx(model) or filename is None:
            continue
        for version in versions.get(model.name, []):
            path = model.folder / str(version) / filename
            if not path.is_file():
                continue  # missing: model_checks reports it; DVC-tracked: not pulled yet
            try:
                problems.extend(check_onnx_file(path, target))
            except MmepackError as exc:
                problems.append(Problem(path, None, "onnx", str(exc)))
    return problems
