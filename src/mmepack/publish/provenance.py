"""Where an artifact came from: git commit, model, version, content hash and DVC weight md5s.

A published object carries this record twice: as S3 object metadata (short fields only, S3
limits user metadata to 2 KB) and in full as `<artifact>.manifest.json` beside it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from mmepack import __version__
from mmepack.artifact.check import check_artifact
from mmepack.environment.determinism import RECORD_FILE as ENV_RECORD
from mmepack.environment.lock import read_lock
from mmepack.errors import MmepackError
from mmepack.files import file_hexdigest, stream_hexdigest
from mmepack.model.version import parse_artifact_name
from mmepack.model.weights import tracked_files
from mmepack.names import ENV_MEMBER_SUFFIXES, LOCK_FILE
from mmepack.publish.revision import from_ci_or_git
from mmepack_contract import COMMIT_VARIABLES

# CI systems check out a detached HEAD and say which commit in these variables.
_COMMIT_VARIABLES = COMMIT_VARIABLES


def file_sha256(path: Path) -> str:
    return file_hexdigest(path, "sha256")


def git_commit(repo_root: Path | None = None) -> str | None:
    """The commit being built: CI variables first, then `git rev-parse HEAD`; None if unknown."""
    return from_ci_or_git(_COMMIT_VARIABLES, ["rev-parse", "HEAD"], cwd=repo_root)


def git_dirty(repo_root: Path | None = None) -> bool | None:
    """Whether the commit recorded is not the whole story: the working tree has changes.

    A CI commit variable means CI checked out that commit, so the tree is taken as clean;
    otherwise `git status --porcelain` decides. None when git cannot tell (no checkout).
    """
    if any(os.environ.get(v, "").strip() for v in _COMMIT_VARIABLES):
        return False
    try:
        result = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=repo_root,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return bool(result.stdout.strip())


def _member_md5(tar: tarfile.TarFile, name: str) -> str | None:
    try:
        handle = tar.extractfile(name)
    except KeyError:
        return None
    if handle is None:
        return None
    return stream_hexdigest(handle, "md5")


def weights_md5s(artifact: Path, model_dir: Path) -> dict[str, str]:
    """The DVC md5 of every weight file `model_dir` tracks, checked against the tar's bytes.

    Keys are the tar member names. A tracked file whose bytes in the tar differ from its `.dvc`
    record is an error: the artifact was built from other weights than the ones recorded.
    Directory outputs (md5 ending in `.dir`) are recorded as DVC states them.
    """
    md5s: dict[str, str] = {}
    model, _ = parse_artifact_name(artifact)
    with tarfile.open(artifact, "r:gz") as tar:
        for tracked in tracked_files(model_dir):
            member = tracked.path.relative_to(model_dir).as_posix()
            if tracked.is_directory:
                md5s[member] = tracked.md5
                continue
            actual = _member_md5(tar, member)
            if actual is None:
                raise MmepackError(
                    f"model '{model}': {artifact} has no '{member}', which {tracked.dvc_file} "
                    "tracks; re-run `mmepack package --pull`"
                )
            if actual != tracked.md5:
                raise MmepackError(
                    f"model '{model}': '{member}' in {artifact} has md5 {actual} but "
                    f"{tracked.dvc_file} records {tracked.md5}; the artifact was built from other "
                    "weights; re-run `mmepack package --pull`"
                )
            md5s[member] = actual
    return md5s


def environment_sha256s(artifact: Path) -> dict[str, str]:
    """sha256 of each packed Python environment inside the artifact, by tar member.

    Identifies exactly which environment build shipped (the same requirements, Python and
    builder give the same cached build), so two artifacts can be told to share one.
    """
    found: dict[str, str] = {}
    if not tarfile.is_tarfile(artifact):
        return found
    with tarfile.open(artifact, "r:*") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(ENV_MEMBER_SUFFIXES):
                handle = tar.extractfile(member)
                if handle is not None:
                    found[member.name] = stream_hexdigest(handle, "sha256")
    return dict(sorted(found.items()))


def environment_records(artifact: Path) -> dict[str, dict[str, Any]]:
    """What each packed environment says it was built from (`mmepack-env.json` at its root:
    seed Python, builder, lock hash), by tar member; environments built before mmepack wrote
    that record give an empty one."""
    records: dict[str, dict[str, Any]] = {}
    if not tarfile.is_tarfile(artifact):
        return records
    with tarfile.open(artifact, "r:*") as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith(ENV_MEMBER_SUFFIXES)):
                continue
            handle = tar.extractfile(member)
            records[member.name] = _env_record(handle.read()) if handle is not None else {}
    return dict(sorted(records.items()))


def _env_record(archive_bytes: bytes) -> dict[str, Any]:
    """The record inside one packed environment; {} for an archive without one (or not an
    archive at all: provenance describes whatever was shipped, it does not judge it)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:*") as env:
            handle = env.extractfile(ENV_RECORD)
            record = json.loads(handle.read().decode("utf-8")) if handle is not None else {}
    except (KeyError, tarfile.TarError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _one(records: dict[str, dict[str, Any]], field: str) -> Any:
    values = {json.dumps(r.get(field)) for r in records.values()}
    return json.loads(values.pop()) if len(values) == 1 else None


def check_lock_matches(artifact: Path, model_dir: Path, lock_sha256: str | None) -> None:
    """The artifact's environment must come from the lock committed beside the model."""
    lock = model_dir / LOCK_FILE
    if lock_sha256 is None or not lock.is_file():
        return
    committed = read_lock(lock).sha256
    if committed != lock_sha256:
        model, _ = parse_artifact_name(artifact)
        raise MmepackError(
            f"model '{model}': {artifact}'s environment was built from a lock with sha256 "
            f"{lock_sha256}, but {lock} has {committed}; package the model again from this "
            "checkout"
        )


def build_provenance(
    artifact: Path,
    *,
    model_dir: Path | None = None,
    commit: str | None = None,
    dirty: bool | None = None,
    weights: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The provenance record of one artifact.

    `weights` (tar member -> DVC md5) is read from `model_dir`'s `.dvc` files when not given.
    """
    # The same one read that proves the file is a complete, safe artifact gives its sha256, so
    # a damaged file is refused here with the reason, before any member is read.
    checked = check_artifact(artifact)
    model, version = checked.model, checked.version
    if weights is None:
        weights = weights_md5s(artifact, model_dir) if model_dir is not None else {}
    envs = environment_records(artifact)
    lock_sha256 = _one(envs, "lock_sha256")
    if model_dir is not None:
        check_lock_matches(artifact, model_dir, lock_sha256)
    return {
        "model": model,
        "version": version,
        "artifact": artifact.name,
        "sha256": checked.sha256,
        "size": checked.size,
        "git_commit": commit if commit is not None else git_commit(),
        # true: built from a tree with uncommitted changes, so git_commit alone cannot rebuild
        # it; null: git could not tell.
        "git_dirty": dirty if dirty is not None else git_dirty(),
        "dvc_weights_md5": dict(sorted(weights.items())),
        "python_env_sha256": environment_sha256s(artifact),
        # What the environment was built from: the lock's hash (requirements.lock's pins) and
        # the exact seed CPython; per environment in python_env_builds.
        "lock_sha256": lock_sha256,
        "seed_python": _one(envs, "python_version"),
        "python_env_builds": envs,
        "mmepack_version": __version__,
    }
