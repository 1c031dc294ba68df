"""Test records: a model's python tests (mmepack.testing) and case runs record the exact bytes
they served, passed or not; a publish finds a passing record of the same sha256 only."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mmepack import testing
from mmepack.publish.tested import find_passing_record, record_path
from mmepack.testing import pytest_plugin


def _artifact(folder: Path, data: bytes = b"bytes") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo_1.tar.gz"
    path.write_bytes(data)
    return path


def test_python_test_run_records_beside_the_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact = _artifact(tmp_path / "dist" / "mme")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(testing, "SERVED_ARTIFACTS", [artifact])
    monkeypatch.setattr(pytest_plugin, "SERVED_ARTIFACTS", [artifact])
    [record] = pytest_plugin._record_runs(0, ["tests/test_demo.py::test_x"])
    assert record == record_path(artifact)
    data = json.loads(record.read_text())
    assert data["sha256"] == hashlib.sha256(b"bytes").hexdigest() and data["passed"] is True
    assert find_passing_record(artifact, data["sha256"], []) is not None

    # A later failing run of the same bytes replaces the passing record.
    pytest_plugin._record_runs(1, [])
    assert find_passing_record(artifact, data["sha256"], []) is None


def test_under_pants_the_record_goes_to_extra_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact = _artifact(tmp_path / "mme")
    (tmp_path / "extra-output").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pytest_plugin, "SERVED_ARTIFACTS", [artifact])
    [record] = pytest_plugin._record_runs(0, [])
    assert record == Path("extra-output") / "demo_1.tar.gz.tested.json"
    assert not record_path(artifact).exists()
    # Pants writes it under dist/test/<target>/; a publish searches there.
    dist_test = tmp_path / "dist" / "test" / "models.demo.tests" / "extra-output"
    dist_test.mkdir(parents=True)
    (tmp_path / record).replace(dist_test / record.name)
    sha256 = hashlib.sha256(b"bytes").hexdigest()
    moved = _artifact(tmp_path / "elsewhere")
    assert find_passing_record(moved, sha256, [tmp_path / "dist"]) is not None
    other = _artifact(tmp_path / "other", b"other bytes")
    assert (
        find_passing_record(other, hashlib.sha256(b"other bytes").hexdigest(), [tmp_path / "dist"])
        is None
    )


def test_a_failed_run_of_the_same_bytes_outweighs_a_passing_one(tmp_path: Path) -> None:
    # The cases passed, the model's python tests failed: both ran on these bytes.
    from mmepack.errors import MmepackError
    from mmepack.publish.tested import tested_entry, write_test_record

    artifact = _artifact(tmp_path / "dist" / "mme")
    sha256 = hashlib.sha256(b"bytes").hexdigest()
    write_test_record(artifact, passed=True, cases=["case"], exit_code=0)
    python_tests = tmp_path / "dist" / "test" / "models.demo.tests" / "extra-output"
    python_tests.mkdir(parents=True)
    write_test_record(
        artifact,
        passed=False,
        cases=[],
        exit_code=1,
        destination=python_tests / "demo_1.tar.gz.tested.json",
    )
    assert find_passing_record(artifact, sha256, [tmp_path / "dist"]) is None
    with pytest.raises(MmepackError, match="a test run of these exact bytes failed"):
        tested_entry(artifact, sha256, [tmp_path / "dist"], untested=None, where="production")
