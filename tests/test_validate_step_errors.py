"""A step config that does not parse must not make validation blame the top-level ensemble
(issue 25, item 15): the step's own error is the one problem reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmepack.validate import validate_model_directory
from tests.demo_models import write_ensemble_model


@pytest.mark.parametrize("value", ["2147483648", "-2147483649", "99999999999999999999"])
def test_out_of_range_max_batch_size_in_a_step_is_its_only_error(
    tmp_path: Path, value: str
) -> None:
    root = write_ensemble_model(tmp_path / "demo")
    step = root / "demo_double" / "config.pbtxt"
    text = step.read_text()
    assert "max_batch_size" in text
    lines = [
        f"max_batch_size: {value}" if line.startswith("max_batch_size") else line
        for line in text.splitlines()
    ]
    step.write_text("\n".join(lines) + "\n")
    problems = [p for p in validate_model_directory(root) if p.severity == "error"]
    assert problems, "the out-of-range value is an error"
    assert all(p.file == step for p in problems), [str(p) for p in problems]
    assert not any("nested ensemble" in str(p) for p in problems)
