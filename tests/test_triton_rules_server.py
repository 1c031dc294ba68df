"""Cross-check validation against the real Triton 2.51 server (from nvidia-pytriton, on CPU).

For a bounded sample of rules, the server must refuse the broken model with the very message
validation quotes; and layouts validation calls valid (steps without platform or backend, a
nested ensemble written apart from SageMaker's pattern) must load. Each case starts one server
on loopback with a 60 s limit.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmepack.errors import MmepackError
from mmepack.triton.server import TritonServer
from mmepack.validate import validate_model_directory
from tests.test_triton_rules import NESTED, SOLO_CASES, _nested, apply, write_solo

SAMPLE = (
    "reshape_variable_segments",
    "zero_dim",
    "missing_data_type",
    "layout_needs_3_dims",
    "batch_output_target_twice",
    "negative_max_batch_size",
    "platform_backend_pair",
    "preserve_ordering_with_delay",
    "sequence_control_without_values",
    "kind_cpu_with_gpus",
    "negative_gpu_id",
    "model_metrics_not_in_2_51",
)
QUOTED = re.compile(r'refuses to load it: "(.*?)"')


def _server_error(repository: Path, workdir: Path) -> str | None:
    """The server's error text, or None when every model loaded."""
    server = TritonServer(repository, workdir)
    try:
        server.start(timeout=60)
    except MmepackError as exc:
        return str(exc)
    server.stop()
    return None


@pytest.mark.parametrize("case_id", SAMPLE)
def test_server_refuses_with_the_quoted_message(tmp_path: Path, case_id: str) -> None:
    broken = next(c for c in SOLO_CASES if c.id == case_id)
    root = write_solo(tmp_path / "repo")
    for edit in broken.edits:
        apply(root, edit)
    problems = [p for p in validate_model_directory(root) if p.severity == "error"]
    quoted = [m.group(1) for p in problems for m in [QUOTED.search(p.message)] if m]
    assert len(quoted) == 1, problems
    error = _server_error(root, tmp_path)
    assert error is not None, f"Triton loaded {case_id}, which validation refuses"
    assert quoted[0].replace(" from solo/config.pbtxt", "") in error


def test_server_loads_what_validation_accepts(tmp_path: Path) -> None:
    # Steps with neither platform nor backend, inside a nested ensemble that SageMaker's
    # pattern does not match: valid for validation, and Triton loads all of it.
    root = _nested(tmp_path, NESTED)
    for step in ("step_a", "step_b"):
        config = root / step / "config.pbtxt"
        config.write_text(config.read_text().replace('backend: "python"\n', ""))
    assert validate_model_directory(root) == []
    for ensemble in ("outer", "inner"):
        (root / ensemble / "1").mkdir()  # the packager adds these; git cannot hold them
    assert _server_error(root, tmp_path) is None


def test_server_loads_a_step_in_a_backend_named_folder(tmp_path: Path) -> None:
    # A step folder `step_b.python` (Triton's custom-backend form) that sets no platform or
    # backend: validation accepts the dotted name, and Triton loads the step. Its 1/model.py
    # names the backend first; without it Triton would fall back to the name's suffix and the
    # Python backend would refuse the file that implies ("Python model file name must end
    # with '.py'. Model name is "model.python"", seen on 2.51).
    root = _nested(tmp_path, NESTED)
    step = root / "step_b"
    config = step / "config.pbtxt"
    config.write_text(
        config.read_text().replace('backend: "python"\n', "").replace('"step_b"', '"step_b.python"')
    )
    step.rename(root / "step_b.python")
    outer = root / "outer" / "config.pbtxt"
    outer.write_text(outer.read_text().replace('"step_b"', '"step_b.python"'))
    assert validate_model_directory(root) == []
    for ensemble in ("outer", "inner"):
        (root / ensemble / "1").mkdir()
    assert _server_error(root, tmp_path) is None
