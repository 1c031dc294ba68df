"""Check a finished artifact before it leaves the machine, hashing the very bytes it checks.

`publish` sends whatever file it is given to a production key that is never overwritten, so a
wrong file there is permanent. This module reads the file once, as a stream: the same read feeds
the SHA-256 that publish records and the tar reader that proves the file is what `mmepack
package` writes (a gzip tar, model folders at its root each with a config.pbtxt, one SageMaker
ensemble when there are several, named after the model the file name claims, and nothing but
regular files and folders with plain relative names; see mmepack.artifact.bounded_tar for what
else the read refuses, and mmepack.artifact.limits for its bounds). The upload later re-hashes what it sends
and must arrive at the same digest, so the recorded hash always describes the uploaded bytes.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mmepack.artifact.bounded_tar import ArtifactProblem, iter_members
from mmepack.artifact.bounded_tar import member_problem as member_problem
from mmepack.artifact.limits import ArtifactLimits
from mmepack.errors import MmepackError
from mmepack.model.rules import SAGEMAKER_ENSEMBLE_RE
from mmepack.model.version import parse_artifact_name
from mmepack.names import CONFIG_FILE

_CHUNK = 1 << 20
# A config.pbtxt is a few KB; refuse to read a huge member into memory to match one pattern.
_MAX_CONFIG_BYTES = 4 << 20


@dataclass(frozen=True)
class CheckedArtifact:
    """What the one read of an artifact established."""

    path: Path
    model: str
    version: str
    sha256: str
    size: int
    members: tuple[str, ...]


class _HashingReader:
    """A read-only file wrapper that hashes every byte handed to the tar reader."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        for chunk in iter(lambda: self.read(_CHUNK), b""):
            del chunk


def _read_config(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    if member.size > _MAX_CONFIG_BYTES:
        return ""
    handle = tar.extractfile(member)
    return handle.read().decode("utf-8", errors="replace") if handle is not None else ""


def _layout_problem(
    path: Path, model: str, folders: set[str], configs: dict[str, str]
) -> str | None:
    """Why the members are not the MME layout `mmepack package` writes, or None."""
    missing = sorted(folders - set(configs))
    if not configs:
        return f"holds no <model>/{CONFIG_FILE}; expected model folders at the tar's root"
    if missing:
        return f"folder {missing[0]!r} at the tar's root has no {CONFIG_FILE}"
    ensembles = sorted(n for n, text in configs.items() if SAGEMAKER_ENSEMBLE_RE.search(text))
    if len(configs) > 1:
        if len(ensembles) != 1:
            return (
                f"holds {len(configs)} models and {len(ensembles)} configs matching SageMaker's "
                f"ensemble pattern ({', '.join(ensembles) or 'none'}); SageMaker needs exactly one"
            )
        loaded = ensembles[0]
    else:
        loaded = next(iter(configs))
    if loaded != model:
        return (
            f"its name says model '{model}' but SageMaker would load model '{loaded}' from it; "
            f"rename the file to {loaded}_<version>.tar.gz or package the right model"
        )
    return None


def check_artifact(path: Path, limits: ArtifactLimits | None = None) -> CheckedArtifact:
    """Hash `path` and prove it is a safe MME artifact of the model its name names, in one read.

    `limits` bound what it may unpack to (default: `ArtifactLimits.from_environment()`).

    Raises MmepackError naming the file and the first problem found.
    """
    model, version = parse_artifact_name(path)
    limits = limits or ArtifactLimits.from_environment()
    fix = "package it again with `mmepack package` and publish that file"
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise MmepackError(f"{path}: cannot read the artifact ({exc.strerror}); {fix}") from None
    names: list[str] = []
    folders: set[str] = set()
    configs: dict[str, str] = {}
    with handle:
        if not path.is_file():
            raise MmepackError(f"{path}: not a regular file; {fix}")
        reader = _HashingReader(handle)
        try:
            for tar, member in iter_members(reader, limits, os.fstat(handle.fileno()).st_size):
                name = member.name.rstrip("/")
                names.append(name)
                parts = name.split("/")
                if len(parts) == 1 and not member.isdir():
                    raise MmepackError(
                        f"{path}: file {name!r} sits at the tar's root; an mmepack artifact "
                        f"holds model folders there; {fix}"
                    )
                folders.add(parts[0])
                if len(parts) == 2 and parts[1] == CONFIG_FILE:
                    configs[parts[0]] = _read_config(tar, member)
        except ArtifactProblem as exc:
            raise MmepackError(f"{path}: {exc}; {fix}") from None
        except OSError as exc:
            raise MmepackError(
                f"{path}: cannot read the artifact ({exc.strerror or exc}); {fix}"
            ) from None
        reader.drain()
    problem = _layout_problem(path, model, folders, configs)
    if problem is not None:
        raise MmepackError(f"{path}: {problem}")
    return CheckedArtifact(
        path, model, version, reader.digest.hexdigest(), reader.size, tuple(sorted(names))
    )
