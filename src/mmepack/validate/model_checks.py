"""Checks of one Triton model folder on its own: name, versions, model file, instances, Python.

Mirrors what Triton checks when it loads one model (`model_config_utils.cc`, the version rules
of `model_lifecycle.cc`) and what a Python step needs from its packed environment. The rules
that decide whether a directory can be packaged at all live in `mmepack.model.rules`.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from mmepack.errors import MmepackError
from mmepack.model.config import Problem, instance_kind_name
from mmepack.model.repository import TritonModel
from mmepack.model.version import check_folder_name, check_model_name
from mmepack.names import ENV_ARCHIVE, ENV_PATH_PARAMETER, MODEL_DIR_VARIABLE, REQUIREMENTS_FILE
from mmepack.triton.local_backends import FIL_BACKEND
from mmepack.validate.fil_config import fil_model_file
from mmepack.validate.triton_rules import (
    custom_backend_of,
    inferred_platform_backend,
    version_folder_contents,
)

# Sub-folders Triton never treats as versions (model_lifecycle.cc skips them by name).
_NON_VERSION_FOLDERS = frozenset({"warmup", "initial_state", "configs"})
_VERSION_FOLDER_RE = re.compile(r"[1-9][0-9]*")

# The file each platform or backend loads from a version folder unless default_model_filename
# says otherwise; unknown (custom) backends are not checked.
_PLATFORM_FILES = {
    "onnxruntime_onnx": "model.onnx",
    "tensorrt_plan": "model.plan",
    "pytorch_libtorch": "model.pt",
    "tensorflow_savedmodel": "model.savedmodel",
    "tensorflow_graphdef": "model.graphdef",
}
_BACKEND_FILES = {
    "onnxruntime": "model.onnx",
    "python": "model.py",
    "tensorrt": "model.plan",
    "pytorch": "model.pt",
    "tensorflow": "model.savedmodel",
    "openvino": "model.xml",
}

# Modules every Triton Python stub can import without a packed environment.
_STUB_PROVIDED_MODULES = frozenset({"triton_python_backend_utils", "numpy"})


def check_name_is_a_key(model: TritonModel) -> list[Problem]:
    """The folder name becomes part of an S3 key and SageMaker's TargetModel; a step in
    Triton's custom-backend form `<name>.<backend>` keeps its dot."""
    try:
        if model.names_its_backend:
            check_folder_name(model.name, model.folder)
        else:
            check_model_name(model.name, model.folder)
    except MmepackError:
        return [
            model.problem(
                model.positions.line("name"),
                "name",
                f"model name {model.name!r} is not valid for an MME artifact; use letters, "
                "digits, '_' and '-', starting with a letter or digit (a step that sets no "
                "platform or backend may end in .<backend>, Triton's custom-backend form)",
            )
        ]
    return []


def check_scheduling_kind(model: TritonModel) -> list[Problem]:
    if not model.is_ensemble and model.config.HasField("ensemble_scheduling"):
        return [
            model.problem(
                model.positions.line("ensemble_scheduling"),
                "ensemble_scheduling",
                'ensemble_scheduling is only allowed with platform: "ensemble"',
            )
        ]
    return []


def _version_folders(model: TritonModel) -> tuple[list[int], list[Problem]]:
    """The numeric version folders, and a warning for each folder Triton would misread."""
    problems: list[Problem] = []
    versions: list[int] = []
    try:
        subdirs = sorted(p for p in model.folder.iterdir() if p.is_dir())
    except OSError:
        subdirs = []
    for sub in subdirs:
        name = sub.name
        if name in _NON_VERSION_FOLDERS or name.startswith(".") or name == "__pycache__":
            continue
        if _VERSION_FOLDER_RE.fullmatch(name):
            versions.append(int(name))
        else:
            problems.append(
                Problem(
                    sub,
                    None,
                    "version",
                    f"folder {name!r} is not a positive integer without leading zeros; Triton "
                    "ignores it (or misreads it) as a version folder",
                    "warning",
                )
            )
    if model.is_ensemble and not versions:
        # The packager adds the ensemble's empty `1/`, which git cannot hold.
        versions = [1]
    return sorted(versions, reverse=True), problems


def _apply_version_policy(
    model: TritonModel, available: list[int]
) -> tuple[list[int], list[Problem]]:
    """The versions the policy loads (newest first in `available`) and warnings about it."""
    policy = model.config.version_policy
    choice = policy.WhichOneof("policy_choice") if model.config.HasField("version_policy") else None
    if choice == "all":
        return available, []
    if choice != "specific":
        count = int(policy.latest.num_versions) if choice == "latest" else 1
        return available[:count], []
    problems: list[Problem] = []
    wanted = [int(v) for v in policy.specific.versions]
    listed = model.positions.child("version_policy").child("specific")
    for index, version in enumerate(wanted):
        if version not in available:
            problems.append(
                model.problem(
                    listed.line("versions", index) or model.positions.line("version_policy"),
                    "version_policy",
                    f"specific version {version} has no version folder {version}/; Triton "
                    "skips it",
                    "warning",
                )
            )
    return [v for v in available if v in wanted], problems


def check_versions(model: TritonModel) -> tuple[list[int], list[Problem]]:
    """The versions Triton would load (at least one is needed), and what is wrong with them."""
    available, problems = _version_folders(model)
    selected, policy_problems = _apply_version_policy(model, available)
    problems.extend(policy_problems)
    if not selected:
        if not available:
            message = "no version folder (e.g. 1/); Triton needs at least one to load the model"
        else:
            listed = ", ".join(str(v) for v in sorted(available))
            message = (
                f"the version policy selects none of the version folders ({listed}); Triton "
                "refuses to load a model with no version to serve"
            )
        problems.append(
            model.problem(model.positions.line("version_policy"), "version_policy", message)
        )
    return sorted(selected), problems


def expected_model_file(model: TritonModel) -> str | None:
    """The file Triton loads from each version folder; platform and backend as Triton infers
    them when the config leaves them out."""
    configured = str(model.config.default_model_filename)
    if configured:
        return configured
    platform, backend = inferred_platform_backend(model)
    if platform in _PLATFORM_FILES:
        return _PLATFORM_FILES[platform]
    if backend == FIL_BACKEND:
        return fil_model_file(model.config)
    standard = _BACKEND_FILES.get(backend)
    if standard and model.names_its_backend and backend == custom_backend_of(model.name):
        # Triton's file probe runs first; only without the usual file does the custom-backend
        # fallback name the backend, and then it reads model.<backend>.
        _, files, _ = version_folder_contents(model.folder)
        return standard if standard in files else f"model.{backend}"
    return standard


def _is_present_or_tracked(path: Path) -> bool:
    """The file is there, or DVC tracks it (`<file>.dvc`, or `<version>.dvc` for the folder)."""
    if path.exists():
        return True
    if path.with_name(path.name + ".dvc").is_file():
        return True
    version_dir = path.parent
    return version_dir.with_name(version_dir.name + ".dvc").is_file()


def check_model_file(model: TritonModel, versions: list[int]) -> list[Problem]:
    """Each loaded version folder holds the file the platform or backend loads (or its .dvc)."""
    if model.is_ensemble:
        return []
    filename = expected_model_file(model)
    if filename is None:
        return []
    if model.config.default_model_filename:
        line = model.positions.line("default_model_filename")
        source = "default_model_filename"
    elif model.platform in _PLATFORM_FILES:
        line = model.positions.line("platform")
        source = f"platform {model.platform!r}"
    else:
        line = model.positions.line("backend")
        source = f"backend {inferred_platform_backend(model)[1]!r}"
    problems: list[Problem] = []
    for version in versions:
        path = model.folder / str(version) / filename
        if not _is_present_or_tracked(path):
            problems.append(
                model.problem(
                    line,
                    "default_model_filename",
                    f"{version}/{filename} is missing (no file and no {filename}.dvc beside it); "
                    f"{source} loads it from every version folder",
                )
            )
    return problems


def check_instance_groups(model: TritonModel) -> list[Problem]:
    groups = list(model.config.instance_group)
    if model.is_ensemble and groups:
        return [
            model.problem(
                model.positions.line("instance_group"),
                "instance_group",
                "an ensemble must not set instance_group; Triton runs its steps' instances",
            )
        ]
    problems: list[Problem] = []
    for index, group in enumerate(groups):
        if instance_kind_name(group.kind) == "KIND_GPU":
            line = model.positions.child("instance_group", index).line("kind")
            problems.append(
                model.problem(
                    line or model.positions.line("instance_group"),
                    "instance_group",
                    "KIND_GPU needs a GPU host; fails to load on CPU-only test machines (leave "
                    "instance_group out to let Triton pick the GPU when there is one)",
                    "warning",
                )
            )
    return problems


def _statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """Every statement, nested ones included, without visiting expressions (imports are
    statements, and skipping expressions makes this several times cheaper than ast.walk)."""
    for statement in body:
        yield statement
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            nested = getattr(statement, name, None)
            if isinstance(nested, list):
                yield from _statements([n for n in nested if isinstance(n, ast.stmt)])
                for child in nested:
                    if isinstance(child, (ast.ExceptHandler, ast.match_case)):
                        yield from _statements(child.body)


def _third_party_imports(path: Path) -> tuple[list[str], SyntaxError | None]:
    """Top-level modules a model.py imports that neither the stdlib nor the stub provide."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        return [], exc
    except (OSError, UnicodeDecodeError, ValueError):
        return [], None
    found: set[str] = set()
    for node in _statements(tree.body):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in _STUB_PROVIDED_MODULES:
                found.add(top)
    return sorted(found), None


def check_python_step(model: TritonModel, versions: list[int]) -> list[Problem]:
    """A Python step that imports third-party packages needs a packed environment."""
    if inferred_platform_backend(model)[1] != "python":
        return []
    problems: list[Problem] = []
    filename = expected_model_file(model) or "model.py"
    for version in versions:
        path = model.folder / str(version) / filename
        if not path.is_file():
            continue
        imports, error = _third_party_imports(path)
        if error is not None:
            problems.append(Problem(path, error.lineno, "model.py", f"does not parse: {error.msg}"))
        elif imports and model.env_path() is None:
            problems.append(
                Problem(
                    path,
                    None,
                    ENV_PATH_PARAMETER,
                    f"imports {', '.join(imports)} but {model.config_path} sets no "
                    f"{ENV_PATH_PARAMETER}; the server's Python will not have them (list them in "
                    f"{REQUIREMENTS_FILE} and point {ENV_PATH_PARAMETER} at "
                    f"{MODEL_DIR_VARIABLE}{ENV_ARCHIVE})",
                    "warning",
                )
            )
    return problems


def check_model(model: TritonModel) -> tuple[list[int], list[Problem]]:
    """Every check of one model folder; also returns the versions its policy loads."""
    versions, version_problems = check_versions(model)
    problems = [
        *check_name_is_a_key(model),
        *check_scheduling_kind(model),
        *version_problems,
        *check_model_file(model, versions),
        *check_instance_groups(model),
        *check_python_step(model, versions),
    ]
    return versions, problems
