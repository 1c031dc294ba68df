"""What slimming removes from an environment and what it must keep."""

from __future__ import annotations

from pathlib import Path

from mmepack.environment.probe import import_names
from mmepack.environment.slim import slim_prefix


def _file(path: Path, size: int = 10) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_removes_tests_headers_and_stubs_but_keeps_code(tmp_path: Path) -> None:
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    _file(site / "big" / "__init__.py", 5000)
    _file(site / "big" / "tests" / "test_big.py", 3000)
    _file(site / "big" / "_core" / "include" / "big.h", 2000)
    _file(site / "big" / "__init__.pyi", 100)
    _file(site / "big" / "__pycache__" / "__init__.cpython-311.pyc", 400)
    _file(site / "test" / "__init__.py", 10)  # a top-level package that happens to be "test"
    _file(site / "small.py", 50)
    report = slim_prefix(tmp_path)
    assert (site / "big" / "__init__.py").exists()
    assert (site / "big" / "__pycache__" / "__init__.cpython-311.pyc").exists()
    assert (site / "test" / "__init__.py").exists()
    assert not (site / "big" / "tests").exists()
    assert not (site / "big" / "_core" / "include").exists()
    assert not (site / "big" / "__init__.pyi").exists()
    assert report.removed_bytes == 3000 + 2000 + 100
    assert report.largest[0] == ("big", 5400)


def test_import_names_come_from_what_pip_installed(tmp_path: Path) -> None:
    site = tmp_path
    (site / "pillow-13.0.0.dist-info").mkdir()
    (site / "pillow-13.0.0.dist-info" / "RECORD").write_text(
        "PIL/__init__.py,sha256=x,1\nPIL/Image.py,sha256=x,1\npillow.libs/libz.so,sha256=x,1\n"
        "pillow-13.0.0.dist-info/RECORD,,\n"
    )
    (site / "scikit_learn-1.5.0.dist-info").mkdir()
    (site / "scikit_learn-1.5.0.dist-info" / "top_level.txt").write_text("sklearn\n")
    (site / "six-1.16.0.dist-info").mkdir()
    (site / "six-1.16.0.dist-info" / "RECORD").write_text("six.py,sha256=x,1\n")
    names = import_names(site, ["pillow", "scikit-learn", "six", "not-installed"])
    assert names == ["numpy", "PIL", "sklearn", "six"]


def test_an_installer_is_kept_only_when_something_requires_it_by_name(tmp_path: Path) -> None:
    from mmepack.environment.slim import _required_by_others

    tool = tmp_path / "tool-1.0.dist-info"
    tool.mkdir()
    (tool / "METADATA").write_text(
        "Name: tool\nRequires-Dist: pip-tools>=7\nRequires-Dist: wheel[dev]; extra == 'dev'\n"
        "Requires-Dist: setuptools>=40; python_version < '3.12'\n"
    )
    assert _required_by_others(tmp_path, "setuptools")
    assert not _required_by_others(tmp_path, "pip")  # pip-tools is another distribution
    assert not _required_by_others(tmp_path, "wheel")  # only for an extra
