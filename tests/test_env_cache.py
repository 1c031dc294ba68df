"""The content-addressed environment cache: keys, atomic entries, damage detection."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from mmepack.environment.cache import ARCHIVE, MANIFEST, EnvCache, EnvKey


def _key(requirements: str = "numpy<2\n", python: str = "3.11", builder: str = "b1") -> EnvKey:
    return EnvKey.of(requirements, python, builder)


def test_key_covers_requirements_python_and_builder() -> None:
    base = _key().digest
    assert _key("# comment\nNUMPY < 2\n").digest == base
    assert _key("numpy<1.26\n").digest != base
    assert _key(python="3.12").digest != base
    assert _key(builder="b2").digest != base


def test_key_covers_platform() -> None:
    key = _key()
    moved = EnvKey(key.requirements, key.python, "macosx-14.0-arm64-nolibc", key.builder)
    assert moved.digest != key.digest


def _stored(tmp_path: Path) -> tuple[EnvCache, EnvKey]:
    cache = EnvCache(tmp_path / "cache")
    key = _key()
    staging = cache.staging(key)
    (staging / ARCHIVE).write_bytes(b"packed environment")
    cache.store(key, staging / ARCHIVE, {"python_version": "3.11.7"})
    return cache, key


def test_store_then_lookup_returns_the_archive_and_manifest(tmp_path: Path) -> None:
    cache, key = _stored(tmp_path)
    hit = cache.lookup(key)
    assert hit is not None
    assert hit.archive.read_bytes() == b"packed environment"
    assert hit.manifest["python_version"] == "3.11.7"
    assert hit.manifest["key"]["python"] == "3.11"
    assert cache.lookup(_key(python="3.12")) is None


def test_a_damaged_entry_is_dropped_so_it_gets_rebuilt(tmp_path: Path) -> None:
    cache, key = _stored(tmp_path)
    (cache.entry(key) / ARCHIVE).write_bytes(b"truncated")
    assert cache.lookup(key) is None
    assert not cache.entry(key).exists()


def test_an_entry_without_manifest_is_not_a_hit(tmp_path: Path) -> None:
    cache, key = _stored(tmp_path)
    (cache.entry(key) / MANIFEST).unlink()
    assert cache.lookup(key) is None


def test_manifest_records_the_archive_hash(tmp_path: Path) -> None:
    cache, key = _stored(tmp_path)
    manifest = json.loads((cache.entry(key) / MANIFEST).read_text())
    assert len(manifest["sha256"]) == 64


def test_lock_can_be_taken_again_after_release(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "cache")
    with cache.locked(_key()):
        pass
    with cache.locked(_key()):
        assert (tmp_path / "cache" / f"{_key().digest}.lock").exists()


def test_lookup_records_use_and_prune_removes_only_unused_entries(tmp_path: Path) -> None:
    cache, key = _stored(tmp_path)
    old = EnvKey.of("pillow\n", "3.11", "b1")
    staging = cache.staging(old)
    (staging / ARCHIVE).write_bytes(b"old environment")
    cache.store(old, staging / ARCHIVE, {})
    week_ago = time.time() - 7 * 86400
    os.utime(cache.entry(old) / MANIFEST, (week_ago, week_ago))
    os.utime(cache.entry(key) / MANIFEST, (week_ago, week_ago))
    assert cache.lookup(key) is not None  # a use: the entry is fresh again
    assert [e.digest for e in cache.entries()] == [key.digest, old.digest]
    assert [e.digest for e in cache.prune(86400, dry_run=True)] == [old.digest]
    assert cache.entry(old).exists()
    assert [e.digest for e in cache.prune(86400)] == [old.digest]
    assert not cache.entry(old).exists() and cache.lookup(key) is not None
