"""What the dev loop redoes for each kind of saved file, and what its scan never looks at."""

from __future__ import annotations

import os
from pathlib import Path

from mmepack.dev.changes import changed_paths, is_scratch, plan_changes, scan
from mmepack.dev.loop import syntax_excerpt
from mmepack.dev.server import loaded_models

MODELS = {"m", "m_pre", "m_onnx"}


def test_a_python_step_edit_reloads_that_step_only() -> None:
    plan = plan_changes(["m_pre/1/model.py"], MODELS)
    assert plan.steps == {"m_pre"} and not plan.environment and not plan.weights


def test_a_config_edit_reloads_its_model() -> None:
    assert plan_changes(["m/config.pbtxt"], MODELS).steps == {"m"}


def test_a_weights_record_edit_pulls_and_reloads_that_step() -> None:
    plan = plan_changes(["m_onnx/1/model.onnx.dvc"], MODELS)
    assert plan.steps == {"m_onnx"} and plan.weights == {"m_onnx"}
    assert plan_changes(["m_onnx/1/model.onnx"], MODELS).weights == set()


def test_requirements_rebuild_the_environment() -> None:
    for name in ("requirements.txt", "requirements.lock"):
        plan = plan_changes([name], MODELS)
        assert plan.environment and plan.reloads and not plan.steps


def test_cases_and_their_data_only_rerun_the_cases() -> None:
    for path in ("tests/cases/a.json", "tests/cases/picture.png"):
        plan = plan_changes([path], MODELS)
        assert plan.cases and not plan.reloads and not plan.ignored


def test_files_the_loop_does_not_serve_are_named_as_ignored() -> None:
    plan = plan_changes(["BUILD", "model_version.txt", "tests/test_m.py"], MODELS)
    assert plan.ignored == ["BUILD", "model_version.txt", "tests/test_m.py"]
    assert not plan.reloads and not plan.cases


def test_a_new_model_folder_is_reported() -> None:
    assert plan_changes(["m_post/config.pbtxt"], MODELS).new_models == ["m_post"]


def test_editor_scratch_files_are_not_changes() -> None:
    for name in (".model.py.swp", "model.py~", "4913", "#model.py#", ".hidden", "x.pyc"):
        assert is_scratch(name), name
    assert not is_scratch("model.py") and not is_scratch("config.pbtxt")


def test_scan_sees_edits_and_skips_bytecode(tmp_path: Path) -> None:
    step = tmp_path / "m_pre" / "1"
    step.mkdir(parents=True)
    code = step / "model.py"
    code.write_text("x = 1\n")
    (step / "__pycache__").mkdir()
    (step / "__pycache__" / "model.cpython-312.pyc").write_bytes(b"\0")
    (step / ".model.py.swp").write_bytes(b"\0")
    before = scan(tmp_path)
    assert list(before) == ["m_pre/1/model.py"]
    code.write_text("x = 22\n")
    stat = code.stat()
    os.utime(code, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert changed_paths(before, scan(tmp_path)) == ["m_pre/1/model.py"]
    code.unlink()
    assert changed_paths(before, scan(tmp_path)) == ["m_pre/1/model.py"]


def test_a_syntax_error_is_shown_at_its_line_with_a_caret(tmp_path: Path) -> None:
    code = tmp_path / "model.py"
    code.write_text("def f():\n    return 1 +\n")
    lines = syntax_excerpt(code)
    assert lines[0].startswith(f"{code}:2:") and "SyntaxError" in lines[0]
    assert lines[1] == "    " + "    return 1 +" and lines[2].strip() == "^"
    code.write_text("def f():\n    return 1\n")
    assert syntax_excerpt(code) == []


def test_the_server_log_says_which_models_loaded() -> None:
    log = (
        'I1206 10:20:35.974784 1 model_lifecycle.cc:472] "loading: devdemo_pre:1"\n'
        "I1206 10:20:43.751155 1 model_lifecycle.cc:839] \"successfully loaded 'devdemo_pre'\"\n"
        'I1206 10:20:44.298748 1 model_lifecycle.cc:472] "loading: devdemo:1"\n'
        "I1206 10:20:44.298749 1 model.py:202] \"print('loading: not_a_model:1') in a step\"\n"
    )
    assert loaded_models(log) == ["devdemo_pre", "devdemo"]
