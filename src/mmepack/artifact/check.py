"""Check a finished artifact before it leaves the machine, hashing the very bytes it checks.

`publish` sends whatever file it is given to a production key that is never overwritten, so a
wrong file there is permanent. This module reads the file once, as a stream: the same read feeds
the SHA-256 that publish records and the tar reader that proves the file is what `mmepack
package` writes (a gzip tar, model folders at its root each with a config.pbtxt, one SageMaker
ensemble when there are several, named after the model the file name claims, and nothing but
regular files and folders with plain relative names). The upload later re-hashes what it sends
and must arrive at the same digest, so the recorded hash always describes the uploaded bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from mmepack.errors import MmepackError
from mmepack.model.rules import SAGEMAKER_ENSEMBLE_RE
from mmepack.model.version import parse_artifact_name
from mmepack.names import CONFIG_FILE

_CHUNK = 1 << 20
# A config.pbtxt is a few KB; refuse to read a huge member into memory to match one pattern.
_MAX_CONFIG_BYTES = 4 << 20
_GZIP_MAGIC = b"\x1f\x8b"


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


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a tar member is unsafe to unpack on an MME host, or None when it is fine."""
    name = member.name
    path = PurePosixPath(name)
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        return f"member {name!r} does not have a plain relative name"
    if any(part in ("..", "") for part in name.rstrip("/").split("/")) or path.is_absolute():
        return f"member {name!r} leaves the artifact's folder"
    if not (member.isreg() or member.isdir()):
        kind = (
            "a link"
            if member.issym() or member.islnk()
            else "a device or FIFO" if member.isdev() else "not a regular file"
        )
        return f"member {name!r} is {kind}; an artifact holds only regular files and folders"
    return None


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


def check_artifact(path: Path) -> CheckedArtifact:
    """Hash `path` and prove it is a safe MME artifact of the model its name names, in one read.

    Raises MmepackError naming the file and the first problem found.
    """
    model, version = parse_artifact_name(path)
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
        head = reader.read(2)
        if head != _GZIP_MAGIC:
            raise MmepackError(f"{path}: not a gzip file; {fix}")
        stream = _Prefixed(head, reader)
        try:
            # GzipFile reads every gzip member; tarfile's own "r|gz" stops after the first one,
            # and mmepack's artifacts hold several (see mmepack.artifact.gzip_tar).
            unzipped = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[call-overload]
            with tarfile.open(fileobj=unzipped, mode="r|") as tar:
                for member in tar:
                    problem = member_problem(member)
                    if problem is not None:
                        raise MmepackError(f"{path}: {problem}; {fix}")
                    name = member.name.rstrip("/")
                    if name in names:
                        raise MmepackError(f"{path}: member {name!r} appears twice; {fix}")
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
            reader.drain()
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise MmepackError(
                f"{path}: not a complete gzip tar ({type(exc).__name__}: {exc}); it may be "
                f"truncated or damaged; {fix}"
            ) from None
    problem = _layout_problem(path, model, folders, configs)
    if problem is not None:
        raise MmepackError(f"{path}: {problem}")
    return CheckedArtifact(
        path, model, version, reader.digest.hexdigest(), reader.size, tuple(sorted(names))
    )


class _Prefixed:
    """Give back bytes already read (the gzip magic) before the rest of the stream."""

    def __init__(self, prefix: bytes, reader: _HashingReader) -> None:
        self._prefix = prefix
        self._reader = reader

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size < 0:
                data, self._prefix = self._prefix + self._reader.read(), b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            if len(data) < size:
                data += self._reader.read(size - len(data))
            return data
        return self._reader.read(size)
