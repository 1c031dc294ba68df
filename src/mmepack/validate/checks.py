"""Static checks of Triton model directories, before anything is packaged or served.

A broken config otherwise shows up late and one mistake at a time: Triton stops loading at the
first error it meets, and under SageMaker MME that happens on the first invoke of a published
artifact. These checks read only the files, so they run in CI and editors in milliseconds, and
they report every problem at once, each with its file, line and config field.

What is checked mirrors Triton's own load-time validation (`mmepack.validate.model_checks` for
one model, `mmepack.validate.ensemble` for the ensemble) plus the rules the packager and
SageMaker MME add: the packaging rules shared with `mmepack package` (`mmepack.model.rules`),
`model_version.txt`, the requirements file, and SageMaker's ensemble pattern in other models.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mmepack.errors import MmepackError
from mmepack.model.config import ConfigSchemaError, Problem, Severity
from mmepack.model.repository import ModelDirectory, TritonModel, model_folders, read_triton_model
from mmepack.model.rules import SAGEMAKER_ENSEMBLE_RE, packaging_problems, top_ensembles
from mmepack.model.version import artifact_name, read_model_version
from mmepack.model.weights import TrackedFile
from mmepack.names import (
    CONFIG_FILE,
    ENV_ARCHIVE,
    ENV_PATH_PARAMETER,
    MODEL_DIR_VARIABLE,
    REQUIREMENTS_FILE,
    VERSION_FILE,
)
from mmepack.validate.ensemble import check_ensemble
from mmepack.validate.ensemble_graph import check_decoupled_branches, check_ensemble_cycles
from mmepack.validate.ensemble_outputs import ensemble_output_warnings
from mmepack.validate.fil_config import check_fil_config
from mmepack.validate.lock import check_lock
from mmepack.validate.model_checks import check_model
from mmepack.validate.onnx_files import check_onnx_files
from mmepack.validate.safety import (
    check_env_collisions,
    check_model_files,
    check_model_files_and_weights,
)
from mmepack.validate.triton_rules import check_triton_rules

__all__ = [
    "Problem",
    "Severity",
    "Validation",
    "count_errors",
    "discover_model_directories",
    "validate_model",
    "validate_model_directory",
    "validate_tree",
]

# S3 object keys are at most 1024 bytes, as is SageMaker's TargetModel.
_MAX_KEY_BYTES = 1024
# The artifact is a file before it is an object: its name must fit a file system.
_MAX_FILE_NAME_BYTES = 255

# Folders that never hold model directories; skipping them keeps a tree walk fast.
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "dist", "venv", "site-packages"})


def _read_model(folder: Path, problems: list[Problem]) -> TritonModel | None:
    """The parsed model, or None with the reason added to `problems`."""
    try:
        return read_triton_model(folder)
    except ConfigSchemaError as exc:
        problems.append(exc.problem)
        return None


def _check_version_file(root: Path, deployable: str | None) -> list[Problem]:
    path = root / VERSION_FILE
    try:
        version = read_model_version(root)
    except MmepackError as exc:
        message = str(exc).split(": ", 1)[-1]
        # The Problem already names the file and line; drop read_model_version's copy of them.
        for prefix in (f"{path}:1: ", f"{path} "):
            message = message.removeprefix(prefix)
        line = 1 if path.is_file() else None
        return [Problem(path, line, VERSION_FILE, message)]
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(path, None, VERSION_FILE, f"cannot read: {exc}")]
    if deployable is None:
        return []
    key = artifact_name(deployable, version)
    if len(key.encode("utf-8")) > _MAX_FILE_NAME_BYTES:
        return [
            Problem(
                path,
                1,
                VERSION_FILE,
                f"artifact name {key[:60]!r}... is longer than {_MAX_FILE_NAME_BYTES} bytes, the "
                "limit of a file name; shorten the model name or the version",
            )
        ]
    if len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        return [
            Problem(
                path,
                1,
                VERSION_FILE,
                f"artifact name {key!r} is longer than {_MAX_KEY_BYTES} bytes, the limit of an "
                "S3 key and of SageMaker's TargetModel",
            )
        ]
    return []


def _check_pattern_outside_ensemble(
    models: Sequence[TritonModel], model_count: int
) -> list[Problem]:
    """SageMaker's ensemble pattern must match only the top-level ensemble's config, comments
    and nested ensembles included (a nested one can be written `platform : "ensemble"`).

    `model_count` counts every model folder, also those whose config did not parse: a step
    whose config has an error leaves its ensemble the only parsed model, and that ensemble is
    still the top-level one, not a nested one to blame.
    """
    tops = {m.name for m in top_ensembles(models)} if model_count > 1 else set()
    problems: list[Problem] = []
    for model in models:
        match = None if model.name in tops else SAGEMAKER_ENSEMBLE_RE.search(model.text)
        if match is None:
            continue
        if model.is_ensemble:
            message = (
                "this nested ensemble matches SageMaker's ensemble pattern "
                'platform:(\\s)*"ensemble", so SageMaker may load it instead of the top-level '
                'ensemble; write it as platform : "ensemble" (a space before the colon), which '
                "Triton reads the same"
            )
        else:
            message = (
                'this text matches SageMaker\'s ensemble pattern platform:(\\s)*"ensemble" '
                "(even in a comment), so SageMaker may load this model instead of the "
                "ensemble; reword it"
            )
        problems.append(
            model.problem(model.text.count("\n", 0, match.start()) + 1, "platform", message)
        )
    return problems


def _check_requirements(root: Path, models: Sequence[TritonModel]) -> list[Problem]:
    """requirements.txt exists exactly when some step packs an environment from it."""
    env_users = [m for m in models if m.env_path() is not None]
    requirements = root / REQUIREMENTS_FILE
    if env_users and not requirements.is_file():
        return [
            model.problem(
                model.positions.entry("parameters", "key", ENV_PATH_PARAMETER).line("key"),
                ENV_PATH_PARAMETER,
                f"is set but {requirements} is missing; the packager builds the environment "
                f"from it (list the packages the step imports, e.g. pillow)",
            )
            for model in env_users
        ]
    if requirements.is_file() and not env_users:
        return [
            Problem(
                requirements,
                None,
                REQUIREMENTS_FILE,
                f"no model sets {ENV_PATH_PARAMETER}, so these packages never reach the server; "
                f"set {ENV_PATH_PARAMETER} to '{MODEL_DIR_VARIABLE}{ENV_ARCHIVE}' on the "
                "Python steps that import them, or delete the file",
                "warning",
            )
        ]
    return []


def _problem_order(problem: Problem) -> tuple[str, int, str]:
    return (str(problem.file), problem.line or 0, problem.field)


@dataclass(frozen=True)
class Validation:
    """What validating one model directory found, and what it read on the way, so packaging
    goes on with the parsed models instead of reading the directory again."""

    problems: list[Problem]
    root: Path | None = None
    # Every model folder parsed, in folder order (a config that did not parse is left out).
    models: tuple[TritonModel, ...] = ()
    # Whether every model folder's config parsed.
    all_parsed: bool = False
    # The name SageMaker loads the artifact by (the top ensemble's, else the first folder's).
    deployable: str | None = None
    # The DVC-tracked files the `.dvc` files describe (None when one of them is unreadable).
    weights: list[TrackedFile] | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def directory(self) -> ModelDirectory:
        """The parsed model directory; only for a validation without errors."""
        assert self.root is not None and self.all_parsed and self.models and not self.errors
        return ModelDirectory(root=self.root, models=self.models)


def validate_model_directory(path: Path) -> list[Problem]:
    """Every problem of one deployable model directory (e.g. `models/screen_detector`).

    Never raises for a bad model: unreadable or unparsable configs become Problems and the
    remaining models are still checked, so one run lists everything to fix.
    """
    return validate_model(path).problems


def validate_model(path: Path) -> Validation:
    """`validate_model_directory`, with the parsed models and tracked weights it read."""
    if not path.is_dir():
        return Validation(
            [Problem(path, None, "directory", "not a directory; expected a model directory")]
        )
    folders = model_folders(path)
    if not folders:
        return Validation(
            [
                Problem(
                    path,
                    None,
                    "directory",
                    f"no Triton model found; expected sub-folders holding a {CONFIG_FILE}, e.g. "
                    f"{path}/<model_name>/{CONFIG_FILE}",
                ),
                *check_model_files(path),
            ]
        )
    problems: list[Problem] = []
    parsed = {folder.name: _read_model(folder, problems) for folder in folders}
    models = [m for m in parsed.values() if m is not None]
    versions: dict[str, list[int]] = {}
    for model in models:
        versions[model.name], found = check_model(model)
        problems.extend(found)
        problems.extend(check_triton_rules(model))
        problems.extend(check_fil_config(model))
    problems.extend(packaging_problems(path, models, len(folders)))
    for model in models:
        if model.is_ensemble:
            problems.extend(check_ensemble(model, parsed, versions))
            problems.extend(ensemble_output_warnings(model.config, model.config_path, model.text))
            problems.extend(check_decoupled_branches(model, parsed))
    problems.extend(check_ensemble_cycles(models))
    ensembles = [m.name for m in top_ensembles(models)]
    deployable = ensembles[0] if len(ensembles) == 1 else folders[0].name
    problems.extend(_check_version_file(path, deployable))
    problems.extend(_check_pattern_outside_ensemble(models, len(folders)))
    problems.extend(_check_requirements(path, models))
    problems.extend(check_env_collisions(models))
    file_problems, weights = check_model_files_and_weights(path)
    problems.extend(file_problems)
    problems.extend(check_lock(path))
    problems.extend(check_onnx_files(models, versions))
    return Validation(
        problems=sorted(problems, key=_problem_order),
        root=path,
        models=tuple(models),
        all_parsed=len(models) == len(folders),
        deployable=deployable,
        weights=weights,
    )


def discover_model_directories(root: Path) -> list[Path]:
    """Folders under `root` (itself included) that hold model folders (`*/config.pbtxt`).

    Those without `model_version.txt` are returned too, so that validation reports the missing
    file rather than silently skipping a model nobody can package.
    """
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root):
        current = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and d not in _SKIPPED_DIRS
        )
        if any((current / d / CONFIG_FILE).is_file() for d in dirnames):
            found.append(current)
            dirnames[:] = []  # model folders hold versions, not more model directories
    return found


def validate_tree(root: Path) -> list[Problem]:
    """Every problem of every model directory under `root` (e.g. `models/`)."""
    if not root.is_dir():
        return [Problem(root, None, "directory", "not a directory")]
    directories = discover_model_directories(root)
    if not directories:
        return [
            Problem(
                root,
                None,
                "directory",
                f"no model directory found; expected folders holding {VERSION_FILE} beside "
                f"<model>/{CONFIG_FILE} folders",
            )
        ]
    problems: list[Problem] = []
    for directory in directories:
        problems.extend(validate_model_directory(directory))
    return problems


def count_errors(problems: Sequence[Problem]) -> int:
    """Problems that fail validation; warnings inform but never fail a build."""
    return sum(1 for p in problems if p.severity == "error")
