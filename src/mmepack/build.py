"""The whole packaging path for one model directory, shared by the CLI and the Pants plugin.

Order matters for the user: cheap checks (version file, configs, weights, whether the target
server can run the environment's Python) run before the minutes-long environment build, so a
typo fails in a second rather than after pip.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from mmepack.environment.cache import EnvCache
from mmepack.errors import MmepackError
from mmepack.model.repository import read_model_directory
from mmepack.model.version import read_model_version
from mmepack.artifact.writer import PackageResult, write_artifact
from mmepack.environment.build import EnvRequest, build_environment
from mmepack.model.weights import pull_weights, tracked_files, verify_weights
from mmepack.names import ENV_ARCHIVE, REQUIREMENTS_FILE, STUB_NAME
from mmepack.triton.target import stub_for

DEFAULT_PYTHON = "3.11"


def package_model(
    model_dir: Path,
    output_dir: Path,
    *,
    env_archive: Path | None = None,
    stub: Path | None = None,
    pull: bool = False,
    repo_root: Path | None = None,
    env_request: EnvRequest | None = None,
    env_cache: EnvCache | None = None,
) -> PackageResult:
    """Check, optionally pull weights, build the environment if none is given, write the tar.

    `env_request` says how to build the environment (Python, builder, target server); its
    requirements path is ignored in favour of the model's own requirements.txt.
    """
    version = read_model_version(model_dir)
    directory = read_model_directory(model_dir)
    weights = tracked_files(model_dir)
    if pull:
        pull_weights(directory.name, repo_root or Path.cwd(), weights)
    verify_weights(directory.name, weights)
    if not directory.python_env_models():
        return write_artifact(directory, version, output_dir, None, weights)
    request = replace(
        env_request or EnvRequest(Path(REQUIREMENTS_FILE), DEFAULT_PYTHON),
        requirements=model_dir / REQUIREMENTS_FILE,
        label=directory.name,
    )
    if env_archive is not None:
        if not env_archive.is_file():
            raise MmepackError(f"model '{directory.name}': environment {env_archive} is missing")
        if stub is None:
            stub = stub_for(request.target, request.python, directory.name)
        elif not stub.is_file():
            raise MmepackError(f"model '{directory.name}': {STUB_NAME} {stub} is missing")
        return write_artifact(directory, version, output_dir, env_archive, weights, stub)
    with tempfile.TemporaryDirectory(prefix="mmepack-env-") as scratch:
        built = build_environment(
            request,
            Path(scratch) / ENV_ARCHIVE,
            stub_output=Path(scratch) / STUB_NAME,
            cache=env_cache,
        )
        return write_artifact(directory, version, output_dir, built.archive, weights, built.stub)
