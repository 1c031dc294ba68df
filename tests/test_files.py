"""The one write-then-rename helper: readers see the old content or the new, never a part."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmepack.files import atomic_path, copy_atomically


def test_file_appears_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "out" / "artifact.tar.gz"
    with atomic_path(target) as partial:
        partial.write_bytes(b"half")
        assert not target.exists()
        assert partial.parent == target.parent and partial.name.startswith(".")
        partial.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert os.listdir(target.parent) == ["artifact.tar.gz"]


def test_failure_keeps_the_old_file_and_leaves_no_litter(tmp_path: Path) -> None:
    target = tmp_path / "artifact.tar.gz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as partial:
        partial.write_bytes(b"new but broken")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["artifact.tar.gz"]


def test_folder_replaces_an_existing_folder_whole(tmp_path: Path) -> None:
    target = tmp_path / "entry"
    target.mkdir()
    (target / "stale.txt").write_text("stale")
    with atomic_path(target) as partial:
        partial.mkdir()
        (partial / "manifest.json").write_text("{}")
    assert sorted(os.listdir(target)) == ["manifest.json"]
    assert os.listdir(tmp_path) == ["entry"]


def test_failed_folder_is_removed(tmp_path: Path) -> None:
    with pytest.raises(OSError), atomic_path(tmp_path / "entry") as partial:
        partial.mkdir()
        (partial / "a").write_text("a")
        raise OSError("disk full")
    assert os.listdir(tmp_path) == []


def test_copy_keeps_mode(tmp_path: Path) -> None:
    source = tmp_path / "stub"
    source.write_bytes(b"\x7fELF")
    source.chmod(0o755)
    copy_atomically(source, tmp_path / "dest" / "stub")
    copied = tmp_path / "dest" / "stub"
    assert copied.read_bytes() == b"\x7fELF" and copied.stat().st_mode & 0o777 == 0o755
