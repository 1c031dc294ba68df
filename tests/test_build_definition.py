"""One build definition: the CLI reads the Python Pants reads, and artifacts do not depend on
the permission bits of the files handed to the writer (the CLI's and Pants' differ)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mmepack.artifact.writer import write_artifact
from mmepack.cli import main
from mmepack.errors import MmepackError
from mmepack.model.build_file import build_file_python, model_python
from mmepack.model.repository import read_model_directory
from mmepack.names import ENV_ARCHIVE, STUB_NAME
from tests.demo_models import write_ensemble_model, write_env_archive

REPO = Path(__file__).resolve().parents[1]


def test_example_reads_the_python_its_build_file_sets() -> None:
    model = REPO / "models" / "screen_detector"
    assert build_file_python(model) == "3.12"
    assert model_python(model, None) == "3.12"


def test_flag_that_contradicts_the_build_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "BUILD").write_text('triton_model(name="m", python_version="3.12")\n')
    assert model_python(tmp_path, "3.12") == "3.12"
    with pytest.raises(MmepackError, match=r'python_version="3.12" but --python is 3.11'):
        model_python(tmp_path, "3.11")


def test_unset_field_falls_back_to_pants_toml_then_default(tmp_path: Path) -> None:
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    (model / "BUILD").write_text('triton_model(name="m")\n')
    (tmp_path / "pants.toml").write_text('[mmepack]\npython_version = "3.10"\n')
    assert model_python(model, None) == "3.10"
    (tmp_path / "pants.toml").write_text("[GLOBAL]\n")
    assert model_python(model, None) == "3.11"


def test_computed_value_is_refused_not_guessed(tmp_path: Path) -> None:
    (tmp_path / "BUILD").write_text('V = "3.12"\ntriton_model(name="m", python_version=V)\n')
    with pytest.raises(MmepackError, match="BUILD:2: triton_model.python_version is not"):
        build_file_python(tmp_path)


def test_package_command_refuses_the_contradiction_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = write_ensemble_model(tmp_path / "demo", env=True)
    (model / "BUILD").write_text('triton_model(name="demo", python_version="3.12")\n')
    assert main(["package", str(model), "--python", "3.11", "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "mmepack: error:" in err and "Traceback" not in err


def test_artifact_bytes_do_not_depend_on_source_permissions(tmp_path: Path) -> None:
    model = write_ensemble_model(tmp_path / "demo", env=True)
    directory = read_model_directory(model)
    digests = []
    for mode in (0o644, 0o755):
        env = write_env_archive(tmp_path / f"env-{mode:o}" / ENV_ARCHIVE)
        stub = env.parent / STUB_NAME
        stub.write_bytes(b"stub")
        os.chmod(env, mode)
        os.chmod(stub, mode)
        out = tmp_path / f"out-{mode:o}"
        result = write_artifact(directory, "1", out, env, [], stub)
        digests.append(hashlib.sha256(result.path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_no_target_names_the_local_dvc_remote_folder() -> None:
    # A team that moves its weights to S3 deletes dvc-remote/ (README's team setup); a target
    # whose sources glob into it then warns "Unmatched glob" on every package.
    for build in (REPO / "BUILD", REPO / "tests" / "BUILD", *REPO.glob("models/*/BUILD")):
        text = build.read_text()
        assert '"dvc-remote/' not in text, f"{build} names files under dvc-remote/"


def test_lock_without_python_takes_the_build_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `./pants lock-envs` on a target without python_version passes no --python (issue 27):
    # the CLI then takes what package takes, never the text "None".
    from types import SimpleNamespace

    import mmepack.environment.lock as lock

    asked: list[str] = []

    def fake_lock(model_dir: Path, python: str, **_: object) -> SimpleNamespace:
        asked.append(python)
        return SimpleNamespace(
            path=model_dir / "requirements.lock", python=python, platform="p", pins=[]
        )

    monkeypatch.setattr(lock, "lock_model", fake_lock)
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    (model / "requirements.txt").write_text("numpy<2\n")
    (model / "BUILD").write_text('triton_model(name="m", python_version="3.12")\n')
    assert main(["lock", str(model)]) == 0
    (model / "BUILD").write_text('triton_model(name="m")\n')
    (tmp_path / "pants.toml").write_text('[mmepack]\npython_version = "3.10"\n')
    assert main(["lock", str(model)]) == 0
    assert asked == ["3.12", "3.10"]
