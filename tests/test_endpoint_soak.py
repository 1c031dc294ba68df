"""A bounded soak of the local endpoint: several callers mix good invokes with hostile and
careless traffic on one endpoint with a real Triton 2.51 behind it (issue 25).

Bounded in count (CALLERS x ROUNDS requests) and in time (DEADLINE_S, then every caller stops
at its next round). It ends with every good request answered with the right numbers, the
server alive and no death unnoticed, and, after the stop, nothing left: no work folder in the
scratch folder, and none of the server's shared memory regions on the host's /dev/shm (they
lived in its private one). Runs in CI with the other endpoint tests (well under 3 minutes).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from botocore.exceptions import ClientError

from mmepack.build import package_model
from mmepack.endpoint import LocalEndpoint
from mmepack.testing.endpoint_client import BINARY_JSON, runtime_client
from tests.demo_models import write_ensemble_model

CALLERS = 8
ROUNDS = 120
DEADLINE_S = 90.0
IDLE_TIMEOUT_S = 3.0
IDLE_PER_CALLER = 2


def _double_request(data: np.ndarray) -> tuple[bytes, str]:
    tensor = httpclient.InferInput("IN", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    body, size = httpclient.InferenceServerClient.generate_request_body([tensor])
    return body, f"{BINARY_JSON};json-header-size={size}"


def _raw(port: int, request: bytes, close_early: bool = False) -> int:
    """Send raw bytes; the status answered, or 0 when the connection closed without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        if close_early:
            return 0
        head = b""
        while b"\r\n" not in head:
            data = sock.recv(4096)
            if not data:
                return 0
            head += data
    return int(head.split(b" ", 2)[1])


def _head(target: str, extra: str) -> bytes:
    return (
        f"POST /endpoints/local/invocations HTTP/1.1\r\nHost: x\r\n"
        f"X-Amzn-SageMaker-Target-Model: {target}\r\nContent-Type: application/json\r\n"
        f"{extra}\r\n"
    ).encode()


def test_mixed_good_and_hostile_traffic_from_several_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    monkeypatch.setenv("MMEPACK_SCRATCH", str(scratch))
    root = tmp_path / "models"
    good = [
        package_model(write_ensemble_model(root / f"demo-{v}", version=v), root / "dist").path
        for v in "12"
    ]
    truncated = root / "broken_1.tar.gz"
    truncated.write_bytes(good[0].read_bytes()[:300])
    deep = b'{"inputs": [{"name": "IN", "data": ' + b"[" * 50_000 + b"]" * 50_000 + b"}]}"
    outcomes: Counter[str] = Counter()
    wrong: list[str] = []
    lock = threading.Lock()
    idle: list[socket.socket] = []
    regions: set[str] = set()

    with LocalEndpoint([*good, truncated], log=None) as endpoint:
        endpoint.front.idle_timeout = IDLE_TIMEOUT_S
        port = endpoint.runtime.port
        workdir = endpoint.workdir
        started = time.monotonic()

        def expect(name: str, got: object, wanted: object) -> None:
            with lock:
                outcomes[name] += 1
                if got != wanted:
                    wrong.append(f"{name}: got {got!r}, wanted {wanted!r}")

        def error_status(call: Callable[[], Any]) -> int:
            try:
                call()
            except ClientError as exc:
                return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])
            return 200

        def caller(index: int) -> None:
            runtime = runtime_client(endpoint.url)
            rng = np.random.default_rng(index)
            mine: list[socket.socket] = []
            try:
                for round_ in range(ROUNDS):
                    if time.monotonic() - started > DEADLINE_S:
                        return
                    kind = (index + round_) % 10
                    if kind < 4:  # good: the right numbers back, every time
                        target = good[(index + round_) % 2].name
                        data = rng.normal(size=(1 + round_ % 3, 2)).astype(np.float32)
                        body, ctype = _double_request(data)
                        try:
                            reply = runtime.invoke_endpoint(
                                EndpointName="local",
                                TargetModel=target,
                                ContentType=ctype,
                                Body=body,
                            )
                            size = int(reply["ContentType"].split("json-header-size=")[1])
                            result = httpclient.InferenceServerClient.parse_response_body(
                                reply["Body"].read(), header_length=size
                            )
                            ok = bool(np.array_equal(result.as_numpy("OUT"), data * 2))
                        except Exception as exc:  # recorded, and the test fails on it
                            ok = False
                            with lock:
                                wrong.append(f"good invoke of {target}: {exc!r}")
                        expect("good", ok, True)
                    elif kind == 4:
                        status = error_status(
                            lambda: runtime.invoke_endpoint(
                                EndpointName="local",
                                TargetModel=good[0].name,
                                ContentType="application/json",
                                Body=deep,
                            )
                        )
                        expect("deep-json", status, 400)
                    elif kind == 5:
                        length = ["-1", "abc", str(10**12)][round_ % 3]
                        wanted = 413 if length.isdigit() else 400
                        got = _raw(port, _head(good[1].name, f"Content-Length: {length}\r\n"))
                        expect("content-length", got, wanted)
                    elif kind == 6:
                        chunked = _head(good[0].name, "Transfer-Encoding: chunked\r\n")
                        expect("chunked", _raw(port, chunked + b"2\r\n{}\r\n0\r\n\r\n"), 411)
                    elif kind == 7:
                        status = error_status(
                            lambda: runtime.invoke_endpoint(
                                EndpointName="local",
                                TargetModel=truncated.name,
                                ContentType="application/json",
                                Body=b"{}",
                            )
                        )
                        expect("truncated-artifact", status, 424)
                    elif kind == 8:  # a stalled body, then gone; and an idle connection
                        stalled = _head(good[0].name, "Content-Length: 1000\r\n") + b"{" * 10
                        expect("stalled", _raw(port, stalled, close_early=True), 0)
                        # At most IDLE_PER_CALLER stay open per caller: all callers together
                        # stay under the endpoint's connection bound, which has its own test.
                        mine.append(socket.create_connection(("127.0.0.1", port), timeout=30))
                        if len(mine) > IDLE_PER_CALLER:
                            mine.pop(0).close()
                    else:
                        expect(
                            "garbage", _raw(port, b"\x16\x03\x01 \xff HTTP/1.1 junk\r\n\r\n"), 400
                        )
                    if round_ % 5 == 0:
                        view = Path(f"/proc/{endpoint.server.server_pid}/root/dev/shm")
                        with lock:
                            regions.update(p.name for p in view.glob("triton*"))
            finally:
                runtime.close()
                with lock:
                    idle.extend(mine)

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(CALLERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=DEADLINE_S + 120)
        assert not any(t.is_alive() for t in threads), "a caller hung"
        elapsed = time.monotonic() - started
        print(f"soak: {dict(outcomes)} in {elapsed:.1f} s")
        assert not wrong, wrong[:10]
        assert outcomes["good"] >= CALLERS * 4, outcomes  # the deadline did not cut it short
        assert endpoint.failure is None and endpoint.server.running()
        # Idle connections were closed by the endpoint, not left holding threads.
        time.sleep(IDLE_TIMEOUT_S + 1)
        for sock in idle:
            sock.settimeout(10)
            assert sock.recv(1) == b""
            sock.close()
        assert endpoint.server.private_files
        assert regions, "no shared memory region seen: the soak proves nothing about /dev/shm"
    assert not workdir.exists()
    assert not [p for p in scratch.iterdir() if p.name.startswith("endpoint-")]
    assert not [name for name in regions if os.path.exists(f"/dev/shm/{name}")]
