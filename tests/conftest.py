"""Fixtures shared by the library's unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.demo_models import write_ensemble_model


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return write_ensemble_model(tmp_path / "demo")
