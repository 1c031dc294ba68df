"""One tool for weights: `mmepack add-weights`, `push-weights` and `pull-weights` run DVC
inside mmepack (real DVC, a local-folder remote), so no separately installed dvc is needed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mmepack.cli import main
from mmepack.model.weights import file_md5, pull_weights, tracked_files

# DVC reads a relative remote URL from the folder of the config file (.dvc/).
REMOTE_CONFIG = (
    "[core]\n    no_scm = True\n    remote = store\n['remote \"store\"']\n    url = ../../store\n"
)


def test_add_push_pull_without_the_dvc_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No dvc on PATH: only mmepack's own DVC can do the work.
    monkeypatch.setenv("PATH", os.path.dirname(shutil.which("python3") or "/usr/bin/python3"))
    assert shutil.which("dvc") is None or "pex" in (shutil.which("dvc") or "")
    root = tmp_path / "repo"
    (root / ".dvc").mkdir(parents=True)
    (root / ".dvc" / "config").write_text(REMOTE_CONFIG)
    weight = root / "models" / "m" / "m_onnx" / "1" / "model.onnx"
    weight.parent.mkdir(parents=True)
    weight.write_bytes(os.urandom(2048))
    md5 = file_md5(weight)

    assert main(["add-weights", str(weight), f"--repo-root={root}"]) == 0
    out = capsys.readouterr().out
    assert f"recorded {weight} in {weight}.dvc (md5 {md5})" in out
    assert f"md5: {md5}" in (weight.parent / "model.onnx.dvc").read_text()

    assert main(["push-weights", str(root / "models" / "m"), f"--repo-root={root}"]) == 0
    assert "pushed 1 object(s)" in capsys.readouterr().out
    assert (tmp_path / "store" / "files" / "md5" / md5[:2] / md5[2:]).is_file()

    weight.unlink()
    cache = tmp_path / "dvc-cache"
    pull_weights("m", root, tracked_files(root / "models" / "m"), cache_dir=cache)
    assert file_md5(weight) == md5


def test_push_without_records_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "repo"
    (root / ".dvc").mkdir(parents=True)
    (root / ".dvc" / "config").write_text(REMOTE_CONFIG)
    (root / "models" / "m").mkdir(parents=True)
    assert main(["push-weights", str(root / "models" / "m"), f"--repo-root={root}"]) == 1
    assert "record weights first with `mmepack add-weights <file>`" in capsys.readouterr().err
