"""The CLI PEX with the `serve` extra (`./pants package src/mmepack:cli-serve`) serves and
load-tests the example's artifact, its ONNX step included, and the plain `cli.pex` names it.

Both PEXes run as a user runs them: `python3.11 <pex>`, with a bare PATH and nothing of this
checkout on sys.path. Every server listens on loopback, every request count and wait is bounded.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from PIL import Image

from mmepack.extras import SERVE_PEX
from mmepack.testing import find_artifact
from mmepack.testing.endpoint_client import BINARY_JSON, runtime_client
from models.screen_detector.tests import reference
from tests.cli_serving import COMMAND_SECONDS, EXAMPLE, all_answered, endpoint_process, loadtest

REPO_ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 180
BARE_PATH = "/usr/bin:/bin"
MISSING = "/nonexistent/screen_detector_1.tar.gz"


def _pex(name: str) -> Path:
    """A CLI PEX: in the sandbox under Pants (runtime_package_dependencies), else in dist/."""
    for root in (Path.cwd(), REPO_ROOT / "dist"):
        path = root / "src.mmepack" / name
        if path.is_file():
            return path
    raise AssertionError(f"no {name}: run `./pants package src/mmepack:{name[:-4]}` first")


def _python() -> str:
    """The base interpreter (CPython 3.11) under the test's venv, as a user's `python3.11`."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    path = Path(sys.base_prefix) / "bin" / name
    assert path.is_file(), f"{path}: expected the base interpreter of {sys.executable}"
    return str(path)


def _run_env() -> dict[str, str]:
    # HOME keeps the pex root (~/.pex) between runs: unpacking the serve PEX costs a minute.
    keep = ("HOME", "TMPDIR", "LANG", "MMEPACK_TEST_SLOTS_DIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PATH"] = BARE_PATH
    return env


def test_plain_cli_pex_names_the_extra_and_the_serve_pex(tmp_path: Path) -> None:
    done = subprocess.run(
        [_python(), str(_pex("cli.pex")), "endpoint", MISSING, "--port", "0"],
        env=_run_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("mmepack: error: `mmepack endpoint` ")
    assert "pip install 'mmepack[serve]'" in lines[0]
    assert f"`{_pex('cli.pex').with_name(SERVE_PEX)}`" in lines[0]
    # It stopped before anything ran: the artifact it was given was never looked at.
    assert MISSING not in lines[0].split("from a checkout")[0]
    assert list(tmp_path.iterdir()) == []


def test_serve_pex_loadtest_on_the_artifact_starts_its_own_endpoint(tmp_path: Path) -> None:
    command = [_python(), str(_pex(SERVE_PEX))]
    summary = loadtest(command, _run_env(), tmp_path / "report", str(find_artifact(EXAMPLE)))
    # The cold load answered, so the ensemble's ONNX step ran in the stand-in on the PEX's
    # own ONNX Runtime; every timed request was answered too.
    all_answered(summary)


@pytest.fixture()
def endpoint(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`cli-serve.pex endpoint ARTIFACT --port 0`: (runtime URL, its process)."""
    command = [_python(), str(_pex(SERVE_PEX)), "endpoint", str(find_artifact(EXAMPLE))]
    command += ["--port", "0"]
    with endpoint_process(command, _run_env(), tmp_path / "endpoint.err", START_SECONDS) as running:
        yield running


def _packed_onnx(artifact: Path, into: Path) -> Path:
    """The classifier's ONNX file as the artifact carries it, for the reference's weights."""
    with tarfile.open(artifact) as tar:
        (member,) = [m for m in tar.getmembers() if m.name.endswith("/model.onnx")]
        source = tar.extractfile(member)
        assert source is not None
        path = into / "model.onnx"
        path.write_bytes(source.read())
    return path


def test_serve_pex_endpoint_answers_an_invoke_like_the_reference(
    endpoint: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    url, owner = endpoint
    artifact = find_artifact(EXAMPLE)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 190, 180)).save(buffer, format="PNG")
    image = buffer.getvalue()
    tensor = httpclient.InferInput("IMAGE_BYTES", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([image], dtype=np.object_).reshape(-1, 1))
    outputs = [httpclient.InferRequestedOutput(o) for o in ("LABEL", "SCREEN_PROBABILITY")]
    body, size = httpclient.InferenceServerClient.generate_request_body([tensor], outputs=outputs)
    client = runtime_client(url)
    try:
        reply = client.invoke_endpoint(
            EndpointName="local",
            TargetModel=artifact.name,
            ContentType=f"{BINARY_JSON};json-header-size={size}",
            Body=body,
        )
    finally:
        client.close()
    header = reply["ContentType"].split("json-header-size=")
    result = httpclient.InferenceServerClient.parse_response_body(
        reply["Body"].read(), header_length=int(header[1]) if len(header) == 2 else None
    )
    _, probability, labels = reference.predict([image], _packed_onnx(artifact, tmp_path))
    assert bytes(result.as_numpy("LABEL")[0, 0]).decode() == labels[0]
    served = float(np.asarray(result.as_numpy("SCREEN_PROBABILITY")).reshape(-1)[0])
    assert abs(served - float(probability[0])) < 1e-4, (served, probability)
    # The endpoint counted one invoke and no error.
    owner.send_signal(signal.SIGINT)
    owner.wait(timeout=60)
    assert owner.returncode == 0
    log = (tmp_path / "endpoint.err").read_text()
    summary = json.loads(log.split("mmepack: summary ", 1)[1].splitlines()[0])
    assert summary["Invocations"] == 1
    assert summary["Invocation4XXErrors"] == summary["Invocation5XXErrors"] == 0
