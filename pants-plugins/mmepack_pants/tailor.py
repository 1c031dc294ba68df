"""`pants tailor` for Triton models: a `triton_model` target for every model directory without one.

A model directory is recognised by its `model_version.txt` beside one or more folders holding a
`config.pbtxt`, the layout `mmepack package` builds from; a directory some target already
owns is left alone.

A tailored directory must package, lint and type-check with no hand edit, so tailor writes all
it needs into the model directory's own BUILD file: the `triton_model` with the DVC
configuration as a dependency when any `.dvc` file tracks weights (without it the package step
cannot pull them), and one `python_sources` for the Python steps' `model.py` files with mypy
skipped, because they import `triton_python_backend_utils`, which exists only inside Triton.
`skip_mypy` is written only where the mypy backend is enabled: elsewhere the field does not
exist and the BUILD file would not parse.
Pants' own Python tailor would instead put a BUILD file in every version folder (one that
`check` then fails, and that used to land in the artifact); `[tailor].ignore_paths` in
pants.toml keeps it out of version folders and `weights/`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Tuple, Union

from pants.backend.python.target_types import PythonSourcesGeneratorTarget
from pants.backend.python.typecheck.mypy.skip_field import SkipMyPyField
from pants.core.goals.tailor import (
    AllOwnedSources,
    PutativeTarget,
    PutativeTargets,
    PutativeTargetsRequest,
)
from pants.engine.fs import PathGlobs
from pants.engine.rules import collect_rules, rule
from pants.engine.unions import UnionMembership, UnionRule
from pants.util.logging import LogLevel

from mmepack_contract import CONFIG_FILE, VERSION_FILE
from mmepack_pants import engine
from mmepack_pants.subsystem import MmepackSubsystem
from mmepack_pants.target_types import TritonModelTarget

# Triton's Python backend loads `model.py` from each version folder of a step.
STEP_SOURCES = "*/*/model.py"
STEPS_TARGET = "steps"


@dataclass(frozen=True)
class PutativeTritonModelTargetsRequest(PutativeTargetsRequest):
    pass


@rule(level=LogLevel.DEBUG, desc="Find Triton model directories without a triton_model target")
async def find_putative_triton_models(
    request: PutativeTritonModelTargetsRequest,
    all_owned_sources: AllOwnedSources,
    subsystem: MmepackSubsystem,
    union_membership: UnionMembership,
) -> PutativeTargets:
    mypy = PythonSourcesGeneratorTarget.class_has_field(SkipMyPyField, union_membership)
    steps_kwargs: Dict[str, Union[str, int, bool, Tuple[str, ...]]] = {"sources": (STEP_SOURCES,)}
    if mypy:
        steps_kwargs["skip_mypy"] = True
    version_files = await engine.paths(request.path_globs(VERSION_FILE))
    unowned = sorted(set(version_files.files) - set(all_owned_sources))
    model_dirs = [os.path.dirname(path) for path in unowned]
    configs, dvc_files, step_files = await engine.paths_each(
        [
            PathGlobs([os.path.join(d, "*", CONFIG_FILE) for d in model_dirs]),
            PathGlobs([os.path.join(d, "**", "*.dvc") for d in model_dirs]),
            PathGlobs([os.path.join(d, STEP_SOURCES) for d in model_dirs]),
        ]
    )
    owned = set(all_owned_sources)
    targets = []
    for model_dir in model_dirs:
        prefix = f"{model_dir}/" if model_dir else ""
        if not any(path.startswith(prefix) for path in configs.files):
            continue
        tracks_weights = any(path.startswith(prefix) for path in dvc_files.files)
        kwargs = {"dependencies": (subsystem.dvc_target,)} if tracks_weights else {}
        targets.append(
            PutativeTarget.for_target_type(
                TritonModelTarget,
                path=model_dir,
                name=os.path.basename(model_dir) or None,
                triggering_sources=[VERSION_FILE],
                kwargs=kwargs,
            )
        )
        steps = sorted(
            os.path.relpath(path, model_dir or ".")
            for path in step_files.files
            if path.startswith(prefix) and path not in owned
        )
        if steps:
            targets.append(
                PutativeTarget.for_target_type(
                    PythonSourcesGeneratorTarget,
                    path=model_dir,
                    name=STEPS_TARGET,
                    triggering_sources=steps,
                    kwargs=steps_kwargs,
                    comments=(
                        "# The Python steps: black-formatted, not type-checked (Triton supplies",
                        "# triton_python_backend_utils only inside the server).",
                    ),
                )
            )
    return PutativeTargets(targets)


def rules():
    return [
        *collect_rules(),
        UnionRule(PutativeTargetsRequest, PutativeTritonModelTargetsRequest),
    ]
