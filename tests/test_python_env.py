"""The portable environment builder's failure path: pip's own reason, nothing left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmepack.errors import MmepackError
from mmepack.python_env import build_portable_env


def test_uninstallable_requirement_fails_with_pip_reason_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pants hides the machine's pip configuration from its processes; the builder is meant to
    # use it (index, certificates), as it does when the plugin runs it.
    monkeypatch.delenv("PIP_CONFIG_FILE", raising=False)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("mmepack-no-such-package-for-tests==1.0\n")
    out = tmp_path / "out"
    with pytest.raises(MmepackError) as caught:
        build_portable_env(requirements, "3.11", out / "python_env.tar.gz", label="demo")
    message = str(caught.value)
    assert message.startswith(f"model 'demo': installing {requirements} failed")
    assert "mmepack-no-such-package-for-tests" in message
    assert "No matching distribution" in message
    assert list(out.iterdir()) == []


def test_missing_requirements_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(MmepackError, match=r"model 'demo': .*requirements.txt is missing"):
        build_portable_env(
            tmp_path / "requirements.txt", "3.11", tmp_path / "env.tar.gz", label="demo"
        )


def test_unknown_python_version_explains_how_to_get_one(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy\n")
    with pytest.raises(
        MmepackError, match=r"no shared-library CPython 3.4 found.*MMEPACK_PYTHON_3_4"
    ):
        build_portable_env(requirements, "3.4", tmp_path / "env.tar.gz")
