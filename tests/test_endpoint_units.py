"""The endpoint's pure parts, without a server: container flags, load-request checks, TargetModel
lookup and unpacking, metrics, and the test client's retry setting (against a loopback stand-in)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from mmepack.endpoint import _clean_dead_endpoints, check_load_request, model_hash
from mmepack.endpoint import server as server_module
from mmepack.endpoint.artifacts import (
    ArtifactSource,
    ArtifactUnreadable,
    TargetModelNotFound,
    unpack,
)
from mmepack.endpoint.metrics import EndpointMetrics, InvokeMetrics, ModelEvent
from mmepack.endpoint.runtime import LISTEN_BACKLOG, bind_listener, invoke_body_problem, json_depth
from mmepack.endpoint.server import MmeServer, sagemaker_arguments, shm_prefix
from mmepack.testing.endpoint_client import BINARY_JSON, runtime_client
from tests import hostile_artifacts


def test_container_flags_and_sagemaker_variables() -> None:
    args = sagemaker_arguments(Path("/repo"), 8080, {})
    assert args[:6] == [
        "--allow-sagemaker=true",
        "--allow-grpc=false",
        "--allow-http=false",
        "--allow-metrics=false",
        "--model-control-mode=explicit",
        "--model-repository=/repo",
    ]
    assert "--model-namespacing=true" in args and "--sagemaker-port=8080" in args
    assert "--log-verbose=true" in args
    assert "--backend-config=python,shm-default-byte-size=16777216" in args
    environ = {
        "SAGEMAKER_TRITON_DISABLE_MODEL_NAMESPACING": "false",
        "SAGEMAKER_TRITON_THREAD_COUNT": "4",
        "SAGEMAKER_TRITON_SHM_GROWTH_BYTE_SIZE": "2048",
        "SAGEMAKER_TRITON_LOG_VERBOSE": "0",
        "SAGEMAKER_TRITON_ADDITIONAL_ARGS": "--exit-timeout-secs=5 --log-info=false",
    }
    args = sagemaker_arguments(Path("/repo"), 9000, environ)
    assert "--model-namespacing=false" in args
    assert "--sagemaker-thread-count=4" in args and "--log-verbose=0" in args
    assert "--backend-config=python,shm-growth-byte-size=2048" in args
    assert args[-2:] == ["--exit-timeout-secs=5", "--log-info=false"]
    assert "--model-namespacing=true" in sagemaker_arguments(Path("/r"), 1, environ, True)


@pytest.mark.parametrize(
    "body, expected",
    [
        (b'{"model_name": "abc", "url": ', "not JSON"),
        (b"[]", "JSON object"),
        (b'{"model_name": "abc"}', "exactly the keys"),
        (b'{"model_name": "ABC!", "url": "/"}', "hex hash"),
        (b'{"model_name": "abc", "url": "relative"}', "absolute folder"),
        (b'{"model_name": "abc", "url": "/no/such/folder"}', "absolute folder"),
    ],
)
def test_malformed_load_requests_are_refused(body: bytes, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        check_load_request(body)


def test_good_load_request(tmp_path: Path) -> None:
    body = f'{{"model_name": "{model_hash("m_1.tar.gz")}", "url": "{tmp_path}"}}'
    assert check_load_request(body.encode())["url"] == str(tmp_path)


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_target_models_from_files_and_folders(tmp_path: Path) -> None:
    one = _tar(tmp_path / "a_1.tar.gz", {"a/config.pbtxt": b""})
    (tmp_path / "prefix" / "team").mkdir(parents=True)
    two = _tar(tmp_path / "prefix" / "team" / "b_2.tar.gz", {"b/config.pbtxt": b""})
    source = ArtifactSource.of([one, tmp_path / "prefix"])
    assert source.find("a_1.tar.gz") == one
    assert source.find("team/b_2.tar.gz") == two
    assert source.names() == ["a_1.tar.gz", "team/b_2.tar.gz"]
    for bad in ("../a_1.tar.gz", "/etc/passwd.tar.gz", "a_1.zip", "", "x" * 1100 + ".tar.gz"):
        with pytest.raises(TargetModelNotFound):
            source.find(bad)
    with pytest.raises(TargetModelNotFound, match="offered: a_1.tar.gz"):
        source.find("c_1.tar.gz")


def test_unpack_like_sagemaker_refuses_paths_out_of_the_folder(tmp_path: Path) -> None:
    good = _tar(tmp_path / "g_1.tar.gz", {"g/config.pbtxt": b"x", "g/1/model.py": b"y"})
    folder = unpack(good, tmp_path / "models", "g_1.tar.gz")
    assert folder == tmp_path / "models" / model_hash("g_1.tar.gz") / "model"
    assert (folder / "g" / "1" / "model.py").read_bytes() == b"y"
    evil = _tar(tmp_path / "e_1.tar.gz", {"../../escaped.txt": b"z"})
    with pytest.raises(ArtifactUnreadable, match="e_1.tar.gz"):
        unpack(evil, tmp_path / "models", "e_1.tar.gz")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "models" / model_hash("e_1.tar.gz")).exists()


def test_unpack_refuses_a_gzip_bomb_without_inflating_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2 GiB of zeros in a file of about 2 MB: publish's bounds apply to the endpoint too, so
    # it stops past 100x the file's size + 64 MiB instead of writing 2 GiB to the disk.
    monkeypatch.delenv("MMEPACK_MAX_EXPANSION_RATIO", raising=False)
    monkeypatch.delenv("MMEPACK_MAX_UNPACKED_BYTES", raising=False)
    bomb = hostile_artifacts.gzip_bomb(tmp_path / "bomb_1.tar.gz")
    with pytest.raises(ArtifactUnreadable, match="bomb_1.tar.gz"):
        unpack(bomb, tmp_path / "models", "bomb_1.tar.gz")
    assert not (tmp_path / "models" / model_hash("bomb_1.tar.gz")).exists()


def test_metrics_summary() -> None:
    metrics = EndpointMetrics()
    metrics.record_invoke(InvokeMetrics("a", 200, 0, 2_000_000, 5_000, 1))
    metrics.record_invoke(InvokeMetrics("a", 200, 1, 0, 4_000, 1))
    metrics.record_invoke(InvokeMetrics("b", 424, 0, 1_000_000, 0, 2))
    metrics.record_event(ModelEvent("a", "load", 2.0, 0.5))
    metrics.record_event(ModelEvent("a", "unload", 0.25, reason="capacity"))
    summary = metrics.summary(loaded_model_count=1)
    assert summary["Invocations"] == 3 and summary["Invocation4XXErrors"] == 1
    assert summary["ModelCacheHit"] == {"Sum": 1, "Average": 0.333}
    assert summary["ModelLoadingWaitTime"] == {
        "SampleCount": 2,
        "Average": 1_500_000,
        "Maximum": 2_000_000,
    }
    assert summary["ModelLoadingTime"]["Average"] == 2_000_000
    assert summary["ModelUnloadingTime"] == {"SampleCount": 1, "Average": 250_000}
    assert InvokeMetrics("a", 200, 1, 0, 7, 3).headers()["X-Mmepack-LoadedModelCount"] == "3"


def test_the_test_client_sends_each_request_once() -> None:
    """A loopback server that answers every request with a retryable 500, and counts them.

    botocore's standard mode retries a 500; with `retries={"max_attempts": 1}` (one retry) this
    server saw two requests for one invoke.
    """
    seen: list[str] = []

    class Failing(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (stdlib naming)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.path)
            body = b'{"__type": "InternalFailure", "message": "counted"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = runtime_client(f"http://127.0.0.1:{server.server_address[1]}")
    try:
        with pytest.raises(ClientError) as caught:
            client.invoke_endpoint(
                EndpointName="local", TargetModel="m_1.tar.gz", ContentType="x", Body=b"1"
            )
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert seen == ["/endpoints/local/invocations"]


# --- issue 25: what the runtime API refuses, what a killed run leaves -------------------------


def test_the_json_depth_scan_ignores_strings_and_escapes() -> None:
    assert json_depth(b'{"a": [[1, 2], [3]], "s": "[[[[\\"[["}') == 3
    assert json_depth(b'["\\\\", [[1]]]') == 3
    assert json_depth(b'["\\\\\\"[[[", 1]') == 1
    assert json_depth(b"[" * 500) == 500
    assert json_depth(json.dumps({"k": "{" * 1000, "v": [[["]]]"]]]}).encode()) == 4
    assert json_depth(b"") == 0


@pytest.mark.parametrize(
    "body, ctype, problem",
    [
        (b"[" * 101, "application/json", "nested 101 levels"),
        (b"[" * 100, "application/json", None),
        (b"[" * 101 + b"\0" * 4, f"{BINARY_JSON};json-header-size=5", None),
        (b"[" * 101 + b"\0" * 4, f"{BINARY_JSON};json-header-size=101", "nested 101"),
        (b"{}", f"{BINARY_JSON};json-header-size=3", "within the 2-byte body"),
        (b"{}", f"{BINARY_JSON};json-header-size=-1", "byte count"),
    ],
)
def test_invoke_bodies_refused_before_triton(body: bytes, ctype: str, problem: str | None) -> None:
    found = invoke_body_problem(body, ctype)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_without_a_private_dev_shm_regions_are_named_for_the_work_folder(tmp_path: Path) -> None:
    workdir = tmp_path / "endpoint-pid1-abc"
    server = MmeServer(workdir, isolate=False)
    assert not server.private_files and server.files_problem
    flag = f"--backend-config=python,shm-region-prefix-name={shm_prefix(workdir)}"
    assert flag in server.arguments and shm_prefix(workdir) == "mmepack_endpoint-pid1-abc_"


def test_dead_endpoints_are_cleaned_and_live_ones_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = subprocess.Popen(["true"])  # its PID is free again once it has ended
    probe.wait()
    dead_pid = probe.pid
    shm = tmp_path / "shm"
    shm.mkdir()
    monkeypatch.setattr(server_module, "SHM_DIR", shm)
    root = tmp_path / "scratch"
    gone = root / f"endpoint-pid{dead_pid}-x1"
    kept = root / f"endpoint-pid{os.getpid()}-x2"
    for folder in (gone, kept):
        (folder / "models").mkdir(parents=True)
        (shm / f"{shm_prefix(folder)}region").write_bytes(b"x")
    (shm / "triton_python_backend_shm_region_other").write_bytes(b"x")
    _clean_dead_endpoints(root)
    assert not gone.exists() and kept.exists()
    assert sorted(p.name for p in shm.iterdir()) == [
        f"{shm_prefix(kept)}region",
        "triton_python_backend_shm_region_other",
    ]


def test_the_runtime_api_listens_with_a_sane_backlog() -> None:
    ss = shutil.which("ss") or next(
        (p for p in ("/usr/sbin/ss", "/sbin/ss", "/usr/bin/ss") if os.path.exists(p)), None
    )
    if ss is None:
        pytest.skip("`ss` (iproute2, which the endpoint's isolation needs too) is not installed")
    listener = bind_listener(0)
    try:
        port = listener.getsockname()[1]
        shown = subprocess.run(
            [ss, "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert shown[0] == "LISTEN" and int(shown[2]) == LISTEN_BACKLOG >= 128, shown
    finally:
        listener.close()
