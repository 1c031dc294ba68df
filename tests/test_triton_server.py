"""The test harness against a real Triton server: load, infer, clean shutdown, clear failures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from mmepack.build import package_model
from mmepack.errors import MmepackError
from mmepack.testing import find_artifact, serve_artifact
from tests.demo_models import write_ensemble_model


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); /proc tells it apart.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def test_serves_ensemble_and_stops_with_its_stubs(tmp_path: Path) -> None:
    artifact = package_model(write_ensemble_model(tmp_path / "demo"), tmp_path / "dist").path
    assert find_artifact("demo", tmp_path) == artifact
    with serve_artifact(artifact) as served:
        assert served.model_name == "demo"
        assert served.device in ("CPU", "GPU")
        data = np.array([[1.5, -2.0], [0.25, 4.0]], dtype=np.float32)
        tensor = httpclient.InferInput("IN", list(data.shape), "FP32")
        tensor.set_data_from_numpy(data)
        result = served.client.infer(served.model_name, [tensor])
        np.testing.assert_array_equal(result.as_numpy("OUT"), data * 2)
        pid = served.server_pid
        assert _alive(pid)
    assert not _alive(pid)


def test_server_is_stopped_when_the_test_body_fails(tmp_path: Path) -> None:
    artifact = package_model(write_ensemble_model(tmp_path / "demo"), tmp_path / "dist").path
    pid = 0
    with pytest.raises(RuntimeError, match="test failed"):
        with serve_artifact(artifact) as served:
            pid = served.server_pid
            raise RuntimeError("test failed")
    assert pid and not _alive(pid)


def test_model_that_fails_to_load_reports_the_server_log(tmp_path: Path) -> None:
    model_dir = write_ensemble_model(tmp_path / "demo")
    step = model_dir / "demo_double" / "1" / "model.py"
    step.write_text("raise ImportError('weights_loader is broken')\n")
    artifact = package_model(model_dir, tmp_path / "dist").path
    with pytest.raises(MmepackError) as caught:
        with serve_artifact(artifact, startup_timeout=120):
            pass
    message = str(caught.value)
    assert "Triton failed to load the models" in message
    assert "failed to load 'demo_double'" in message
    assert "weights_loader is broken" in message


def test_find_artifact_refuses_ambiguity(tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    for version in ("1", "2"):
        (tmp_path / "dist" / f"demo_{version}.tar.gz").write_bytes(b"")
    with pytest.raises(MmepackError, match="several artifacts for model 'demo'"):
        find_artifact("demo", tmp_path)
    with pytest.raises(MmepackError, match="no packaged artifact other_<version>.tar.gz"):
        find_artifact("other", tmp_path)
