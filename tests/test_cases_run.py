"""Model tests without code, end to end: case files run against a real artifact on a real Triton.

A new model directory gets two case files and no test code; the same commands the Pants test
rule runs (`mmepack check-cases`, `mmepack test-cases`) and the recorder then run against its
packaged artifact, served by the local SageMaker-style endpoint. Bounded: one small artifact,
five server starts, each limited by --startup-timeout.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from mmepack.build import package_model
from mmepack.cli import main
from mmepack.testing import serve_artifact
from tests.demo_models import write_ensemble_model

STARTUP = ["--startup-timeout", "120"]


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A fresh model (an ensemble doubling IN) and its artifact; cases are added per test."""
    root = tmp_path_factory.mktemp("cases")
    model_dir = write_ensemble_model(root / "doubler", name="doubler")
    artifact = package_model(model_dir, root / "dist").path
    yield model_dir, artifact


@pytest.fixture
def model(packaged: tuple[Path, Path]) -> Iterator[tuple[Path, Path]]:
    model_dir, artifact = packaged
    cases = model_dir / "tests" / "cases"
    cases.mkdir(parents=True)
    yield model_dir, artifact
    for path in cases.iterdir():
        path.unlink()
    cases.rmdir()


def write(model_dir: Path, name: str, body: dict[str, Any]) -> Path:
    path = model_dir / "tests" / "cases" / f"{name}.json"
    path.write_text(json.dumps(body))
    return path


def test_two_cases_and_no_test_code_pass(
    model: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, artifact = model
    write(
        model_dir,
        "single",
        {"inputs": {"IN": {"values": [1.5, -2]}}, "expected": {"OUT": {"values": [3, -4]}}},
    )
    np.save(
        model_dir / "tests" / "cases" / "batch.npy", np.arange(6, dtype=np.float32).reshape(3, 2)
    )
    write(
        model_dir,
        "batch",
        {
            "description": "a batch of three from a .npy file",
            "inputs": {"IN": {"npy": "batch.npy"}},
            "expected": {"OUT": {"values": [[0, 2], [4, 6], [8, 10]]}},
        },
    )
    report = tmp_path / "junit.xml"
    code = main(["test-cases", str(artifact), str(model_dir), f"--junit-xml={report}", *STARTUP])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "doubler_cases.py::test_case[batch] PASSED" in out
    assert "doubler_cases.py::test_case[single] PASSED" in out
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "doubler"
    # Two cases and the capacity budgets' item (mmepack.capacity).
    assert suite.get("tests") == "3" and suite.get("failures") == "0"
    assert "doubler_cases.py::test_capacity PASSED" in out


def test_wrong_expected_value_fails_readably(
    model: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, artifact = model
    write(
        model_dir,
        "right",
        {"inputs": {"IN": {"values": [1, 2]}}, "expected": {"OUT": {"values": [2, 4]}}},
    )
    write(
        model_dir,
        "wrong",
        {
            "inputs": {"IN": {"values": [[1, 2], [3, 4]]}},
            "expected": {"OUT": {"values": [[2, 4], [6, 8.5]]}},
        },
    )
    write(
        model_dir,
        "refused",
        {"inputs": {"IN": {"values": [1, 2]}}, "expected_error": {"contains": "no such thing"}},
    )
    assert main(["test-cases", str(artifact), str(model_dir), *STARTUP]) == 1
    captured = capsys.readouterr()
    out = captured.out
    assert "test_case[right] PASSED" in out and "test_case[wrong] FAILED" in out
    assert "OUT: 1 of 4 elements differ beyond atol=1e-05, rtol=1e-05 (CPU tolerances)" in out
    assert "largest absolute error 0.5 at [1, 1]: actual 8, expected 8.5" in out
    assert "largest relative error 0.0588 at [1, 1]" in out
    assert "[1, 1]: 8 | 8.5  <- differs" in out and "[0, 0]: 2 | 2\n" in out
    assert (
        "expected an error containing 'no such thing', but the model answered (OUT [1, 2])" in out
    )
    assert "Traceback" not in out


def test_record_then_test_passes_and_changes_need_accept(
    model: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, artifact = model
    fresh = write(model_dir, "fresh", {"inputs": {"IN": {"values": [0.1, 7]}}})
    stale = write(
        model_dir,
        "stale",
        {
            "inputs": {"IN": {"values": [1, 1]}},
            "expected": {"OUT": {"values": [2, 3], "atol": 0.01}},
        },
    )
    # Inputs only: test refuses it before any server, and says how to fill it in.
    assert main(["test-cases", str(artifact), str(model_dir), *STARTUP]) == 1
    assert "fresh.json: expected: nothing expected" in capsys.readouterr().err

    assert main(["record-cases", str(artifact), str(model_dir), *STARTUP]) == 1
    out = capsys.readouterr().out
    assert f"recorded {fresh}: expected.OUT" in out
    assert f"{stale}: expected.OUT: the model's answer differs:" in out
    assert "[0, 1]: 2 | 3  <- differs" in out and "rerun with --accept" in out
    recorded = json.loads(fresh.read_text())
    assert recorded["expected"] == {"OUT": {"values": [[0.2, 14.0]]}}
    # float32 printed shortest: 0.2, not 0.20000000298023224.
    assert '"values": [[0.2, 14.0]]' in fresh.read_text()
    assert json.loads(stale.read_text())["expected"]["OUT"]["values"] == [2, 3]  # untouched

    assert main(["record-cases", str(artifact), str(model_dir), "--accept", *STARTUP]) == 0
    out = capsys.readouterr().out
    assert f"unchanged {fresh}: expected.OUT" in out and f"recorded {stale}: expected.OUT" in out
    # The tolerance written by hand survives the re-recording.
    assert json.loads(stale.read_text())["expected"]["OUT"] == {
        "values": [[2.0, 2.0]],
        "atol": 0.01,
    }

    assert main(["test-cases", str(artifact), str(model_dir), *STARTUP]) == 0
    assert "3 passed" in capsys.readouterr().out  # two cases and the capacity budgets


def test_misspelt_input_fails_before_a_server_starts(
    model: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir, artifact = model
    path = write(
        model_dir,
        "typo",
        {"inputs": {"INN": {"values": [1, 2]}}, "expected": {"OUT": {"values": [2, 4]}}},
    )

    def no_server(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a server was started for a case file that cannot run")

    monkeypatch.setattr("mmepack.cases.run.serve_artifact", no_server)
    for command in (["check-cases", str(model_dir)], ["test-cases", str(artifact), str(model_dir)]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.startswith(
            f"mmepack: error: {path}: inputs.INN: model 'doubler' has no "
            "input 'INN' (did you mean 'IN'?)"
        ), err
        assert "Traceback" not in err


def test_no_case_files_is_not_a_failure(
    packaged: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, artifact = packaged
    assert main(["test-cases", str(artifact), str(model_dir)]) == 0
    assert "no case files match" in capsys.readouterr().out


def test_serve_artifact_is_the_route_cases_use(packaged: tuple[Path, Path]) -> None:
    """The runner's server is the endpoint route model tests use (the TargetModel load)."""
    _, artifact = packaged
    with serve_artifact(artifact, startup_timeout=120) as served:
        assert served.route == "endpoint" and served.target_model == artifact.name


def test_an_artifact_that_fails_to_load_fails_every_case_with_the_server_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = write_ensemble_model(tmp_path / "broken", name="broken")
    step = model_dir / "broken_double" / "1" / "model.py"
    step.write_text('raise ImportError("weights_loader is broken")\n')
    artifact = package_model(model_dir, tmp_path / "dist").path
    (model_dir / "tests" / "cases").mkdir(parents=True)
    for name in ("a", "b"):
        write(
            model_dir,
            name,
            {"inputs": {"IN": {"values": [1, 2]}}, "expected": {"OUT": {"values": [2, 4]}}},
        )
    assert main(["test-cases", str(artifact), str(model_dir), *STARTUP]) == 1
    out = capsys.readouterr().out
    assert "test_case[a] FAILED" in out and "test_case[b] FAILED" in out
    assert out.count("could not serve the artifact: Triton failed to load the models") == 2
    assert "weights_loader is broken" in out
