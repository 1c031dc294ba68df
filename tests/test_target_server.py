"""Which stub an artifact must carry for its target Triton server, and when none can be had."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmepack.errors import MmepackError
from mmepack.triton.target import STUB_NAME, TargetServer, local_triton_version, stub_for


def test_no_stub_when_the_server_already_runs_that_python() -> None:
    assert stub_for(TargetServer("2.51.0", "3.11"), "3.11") is None


def test_local_release_supplies_the_stub_for_another_python() -> None:
    stub = stub_for(TargetServer("2.51.0", "3.10"), "3.12")
    assert stub is not None and stub.name == STUB_NAME and stub.parent.name == "3.12"


def test_local_server_version_is_known() -> None:
    assert local_triton_version() == "2.51.0"


def test_another_release_without_stubs_fails_with_the_reason() -> None:
    with pytest.raises(MmepackError) as caught:
        stub_for(TargetServer("2.53.0", "3.12"), "3.11", label="demo")
    message = str(caught.value)
    assert message.startswith("model 'demo': the environment runs Python 3.11")
    assert "Triton 2.53.0" in message and "2.51.0" in message
    assert "python_version to 3.12" in message and "stub_dir" in message


def test_stub_dir_is_used_for_other_releases(tmp_path: Path) -> None:
    (tmp_path / "3.11").mkdir()
    (tmp_path / "3.11" / STUB_NAME).write_bytes(b"stub")
    target = TargetServer("2.53.0", "3.12", tmp_path)
    assert stub_for(target, "3.11") == tmp_path / "3.11" / STUB_NAME
    with pytest.raises(MmepackError, match=r"has no 3.10/triton_python_backend_stub"):
        stub_for(target, "3.10")


@pytest.mark.parametrize(
    "version, python, message",
    [("24.10", "3.10", "expected the server version"), ("2.51.0", "3", "expected e.g. '3.10'")],
)
def test_invalid_target_settings_are_explained(version: str, python: str, message: str) -> None:
    with pytest.raises(MmepackError, match=message):
        TargetServer(version, python)
