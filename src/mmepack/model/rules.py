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
from mmepack_contract import SAGEMAKER_ENSEMBLE_PATTERN

if TYPE_CHECKING:
    from mmepack.model.repository import TritonModel

ENSEMBLE_PLATFORM = "ensemble"

# SageMaker's Triton front end picks the ensemble of a multi-model tar with this exact pattern
# over the raw config text, so mmepack applies the same test rather than a parsed comparison.
SAGEMAKER_ENSEMBLE_RE = re.compile(SAGEMAKER_ENSEMBLE_PATTERN)

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
    """The model SageMaker loads under the TargetModel name must say what runs it.

    SageMaker's front end registers that model under the TargetModel string
    (`<model>_<version>.tar.gz`); where Triton cannot tell the backend from the version folder's
    file names it falls back to the text after the name's first dot, i.e. `tar.gz`. A step
    model keeps its folder name, so Triton infers its backend from its model file as usual
    (`mmepack.validate.triton_rules` checks that it can): only the loaded model needs this rule.
    """
    if model.platform or model.backend:
        return []
    return [
        model.problem(
            None,
            "platform",
            "neither 'platform' nor 'backend' is set on the model SageMaker loads; set one "
            '(e.g. backend: "python"), since SageMaker MME loads it under the TargetModel name '
            "and Triton may guess the backend from that name (the text after its first dot)",
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


def step_model_names(model: TritonModel) -> set[str]:
    """The models an ensemble's steps name (empty for any other model)."""
    if not model.is_ensemble:
        return set()
    return {str(step.model_name) for step in model.config.ensemble_scheduling.step}


def top_ensembles(models: Sequence[TritonModel]) -> list[TritonModel]:
    """Ensembles no other ensemble of the directory uses as a step: the ones SageMaker may load.

    Triton allows an ensemble as a step of another (nested ensembles); the inner one is then
    loaded as a dependency, not as the entry point.
    """
    nested = {
        name
        for model in models
        for name in step_model_names(model)
        if name != model.name  # a self-reference is a cycle, reported by validate
    }
    return [m for m in models if m.is_ensemble and m.name not in nested]


def one_ensemble(root: Path, models: Sequence[TritonModel], model_count: int) -> list[Problem]:
    """A multi-model tar is served through one top-level ensemble; SageMaker cannot pick among
    more (it takes the last pattern match in directory order, which no file system fixes).

    `model_count` counts every model folder, also those whose config did not parse. Nested
    ensembles are legal: only ensembles no other ensemble uses count.
    """
    ensembles = top_ensembles(models)
    if model_count <= 1 or len(ensembles) == 1:
        return []
    found = ", ".join(m.name for m in ensembles) or "none"
    return [
        Problem(
            root,
            None,
            "ensemble",
            f"holds {model_count} Triton models and {len(ensembles)} top-level ensembles "
            f"({found}); a multi-model SageMaker MME package needs exactly one ensemble "
            '(platform: "ensemble") that no other ensemble uses as a step',
        )
    ]


def sagemaker_finds_ensemble(model: TritonModel, is_top: bool) -> list[Problem]:
    """SageMaker matches the raw text, so `platform: 'ensemble'` parses but is never found.

    Only the top-level ensemble must match; a nested one must not (see
    `mmepack.validate.checks`), or SageMaker could load it instead.
    """
    if not is_top or SAGEMAKER_ENSEMBLE_RE.search(model.text):
        return []
    return [
        model.problem(
            model.positions.line("platform"),
            "platform",
            'SageMaker finds the ensemble with the pattern platform:(\\s)*"ensemble"; write the '
            'line exactly as platform: "ensemble" (double quotes, nothing between)',
        )
    ]


def model_problems(model: TritonModel, is_target: bool, is_top: bool) -> list[Problem]:
    """The packaging rules about one model folder; `is_target` marks the model SageMaker loads
    (the single model of its directory), `is_top` an ensemble no other ensemble uses."""
    return [
        *name_matches_folder(model),
        *(platform_or_backend_set(model) if is_target else []),
        *env_path_shape(model),
        *sagemaker_finds_ensemble(model, is_top),
    ]


def packaging_problems(
    root: Path, models: Sequence[TritonModel], model_count: int
) -> list[Problem]:
    """Every packaging rule over a model directory's parsed models, in model order."""
    tops = {m.name for m in top_ensembles(models)}
    problems = [
        problem
        for model in models
        for problem in model_problems(model, model_count == 1, model.name in tops)
    ]
    return problems + one_ensemble(root, models, model_count)
