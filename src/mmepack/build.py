"""The whole packaging path for one model directory, shared by the CLI and the Pants plugin.

Order matters for the user: cheap checks (version file, configs, weights) run before the
minutes-long environment build, so a typo fails in a second rather than after pip.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mmepack.errors import MmepackError
from mmepack.model_repository import read_model_directory
from mmepack.model_version import read_model_version
from mmepack.packager import PackageResult, write_artifact
from mmepack.python_env import build_portable_env
from mmepack.weights import pull_weights, tracked_files, verify_weights

REQUIREMENTS_FILE = "requirements.txt"
DEFAULT_PYTHON = "3.11"


def package_model(
    model_dir: Path,
    output_dir: Path,
    *,
    env_archive: Path | None = None,
    pull: bool = False,
    repo_root: Path | None = None,
    python_minor: str = DEFAULT_PYTHON,
) -> PackageResult:
    """Check, optionally pull weights, build the environment if none is given, write the tar."""
    version = read_model_version(model_dir)
    directory = read_model_directory(model_dir)
    weights = tracked_files(model_dir)
    if pull:
        pull_weights(directory.name, repo_root or Path.cwd(), weights)
    verify_weights(directory.name, weights)
    needs_env = bool(directory.python_env_models())
    if not needs_env:
        return write_artifact(directory, version, output_dir, None, weights)
    if env_archive is not None:
        if not env_archive.is_file():
            raise MmepackError(f"model '{directory.name}': environment {env_archive} is missing")
        return write_artifact(directory, version, output_dir, env_archive, weights)
    with tempfile.TemporaryDirectory(prefix="mmepack-env-") as scratch:
        built = build_portable_env(
            model_dir / REQUIREMENTS_FILE,
            python_minor,
            Path(scratch) / "python_env.tar.gz",
            label=directory.name,
        )
        return write_artifact(directory, version, output_dir, built.output, weights)
