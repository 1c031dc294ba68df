"""File helpers every stage shares: streamed content hashes and atomic write-then-rename.

Artifacts and weights can be gigabytes, so every hash reads in fixed chunks instead of loading
whole files. Artifacts, environments and cache entries are read by other processes (Pants,
concurrent builds, a publish), so each is written under a scratch name and renamed into place:
a reader sees the old content or the whole new one, never a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_CHUNK = 1 << 20


def stream_hexdigest(handle: IO[bytes], algorithm: str) -> str:
    """Hex digest of everything left in `handle` ("md5" for DVC, "sha256" for S3)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    for chunk in iter(lambda: handle.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def file_hexdigest(path: Path, algorithm: str) -> str:
    with path.open("rb") as handle:
        return stream_hexdigest(handle, algorithm)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(destination: Path) -> Iterator[Path]:
    """A scratch path beside `destination` that becomes `destination` when the block succeeds.

    The caller writes a file or builds a folder at the yielded path; on success it is renamed
    over `destination` in one step (a folder already there is replaced as a whole), on failure
    it is removed. The scratch name is a dot-file named for this process, on the same file
    system as `destination`, so the rename is atomic and concurrent writers never share it.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.parent / f".{destination.name}.partial-{os.getpid()}"
    _remove(partial)
    try:
        yield partial
        if partial.is_dir() and destination.is_dir():
            shutil.rmtree(destination)
        os.replace(partial, destination)
    finally:
        _remove(partial)


def copy_atomically(source: Path, destination: Path) -> None:
    """Copy `source` to `destination` (with its mode and times) so no reader sees half of it."""
    with atomic_path(destination) as partial:
        shutil.copy2(source, partial)
