"""Read and check `model_version.txt`, which decides the artifact's S3 key."""

from __future__ import annotations

import re
from pathlib import Path

from mmepack.errors import MmepackError
from mmepack.files import read_text

# Re-exported for mmepack.publish, which names the file in its refusals.
from mmepack.names import VERSION_FILE as VERSION_FILE
from mmepack_contract import MODEL_VERSION_PATTERN

# The version ends up in an S3 key and in the SageMaker `TargetModel` string, where Triton also
# uses the text after the first dot to guess a backend, so keep it to digits and dots.
_VERSION = MODEL_VERSION_PATTERN
_MODEL_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*"
_VERSION_RE = re.compile(rf"^{_VERSION}$")
_MODEL_NAME_RE = re.compile(rf"^{_MODEL_NAME}$")
# A model folder inside the tar is no S3 key: Triton's `<name>.<backend>` form is allowed there
# (the custom-backend fallback, see mmepack.validate.triton_rules.inferred_platform_backend).
_FOLDER_NAME_RE = re.compile(rf"^{_MODEL_NAME}(\.[A-Za-z0-9_-]+)?$")
# Model names may hold '_'; the version after the last one is digits and dots.
_ARTIFACT_RE = re.compile(rf"^(?P<model>{_MODEL_NAME})_(?P<version>{_VERSION})\.tar\.gz$")


def read_model_version(model_dir: Path) -> str:
    """Return the version in `<model_dir>/model_version.txt`, or explain what is wrong with it."""
    path = model_dir / VERSION_FILE
    if not path.is_file():
        raise MmepackError(
            f"model '{model_dir.name}': {path} is missing; expected a file holding the model's "
            f"version, e.g. `echo 1 > {path}`"
        )
    lines = [line.strip() for line in read_text(path, "version file").splitlines()]
    lines = [line for line in lines if line]
    if len(lines) != 1:
        raise MmepackError(
            f"model '{model_dir.name}': {path} must hold exactly one non-empty line with the "
            f"version (found {len(lines)})"
        )
    version = lines[0]
    if not _VERSION_RE.match(version):
        raise MmepackError(
            f"model '{model_dir.name}': {path}:1: version {version!r} is not valid; expected "
            "digits separated by at most two dots, e.g. `3` or `1.4.2`"
        )
    return version


def check_model_name(name: str, where: Path) -> str:
    """Model names become S3 keys and Triton model names: refuse ones that break either."""
    if not _MODEL_NAME_RE.match(name):
        raise MmepackError(
            f"{where}: model name {name!r} is not valid; use letters, digits, '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_folder_name(name: str, where: Path) -> str:
    """A Triton model folder inside the artifact: a model name, or `<name>.<backend>`."""
    if not _FOLDER_NAME_RE.match(name):
        raise MmepackError(
            f"{where}: model name {name!r} is not valid; use letters, digits, '_' and '-', "
            "starting with a letter or digit, optionally followed by .<backend> (Triton's "
            "custom-backend form)"
        )
    return name


def artifact_name(model: str, version: str) -> str:
    """The SageMaker MME object name, `<model>_<version>.tar.gz`."""
    return f"{model}_{version}.tar.gz"


def parse_artifact_name(path: Path) -> tuple[str, str]:
    """(model, version) from `<model>_<version>.tar.gz`, or explain the expected name."""
    match = _ARTIFACT_RE.match(path.name)
    if match is None:
        raise MmepackError(
            f"{path}: not an mmepack artifact name; expected `<model>_<version>.tar.gz` as "
            "written by `mmepack package`, e.g. screen_detector_1.tar.gz"
        )
    return match.group("model"), match.group("version")
