"""The packaging rules: what a model directory must satisfy to become one SageMaker MME artifact.

Triton accepts more than an MME artifact can carry: a name that differs from its folder, a
backend guessed from the model name, an environment path outside the model folder, several
ensembles. These rules are the ones `mmepack validate` reports and `mmepack package` refuses,
written once here so the two can never disagree; both call `packaging_problems`, validate to
list the findings beside its own, package (through `read_model_directory`) to stop on errors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mmepack.model.config import Problem
from mmepack.names import ENV_ARCHIVE, ENV_PATH_PARAMETER, MODEL_DIR_VARIABLE

if TYPE_CHECKING:
    from mmepack.model.repository import TritonModel

ENSEMBLE_PLATFORM = "ensemble"

# SageMaker's Triton front end picks the ensemble of a multi-model tar with this exact pattern
# over the raw config text, so mmepack applies the same test rather than a parsed comparison.
SAGEMAKER_ENSEMBLE_RE = re.compile(r'platform:(\s)*"ensemble"')

_ENV_EXAMPLE = f"'{MODEL_DIR_VARIABLE}{ENV_ARCHIVE}'"


def name_matches_folder(model: TritonModel) -> list[Problem]:
    """Triton loads a model only from the folder of its own name."""
    declared = str(model.config.name)
    if not declared or declared == model.name:
        return []
    return [
        model.problem(
            model.positions.line("name"),
            "name",
            f"name is {declared!r} but the folder is {model.name!r}; Triton requires them to "
            "match, rename one of them",
        )
    ]


def platform_or_backend_set(model: TritonModel) -> list[Problem]:
    """Under MME the model name is the TargetModel string, so Triton's guess would misfire."""
    if model.platform or model.backend:
        return []
    return [
        model.problem(
            None,
            "platform",
            "neither 'platform' nor 'backend' is set; set one explicitly (e.g. "
            'backend: "python"), since under SageMaker MME Triton would guess it from the model '
            "name",
        )
    ]


def env_path_relpath(raw: str) -> str | None:
    """The archive's path inside the model folder, or None when `raw` is not of that shape."""
    if not raw.startswith(MODEL_DIR_VARIABLE):
        return None
    rel = raw[len(MODEL_DIR_VARIABLE) :]
    path = PurePosixPath(rel)
    if not rel or ".." in path.parts or path.is_absolute() or not rel.endswith(".tar.gz"):
        return None
    return rel


def env_path_shape(model: TritonModel) -> list[Problem]:
    """EXECUTION_ENV_PATH must name a .tar.gz inside the model folder, relative to it."""
    raw = model.env_path()
    if raw is None or env_path_relpath(raw) is not None:
        return []
    line = model.positions.entry("parameters", "key", ENV_PATH_PARAMETER).line("key")
    if not raw.startswith(MODEL_DIR_VARIABLE):
        message = (
            f"{raw!r} must start with '{MODEL_DIR_VARIABLE}', because the host path of an MME "
            f"model is only known at load time, e.g. {_ENV_EXAMPLE}"
        )
    else:
        message = (
            f"{raw!r} must name a .tar.gz inside the model folder (no '..'), e.g. {_ENV_EXAMPLE}"
        )
    return [model.problem(line, ENV_PATH_PARAMETER, message)]


def one_ensemble(root: Path, models: Sequence[TritonModel], model_count: int) -> list[Problem]:
    """A multi-model tar is served through its one ensemble; SageMaker cannot pick among more.

    `model_count` counts every model folder, also those whose config did not parse.
    """
    ensembles = [m for m in models if m.is_ensemble]
    if model_count <= 1 or len(ensembles) == 1:
        return []
    found = ", ".join(m.name for m in ensembles) or "none"
    return [
        Problem(
            root,
            None,
            "ensemble",
            f"holds {model_count} Triton models and {len(ensembles)} ensembles ({found}); a "
            'multi-model SageMaker MME package needs exactly one ensemble (platform: "ensemble")',
        )
    ]


def sagemaker_finds_ensemble(model: TritonModel) -> list[Problem]:
    """SageMaker matches the raw text, so `platform: 'ensemble'` parses but is never found."""
    if not model.is_ensemble or SAGEMAKER_ENSEMBLE_RE.search(model.text):
        return []
    return [
        model.problem(
            model.positions.line("platform"),
            "platform",
            'SageMaker finds the ensemble with the pattern platform:(\\s)*"ensemble"; write the '
            'line exactly as platform: "ensemble" (double quotes, nothing between)',
        )
    ]


def model_problems(model: TritonModel) -> list[Problem]:
    """The packaging rules about one model folder on its own."""
    return [
        *name_matches_folder(model),
        *platform_or_backend_set(model),
        *env_path_shape(model),
        *sagemaker_finds_ensemble(model),
    ]


def packaging_problems(
    root: Path, models: Sequence[TritonModel], model_count: int
) -> list[Problem]:
    """Every packaging rule over a model directory's parsed models, in model order."""
    problems = [problem for model in models for problem in model_problems(model)]
    return problems + one_ensemble(root, models, model_count)
