"""Write one model directory as a SageMaker multi-model endpoint artifact.

Layout (what SageMaker's Triton front end expects of a multi-model tar): every Triton model
folder at the tar root, the ensemble with a version folder even though it holds no files, each
Python step's packed environment where its EXECUTION_ENV_PATH points and, when the target
server's own stub runs another Python, the environment's `triton_python_backend_stub` beside
that step's config.pbtxt. Build inputs (BUILD, tests, `.dvc` files, requirements) stay out.

The tar is reproducible (sorted entries, fixed times and owners) so the same inputs give the same
bytes, which is what lets a publish of an unchanged model be a no-op.
"""

from __future__ import annotations

import gzip
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from mmepack.artifact.bytecode import add_step_bytecode
from mmepack.errors import MmepackError
from mmepack.files import atomic_path
from mmepack.model.repository import ModelDirectory, TritonModel
from mmepack.model.version import artifact_name, check_model_name
from mmepack.model.weights import TrackedFile
from mmepack.names import CONFIG_FILE, ENV_PATH_PARAMETER, REQUIREMENTS_FILE, STUB_NAME

_VERSION_DIR_RE = re.compile(r"^[1-9][0-9]*$")
# Files that describe how to build or track a model, never part of what the server loads.
_EXCLUDED_NAMES = {".gitignore", ".gitkeep", "__pycache__", ".DS_Store"}
_EXCLUDED_SUFFIXES = (".dvc", ".pyc")


@dataclass(frozen=True)
class PackageResult:
    path: Path
    model: str
    version: str
    members: tuple[str, ...]


def _artifact_files(model: TritonModel) -> list[tuple[str, Path]]:
    """(archive name, source file) for every file of one Triton model folder."""
    files: list[tuple[str, Path]] = []
    for path in sorted(model.folder.rglob("*")):
        rel = path.relative_to(model.folder)
        if any(part in _EXCLUDED_NAMES for part in rel.parts) or path.name.endswith(
            _EXCLUDED_SUFFIXES
        ):
            continue
        if path.is_file():
            files.append((f"{model.name}/{rel.as_posix()}", path))
    return files


def _has_version_folder(model: TritonModel) -> bool:
    return any(p.is_dir() and _VERSION_DIR_RE.match(p.name) for p in model.folder.iterdir())


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, source: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = source.stat().st_size
    executable = os.access(source, os.X_OK) or name.endswith(f"/{STUB_NAME}")
    info.mode = 0o755 if executable else 0o644
    with source.open("rb") as handle:
        tar.addfile(info, handle)


def plan_members(
    directory: ModelDirectory,
    env_archive: Path | None,
    weights: list[TrackedFile],
    stub: Path | None = None,
) -> list[tuple[str, Path | None]]:
    """Every tar member in order: (name, source file) or (name, None) for a directory."""
    members: dict[str, Path | None] = {}
    missing_weights = [w for w in weights if not w.path.exists()]
    if missing_weights:
        first = missing_weights[0]
        raise MmepackError(
            f"model '{directory.name}': {first.path} is tracked by {first.dvc_file} but is not "
            "present; pull the weights first (`mmepack pull-weights` or `dvc pull`)"
        )
    for model in directory.models:
        check_model_name(model.name, model.folder / CONFIG_FILE)
        members[f"{model.name}/"] = None
        files = _artifact_files(model)
        for name, source in files:
            parent = name.rsplit("/", 1)[0]
            while parent and f"{parent}/" not in members:
                members[f"{parent}/"] = None
                parent = parent.rsplit("/", 1)[0] if "/" in parent else ""
            members[name] = source
        if model.is_ensemble and not _has_version_folder(model):
            members[f"{model.name}/1/"] = None
        env_rel = model.execution_env_relpath()
        if env_rel is not None:
            if env_archive is None:
                raise MmepackError(
                    f"{model.folder / CONFIG_FILE}: sets {ENV_PATH_PARAMETER} but no Python "
                    "environment was built; pass --env (or let `mmepack package` build one from "
                    f"{REQUIREMENTS_FILE})"
                )
            members[f"{model.name}/{env_rel}"] = env_archive
            if stub is not None:
                # Triton's Python backend runs a stub found beside config.pbtxt instead of its
                # own, which is how a step gets a Python other than the server's.
                members[f"{model.name}/{STUB_NAME}"] = stub
    return sorted(members.items(), key=lambda item: item[0])


def write_artifact(
    directory: ModelDirectory,
    version: str,
    output_dir: Path,
    env_archive: Path | None,
    weights: list[TrackedFile],
    stub: Path | None = None,
) -> PackageResult:
    """Write `<output_dir>/<model>_<version>.tar.gz` atomically: a failure leaves nothing."""
    name = check_model_name(directory.name, directory.root)
    members = plan_members(directory, env_archive, weights, stub)
    final = output_dir / artifact_name(name, version)
    with atomic_path(final) as partial, partial.open("wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6
    ) as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, source in members:
            if source is None:
                _add_dir(tar, member.rstrip("/"))
            else:
                _add_file(tar, member, source)
        bytecode = add_step_bytecode(tar, directory, env_archive)
    return PackageResult(
        path=final, model=name, version=version, members=tuple(m for m, _ in members) + bytecode
    )


def read_members(artifact: Path) -> list[str]:
    """Names in an artifact, for reports and tests."""
    with tarfile.open(artifact, "r:gz") as tar:
        return tar.getnames()
