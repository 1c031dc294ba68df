"""Working copies of DVC-tracked weights that differ from their `.dvc` record ("drift").

The build packs the bytes the DVC remote holds, never the working copy, so a weight rewritten
without `dvc add` is silently ignored by every build and test; git ignores it too. Lint and
package report it instead, naming the file and the commands that record or discard it.

Cost: weights can be gigabytes and lint runs often, so the check is as cheap as it can be while
still exact. A copy whose size differs from the size the `.dvc` file records has drifted, with
no hashing. Only a copy of the recorded size is hashed (md5, as DVC does), and that md5 is
remembered per file identity (device, inode, size, modification time) in a small memo in the
user's cache, so a second lint of an untouched checkout hashes nothing. Inside a Pants sandbox
every run has new inodes, but Pants reruns lint only when the model's files changed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmepack.files import atomic_path, file_hexdigest

if TYPE_CHECKING:
    from mmepack.model.weights import TrackedFile

# Where the memo lives when $MMEPACK_HASH_MEMO is not set; entries kept (most recent last).
HASH_MEMO_VARIABLE = "MMEPACK_HASH_MEMO"
_MEMO_ENTRIES = 512


@dataclass(frozen=True)
class Drift:
    """One working copy whose bytes are not the recorded ones."""

    tracked: TrackedFile
    why: str  # "size 10 bytes, recorded 4087" or "md5 ..., recorded ..."

    def describe(self) -> str:
        path = self.tracked.path
        return (
            f"{path} differs from its DVC record {self.tracked.dvc_file} ({self.why}); builds "
            "and tests use the recorded bytes, not this copy. To use this copy, record it: "
            f"`mmepack add-weights {path}` (or `dvc add {path}`), then `mmepack push-weights` "
            f"and commit {self.tracked.dvc_file}; to drop it, delete {path} and run "
            "`mmepack pull-weights <model dir>`"
        )


def _memo_path() -> Path:
    if os.environ.get(HASH_MEMO_VARIABLE):
        return Path(os.environ[HASH_MEMO_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmepack" / "weights-md5.json"


def _identity(stat: os.stat_result) -> str:
    return f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


class _Memo:
    """md5 by file identity; a memo that cannot be read or written is simply not used."""

    def __init__(self) -> None:
        self.path = _memo_path()
        self.entries: dict[str, str] = {}
        self.changed = False
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(loaded, dict):
            self.entries = {str(k): str(v) for k, v in loaded.items()}

    def md5(self, path: Path) -> str:
        stat = path.stat()
        key = _identity(stat)
        known = self.entries.get(key)
        if known is not None:
            return known
        digest = file_hexdigest(path, "md5")
        # A file modified while it was hashed must not be remembered under its old identity.
        if _identity(path.stat()) == key:
            self.entries.pop(key, None)
            self.entries[key] = digest
            self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        kept = dict(list(self.entries.items())[-_MEMO_ENTRIES:])
        try:
            with atomic_path(self.path) as partial:
                partial.write_text(json.dumps(kept), encoding="utf-8")
        except OSError:
            pass


def find_drift(files: list[TrackedFile]) -> list[Drift]:
    """Tracked files present on disk with other bytes than their `.dvc` record.

    Missing copies are not drift (the build pulls them); tracked folders are left to DVC, since
    comparing them means hashing every file they hold.
    """
    found: list[Drift] = []
    memo = _Memo()
    try:
        for tracked in files:
            if tracked.is_directory or not tracked.path.is_file():
                continue
            size = tracked.path.stat().st_size
            if tracked.size is not None and size != tracked.size:
                found.append(Drift(tracked, f"{size} bytes, recorded {tracked.size}"))
                continue
            actual = memo.md5(tracked.path)
            if actual != tracked.md5:
                found.append(Drift(tracked, f"md5 {actual}, recorded {tracked.md5}"))
    finally:
        memo.save()
    return found
