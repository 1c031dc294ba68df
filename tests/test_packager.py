from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

import pytest

from mmepack.artifact.env_layout import EnvLayout
from mmepack.artifact.writer import read_members, write_artifact
from mmepack.build import package_model
from mmepack.errors import MmepackError
from mmepack.model.repository import read_model_directory
from mmepack.model.weights import tracked_files
from tests.demo_models import write_ensemble_model, write_env_archive


def test_mme_layout_with_empty_ensemble_version_folder(model_dir: Path, tmp_path: Path) -> None:
    (model_dir / "requirements.txt").write_text("pillow\n")
    (model_dir / "tests").mkdir()
    (model_dir / "tests" / "test_demo.py").write_text("")
    (model_dir / "demo_double" / "1" / "__pycache__").mkdir()
    (model_dir / "demo_double" / "1" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"")
    result = package_model(model_dir, tmp_path / "dist")
    assert result.path == tmp_path / "dist" / "demo_1.tar.gz"
    assert sorted(read_members(result.path)) == [
        "demo",
        "demo/1",
        "demo/config.pbtxt",
        "demo_double",
        "demo_double/1",
        "demo_double/1/model.py",
        "demo_double/config.pbtxt",
    ]


def test_ensemble_version_folder_holding_only_ignored_files_still_ships(
    model_dir: Path, tmp_path: Path
) -> None:
    # A `1/` kept in git by a `.gitkeep` exists on disk but none of its files ship; without the
    # packager adding it, Triton refuses the ensemble for lack of a version folder.
    (model_dir / "demo" / "1").mkdir(exist_ok=True)
    (model_dir / "demo" / "1" / ".gitkeep").write_text("")
    members = read_members(package_model(model_dir, tmp_path / "dist").path)
    assert "demo/1" in members
    assert "demo/1/.gitkeep" not in members


def test_no_build_file_at_any_depth_is_packaged(model_dir: Path, tmp_path: Path) -> None:
    # Pants' Python tailor used to put a BUILD file in a step's version folder.
    for rel in ("BUILD", "demo_double/BUILD", "demo_double/1/BUILD", "demo_double/1/BUILD.pants"):
        (model_dir / rel).write_text("python_sources()\n")
    members = read_members(package_model(model_dir, tmp_path / "dist").path)
    assert [m for m in members if "BUILD" in m] == []
    assert "demo_double/1/model.py" in members


def test_environment_goes_where_execution_env_path_points_in_the_layout_before(
    tmp_path: Path,
) -> None:
    model_dir = write_ensemble_model(tmp_path / "demo", env=True)
    env = write_env_archive(tmp_path / "python_env.tar.gz")
    result = package_model(model_dir, tmp_path / "dist", env_archive=env, layout=EnvLayout.PER_STEP)
    with tarfile.open(result.path) as tar:
        member = tar.extractfile("demo_double/python_env.tar.gz")
        assert member is not None and member.read() == env.read_bytes()
        # The default target (Triton 2.51.0) runs a 3.10 stub; the 3.11 environment needs its own.
        stub = tar.getmember("demo_double/triton_python_backend_stub")
        assert stub.mode == 0o755 and stub.size > 100_000
        assert "demo/triton_python_backend_stub" not in tar.getnames()  # not for the ensemble


def test_environment_goes_once_into_the_ensemble_folder(tmp_path: Path) -> None:
    model_dir = write_ensemble_model(tmp_path / "demo", env=True)
    env = write_env_archive(tmp_path / "python_env.tar.gz")
    result = package_model(model_dir, tmp_path / "dist", env_archive=env)
    with tarfile.open(result.path) as tar:
        member = tar.extractfile("demo/python_env.tar")
        assert member is not None and member.read() == gzip.decompress(env.read_bytes())
        assert [n for n in tar.getnames() if "python_env" in n] == ["demo/python_env.tar"]
        config = tar.extractfile("demo_double/config.pbtxt")
        assert config is not None
        assert '"$$TRITON_MODEL_DIRECTORY/../demo/python_env.tar"' in config.read().decode()
        # The stub stays per step: Triton looks for it only in the step's own folder.
        assert tar.getmember("demo_double/triton_python_backend_stub").mode == 0o755


def test_same_inputs_give_identical_bytes(model_dir: Path, tmp_path: Path) -> None:
    first = package_model(model_dir, tmp_path / "a").path.read_bytes()
    (model_dir / "demo" / "config.pbtxt").touch()
    second = package_model(model_dir, tmp_path / "b").path.read_bytes()
    assert first == second


def test_env_required_but_missing_is_an_error(tmp_path: Path) -> None:
    model_dir = write_ensemble_model(tmp_path / "demo", env=True)
    directory = read_model_directory(model_dir)
    with pytest.raises(MmepackError, match=r"demo_double/config.pbtxt: sets EXECUTION_ENV_PATH"):
        write_artifact(directory, "1", tmp_path / "dist", None, [])
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())


def test_missing_version_file_stops_before_writing(tmp_path: Path) -> None:
    model_dir = write_ensemble_model(tmp_path / "demo", version=None)
    with pytest.raises(
        MmepackError, match=r"model 'demo': validation (.|\n)*model_version.txt: is missing"
    ):
        package_model(model_dir, tmp_path / "dist")
    assert not (tmp_path / "dist").exists()


def test_missing_dvc_object_names_file_and_leaves_no_artifact(
    model_dir: Path, tmp_path: Path
) -> None:
    weights = model_dir / "demo_double" / "1" / "model.onnx.dvc"
    weights.write_text("outs:\n- md5: 0123456789abcdef0123456789abcdef\n  path: model.onnx\n")
    dist = tmp_path / "dist"
    dist.mkdir()
    with pytest.raises(MmepackError) as caught:
        package_model(model_dir, dist)
    message = str(caught.value)
    assert "model 'demo'" in message
    assert "demo_double/1/model.onnx (tracked by" in message and "is missing" in message
    assert list(dist.iterdir()) == []


def test_changed_weights_are_refused(model_dir: Path, tmp_path: Path) -> None:
    onnx = model_dir / "demo_double" / "1" / "model.onnx"
    onnx.write_bytes(b"new weights")
    (model_dir / "demo_double" / "1" / "model.onnx.dvc").write_text(
        "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 3\n  path: model.onnx\n"
    )
    assert len(tracked_files(model_dir)) == 1
    # Validation (what lint runs) reports it first, naming the file and how to record it.
    with pytest.raises(
        MmepackError, match=r"differs from its DVC record .*\(11 bytes, recorded 3\)"
    ):
        package_model(model_dir, tmp_path / "dist")


def test_two_ensembles_are_refused(model_dir: Path) -> None:
    other = model_dir / "other"
    other.mkdir()
    (other / "config.pbtxt").write_text('name: "other"\nplatform: "ensemble"\n')
    with pytest.raises(MmepackError, match=r"needs exactly one ensemble"):
        read_model_directory(model_dir)


def test_ensemble_line_sagemaker_cannot_match_is_refused(model_dir: Path) -> None:
    config = model_dir / "demo" / "config.pbtxt"
    config.write_text(config.read_text().replace('platform: "ensemble"', "platform: 'ensemble'"))
    with pytest.raises(MmepackError, match=r"write the line exactly as platform: \"ensemble\""):
        read_model_directory(model_dir)


def test_config_name_must_match_folder(model_dir: Path) -> None:
    config = model_dir / "demo_double" / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "demo_double"', 'name: "double"'))
    with pytest.raises(MmepackError, match=r"name is 'double' but the folder is 'demo_double'"):
        read_model_directory(model_dir)


@pytest.mark.parametrize(
    "value",
    ["/opt/env.tar.gz", "$$TRITON_MODEL_DIRECTORY/../env.tar.gz", "$$TRITON_MODEL_DIRECTORY/env"],
)
def test_execution_env_path_must_stay_in_model_folder(model_dir: Path, value: str) -> None:
    config = model_dir / "demo_double" / "config.pbtxt"
    config.write_text(
        config.read_text()
        + f'parameters: {{ key: "EXECUTION_ENV_PATH" value: {{ string_value: "{value}" }} }}\n'
    )
    with pytest.raises(MmepackError, match="EXECUTION_ENV_PATH"):
        read_model_directory(model_dir).python_env_models()


def test_failed_build_leaves_no_previous_artifact(model_dir: Path, tmp_path: Path) -> None:
    # The earlier tar under the same name must not survive a failed build, ready to publish.
    first = package_model(model_dir, tmp_path / "dist").path
    assert first.is_file()
    (model_dir / "demo" / "config.pbtxt").write_text("this is not a config {")
    with pytest.raises(MmepackError):
        package_model(model_dir, tmp_path / "dist")
    assert not first.exists()
