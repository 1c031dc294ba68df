"""Lint reads ONNX files: IR version and opset against the target Triton's ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from mmepack.cli import main
from mmepack.errors import MmepackError
from mmepack.triton.target import TargetServer
from mmepack.validate import count_errors, validate_model_directory
from mmepack.validate.onnx_files import check_onnx_file

CONFIG = """name: "adder"
backend: "onnxruntime"
max_batch_size: 0
input [ { name: "A" data_type: TYPE_FP32 dims: [ 2 ] }, { name: "B" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "C" data_type: TYPE_FP32 dims: [ 2 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""


def _add_model(ir_version: int | None, opset: int) -> onnx.ModelProto:
    tensor = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in "ABC"]
    graph = helper.make_graph(
        [helper.make_node("Add", ["A", "B"], ["C"])], "add", tensor[:2], tensor[2:]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if ir_version is not None:
        model.ir_version = ir_version
    return model


def _model_dir(root: Path, model: onnx.ModelProto | None, tracked: bool = False) -> Path:
    folder = root / "adder"
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(CONFIG)
    (root / "model_version.txt").write_text("1\n")
    if model is not None:
        onnx.save(model, str(folder / "1" / "model.onnx"))
    if tracked:
        (folder / "1" / "model.onnx.dvc").write_text(
            "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 10\n  path: model.onnx\n"
        )
    return root


def test_onnx_defaults_ir_version_is_refused_with_the_fix(tmp_path: Path) -> None:
    # The onnx package's own default IR version, as the newcomer wrote it.
    root = _model_dir(tmp_path, _add_model(None, 21))
    problems = validate_model_directory(root)
    ir = [p for p in problems if p.field == "ir_version"]
    assert onnx.IR_VERSION > 10 and len(ir) == 1 and count_errors(problems) == 1
    message = str(ir[0])
    assert "ONNX Runtime 1.19.2" in message and "at most IR version 10" in message
    assert "onnx.version_converter" in message and "opset_version=21" in message


def test_accepted_ir_and_opset_pass(tmp_path: Path) -> None:
    root = _model_dir(tmp_path, _add_model(10, 21))
    assert validate_model_directory(root) == []


def test_opset_above_the_runtime_is_refused(tmp_path: Path) -> None:
    root = _model_dir(tmp_path, _add_model(10, 22))
    problems = [p for p in validate_model_directory(root) if p.field == "opset_import"]
    assert len(problems) == 1 and "up to opset 21" in str(problems[0])


def test_older_target_is_stricter(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_add_model(10, 21), str(path))
    problems = check_onnx_file(path, TargetServer(triton_version="2.45.0"))
    assert {p.field for p in problems} == {"ir_version", "opset_import"}
    with pytest.raises(MmepackError, match="ONNX_RUNTIME_BY_TRITON"):
        check_onnx_file(path, TargetServer(triton_version="2.99.0"))


def test_dvc_tracked_file_not_pulled_is_skipped(tmp_path: Path) -> None:
    root = _model_dir(tmp_path, None, tracked=True)
    assert validate_model_directory(root) == []


def test_garbage_file_is_an_error(tmp_path: Path) -> None:
    root = _model_dir(tmp_path, None)
    (root / "adder" / "1" / "model.onnx").write_bytes(b"\xff\xfenot onnx")
    problems = validate_model_directory(root)
    assert [p.field for p in problems] == ["onnx"]


def test_validate_command_fails_on_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _model_dir(tmp_path, _add_model(None, 21))
    assert main(["validate", str(root)]) == 1
    assert "ir_version" in capsys.readouterr().out


def _tree_model(ml_opset: int) -> onnx.ModelProto:
    """A one-leaf tree ensemble (ONNX-ML, as skl2onnx writes tree models), importing the
    ai.onnx.ml domain at `ml_opset`."""
    features = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])
    score = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])
    tree = helper.make_node(
        "TreeEnsembleRegressor",
        ["X"],
        ["Y"],
        domain="ai.onnx.ml",
        n_targets=1,
        nodes_featureids=[0],
        nodes_modes=["LEAF"],
        nodes_nodeids=[0],
        nodes_treeids=[0],
        nodes_values=[0.0],
        nodes_truenodeids=[0],
        nodes_falsenodeids=[0],
        target_ids=[0],
        target_nodeids=[0],
        target_treeids=[0],
        target_weights=[0.25],
    )
    graph = helper.make_graph([tree], "trees", [features], [score])
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", ml_opset)],
    )
    model.ir_version = 8
    return model


def test_tree_model_within_the_runtimes_ml_opset_passes(tmp_path: Path) -> None:
    root = _model_dir(tmp_path, _tree_model(3))
    assert validate_model_directory(root) == []


def test_ml_opset_above_the_runtime_is_refused_at_lint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # ai.onnx.ml opset 5 (ONNX 1.16, the TreeEnsemble operator): ONNX Runtime 1.19.2 in Triton
    # 2.51.0 implements ai.onnx.ml up to opset 4.
    root = _model_dir(tmp_path, _tree_model(5))
    problems = [p for p in validate_model_directory(root) if p.field == "opset_import"]
    assert len(problems) == 1
    message = str(problems[0])
    assert "adder/1/model.onnx" in message
    assert "opset 5 of the ai.onnx.ml domain" in message
    assert "ONNX Runtime 1.19.2 implements up to ai.onnx.ml opset 4" in message
    assert "target_opset={'': 21, 'ai.onnx.ml': 4}" in message
    assert main(["validate", str(root)]) == 1
    assert "ai.onnx.ml" in capsys.readouterr().out


def test_the_default_domains_check_leaves_ai_onnx_ml_alone(tmp_path: Path) -> None:
    """ml opset 4 is above nothing and below the default domain's limit: no finding for it."""
    path = tmp_path / "trees.onnx"
    onnx.save(_tree_model(4), str(path))
    assert check_onnx_file(path, TargetServer()) == []
    assert [p.field for p in check_onnx_file(path, TargetServer(triton_version="2.45.0"))] == []
