"""The proof moves tensors: numpy is held to what the target Triton supports, and an environment
whose stub loses tensors (numpy 2 under Triton 2.51's stub, the failure issue 11 saw) fails."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from mmepack.build import python_tensor_types
from mmepack.environment.builders import choose_builder
from mmepack.environment.determinism import pack_reproducibly
from mmepack.environment.probe import _sample_bytes, probe_tensor_types, prove_environment
from mmepack.environment.requirements import numpy_pin_conflict, with_requirements
from mmepack.errors import MmepackError
from mmepack.model.repository import read_model_directory
from mmepack.triton.target import NUMPY_BY_TRITON, TargetServer
from tests.demo_models import write_ensemble_model

ENV_PYTHON = "3.11"


@pytest.fixture(autouse=True)
def machine_pip_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIP_CONFIG_FILE", raising=False)


def test_target_2_51_constrains_numpy_below_2_with_the_reason() -> None:
    requirement, reason = TargetServer(triton_version="2.51.0").numpy_requirement
    assert requirement == "numpy<2"
    assert "2.51.0 release notes" in reason
    assert all(len(row) == 3 for row in NUMPY_BY_TRITON)


def test_constraint_changes_the_cache_text_only_when_missing() -> None:
    assert with_requirements("tomli-w\n", ["numpy<2"]) == "tomli-w\nnumpy<2\n"
    assert with_requirements("NumPy < 2\n", ["numpy<2"]) == "NumPy < 2\n"


def test_lock_pinning_numpy_2_is_refused_before_the_build() -> None:
    lock = "numpy==2.1.3 \\\n    --hash=sha256:abc\ntomli-w==1.0.0\n"
    assert numpy_pin_conflict(lock, "numpy<2") == "numpy==2.1.3"
    assert numpy_pin_conflict("numpy==1.26.4\n", "numpy<2") is None


def test_probe_types_come_from_the_python_steps(tmp_path: Path) -> None:
    model = write_ensemble_model(tmp_path / "demo", env=True)
    types = python_tensor_types(read_model_directory(model))
    assert types and all(t.startswith("TYPE_") for t in types)
    plain = write_ensemble_model(tmp_path / "plain")
    assert python_tensor_types(read_model_directory(plain)) == ()
    assert probe_tensor_types(["TYPE_INT64", "TYPE_BF16", "TYPE_STRING"]) == [
        "TYPE_FP32",
        "TYPE_INT64",
        "TYPE_STRING",
    ]
    assert _sample_bytes("TYPE_INT32") == struct.pack("<4i", 1, -2, 2147483647, -2147483648)
    assert _sample_bytes("TYPE_STRING").startswith(struct.pack("<I", 7) + b"mmepack")


def _packed_env(tmp_path: Path, numpy: str) -> Path:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{numpy}\n")
    builder = choose_builder("portable", None, lambda _: None)
    prefix = tmp_path / "env"
    builder.populate(requirements, [], ENV_PYTHON, prefix)
    archive = tmp_path / "python_env.tar.gz"
    pack_reproducibly(prefix, archive)
    return archive


TYPES = ["TYPE_FP32", "TYPE_INT64", "TYPE_STRING", "TYPE_BOOL"]


def test_numpy_1_environment_moves_every_type(tmp_path: Path) -> None:
    archive = _packed_env(tmp_path, "numpy<2")
    proof = prove_environment(
        archive, ENV_PYTHON, ["numpy"], tensor_types=TYPES, server_stub_python=ENV_PYTHON
    )
    assert list(proof.tensor_types) == TYPES


def test_numpy_2_environment_imports_but_fails_the_proof(tmp_path: Path) -> None:
    archive = _packed_env(tmp_path, "numpy==2.1.3")
    with pytest.raises(MmepackError) as raised:
        prove_environment(
            archive,
            ENV_PYTHON,
            ["numpy"],
            tensor_types=TYPES,
            server_stub_python=ENV_PYTHON,
            label="tiny",
        )
    message = str(raised.value)
    print(message)  # the real failure, shown with `pytest -s`
    assert message.startswith("model 'tiny': tensors were lost")
    assert "numpy 2.1.3" in message and "Triton 2.51.0" in message
