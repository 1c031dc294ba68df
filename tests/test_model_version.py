from __future__ import annotations

from pathlib import Path

import pytest

from mmepack.errors import MmepackError
from mmepack.model.version import artifact_name, read_model_version


@pytest.mark.parametrize("text", ["1\n", "  12 \n\n", "1.4.2"])
def test_reads_valid_versions(tmp_path: Path, text: str) -> None:
    (tmp_path / "model_version.txt").write_text(text)
    assert read_model_version(tmp_path) == text.strip()


def test_missing_file_names_model_and_path(tmp_path: Path) -> None:
    model = tmp_path / "fraud"
    model.mkdir()
    with pytest.raises(MmepackError, match=r"model 'fraud': .*fraud/model_version.txt is missing"):
        read_model_version(model)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "exactly one non-empty line"),
        ("1\n2\n", "exactly one non-empty line"),
        ("v1", "version 'v1' is not valid"),
        ("1.2.3.4", "is not valid"),
        ("1 2", "is not valid"),
    ],
)
def test_rejects_bad_versions(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "model_version.txt").write_text(text)
    with pytest.raises(MmepackError, match=message):
        read_model_version(tmp_path)


def test_artifact_name() -> None:
    assert artifact_name("screen_detector", "3") == "screen_detector_3.tar.gz"
