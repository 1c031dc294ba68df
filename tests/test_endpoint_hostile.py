"""Hostile and careless callers against the local endpoint, with a real Triton 2.51 behind it
(issue 25, items 1 to 8).

One in-process endpoint serves the module's checks on the runtime API (body limits, JSON depth,
idle connections, a truncated artifact, the private /dev/shm); `mmepack endpoint` runs as its own
process where the check is about the command (a server death, a kill, a stop during a load, a
busy port). Every wait and every loop is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from botocore.exceptions import ClientError

from mmepack.build import package_model
from mmepack.endpoint import LocalEndpoint
from mmepack.endpoint import cli as endpoint_cli
from mmepack.endpoint import model_hash
from mmepack.endpoint.runtime import MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_JSON_DEPTH
from mmepack.endpoint.server import find_descendant
from mmepack.testing.endpoint_client import BINARY_JSON, runtime_client
from tests.demo_models import write_ensemble_model

# `mmepack endpoint` as its own process; the import keeps Pants' dependency inference honest.
_ENDPOINT_MAIN = f"import sys; from {endpoint_cli.__name__} import main; sys.exit(main())"
DATA = np.array([[1.5, -2.0]], dtype=np.float32)


# --- helpers ---------------------------------------------------------------------------------


def double_request(data: np.ndarray) -> tuple[bytes, str]:
    tensor = httpclient.InferInput("IN", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    body, size = httpclient.InferenceServerClient.generate_request_body([tensor])
    return body, f"{BINARY_JSON};json-header-size={size}"


def invoke_ok(runtime: Any, target: str, data: np.ndarray = DATA) -> None:
    body, ctype = double_request(data)
    reply = runtime.invoke_endpoint(
        EndpointName="local", TargetModel=target, ContentType=ctype, Body=body
    )
    size = int(reply["ContentType"].split("json-header-size=")[1])
    result = httpclient.InferenceServerClient.parse_response_body(
        reply["Body"].read(), header_length=size
    )
    np.testing.assert_array_equal(result.as_numpy("OUT"), data * 2)


def raw_exchange(port: int, request: bytes, timeout: float = 20.0) -> bytes:
    """Send raw bytes, read until the server closes the connection (or `timeout`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def status_of(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1."), reply[:200]
    return int(reply.split(b" ", 2)[1])


def post_head(target: str, extra: str) -> bytes:
    return (
        f"POST /endpoints/local/invocations HTTP/1.1\r\nHost: x\r\n"
        f"X-Amzn-SageMaker-Target-Model: {target}\r\nContent-Type: application/json\r\n"
        f"{extra}\r\n"
    ).encode()


def start_cli(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str, Path]:
    """`mmepack endpoint` in its own process: (process, runtime URL, its work folder)."""
    owner = subprocess.Popen(
        [sys.executable, "-c", _ENDPOINT_MAIN, "--port=0", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert owner.stderr is not None
    url, workdir, seen = "", None, []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (url and workdir):
        line = owner.stderr.readline()
        if not line:
            break
        seen.append(line)
        if " at http://127.0.0.1:" in line:
            url = line.rsplit(" at ", 1)[1].strip()
        if "on the Unix socket " in line:
            workdir = Path(line.rsplit("on the Unix socket ", 1)[1].strip()).parent
    if not url or workdir is None:
        owner.kill()
        rest = owner.communicate(timeout=30)[1]
        pytest.fail(f"the endpoint did not start:\n{''.join(seen)}{rest}")
    return owner, url, workdir


def cli_env(tmp: Path) -> dict[str, str]:
    """The command's environment, with its temporary folders (work folder, scratch) under
    `tmp` so the test sees exactly what it leaves."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), TMPDIR=str(tmp))
    env.pop("MMEPACK_SCRATCH", None)
    return env


def leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.rglob("*") if "endpoint" in p.name)


def finish(owner: subprocess.Popen[str], timeout: float = 60) -> str:
    try:
        return owner.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        owner.kill()
        return owner.communicate(timeout=30)[1]


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_artifacts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("hostile")
    return [
        package_model(write_ensemble_model(root / f"demo-{v}", version=v), root / "dist").path
        for v in "12"
    ]


@pytest.fixture(scope="module")
def truncated_artifact(
    demo_artifacts: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    target = tmp_path_factory.mktemp("truncated") / "broken_1.tar.gz"
    data = demo_artifacts[0].read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


@pytest.fixture(scope="module")
def endpoint(demo_artifacts: list[Path], truncated_artifact: Path) -> Iterator[LocalEndpoint]:
    with LocalEndpoint([*demo_artifacts, truncated_artifact], log=None) as started:
        started.load(demo_artifacts[0].name)
        yield started


@pytest.fixture(scope="module")
def runtime(endpoint: LocalEndpoint) -> Iterator[Any]:
    client = runtime_client(endpoint.url)
    yield client
    client.close()


# --- 1. deep JSON never reaches Triton; 3. body limits ------------------------------------------


def test_deeply_nested_json_is_refused_and_the_server_lives(
    endpoint: LocalEndpoint, runtime: Any, demo_artifacts: list[Path]
) -> None:
    target = demo_artifacts[0].name
    deep = b'{"inputs": [{"name": "IN", "shape": [1, 2], "datatype": "FP32", "data": '
    deep += b"[" * 100_000 + b"]" * 100_000 + b"}]}"
    for ctype, body in [
        ("application/json", deep),
        (f"{BINARY_JSON};json-header-size={len(deep)}", deep + b"\0" * 8),
    ]:
        with pytest.raises(ClientError) as caught:
            runtime.invoke_endpoint(
                EndpointName="local", TargetModel=target, ContentType=ctype, Body=body
            )
        error = caught.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400, error
        assert f"at most {MAX_JSON_DEPTH}" in error["Error"]["Message"]
    # A header size outside the body is refused too; brackets inside strings do not count.
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(
            EndpointName="local",
            TargetModel=target,
            ContentType=f"{BINARY_JSON};json-header-size=99999",
            Body=b"{}",
        )
    assert "json-header-size" in caught.value.response["Error"]["Message"]
    assert endpoint.server.running() and endpoint.failure is None
    invoke_ok(runtime, target)


@pytest.mark.parametrize(
    "length, status",
    [("-1", 400), ("abc", 400), ("1e3", 400), (str(10**12), 413), ("9" * 5000, 413)],
    ids=["minus-one", "abc", "1e3", "10^12", "5000-digits"],
)
def test_bad_or_huge_content_length_is_refused_without_reading(
    endpoint: LocalEndpoint, demo_artifacts: list[Path], length: str, status: int
) -> None:
    # Only the headers are sent: an answer proves the body was not waited for.
    reply = raw_exchange(
        endpoint.runtime.port, post_head(demo_artifacts[0].name, f"Content-Length: {length}\r\n")
    )
    assert status_of(reply) == status, reply[:300]
    assert b"Connection: close" in reply


def test_a_body_over_the_limit_is_refused_before_it_is_sent(
    endpoint: LocalEndpoint, demo_artifacts: list[Path]
) -> None:
    declared = 1 << 30
    started = time.monotonic()
    # Only the head of a 1 GB request: the whole answer (read until the server closes) comes
    # before a byte of the body. Sending the body's start too made the server close with unread
    # bytes, whose reset could cut the answer after its headers (CI saw that once).
    reply = raw_exchange(
        endpoint.runtime.port,
        post_head(demo_artifacts[0].name, f"Content-Length: {declared}\r\n"),
    )
    assert status_of(reply) == 413, reply[:300]
    assert str(MAX_BODY_BYTES).encode() in reply
    assert time.monotonic() - started < 15


def test_chunked_bodies_are_refused_and_not_read_as_a_second_request(
    endpoint: LocalEndpoint, demo_artifacts: list[Path]
) -> None:
    chunk = b'{"inputs": []}'
    request = post_head(demo_artifacts[0].name, "Transfer-Encoding: chunked\r\n") + (
        f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n"
    )
    reply = raw_exchange(endpoint.runtime.port, request)
    assert status_of(reply) == 411, reply[:300]
    assert reply.count(b"HTTP/1.1 ") == 1, "the chunks were parsed as another request"
    assert b"Content-Length" in reply.split(b"\r\n\r\n", 1)[1]


# --- 4. idle connections ------------------------------------------------------------------------


def _handler_threads() -> int:
    """Threads serving a runtime API connection (socketserver names them so)."""
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def test_idle_connections_are_bounded_and_closed(
    endpoint: LocalEndpoint, runtime: Any, demo_artifacts: list[Path]
) -> None:
    before = _handler_threads()
    endpoint.front.idle_timeout = 2.0
    sockets: list[socket.socket] = []
    try:
        for _ in range(MAX_CONNECTIONS + 40):
            sockets.append(socket.create_connection(("127.0.0.1", endpoint.runtime.port)))
        time.sleep(1.0)
        grown = _handler_threads() - before
        assert grown <= MAX_CONNECTIONS, f"{grown} threads for idle connections"
        # Each connection ends: beyond the bound at once with a 503, the others (served,
        # then idle) closed without a word after the idle timeout.
        endings: Counter[str] = Counter()
        deadline = time.monotonic() + 30
        for sock in sockets:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
            endings["503" if reply.startswith(b"HTTP/1.1 503") else reply.decode()] += 1
        assert set(endings) == {"503", ""}, endings
        assert endings["503"] >= 40, endings
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _handler_threads() > before:
            time.sleep(0.1)
        assert _handler_threads() <= before
    finally:
        endpoint.front.idle_timeout = 30.0
        for sock in sockets:
            sock.close()
    invoke_ok(runtime, demo_artifacts[0].name)


# --- 6. a truncated artifact ----------------------------------------------------------------


def test_a_truncated_artifact_is_a_model_error_naming_it(
    endpoint: LocalEndpoint, runtime: Any, truncated_artifact: Path
) -> None:
    body, ctype = double_request(DATA)
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(
            EndpointName="local",
            TargetModel=truncated_artifact.name,
            ContentType=ctype,
            Body=body,
        )
    error: Any = caught.value.response
    assert error["Error"]["Code"] == "ModelError", error
    assert error["OriginalStatusCode"] == 400
    assert str(truncated_artifact) in error["OriginalMessage"]
    assert "truncated or corrupt" in error["OriginalMessage"]
    assert not (endpoint.models_root / model_hash(truncated_artifact.name)).exists()


# --- 8. a private /dev/shm ------------------------------------------------------------------


def test_the_server_has_a_private_dev_shm(endpoint: LocalEndpoint, runtime: Any) -> None:
    view = Path(f"/proc/{endpoint.server.server_pid}/root/dev/shm")
    regions = [p.name for p in view.iterdir() if p.name.startswith("triton")]
    assert regions, "the Python backend made no shared memory region"
    assert view.stat().st_dev != Path("/dev/shm").stat().st_dev, "the host's /dev/shm"
    assert endpoint.server.private_files, endpoint.server.files_problem
    assert view.stat().st_mode & 0o777 == 0o700
    assert not any((Path("/dev/shm") / name).exists() for name in regions)
    # Its /tmp is the work folder's own (the Python backend unpacks environments there).
    assert (
        Path(f"/proc/{endpoint.server.server_pid}/root/tmp").stat().st_ino
        == (endpoint.workdir / "tmp").stat().st_ino
    )


# --- 1. a dead server is noticed; 2. a killed run is cleaned by the next ---------------------


def test_a_server_death_is_noticed_said_and_ends_the_command(
    demo_artifacts: list[Path], tmp_path: Path
) -> None:
    env = cli_env(tmp_path / "tmp")
    owner, url, workdir = start_cli([str(demo_artifacts[0])], env)
    try:
        runtime = runtime_client(url)
        invoke_ok(runtime, demo_artifacts[0].name)
        server = find_descendant(owner.pid, "tritonserver", depth=6)
        assert server is not None
        os.kill(server, signal.SIGABRT)  # as Triton's own abort on a hostile request
        code = owner.wait(timeout=60)
        err = finish(owner)
        runtime.close()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=30)
    assert code == 1, err[-3000:]
    assert "Triton server died (exit status 134, SIGABRT)" in err, err[-3000:]
    assert err.rstrip().endswith("its Triton server died (see above)"), err[-500:]
    assert not workdir.exists()
    assert leftovers(tmp_path / "tmp") == []


def test_a_killed_endpoint_is_cleaned_by_the_next_run_and_a_live_one_is_not(
    demo_artifacts: list[Path], tmp_path: Path
) -> None:
    env = cli_env(tmp_path / "tmp")
    owner, url, killed = start_cli([str(demo_artifacts[0])], env)
    try:
        runtime = runtime_client(url)
        invoke_ok(runtime, demo_artifacts[0].name)
        runtime.close()
        live, live_url, live_workdir = start_cli([str(demo_artifacts[1])], env)
        try:
            os.kill(owner.pid, signal.SIGKILL)
            owner.wait(timeout=30)
            assert killed.exists(), "nothing to clean: the test proves nothing"
            nxt, _, next_workdir = start_cli([str(demo_artifacts[1])], env)
            nxt.send_signal(signal.SIGTERM)
            assert nxt.wait(timeout=60) == 0, finish(nxt)
            finish(nxt)
            assert not killed.exists(), "the killed run's work folder stayed"
            assert live_workdir.exists(), "a live endpoint's work folder was removed"
            live_runtime = runtime_client(live_url)
            invoke_ok(live_runtime, demo_artifacts[1].name)
            live_runtime.close()
            assert not next_workdir.exists()
        finally:
            live.send_signal(signal.SIGTERM)
            assert live.wait(timeout=60) == 0
            finish(live)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=30)
    assert leftovers(tmp_path / "tmp") == []


# --- 5. a stop during a load; 7. a busy port -------------------------------------------------


@pytest.fixture(scope="module")
def slow_artifact(demo_artifacts: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo with 96 MB of incompressible filler: its unpack takes a while."""
    target = tmp_path_factory.mktemp("slow") / "slow_1.tar.gz"
    filler = tmp_path_factory.mktemp("filler") / "filler.bin"
    with filler.open("wb") as out:
        for _ in range(96):
            out.write(os.urandom(1 << 20))
    with tarfile.open(demo_artifacts[0], "r:gz") as src, tarfile.open(target, "w:gz") as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        dst.add(filler, arcname="demo_double/filler.bin")
    return target


def test_a_stop_during_a_load_leaves_nothing_and_prints_the_summary_last(
    slow_artifact: Path, tmp_path: Path
) -> None:
    env = cli_env(tmp_path / "tmp")
    owner, url, workdir = start_cli([str(slow_artifact), "--not-ready-after=600"], env)
    models = workdir / "models" / model_hash(slow_artifact.name)
    caller_error: list[str] = []

    def call() -> None:
        runtime = runtime_client(url)
        try:
            invoke_ok(runtime, slow_artifact.name)
        except Exception as exc:  # the stop cuts it off: what it got does not matter here
            caller_error.append(repr(exc))
        finally:
            runtime.close()

    caller = threading.Thread(target=call, daemon=True)
    try:
        caller.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not models.exists():
            time.sleep(0.02)
        assert models.exists(), "the load did not start"
        owner.send_signal(signal.SIGTERM)
        code = owner.wait(timeout=90)
        err = finish(owner)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=30)
    caller.join(timeout=60)
    assert code == 0, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("mmepack: summary "), lines[-5:]
    time.sleep(3)  # a load thread that outlived the stop would have made models/ again
    assert not workdir.exists(), sorted(str(p) for p in workdir.rglob("*"))[:10]
    assert leftovers(tmp_path / "tmp") == []


def test_a_busy_port_names_the_port_and_leaves_no_work_folder(
    demo_artifacts: list[Path], tmp_path: Path
) -> None:
    env = cli_env(tmp_path / "tmp")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-c", _ENDPOINT_MAIN, f"--port={port}", str(demo_artifacts[0])],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert done.returncode == 1, done.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert leftovers(tmp_path / "tmp") == []
