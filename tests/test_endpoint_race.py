"""Eviction against load on a capacity-1 local endpoint, on a real Triton 2.51.

The load test once saw loads answer Triton's "model repository ... has already been
registered" and then lost connections. The race: caller 1's model A is evicted to make room for
caller 2's model B, and caller 1 asks for A again while A's `DELETE /models/<hash>` is still
running. Triton keeps A's repository registered until the unload has finished (its SageMaker
front end polls the model index every 500 ms, then unregisters), so a second load of A that
overlaps it unpacks over the folder Triton still serves and is refused with 409.

The test makes that overlap on purpose (it waits until A has left the endpoint's loaded list,
which is when its unload starts, then asks for A), a bounded number of rounds, with a missing
TargetModel asked for alongside, as the load test did. Every answer must be a 200 with the right
numbers, or, for the missing model, SageMaker's ModelError carrying a 404.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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

ROUNDS = 3
ROUND_DEADLINE_S = 90.0
MISSING = "no_such_model_1.tar.gz"


@pytest.fixture(scope="module")
def two_artifacts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("race")
    return [
        package_model(write_ensemble_model(root / f"demo-{v}", version=v), root / "dist").path
        for v in "12"
    ]


@pytest.fixture(scope="module")
def endpoint(two_artifacts: list[Path]) -> Iterator[LocalEndpoint]:
    # A generous not-ready bound: a caller waiting behind an eviction must get its answer,
    # not SageMaker's retry-later.
    with LocalEndpoint(two_artifacts, max_models=1, not_ready_after=120.0, log=None) as started:
        yield started


def _request(data: np.ndarray) -> tuple[bytes, str]:
    tensor = httpclient.InferInput("IN", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    body, size = httpclient.InferenceServerClient.generate_request_body([tensor])
    return body, f"{BINARY_JSON};json-header-size={size}"


def _call(runtime: Any, endpoint: LocalEndpoint, target: str) -> str:
    """'ok', 'missing' (ModelError with the container's 404), or what else came back."""
    data = np.array([[1.0, -2.5]], dtype=np.float32)
    body, ctype = _request(data)
    try:
        reply = runtime.invoke_endpoint(
            EndpointName=endpoint.name, TargetModel=target, ContentType=ctype, Body=body
        )
    except ClientError as exc:
        original = exc.response.get("OriginalStatusCode")
        if target == MISSING and original == 404:
            return "missing"
        return f"{target}: {exc.response['Error'].get('Code')} {original}: {exc}"
    except Exception as exc:  # a closed or reset connection: what the load test saw
        return f"{target}: {type(exc).__name__}: {exc}"
    header = reply["ContentType"].split("json-header-size=")
    result = httpclient.InferenceServerClient.parse_response_body(
        reply["Body"].read(), header_length=int(header[1]) if len(header) == 2 else None
    )
    out = result.as_numpy("OUT")
    return "ok" if np.array_equal(out, data * 2) else f"{target}: wrong answer {out}"


def _wait_until(condition: Any, deadline: float, what: str) -> None:
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.005)


def test_reload_during_its_own_eviction_waits_for_the_unload(
    endpoint: LocalEndpoint, two_artifacts: list[Path]
) -> None:
    a, b = (p.name for p in two_artifacts)
    runtime = runtime_client(endpoint.url)
    answers: list[str] = []
    lock = threading.Lock()

    def record(target: str) -> None:
        answer = _call(runtime, endpoint, target)
        with lock:
            answers.append(answer)

    try:
        with ThreadPoolExecutor(max_workers=3) as callers:
            for _ in range(ROUNDS):
                deadline = time.monotonic() + ROUND_DEADLINE_S
                # Start from A alone, loaded and idle. (The last round can leave both loaded:
                # a load whose only candidate victim is in use goes ahead over capacity.)
                if b in endpoint.loaded():
                    endpoint.unload(b)
                record(a)
                if endpoint.loaded() != [a]:
                    answers.append(f"after invoking {a} alone, loaded: {endpoint.loaded()}")
                evicting = callers.submit(record, b)  # caller 2: B pushes A out
                # A leaves the loaded list when its unload starts; ask for it at once.
                _wait_until(lambda: a not in endpoint.loaded(), deadline, f"{a} is evicted")
                reloading = callers.submit(record, a)  # caller 1: A again
                missing = callers.submit(record, MISSING)
                for future in (evicting, reloading, missing):
                    future.result(timeout=max(1.0, deadline - time.monotonic()))
                record(b)  # whatever is loaded now, the endpoint still answers
                record(a)
    finally:
        runtime.close()
    problems = [answer for answer in answers if answer not in ("ok", "missing")]
    assert not problems, "\n".join(problems) + f"\nserver log ends:\n{endpoint.server.log_tail()}"
    assert answers.count("missing") == ROUNDS and answers.count("ok") == 5 * ROUNDS
    # Each eviction finished before the evicted model's next load started.
    events = [(e.kind, e.target_model) for e in endpoint.metrics.events if e.kind != "load-failed"]
    for index, (kind, target) in enumerate(events):
        if kind == "load":
            earlier = [k for k, t in events[:index] if t == target]
            assert not earlier or earlier[-1] == "unload", events
