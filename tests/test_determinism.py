"""environment.determinism on small prefixes (the full build is in test_reproducible)."""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
from pathlib import Path

import pytest

from mmepack.environment.determinism import (
    FIXED_EPOCH,
    RECORD_FILE,
    check_no_build_path,
    make_reproducible,
    normalise_archive,
)
from mmepack.errors import MmepackError


def _prefix(root: Path, minor: str) -> tuple[Path, Path]:
    prefix = root / "env"
    site = prefix / "lib" / f"python{minor}" / "site-packages"
    (site / "pkg" / "__pycache__").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    # Packages may ship sources that do not compile; like pip, the build leaves them uncompiled.
    (site / "pkg" / "py2_example.py").write_text("print 'hello'\n")
    (site / "pkg" / "__pycache__" / "__init__.cpython-99.pyc").write_bytes(b"stale")
    info = site / "pkg-1.0.dist-info"
    info.mkdir()
    (info / "direct_url.json").write_text(f'{{"url": "file://{root}/pkg.whl"}}')
    (prefix / "bin").mkdir()
    script = prefix / "bin" / "pkg-tool"
    script.write_text(f"#!{prefix}/bin/python{minor}\nimport pkg\n")
    script.chmod(0o755)
    # What installers write when the interpreter's path is too long for a shebang line.
    trampoline = f"#!/bin/sh\n'''exec' \"{prefix}/bin/python{minor}\" \"$0\" \"$@\"\n' '''\n"
    (prefix / "bin" / "pkg-long").write_text(trampoline + "import pkg\n")
    (info / "RECORD").write_text(
        "pkg/__init__.py,sha256=x,10\n"
        "../../../bin/pkg-tool,sha256=old,99\n"
        "pkg-1.0.dist-info/direct_url.json,,\n"
        "pkg-1.0.dist-info/RECORD,,\n"
    )
    # The environment's own interpreter compiles the bytecode; this test's Python stands in.
    (prefix / "bin" / "python3").symlink_to(sys.executable)
    return prefix, site


def test_make_reproducible_removes_build_paths_and_times(tmp_path: Path) -> None:
    minor = "%d.%d" % sys.version_info[:2]
    prefix, site = _prefix(tmp_path, minor)
    make_reproducible(prefix, site, minor, {"python_version": "3.x", "lock_sha256": "ab"})
    script = (prefix / "bin" / "pkg-tool").read_text()
    assert script.startswith(f"#!/usr/bin/env python{minor}\n")
    long_form = (prefix / "bin" / "pkg-long").read_text()
    assert long_form == f"#!/usr/bin/env python{minor}\nimport pkg\n"
    assert not (site / "pkg-1.0.dist-info" / "direct_url.json").exists()
    record = (site / "pkg-1.0.dist-info" / "RECORD").read_text()
    assert "direct_url.json" not in record
    assert "../../../bin/pkg-tool,sha256=" in record and ",99" not in record
    pycs = list((site / "pkg" / "__pycache__").iterdir())
    assert [p.name for p in pycs] == [f"__init__.{sys.implementation.cache_tag}.pyc"]
    flags = int.from_bytes(pycs[0].read_bytes()[4:8], "little")
    assert flags == 0b11  # PEP 552: hash-based, checked
    assert str(tmp_path).encode() not in pycs[0].read_bytes()
    assert '"lock_sha256": "ab"' in (prefix / RECORD_FILE).read_text()


def test_build_path_left_anywhere_fails_the_build(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    (prefix / "lib").mkdir(parents=True)
    (prefix / "lib" / "thing.pth").write_text(f"{prefix}/lib/extra\n")
    with pytest.raises(MmepackError, match=r"still contains its build path .* in lib/thing.pth"):
        check_no_build_path(prefix)


def _plain_tar(path: Path, folder: Path, order: list[str]) -> None:
    with tarfile.open(path, "w") as tar:
        for name in order:
            tar.add(folder / name, arcname=name, recursive=False)


def test_normalised_archive_ignores_times_owners_modes_and_order(tmp_path: Path) -> None:
    digests = []
    for index, order in enumerate((["a", "b", "d", "d/c"], ["d", "d/c", "b", "a"])):
        folder = tmp_path / f"src{index}"
        (folder / "d").mkdir(parents=True)
        for name, text in (("a", "1"), ("b", "2"), ("d/c", "3")):
            (folder / name).write_text(text)
            os.utime(folder / name, (1_000 + index * 5000, 1_000 + index * 5000))
        (folder / "b").chmod(0o600 if index else 0o664)
        plain = tmp_path / f"plain{index}.tar"
        _plain_tar(plain, folder, order)
        out = tmp_path / f"out{index}.tar.gz"
        normalise_archive(plain, out)
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
        with tarfile.open(out) as tar:
            members = tar.getmembers()
            assert [m.name for m in members] == ["a", "b", "d", "d/c"]
            assert {m.mtime for m in members} == {FIXED_EPOCH}
            assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    assert digests[0] == digests[1]
