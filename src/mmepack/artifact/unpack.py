"""Unpack an artifact into a folder with the same bounds and refusals as `publish`'s check.

Why not `tarfile.extractall(filter="data")`: that filter refuses links out of the folder and
devices, but it inflates a gzip bomb to the last byte, accepts any number of members, and
stops at the first end-of-archive marker and gzip member like every other `tarfile` reader, so
what it unpacks may differ from what `tar -i` would. Here the stream is read once through
mmepack.artifact.bounded_tar (one gzip member, zero padding after the tar's end, safe members,
`ArtifactLimits`), only regular files and folders are written, each file 0644 or 0755 (owner
executable bit kept) whatever the tar says, and on any problem the folder is removed, so a
refused artifact leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from mmepack.artifact.bounded_tar import ArtifactProblem, iter_members
from mmepack.artifact.limits import ArtifactLimits
from mmepack.errors import MmepackError

_CHUNK = 1 << 20


def unpack_artifact(
    artifact: Path,
    folder: Path,
    limits: ArtifactLimits | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> None:
    """Unpack the tar.gz `artifact` into `folder` (created if absent, removed again on failure).

    Raises MmepackError naming the artifact and the problem (damaged, truncated, over a limit,
    an unsafe member, data hidden after the tar or gzip end). `cancelled` is asked between
    members, so a stopping endpoint need not wait for a large unpack: it raises OSError.
    """
    limits = limits or ArtifactLimits.from_environment()
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    try:
        with artifact.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            for tar, member in iter_members(handle, limits, size):
                if cancelled():
                    raise InterruptedError("the endpoint is stopping")
                target = root.joinpath(*member.name.rstrip("/").split("/"))
                if member.isdir():
                    target.mkdir(mode=0o755, parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # a regular file (iter_members refuses the rest)
                mode = 0o755 if member.mode & 0o100 else 0o644
                # O_EXCL: never write through something already there (iter_members refuses
                # repeated names, so nothing should be).
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
    except ArtifactProblem as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise MmepackError(f"{artifact}: {exc}; package it again with `mmepack package`") from None
    except InterruptedError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise MmepackError(
            f"{artifact}: cannot unpack it into {folder} ({exc.strerror or exc}); check the disk "
            "space and permissions there"
        ) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
