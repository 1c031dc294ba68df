"""Bytecode shipped for Python steps: present, valid for the environment's Python, checked by
source hash, and reproducible (the same inputs still give the same artifact bytes)."""

from __future__ import annotations

import importlib.util
import io
import sys
import tarfile
from pathlib import Path

from mmepack.build import package_model
from tests.demo_models import write_ensemble_model

MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"


def _fake_env(path: Path) -> Path:
    """The smallest archive that says which Python it packs (lib/python3.X/)."""
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(f"lib/python{MINOR}/os.py")
        tar.addfile(info, io.BytesIO(b""))
    return path


def test_steps_in_the_environment_ship_checked_hash_bytecode(tmp_path: Path) -> None:
    model_dir = write_ensemble_model(tmp_path / "demo", env=True)
    env = _fake_env(tmp_path / "python_env.tar.gz")
    first = package_model(model_dir, tmp_path / "a", env_archive=env)
    tag = sys.implementation.cache_tag
    member = f"demo_double/1/__pycache__/model.{tag}.pyc"
    assert member in first.members
    with tarfile.open(first.path) as tar:
        data = tar.extractfile(member).read()  # type: ignore[union-attr]
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b11  # hash-based, checked against the source
    source = (model_dir / "demo_double" / "1" / "model.py").read_bytes()
    assert data[8:16] == importlib.util.source_hash(source)

    (model_dir / "demo_double" / "1" / "model.py").touch()
    second = package_model(model_dir, tmp_path / "b", env_archive=env)
    assert first.path.read_bytes() == second.path.read_bytes()


def test_steps_without_an_environment_get_no_bytecode(tmp_path: Path) -> None:
    result = package_model(write_ensemble_model(tmp_path / "demo"), tmp_path / "dist")
    assert not [m for m in result.members if "__pycache__" in m]
