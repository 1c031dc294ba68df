"""Real DVC with a local-folder remote: `dvc add`/`push`, then mmepack pulls into a tree without
git, through a DVC cache outside the repository."""

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
    subprocess.run(
        [sys.executable, "-m", "dvc", "-q", *args], cwd=cwd, check=True, env=env, timeout=120
    )


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


def test_pull_restores_tracked_bytes_through_the_shared_cache(repo: Path, tmp_path: Path) -> None:
    model = repo / "models" / "m"
    onnx = model / "m_onnx" / "1" / "model.onnx"
    expected = file_md5(onnx)
    onnx.unlink()
    files = tracked_files(model)
    assert [f.md5 for f in files] == [expected]
    cache = tmp_path / "dvc-cache"
    result = pull_weights("m", repo, files, cache_dir=cache)
    verify_weights("m", files)
    assert file_md5(onnx) == expected
    assert result is not None and result.downloaded_objects == 1
    assert (cache / "files" / "md5" / expected[:2] / expected[2:]).is_file()
    assert not (repo / ".dvc" / "cache").exists()  # the repository's own cache stays unused

    onnx.unlink()
    again = pull_weights("m", repo, files, cache_dir=cache)
    assert again is not None and again.downloaded_objects == 0
    assert file_md5(onnx) == expected


def test_local_remote_is_read_from_the_checkout_of_a_sandbox_copy(
    repo: Path, tmp_path: Path
) -> None:
    # A Pants sandbox holds the repository's files but not its local remote folder.
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    shutil.copytree(repo / ".dvc", sandbox / ".dvc")
    shutil.copytree(repo / "models", sandbox / "models")
    (sandbox / "models" / "m" / "m_onnx" / "1" / "model.onnx").unlink()
    # The remote folder inside the checkout, as this repository's dvc-remote/ is.
    shutil.move(str(tmp_path / "store"), str(repo / "dvc-store"))
    for root in (repo, sandbox):
        (root / ".dvc" / "config").write_text(
            "[core]\n    remote = store\n['remote \"store\"']\n    url = ../dvc-store\n"
        )
    with pytest.raises(MmepackError, match="does not hold these objects"):
        pull_weights(
            "m", sandbox, tracked_files(sandbox / "models" / "m"), cache_dir=tmp_path / "c"
        )
    files = tracked_files(sandbox / "models" / "m")
    pull_weights("m", sandbox, files, cache_dir=tmp_path / "cache", checkout=repo)
    verify_weights("m", files)


def test_object_missing_from_remote_names_model_file_and_remote(repo: Path, tmp_path: Path) -> None:
    model = repo / "models" / "m"
    (model / "m_onnx" / "1" / "model.onnx").unlink()
    shutil.rmtree(tmp_path / "store")
    (tmp_path / "store").mkdir()
    with pytest.raises(MmepackError) as caught:
        pull_weights("m", repo, tracked_files(model), cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert message.startswith("model 'm': cannot pull ")
    assert "m_onnx/1/model.onnx" in message and "model.onnx.dvc" in message
    assert f"DVC remote 'store' ({tmp_path / 'store'})" in message
    assert "does not hold these objects" in message
