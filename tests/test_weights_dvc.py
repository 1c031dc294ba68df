"""Real DVC: a local remote, `dvc add`/`push`, then mmepack pulls into a tree without git."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmepack.errors import MmepackError
from mmepack.model.weights import file_md5, pull_weights, tracked_files, verify_weights


def _dvc(cwd: Path, *args: str) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, check=True, env=env)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    weights = root / "models" / "m" / "m_onnx" / "1"
    weights.mkdir(parents=True)
    (weights / "model.onnx").write_bytes(os.urandom(4096))
    _dvc(root, "init", "--no-scm")
    _dvc(root, "remote", "add", "-d", "store", "../store")
    _dvc(root, "add", "models/m/m_onnx/1/model.onnx")
    _dvc(root, "push")
    shutil.rmtree(root / ".dvc" / "cache")
    return root


def test_pull_restores_tracked_bytes(repo: Path) -> None:
    model = repo / "models" / "m"
    onnx = model / "m_onnx" / "1" / "model.onnx"
    expected = file_md5(onnx)
    onnx.unlink()
    files = tracked_files(model)
    assert [f.md5 for f in files] == [expected]
    pull_weights("m", repo, files)
    verify_weights("m", files)
    assert file_md5(onnx) == expected


def test_object_missing_from_remote_names_model_and_file(repo: Path, tmp_path: Path) -> None:
    model = repo / "models" / "m"
    (model / "m_onnx" / "1" / "model.onnx").unlink()
    shutil.rmtree(tmp_path / "store")
    (tmp_path / "store").mkdir()
    with pytest.raises(MmepackError) as caught:
        pull_weights("m", repo, tracked_files(model))
    message = str(caught.value)
    assert message.startswith("model 'm': `dvc pull` failed for ")
    assert "m_onnx/1/model.onnx" in message and "model.onnx.dvc" in message
