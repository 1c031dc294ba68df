"""A DVC-tracked working copy that differs from its `.dvc` record is reported by validate (lint),
cheaply: a size change needs no hash, and an untouched copy is hashed once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mmepack import files
from mmepack.cli import main
from mmepack.model import drift
from mmepack.validate import validate_model_directory
from tests.demo_models import write_ensemble_model

WEIGHT = "demo_double/1/weights.bin"


@pytest.fixture
def tracked_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(drift.HASH_MEMO_VARIABLE, str(tmp_path / "memo.json"))
    model = write_ensemble_model(tmp_path / "demo")
    data = os.urandom(4096)
    (model / WEIGHT).write_bytes(data)
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    (model / f"{WEIGHT}.dvc").write_text(
        f"outs:\n- md5: {md5}\n  size: {len(data)}\n  hash: md5\n  path: weights.bin\n"
    )
    return model


def _drift_problems(model: Path) -> list[str]:
    return [str(p) for p in validate_model_directory(model) if "DVC record" in p.message]


def test_recorded_copy_is_quiet_and_hashed_once(
    tracked_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _drift_problems(tracked_model) == []
    hashed: list[Path] = []
    real = files.file_hexdigest

    def counting(path: Path, algorithm: str) -> str:
        hashed.append(path)
        return real(path, algorithm)

    monkeypatch.setattr(drift, "file_hexdigest", counting)
    assert _drift_problems(tracked_model) == []
    assert hashed == []  # the memo answered: an untouched copy is not read again


def test_rewritten_copy_is_reported_with_the_commands_that_record_it(
    tracked_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tracked_model / WEIGHT).write_bytes(b"a smaller rewrite")

    def no_hash(path: Path, algorithm: str) -> str:
        raise AssertionError(f"hashed {path}: a size change must not need a hash")

    monkeypatch.setattr(drift, "file_hexdigest", no_hash)
    problems = _drift_problems(tracked_model)
    assert len(problems) == 1
    text = problems[0]
    assert str(tracked_model / WEIGHT) in text
    assert f"{tracked_model / WEIGHT}.dvc" in text
    assert "17 bytes, recorded 4096" in text
    assert f"mmepack add-weights {tracked_model / WEIGHT}" in text
    # `mmepack validate` (what `./pants lint` runs) fails on it.
    assert main(["validate", str(tracked_model)]) == 1
    assert "differs from its DVC record" in capsys.readouterr().out


def test_same_size_rewrite_is_found_by_its_hash(tracked_model: Path) -> None:
    assert _drift_problems(tracked_model) == []  # memo filled with the recorded bytes' md5
    path = tracked_model / WEIGHT
    path.write_bytes(os.urandom(4096))
    os.utime(path, ns=(1, 1))  # a new identity even where mtime resolution is coarse
    problems = _drift_problems(tracked_model)
    assert len(problems) == 1 and "md5 " in problems[0] and "recorded " in problems[0]


def test_missing_copy_is_not_drift(tracked_model: Path) -> None:
    (tracked_model / WEIGHT).unlink()
    assert _drift_problems(tracked_model) == []


def test_check_weights_is_what_pants_package_runs(
    tracked_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-weights", str(tracked_model)]) == 0
    (tracked_model / WEIGHT).write_bytes(b"rewritten without dvc add")
    assert main(["check-weights", str(tracked_model)]) == 1
    err = capsys.readouterr().err
    assert f"mmepack: error: {tracked_model}: 1 DVC-tracked file(s) differ" in err
    assert f"mmepack add-weights {tracked_model / WEIGHT}" in err
