"""`mmepack new` creates a model that validates as written, tracked by DVC in a fresh repo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from mmepack.cli import main
from mmepack.model.build_file import build_file_python
from mmepack.scaffold import SCAFFOLD_PYTHON, new_model
from mmepack.triton.target import TargetServer
from mmepack.validate import validate_model_directory


def _fresh_repo(root: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, capture_output=True
    )
    return root


def test_new_model_validates_and_its_onnx_is_tracked(tmp_path: Path) -> None:
    repo = _fresh_repo(tmp_path / "repo")
    model_dir = repo / "models" / "tiny_adder"
    lines = new_model(model_dir, repo_root=repo)
    assert any("tracked by DVC" in line for line in lines)
    problems = validate_model_directory(model_dir)
    # Only the lock is left to make (`mmepack lock`, which resolves with pip): a warning.
    assert [(p.field, p.severity) for p in problems] == [("requirements.lock", "warning")]
    assert any("mmepack lock" in line for line in lines)
    # The weights must reach the remote before the build, which reads only the remote.
    next_steps = lines[-1]
    assert next_steps.index("dvc push") < next_steps.index("./pants package")
    onnx_file = model_dir / "tiny_adder_model" / "1" / "model.onnx"
    assert (onnx_file.parent / "model.onnx.dvc").is_file()
    model = onnx.load(str(onnx_file))
    limits = TargetServer().onnx_runtime
    assert model.ir_version <= limits.max_ir_version
    assert all(o.version <= limits.max_opset for o in model.opset_import)
    requirements = (model_dir / "requirements.txt").read_text()
    assert "numpy<2" in requirements.splitlines()
    assert build_file_python(model_dir) == SCAFFOLD_PYTHON
    for step in ("tiny_adder_preprocess", "tiny_adder_postprocess"):
        assert "EXECUTION_ENV_PATH" in (model_dir / step / "config.pbtxt").read_text()
        compile((model_dir / step / "1" / "model.py").read_text(), step, "exec")


def test_refuses_existing_folder_and_bad_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    assert main(["new", str(tmp_path / "taken"), "--repo-root", str(tmp_path)]) == 1
    assert main(["new", str(tmp_path / "Bad-Name"), "--repo-root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "not valid" in err and "Traceback" not in err
