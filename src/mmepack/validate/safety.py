"""Validation's view of what the packager refuses to ship, so `validate` and `package` agree.

The rules live in `mmepack.artifact.safe_files` (files of a model folder) and
`mmepack.model.weights` (where `.dvc` files may point, and `mmepack.model.drift`: whether the
working copy is what they record); this step turns their findings into
Problems with the path to fix, next to the config checks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mmepack.artifact.safe_files import config_entry_problem, scan_model_folder
from mmepack.errors import MmepackError
from mmepack.model.config import Problem
from mmepack.model.drift import find_drift
from mmepack.model.repository import TritonModel
from mmepack.model.rules import env_path_relpath
from mmepack.model.weights import TrackedFile, tracked_files
from mmepack.names import CONFIG_FILE, ENV_PATH_PARAMETER, STUB_NAME


def config_entries(root: Path) -> list[Path]:
    """Every sub-folder with an entry named config.pbtxt, whatever kind of entry it is."""
    try:
        children = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return []
    return [
        root / child.name
        for child in children
        if os.path.lexists(os.path.join(child.path, CONFIG_FILE))
    ]


def check_model_files(root: Path) -> list[Problem]:
    """Unsafe entries in every model folder, unreadable configs, bad `.dvc` files, and
    DVC-tracked working copies whose bytes differ from their record (`mmepack.model.drift`)."""
    problems, _ = check_model_files_and_weights(root)
    return problems


def check_model_files_and_weights(root: Path) -> tuple[list[Problem], list[TrackedFile] | None]:
    """`check_model_files`, and the DVC-tracked files it read (None when a `.dvc` file is bad),
    so packaging goes on with them instead of reading the `.dvc` files again."""
    problems: list[Problem] = []
    for folder in config_entries(root):
        config = folder / CONFIG_FILE
        reason = config_entry_problem(config)
        if reason is not None:
            problems.append(Problem(config, None, "file", reason))
        for unsafe in scan_model_folder(folder, root).unsafe:
            if unsafe.path != config:
                problems.append(Problem(unsafe.path, None, "file", unsafe.reason))
    try:
        tracked = tracked_files(root)
    except MmepackError as exc:
        problems.append(Problem(root, None, "dvc", str(exc)))
        return problems, None
    for drift in find_drift(tracked):
        problems.append(Problem(drift.tracked.path, None, "dvc", drift.describe()))
    return problems, tracked


def check_env_collisions(models: Sequence[TritonModel]) -> list[Problem]:
    """The packager writes each step's environment (and maybe a stub) into its model folder; a
    file already there would be silently replaced, so it is an error."""
    problems: list[Problem] = []
    for model in models:
        raw = model.env_path()
        rel = env_path_relpath(raw) if raw is not None else None
        if rel is None:
            continue
        line = model.positions.entry("parameters", "key", ENV_PATH_PARAMETER).line("key")
        for placed, what in ((rel, "the packed environment"), (STUB_NAME, "the Python stub")):
            target = model.folder / placed
            if os.path.lexists(target):
                problems.append(
                    model.problem(
                        line,
                        ENV_PATH_PARAMETER,
                        f"the packager writes {what} to {target}, but a file is already there "
                        f"and would be silently replaced; rename it or point "
                        f"{ENV_PATH_PARAMETER} elsewhere",
                    )
                )
    return problems
