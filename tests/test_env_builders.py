"""Choosing a builder, and the conda builder's contract with conda (narrow: no channel here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmepack.environment.builders import CondaBuilder, PortableBuilder, choose_builder
from mmepack.errors import MmepackError


@pytest.fixture
def no_conda(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for variable in ("MMEPACK_CONDA_EXE", "CONDA_EXE", "MAMBA_EXE"):
        monkeypatch.delenv(variable, raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def _fake_conda(bin_dir: Path, name: str = "micromamba") -> Path:
    """Records its arguments and fails the way conda does offline."""
    exe = bin_dir / name
    exe.write_text(
        '#!/bin/sh\necho "$@" > "${0%/*}/argv"\n'
        'echo "CondaHTTPError: HTTP 000 CONNECTION FAILED for url conda-forge" >&2\nexit 1\n'
    )
    exe.chmod(0o755)
    return exe


def test_auto_uses_portable_without_conda(no_conda: Path) -> None:
    assert isinstance(choose_builder("auto"), PortableBuilder)


def test_conda_only_refuses_to_fall_back(no_conda: Path) -> None:
    with pytest.raises(MmepackError, match=r"conda builder is required .* forbids the portable"):
        choose_builder("conda")


def test_auto_prefers_conda_found_on_path(no_conda: Path) -> None:
    builder = choose_builder("auto")
    assert isinstance(builder, PortableBuilder)
    _fake_conda(no_conda, "mamba")
    builder = choose_builder("auto")
    assert isinstance(builder, CondaBuilder) and builder.executable.name == "mamba"


def test_configured_conda_must_exist(no_conda: Path) -> None:
    with pytest.raises(MmepackError, match=r"'/nowhere/conda' .* does not exist"):
        choose_builder("auto", "/nowhere/conda")


def test_unknown_builder_kind_lists_the_choices() -> None:
    with pytest.raises(MmepackError, match=r"expected one of auto, conda, portable"):
        choose_builder("docker")


def test_conda_builder_asks_for_the_target_python_and_reports_condas_error(
    no_conda: Path, tmp_path: Path
) -> None:
    exe = _fake_conda(no_conda)
    builder = choose_builder("conda")
    assert isinstance(builder, CondaBuilder)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy\n")
    prefix = tmp_path / "env"
    with pytest.raises(MmepackError) as caught:
        builder.populate(requirements, [], "3.12", prefix)
    assert "creating the conda environment with micromamba failed" in str(caught.value)
    assert "CONNECTION FAILED" in str(caught.value)
    argv = (exe.parent / "argv").read_text().split()
    assert argv == [
        "create", "-y", "-p", str(prefix), "--override-channels", "-c", "conda-forge",
        "python=3.12", "pip",
    ]  # fmt: skip
    assert builder.identity("3.12") == "conda:micromamba:conda-forge:python=3.12"
    assert os.environ["PATH"] == str(no_conda)
