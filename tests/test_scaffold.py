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

REPO = Path(__file__).resolve().parents[1]


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


# Issue 27 item 9: the steps and tensors are the user's. A spread of designs: the text
# model, one without an ONNX step, one with two, numeric types of every width.
DESIGNS: dict[str, list[str]] = {
    "text": [
        *("--step", "tok:python", "--step", "clf:onnx", "--step", "post:python"),
        *("--input", "TEXT:TYPE_STRING:1", "--output", "LABEL:TYPE_STRING:1"),
    ],
    "python_only": [
        *("--step", "only:python"),
        *("--input", "IDS:TYPE_INT32:2", "--input", "MASK:TYPE_BOOL:3"),
        *("--output", "SCORE:TYPE_FP16:2", "--output", "COUNT:TYPE_INT64:1"),
        *("--output", "NAME:BYTES:1", "--output", "FLAG:TYPE_BOOL:1"),
    ],
    "two_onnx": [
        *("--step", "embed:onnx", "--step", "head:onnx"),
        *("--input", "PIXELS:UINT8:3,4", "--input", "SCALE:FP64:1"),
        *("--output", "LOGITS:FP64:2", "--output", "CLASS:INT8:1"),
    ],
}


def _new(repo: Path, name: str, flags: list[str]) -> Path:
    model_dir = repo / "models" / name
    assert main(["new", str(model_dir), "--repo-root", str(repo), *flags]) == 0
    return model_dir


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_steps_and_tensors_are_the_users(design: str, tmp_path: Path) -> None:
    from mmepack.cases.load import load_cases
    from mmepack.model.repository import read_model_directory

    repo = _fresh_repo(tmp_path / "repo")
    model_dir = _new(repo, f"m_{design}", DESIGNS[design])
    directory = read_model_directory(model_dir)
    assert directory.name == f"m_{design}"
    steps = [a.split(":")[0] for a in DESIGNS[design][1::2] if a.endswith(("python", "onnx"))]
    assert sorted(m.name for m in directory.models) == sorted(
        [f"m_{design}", *(f"m_{design}_{s}" for s in steps)]
    )
    assert [p.severity for p in validate_model_directory(model_dir)] in (
        ["warning"],  # no lock yet: `mmepack lock` resolves with pip
        [],  # no Python step: nothing to lock
    )
    onnx_files = sorted(model_dir.glob("*/1/model.onnx"))
    kinds = DESIGNS[design][1::2]
    assert len(onnx_files) == sum(a.endswith(":onnx") for a in kinds)
    assert all(f.with_name("model.onnx.dvc").is_file() for f in onnx_files)
    assert (model_dir / "requirements.txt").is_file() == any(a.endswith(":python") for a in kinds)
    [case] = load_cases(model_dir)
    assert case.name == "example" and case.expected


def test_onnx_steps_compute_what_the_python_steps_compute(tmp_path: Path) -> None:
    """The case's expected values come from the Python steps' own function; each generated ONNX
    graph must give the same bits for the same inputs (checked here with ONNX Runtime; the
    served end to end in test_scaffold_models.py)."""
    import numpy as np
    import onnxruntime

    from mmepack import scaffold

    reads = [
        scaffold.TensorSpec("A", "TYPE_UINT8", (3, 4)),
        scaffold.TensorSpec("B", "TYPE_FP64", (1,)),
        scaffold.TensorSpec("C", "TYPE_BOOL", (3,)),
    ]
    writes = [
        scaffold.TensorSpec("F", "TYPE_FP32", (4,)),
        scaffold.TensorSpec("H", "TYPE_FP16", (2, 2)),
        scaffold.TensorSpec("I", "TYPE_INT8", (3,)),
        scaffold.TensorSpec("J", "TYPE_BOOL", (1,)),
    ]
    path = tmp_path / "model.onnx"
    scaffold.write_onnx_model(path, TargetServer(), reads, writes, shift=2)
    values = scaffold._case_inputs(reads)
    arrays = {t.name: scaffold._as_array(t, values[t.name]) for t in reads}
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, arrays)))
    scope: dict[str, object] = {"np": np}
    exec(scaffold._STEP_CODE, scope)
    want = scope["answer"](list(arrays.values()), [(t.name, t.numpy_type, t.dims) for t in writes], 2)  # type: ignore[operator]
    for name, expected in want:
        assert got[name].dtype == expected.dtype and got[name].tolist() == expected.tolist(), name


def test_tests_folder_is_laid_out_as_the_examples(tmp_path: Path) -> None:
    repo = _fresh_repo(tmp_path / "repo")
    model_dir = _new(repo, "tiny", [])
    tests = sorted(
        p.relative_to(model_dir / "tests").as_posix()
        for p in (model_dir / "tests").rglob("*")
        if p.is_file()
    )
    assert tests == ["BUILD", "cases/example.json", "conftest.py", "test_tiny.py"]
    example = REPO / "models" / "screen_detector" / "tests" / "conftest.py"
    assert (model_dir / "tests" / "conftest.py").read_text() == example.read_text()
    assert 'python_test_utils(name="conftest")' in (model_dir / "tests" / "BUILD").read_text()


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--step", "tok"], "--step 'tok': expected NAME:KIND"),
        (["--step", "tok:torch"], "KIND one of python, onnx"),
        (["--input", "TEXT:STRING"], "--input 'TEXT:STRING': expected NAME:TYPE:DIMS, e.g."),
        (["--input", "TEXT:TYPE_TEXT:1"], "type 'TYPE_TEXT' is not one of TYPE_BOOL"),
        (["--output", "Y:FP32:-1"], "--output 'Y:FP32:-1': dims '-1' must be positive sizes"),
        (["--input", "X:FP32:4", "--output", "X:FP32:4"], "--output X: already given as --input"),
        (["--step", "a:python", "--step", "a:onnx"], "--step a: given twice"),
        (["--step", "tok:python", "--input", "tok_features:FP32:1"], "use that name between"),
        (
            ["--step", "clf:onnx", "--input", "TEXT:TYPE_STRING:1"],
            "--step clf:onnx comes first, but input TEXT is TYPE_STRING",
        ),
    ],
)
def test_bad_flags_name_the_flag_and_the_form(
    flags: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", str(tmp_path / "m"), "--repo-root", str(tmp_path), *flags]) == 1
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err, err
    assert not (tmp_path / "m").exists(), "nothing is written when a flag is wrong"
