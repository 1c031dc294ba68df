"""Fixtures shared by the library's unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.demo_models import write_ensemble_model


def pytest_configure(config: pytest.Config) -> None:
    # DVC 3.67 still reads pygtrie's deprecated `_NoneStep.value` whenever it runs in-process
    # (`mmepack new`, weight pulls); the warning is DVC's to fix and would bury our own.
    config.addinivalue_line(
        "filterwarnings", "ignore:_NoneStep.value will soon raise:DeprecationWarning"
    )


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return write_ensemble_model(tmp_path / "demo")
