"""File helpers every stage shares: streamed hashes, atomic write-then-rename, safe reads, and
mmepack's scratch folder.

Artifacts and weights can be gigabytes, so every hash reads in fixed chunks instead of loading
whole files. Artifacts, environments and cache entries are read by other processes (Pants,
concurrent builds, a publish), so each is written under a scratch name and renamed into place:
a reader sees the old content or the whole new one, never a half-written file. Inputs are read
only if they are regular files, so a FIFO or device planted under a model's name fails at once
instead of hanging. Temporary work lives in one folder mmepack owns, with the owner's pid in each
name, so what a killed run leaves is removed by the next run.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from mmepack.errors import MmepackError

_CHUNK = 1 << 20


def stream_hexdigest(handle: IO[bytes], algorithm: str) -> str:
    """Hex digest of everything left in `handle` ("md5" for DVC, "sha256" for S3)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    for chunk in iter(lambda: handle.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def file_hexdigest(path: Path, algorithm: str) -> str:
    with open_regular(path) as handle:
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
    # Cut the name so the scratch name stays within the 255 bytes a file name may have.
    partial = destination.parent / f".{destination.name[:200]}.partial-{os.getpid()}"
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


# --------------------------------------------------------------------------- safe reads


def open_regular(path: Path) -> IO[bytes]:
    """Open `path` for reading only if it is a regular file (links to one are followed).

    A FIFO or device opened the ordinary way blocks or streams forever; opening without
    blocking and checking what was opened answers at once and cannot race with a swap.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise MmepackError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO, device or socket"
            raise MmepackError(f"{path}: is {kind}, expected a regular file; replace it")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text(path: Path, what: str = "file") -> str:
    """UTF-8 text of a regular file, or an MmepackError naming the file and the byte at fault."""
    with open_regular(path) as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MmepackError(
            f"{path}: the {what} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it "
            "as UTF-8"
        ) from None


# --------------------------------------------------------------------------- scratch folders

SCRATCH_VARIABLE = "MMEPACK_SCRATCH"
# A scratch folder may list, one per line, paths outside it that were made for it (Triton's
# unpacked environments live in /tmp/python_env_*); they go with it.
CLAIMS_FILE = ".mmepack-claims"
_CLAIMABLE_PREFIXES = ("/tmp/python_env_",)
_PID_SUFFIX = re.compile(r"-pid(?P<pid>[0-9]+)-")


def scratch_root() -> Path:
    """The one folder mmepack keeps its temporary work in: $MMEPACK_SCRATCH, else
    `<temp dir>/mmepack-<uid>`; stale content of dead processes is removed on each new use."""
    if os.environ.get(SCRATCH_VARIABLE):
        return Path(os.environ[SCRATCH_VARIABLE])
    return Path(tempfile.gettempdir()) / f"mmepack-{os.getuid()}"


def process_alive(pid: int) -> bool:
    """True if a process with this id exists (possibly another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_tree(path: Path) -> None:
    """Remove a scratch folder and every path it claimed."""
    claims = path / CLAIMS_FILE
    try:
        claimed = claims.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        claimed = []
    for line in claimed:
        if line.startswith(_CLAIMABLE_PREFIXES) and ".." not in line:
            shutil.rmtree(line, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)


def clean_stale_scratch(root: Path | None = None) -> list[Path]:
    """Remove scratch folders whose owning process is gone (killed runs); returns them."""
    root = root or scratch_root()
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _PID_SUFFIX.search(entry.name)
        if match is not None and not process_alive(int(match.group("pid"))):
            remove_tree(entry)
            removed.append(entry)
    return removed


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A fresh folder under scratch_root(), removed (with its claims) on exit; a run killed
    before it could remove it leaves a folder the next run's clean_stale_scratch removes."""
    root = scratch_root()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise MmepackError(
            f"{root}: cannot create mmepack's scratch folder ({exc.strerror}); point "
            f"{SCRATCH_VARIABLE} at a writable folder"
        ) from None
    clean_stale_scratch(root)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-pid{os.getpid()}-", dir=root))
    try:
        yield path
    finally:
        remove_tree(path)


def claim_for_cleanup(scratch: Path, paths: Iterable[str]) -> None:
    """Record paths outside `scratch` that must be removed with it."""
    with (scratch / CLAIMS_FILE).open("a", encoding="utf-8") as handle:
        for path in paths:
            handle.write(path + "\n")
