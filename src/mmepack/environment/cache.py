"""Content-addressed store of built Python backend environments.

An environment takes minutes to build and depends only on what pip and the builder see, so its
key is a hash of exactly that: the lock's pins (or, for a model without requirements.lock, the
normalised requirements), the Python build it runs on, the platform and the builder's identity.
Anything sharing a key shares one build, whether two models in one `pants package` run, two CI
jobs on one runner, or `mmepack package` by hand.

Entries appear atomically (built elsewhere, renamed into place) and only after the environment
has been proven to start, so a failed or interrupted build never leaves something that looks
usable; the staging folder a killed build leaves (`.<key>.building-<pid>`) is removed by the
next build or prune once its process is gone. A per-key lock makes a second builder of the same key wait and then reuse the first.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmepack.environment.requirements import normalised_requirements
from mmepack.errors import MmepackError
from mmepack.files import atomic_path, file_hexdigest, process_alive
from mmepack_contract import ENV_CACHE_VARIABLE
from mmepack_contract.paths import env_cache_root

CACHE_VARIABLE = ENV_CACHE_VARIABLE
ARCHIVE = "python_env.tar.gz"
MANIFEST = "manifest.json"
# A build's staging folder and the entry being renamed into place (files.atomic_path).
_STAGING_RE = re.compile(r"^\.[0-9a-f]+\.(?:building|partial)-(?P<pid>[0-9]+)$")
# Bump when the builders change what they put in an environment: old entries stop matching.
# 4: installed from the lock, made reproducible (checked-hash bytecode, normalised archive).
# 5: the archive's deflate data ends with a full flush (spliceable into a one-member artifact);
#    a format-4 archive would be compressed again, giving other artifact bytes for one lock.
# 6: bytecode for the standard-library modules a stub imports at start (environment.startup).
ENV_FORMAT = 6


def default_cache_root() -> Path:
    """$MMEPACK_ENV_CACHE, else the XDG cache folder, else ~/.cache/mmepack/envs."""
    # The plugin names the same folder in its messages (mmepack_contract.paths).
    return Path(env_cache_root(os.environ, str(Path.home())))


def platform_tag() -> str:
    """What a compiled wheel must match: OS, architecture and C library."""
    libc, libc_version = platform.libc_ver()
    return f"{sysconfig.get_platform()}-{libc or 'nolibc'}{libc_version}"


@dataclass(frozen=True)
class EnvKey:
    """Everything an environment's bytes depend on, and the hash naming its cache entry."""

    requirements: str
    python: str
    platform: str
    builder: str

    @staticmethod
    def of(requirements_text: str, python: str, builder: str) -> EnvKey:
        return EnvKey(normalised_requirements(requirements_text), python, platform_tag(), builder)

    @property
    def digest(self) -> str:
        payload = json.dumps(
            {"format": ENV_FORMAT, **self.__dict__}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class CachedEnv:
    archive: Path
    manifest: dict[str, Any]


@dataclass(frozen=True)
class CacheEntry:
    """One stored environment, for `mmepack env-cache list` and `prune`."""

    digest: str
    manifest: dict[str, Any]
    packed_bytes: int
    last_used: float


class EnvCache:
    """One folder per key: `<root>/<digest>/{python_env.tar.gz,manifest.json}`."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_cache_root()

    def entry(self, key: EnvKey) -> Path:
        return self.root / key.digest

    def lookup(self, key: EnvKey) -> CachedEnv | None:
        """The entry for `key` if it is complete and its archive still has the recorded hash;
        a damaged entry is removed so the caller rebuilds it."""
        folder = self.entry(key)
        archive, manifest_path = folder / ARCHIVE, folder / MANIFEST
        if not (archive.is_file() and manifest_path.is_file()):
            return None
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            intact = manifest.get("sha256") == file_hexdigest(archive, "sha256")
        except (OSError, ValueError):
            intact = False
        if not intact:
            shutil.rmtree(folder, ignore_errors=True)
            return None
        os.utime(manifest_path)  # the manifest's mtime records the last use, for pruning
        return CachedEnv(archive, manifest)

    @contextmanager
    def locked(self, key: EnvKey) -> Iterator[None]:
        """Hold the key's lock: a concurrent build of the same environment waits here."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = (self.root / f"{key.digest}.lock").open("a")
        except OSError as exc:
            raise MmepackError(
                f"cannot use the environment cache at {self.root} ({exc}); make it writable or "
                f"point {CACHE_VARIABLE} at a writable folder"
            ) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def stale_staging(self) -> list[Path]:
        """Staging folders of builds whose process is gone (killed mid-build): never usable,
        often hundreds of MB."""
        if not self.root.is_dir():
            return []
        stale = []
        for folder in self.root.iterdir():
            match = _STAGING_RE.match(folder.name)
            if match is not None and not process_alive(int(match.group("pid"))):
                stale.append(folder)
        return sorted(stale)

    def remove_stale_staging(self) -> list[Path]:
        """Remove what stale_staging() finds; every build and prune does this first."""
        stale = self.stale_staging()
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
        return stale

    def staging(self, key: EnvKey) -> Path:
        """A fresh folder on the cache's file system, so the finished entry can be renamed."""
        self.remove_stale_staging()
        path = self.root / f".{key.digest}.building-{os.getpid()}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def store(self, key: EnvKey, archive: Path, manifest: dict[str, Any]) -> CachedEnv:
        """Move a proven archive into the cache, with its manifest, in one rename."""
        folder = self.entry(key)
        with atomic_path(folder) as ready:
            ready.mkdir()
            os.replace(archive, ready / ARCHIVE)
            (ready / ARCHIVE).chmod(0o644)  # conda-pack writes a private temporary file
            record = {
                **manifest,
                "sha256": file_hexdigest(ready / ARCHIVE, "sha256"),
                "key": key.__dict__,
            }
            (ready / MANIFEST).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        return CachedEnv(folder / ARCHIVE, record)

    def update_manifest(self, key: EnvKey, manifest: dict[str, Any]) -> CachedEnv:
        """Replace a stored entry's manifest (e.g. more proven tensor types) in one rename;
        the caller holds the key's lock."""
        folder = self.entry(key)
        with atomic_path(folder / MANIFEST) as ready:
            ready.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return CachedEnv(folder / ARCHIVE, manifest)

    def entries(self) -> list[CacheEntry]:
        """Complete entries, most recently used first."""
        found = []
        if not self.root.is_dir():
            return []
        for folder in self.root.iterdir():
            manifest_path, archive = folder / MANIFEST, folder / ARCHIVE
            if folder.name.startswith(".") or not (manifest_path.is_file() and archive.is_file()):
                continue
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            found.append(
                CacheEntry(
                    folder.name, manifest, archive.stat().st_size, manifest_path.stat().st_mtime
                )
            )
        return sorted(found, key=lambda e: e.last_used, reverse=True)

    def prune(self, unused_seconds: float, *, dry_run: bool = False) -> list[CacheEntry]:
        """Remove entries not used for `unused_seconds`, each under its key's lock so a build of
        the same key is not interrupted; returns what was (or would be) removed."""
        if not dry_run:
            self.remove_stale_staging()
        cutoff = time.time() - unused_seconds
        removed = []
        for entry in self.entries():
            if entry.last_used >= cutoff:
                continue
            removed.append(entry)
            if dry_run:
                continue
            lock = self.root / f"{entry.digest}.lock"
            with lock.open("a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                shutil.rmtree(self.root / entry.digest, ignore_errors=True)
            lock.unlink(missing_ok=True)
        return removed
