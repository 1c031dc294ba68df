"""An artifact older than its model's sources is named stale, and `record-cases`/`test-cases`
refuse to compare against it instead of reporting "unchanged"."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mmepack.artifact.freshness import require_fresh, stale_reasons
from mmepack.artifact.writer import write_artifact
from mmepack.cli import main
from mmepack.errors import MmepackError
from mmepack.model.repository import read_model_directory
from mmepack.model.weights import tracked_files
from mmepack.names import ENV_ARCHIVE
from tests.demo_models import write_ensemble_model, write_env_archive

WEIGHT = "demo_double/1/weights.bin"


def _track(model: Path, data: bytes) -> None:
    (model / WEIGHT).write_bytes(data)
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    (model / f"{WEIGHT}.dvc").write_text(
        f"outs:\n- md5: {md5}\n  size: {len(data)}\n  path: weights.bin\n"
    )


def _package(model: Path, out: Path) -> Path:
    env = write_env_archive(out.parent / "env" / ENV_ARCHIVE)
    directory = read_model_directory(model)
    return write_artifact(directory, "1", out, env, tracked_files(model)).path


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path]:
    model = write_ensemble_model(tmp_path / "demo", env=True)
    _track(model, os.urandom(512))
    return model, _package(model, tmp_path / "dist")


def test_fresh_artifact_passes(built: tuple[Path, Path]) -> None:
    model, artifact = built
    assert stale_reasons(artifact, model) == []
    require_fresh(artifact, model)


def test_edited_step_code_makes_it_stale(built: tuple[Path, Path]) -> None:
    model, artifact = built
    step = model / "demo_double" / "1" / "model.py"
    step.write_text(step.read_text().replace("data * 2", "data * 3"))
    assert stale_reasons(artifact, model) == [
        "demo_double/1/model.py differs from the model's file"
    ]
    with pytest.raises(MmepackError, match=r"is older than .*'s sources \(stale\)") as caught:
        require_fresh(artifact, model)
    assert "Package the model again" in str(caught.value)


def test_recorded_new_weight_new_file_and_version_make_it_stale(built: tuple[Path, Path]) -> None:
    model, artifact = built
    _track(model, os.urandom(512))  # `add-weights` of a new weight
    (model / "demo_double" / "1" / "vocab.txt").write_text("a\nb\n")
    (model / "model_version.txt").write_text("2\n")
    reasons = stale_reasons(artifact, model)
    assert f"{WEIGHT} differs from its DVC record" in reasons
    assert "demo_double/1/vocab.txt is in the model but not in the artifact" in reasons
    assert f"it is version 1; {model}/model_version.txt says 2" in reasons


def test_configs_only_folder_is_judged_as_far_as_it_goes(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    # What the Pants test rule's sandbox holds: the configs (and cases), nothing else.
    model, artifact = built
    sandbox = tmp_path / "sandbox" / "demo"
    for config in model.glob("*/config.pbtxt"):
        target = sandbox / config.relative_to(model)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(config.read_bytes())
    assert stale_reasons(artifact, sandbox) == []


def test_test_cases_refuses_a_stale_artifact(
    built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model, artifact = built
    (model / "tests" / "cases").mkdir(parents=True)
    (model / "tests" / "cases" / "one.json").write_text(
        '{"inputs": {"IN": {"values": [[1.0, 2.0]]}}, "expected": {"OUT": {"values": [[2.0, 4.0]]}}}'
    )
    step = model / "demo_double" / "1" / "model.py"
    step.write_text(step.read_text() + "\n# edited\n")
    for command in ("test-cases", "record-cases"):
        assert main([command, str(artifact), str(model)]) == 1
        err = capsys.readouterr().err
        assert "(stale)" in err and "demo_double/1/model.py differs" in err, err
