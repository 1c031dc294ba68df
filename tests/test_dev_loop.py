"""`mmepack dev` against a real Triton 2.51: a three-step ensemble (Python, ONNX, Python) whose
steps are edited on disk while the loop serves it.

What must hold: an edit that breaks a case is reported as that case failing, with the test
runner's difference report; a syntax error is reported at its line, nothing is reloaded, and the
next good save recovers on the same server; an edit to a Python step reloads that step only,
which the server's own log shows (no new `loading:` line for the ONNX step); and nothing of the
server is left once the loop is stopped, by Ctrl-C or by SIGKILL.

The model needs no packed environment (its Python steps use the server's Python, this test's),
so each test takes seconds, not an environment build.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmepack.dev.loop import CycleResult, DevLoop, route_line
from mmepack.dev.server import loaded_models

NAME = "devdemo"
PRE, ONNX, POST = f"{NAME}_pre", f"{NAME}_onnx", f"{NAME}_post"
# Bounds: a start takes a few seconds on a quiet machine; a loaded one may take far longer.
START_TIMEOUT_S = 240.0
STOP_WAIT_S = 30.0

_TENSOR = '{{ name: "{n}" data_type: TYPE_FP32 dims: [ 2 ] }}'


def _config(name: str, head: str, inp: str, out: str, extra: str = "") -> str:
    return (
        f'name: "{name}"\n{head}\nmax_batch_size: 4\n'
        f"input [ {_TENSOR.format(n=inp)} ]\noutput [ {_TENSOR.format(n=out)} ]\n{extra}"
    )


def _step_code(factor: float) -> str:
    return (
        "import numpy as np\n"
        "import triton_python_backend_utils as pb_utils\n"
        "\n"
        "\n"
        "class TritonPythonModel:\n"
        "    def execute(self, requests):\n"
        "        responses = []\n"
        "        for request in requests:\n"
        '            data = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()\n'
        f"            result = (data * {factor!r}).astype(np.float32)\n"
        '            out = pb_utils.Tensor("OUT", result)\n'
        "            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))\n"
        "        return responses\n"
    )


def _onnx_add_one(path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    one = numpy_helper.from_array(np.ones([2], dtype=np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["A", "one"], ["B"])],
        "add_one",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("B", TensorProto.FLOAT, ["batch", 2])],
        [one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def write_dev_model(root: Path) -> Path:
    """X -> pre (x2) -> onnx (+1) -> post (x10) -> Y; [1, 2] answers [30, 50]."""
    model = root / NAME
    steps = "\n".join(
        f'{{ model_name: "{step}" model_version: -1 input_map {{ key: "{i}" value: "{a}" }} '
        f'output_map {{ key: "{o}" value: "{b}" }} }},'
        for step, i, a, o, b in (
            (PRE, "IN", "X", "OUT", "doubled"),
            (ONNX, "A", "doubled", "B", "added"),
            (POST, "IN", "added", "OUT", "Y"),
        )
    ).rstrip(",")
    files = {
        f"{NAME}/config.pbtxt": _config(
            NAME, 'platform: "ensemble"', "X", "Y", f"ensemble_scheduling {{ step [ {steps} ] }}"
        ),
        f"{PRE}/config.pbtxt": _config(PRE, 'backend: "python"', "IN", "OUT"),
        f"{PRE}/1/model.py": _step_code(2.0),
        f"{ONNX}/config.pbtxt": _config(
            ONNX, 'backend: "onnxruntime"\ndefault_model_filename: "model.onnx"', "A", "B"
        ),
        f"{POST}/config.pbtxt": _config(POST, 'backend: "python"', "IN", "OUT"),
        f"{POST}/1/model.py": _step_code(10.0),
        "model_version.txt": "1\n",
        "tests/cases/basic.json": json.dumps(
            {
                "description": "doubled, plus one, times ten",
                "inputs": {"X": {"values": [[1.0, 2.0]]}},
                "expected": {"Y": {"values": [[30.0, 50.0]]}},
            }
        ),
    }
    for rel, text in files.items():
        (model / rel).parent.mkdir(parents=True, exist_ok=True)
        (model / rel).write_text(text)
    (model / ONNX / "1").mkdir(parents=True, exist_ok=True)
    _onnx_add_one(model / ONNX / "1" / "model.onnx")
    return model


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevLoop]:
    root = tmp_path_factory.mktemp("dev")
    model = write_dev_model(root / "models")
    lines: list[str] = []
    (root / "work").mkdir()
    started = DevLoop(model, root / "work", out=lines.append)
    try:
        first = started.start(timeout=START_TIMEOUT_S)
        assert first.ok, "\n".join(lines)
        assert first.passed == ["basic"]
        # The first load is the whole ensemble, the ONNX step included.
        assert ONNX in first.server_loaded, first.server_loaded
        started.printed = lines  # type: ignore[attr-defined]
        yield started
    finally:
        started.close()


def _save(path: Path, text: str) -> None:
    """Write as an editor does, and make sure the scan sees a new mtime even on coarse clocks."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    if path.stat().st_mtime_ns == before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def _next_cycle(loop: DevLoop, timeout: float = 30.0) -> CycleResult:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        changed = loop.poll()
        if changed:
            return loop.cycle(changed)
        time.sleep(0.05)
    raise AssertionError("the dev loop saw no change")


def test_breaking_edit_is_a_failing_case_with_its_difference(loop: DevLoop) -> None:
    code = loop.model_dir / POST / "1" / "model.py"
    lines: list[str] = loop.printed  # type: ignore[attr-defined]
    lines.clear()
    _save(code, _step_code(11.0))
    result = _next_cycle(loop)
    assert result.changed == [f"{POST}/1/model.py"]
    assert result.reloaded == [POST]
    assert "basic" in result.failed
    report = result.failed["basic"]
    # The test runner's own difference report: which output, how many elements, the values.
    assert "Y: 2 of 2 elements differ" in report, report
    assert "33" in report and "30" in report, report
    printed = "\n".join(lines)
    assert "FAIL basic" in printed and "mmepack dev: FAILED" in printed
    assert lines[-1] == route_line(loop.model_dir)
    _save(code, _step_code(10.0))
    assert _next_cycle(loop).ok


def test_syntax_error_is_shown_at_its_line_and_the_next_save_recovers(loop: DevLoop) -> None:
    code = loop.model_dir / POST / "1" / "model.py"
    good = _step_code(10.0)
    broken = good.replace("responses = []", "responses = [", 1)
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if "responses = [" in text)
    pid = loop.server.pid
    _save(code, broken)
    result = _next_cycle(loop)
    assert not result.ok and not result.reloaded, result
    shown = "\n".join(result.problems)
    assert f"{code}:" in shown, shown
    # Python may place an unclosed bracket's error at the bracket or where it gave up; the
    # report must name a line of the edited file at or after the bracket, with its text.
    located = [p for p in result.problems if p.startswith(f"{code}:")]
    assert located and int(located[0].split(":")[1]) >= line, shown
    assert "SyntaxError" in shown and "^" in shown, shown
    _save(code, good)
    recovered = _next_cycle(loop)
    assert recovered.ok and recovered.passed == ["basic"], recovered
    assert loop.server.pid == pid, "the server must not be restarted"


def test_editing_a_python_step_leaves_the_onnx_step_loaded(loop: DevLoop) -> None:
    offset = loop.server.log_size()
    _save(loop.model_dir / PRE / "1" / "model.py", _step_code(2.0) + "\n# a comment\n")
    result = _next_cycle(loop)
    assert result.ok, result
    assert result.reloaded == [PRE]
    log = loop.server.log_since(offset)
    reloaded = loaded_models(log)
    assert PRE in reloaded, log
    assert ONNX not in reloaded, log
    assert POST not in reloaded, log
    # And over the server's whole life, the ONNX step was loaded exactly once.
    assert loaded_models(loop.server.log_since(0)).count(ONNX) == 1
    # Although the stub wrote __pycache__ into the other Python step's served folder since it
    # loaded (a change Triton's polling would read as an edit), only the loaded step reloaded.
    assert list((loop.workdir / "repository" / POST).rglob("__pycache__"))


def test_a_case_edit_reruns_the_cases_without_a_reload(loop: DevLoop) -> None:
    case = loop.model_dir / "tests" / "cases" / "basic.json"
    data = json.loads(case.read_text())
    data["expected"]["Y"]["values"] = [[30.0, 51.0]]
    _save(case, json.dumps(data))
    result = _next_cycle(loop)
    assert result.reloaded == [] and "basic" in result.failed
    data["expected"]["Y"]["values"] = [[30.0, 50.0]]
    _save(case, json.dumps(data))
    assert _next_cycle(loop).ok


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(proc.name))
    return found


def _start_cli(model: Path, scratch: Path) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(sys.path),
        MMEPACK_SCRATCH=str(scratch),
        PYTHONUNBUFFERED="1",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "mmepack.dev", str(model), "--max-seconds=300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _wait_for_watching(process: subprocess.Popen[str]) -> list[str]:
    seen: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip())
        if "mmepack dev: watching" in line:
            return seen
    process.kill()
    raise AssertionError("the dev loop did not start:\n" + "\n".join(seen))


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_nothing_is_left_after_the_loop_stops(tmp_path: Path, how: signal.Signals) -> None:
    model = write_dev_model(tmp_path / "models")
    scratch = tmp_path / "scratch"
    process = _start_cli(model, scratch)
    try:
        seen = _wait_for_watching(process)
        assert any(line.startswith("PASS basic") for line in seen), seen
        assert seen[-2] == route_line(model) or route_line(model) in seen, seen
        marker = f"dev-pid{process.pid}-"
        servers = _processes_mentioning(marker)
        assert servers, "the server's processes carry the loop's scratch folder in their argv"
        process.send_signal(how)
        process.wait(timeout=STOP_WAIT_S)
        deadline = time.monotonic() + STOP_WAIT_S
        while _processes_mentioning(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_mentioning(marker) == [], "the server outlived the loop"
        if how == signal.SIGINT:
            assert process.returncode == 0
            assert not any(p.name.startswith(marker) for p in scratch.iterdir())
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_WAIT_S)


def test_a_step_that_fails_to_load_is_reported_and_the_old_one_keeps_serving(
    loop: DevLoop,
) -> None:
    code = loop.model_dir / PRE / "1" / "model.py"
    good = _step_code(2.0)
    _save(code, "import no_such_module_for_the_dev_test\n" + good)
    result = _next_cycle(loop)
    assert not result.ok and not result.static_only, result
    shown = "\n".join(result.problems)
    assert "no_such_module_for_the_dev_test" in shown, shown
    # The server's traceback names the file the user edits, not the staged copy.
    assert str(code) in shown and str(loop.workdir) not in shown, shown
    # Triton kept the previous version: the cases still answer through it.
    client = loop._client_for_cases()
    assert client.is_model_ready(PRE)
    _save(code, good)
    assert _next_cycle(loop).ok


def test_an_edit_held_back_by_a_syntax_error_elsewhere_is_applied_with_the_fix(
    loop: DevLoop,
) -> None:
    pre = loop.model_dir / PRE / "1" / "model.py"
    post = loop.model_dir / POST / "1" / "model.py"
    _save(pre, _step_code(3.0))  # [1, 2] -> [3, 6] -> [4, 7] -> [40, 70]
    _save(post, _step_code(10.0) + "def broken(:\n")
    held = _next_cycle(loop)
    assert held.static_only and not held.reloaded, held
    _save(post, _step_code(10.0))
    applied = _next_cycle(loop)
    assert PRE in applied.reloaded and POST in applied.reloaded, applied
    assert "40" in applied.failed["basic"], applied.failed
    _save(pre, _step_code(2.0))
    assert _next_cycle(loop).ok


def test_a_broken_config_is_reported_at_its_line_and_the_loop_goes_on(loop: DevLoop) -> None:
    config = loop.model_dir / POST / "config.pbtxt"
    good = config.read_text()
    _save(config, good.replace("max_batch_size: 4", "max_batch_size: 4\nmax_batch_size: {"))
    broken = _next_cycle(loop)
    assert broken.static_only and not broken.reloaded, broken
    shown = "\n".join(broken.problems)
    assert f"{config}:" in shown, shown
    _save(config, good)
    recovered = _next_cycle(loop)
    assert recovered.ok and POST in recovered.reloaded, recovered
