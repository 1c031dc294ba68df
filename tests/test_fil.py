"""Tree models on Triton's FIL backend: their configs validated, and the local test server,
which has no FIL backend, refusing them before Triton loads anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmepack.build import package_model
from mmepack.endpoint import LoadFailed, LocalEndpoint
from mmepack.errors import MmepackError
from mmepack.testing import serve_artifact
from mmepack.validate import Problem, count_errors, validate_model_directory

PARAMETERS = """parameters [
  { key: "model_type" value: { string_value: "xgboost_json" } },
  { key: "output_class" value: { string_value: "true" } },
  { key: "threshold" value: { string_value: "0.5" } }
]
"""
CONFIG = """name: "trees"
backend: "fil"
max_batch_size: 32
input [ { name: "input__0" data_type: TYPE_FP32 dims: [ 6 ] } ]
output [ { name: "output__0" data_type: TYPE_FP32 dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU } ]
"""


def fil_model(root: Path, parameters: str = PARAMETERS, model_file: str = "xgboost.json") -> Path:
    (root / "trees" / "1").mkdir(parents=True)
    (root / "trees" / "config.pbtxt").write_text(CONFIG + parameters)
    (root / "trees" / "1" / model_file).write_text('{"learner": {}}\n')
    (root / "model_version.txt").write_text("1\n")
    return root


def errors(problems: list[Problem]) -> list[str]:
    return [f"{p.field}: {p.message}" for p in problems if p.severity == "error"]


def test_a_complete_fil_config_passes_with_a_warning_about_local_tests(tmp_path: Path) -> None:
    problems = validate_model_directory(fil_model(tmp_path))
    assert count_errors(problems) == 0, problems
    [warning] = problems
    assert warning.field == "backend" and warning.line == 2
    assert "no FIL backend" in warning.message and "ONNX-ML" in warning.message


def test_output_class_is_required(tmp_path: Path) -> None:
    root = fil_model(tmp_path, PARAMETERS.replace("output_class", "outputclass"))
    found = errors(validate_model_directory(root))
    assert len(found) == 1 and found[0].startswith("parameters.output_class:"), found
    assert "required (no default)" in found[0] and 'key: "output_class"' in found[0]


def test_a_classifier_needs_its_threshold(tmp_path: Path) -> None:
    root = fil_model(
        tmp_path, PARAMETERS.replace('  { key: "threshold" value: { string_value: "0.5" } }\n', "")
    )
    config = root / "trees" / "config.pbtxt"
    classifier = config.read_text().replace('"true" } },', '"true" } }')
    config.write_text(classifier)
    found = errors(validate_model_directory(root))
    assert len(found) == 1 and found[0].startswith("parameters.threshold:"), found
    # A regressor needs none.
    config.write_text(classifier.replace('"true"', '"false"'))
    assert errors(validate_model_directory(root)) == []


def test_unknown_model_type_is_refused(tmp_path: Path) -> None:
    root = fil_model(tmp_path, PARAMETERS.replace("xgboost_json", "lightgbm_text"))
    found = errors(validate_model_directory(root))
    assert any(
        f.startswith("parameters.model_type:")
        and "'lightgbm_text'" in f
        and "treelite_checkpoint" in f
        for f in found
    ), found


def test_the_model_file_follows_model_type(tmp_path: Path) -> None:
    # model_type lightgbm reads 1/model.txt; an xgboost.json there is not what FIL loads.
    root = fil_model(tmp_path, PARAMETERS.replace("xgboost_json", "lightgbm"))
    found = errors(validate_model_directory(root))
    assert len(found) == 1 and "1/model.txt is missing" in found[0], found
    (root / "trees" / "1" / "xgboost.json").rename(root / "trees" / "1" / "model.txt")
    assert errors(validate_model_directory(root)) == []


def test_local_test_server_refuses_a_fil_model_before_loading_it(tmp_path: Path) -> None:
    artifact = package_model(fil_model(tmp_path / "src"), tmp_path / "dist").path
    # Model tests' plain-repository route: refused while unpacking, before a server starts.
    with pytest.raises(MmepackError) as raised:
        with serve_artifact(artifact, route="repository"):
            pytest.fail("a FIL model was served")
    message = str(raised.value)
    assert "step 'trees' uses backend \"fil\"" in message
    assert "no FIL backend" in message and "convert it to ONNX-ML" in message
    # The local endpoint answers the load like SageMaker's front end (400), and Triton never
    # receives the load request.
    with LocalEndpoint([artifact], name="fil", log=None) as endpoint:
        with pytest.raises(LoadFailed) as failed:
            endpoint.load(artifact.name)
        assert failed.value.status == 400
        assert "convert it to ONNX-ML" in failed.value.message
        assert "repository/index" not in endpoint.server.log_text()
        assert endpoint.loaded() == [] and endpoint.server.running()
