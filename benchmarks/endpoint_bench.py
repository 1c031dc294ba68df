"""Time to a first answer for the example: the plain-repository harness vs the local endpoint.

Side by side in one run, alternating, on the same artifact (`screen_detector_<version>.tar.gz`,
found like model tests find it: `$MMEPACK_ARTIFACT_DIR`, `.` or `dist/`):

- plain: unpack the tar, start Triton on it as an ordinary model repository (every model loads
  at start-up), wait for readiness, first inference (tritonclient). This is the harness model
  tests used before the endpoint.
- endpoint: start the local SageMaker-style multi-model endpoint (empty repository, /ping), then
  the first `invoke_endpoint` through boto3, which unpacks and loads the artifact on demand and
  answers: SageMaker's cold path.

Both include starting a fresh server; the endpoint's figure is split into start and
load-to-first-answer. Run from the repository root:
`PYTHONPATH=src python benchmarks/endpoint_bench.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient
from PIL import Image

from mmepack.endpoint import LocalEndpoint
from mmepack.testing import find_artifact, serve_artifact
from mmepack.testing.endpoint_client import BINARY_JSON, runtime_client

MODEL = "screen_detector"


def _image() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 190, 180)).save(buffer, format="PNG")
    return buffer.getvalue()


def _inputs() -> list[httpclient.InferInput]:
    tensor = httpclient.InferInput("IMAGE_BYTES", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[_image()]], dtype=np.object_))
    return [tensor]


def plain(artifact: Path) -> dict[str, float]:
    started = time.monotonic()
    with serve_artifact(artifact, route="repository") as served:
        ready = time.monotonic()
        result = served.client.infer(served.model_name, _inputs())
        assert bytes(result.as_numpy("LABEL")[0, 0]) == b"document"
        answered = time.monotonic()
    return {"start_to_ready": ready - started, "start_to_first_answer": answered - started}


def endpoint(artifact: Path) -> dict[str, float]:
    started = time.monotonic()
    with LocalEndpoint([artifact], log=None) as local:
        up = time.monotonic()
        body, size = httpclient.InferenceServerClient.generate_request_body(_inputs())
        runtime = runtime_client(local.url)
        loading = time.monotonic()
        reply = runtime.invoke_endpoint(
            EndpointName=local.name,
            TargetModel=artifact.name,
            ContentType=f"{BINARY_JSON};json-header-size={size}",
            Body=body,
        )
        reply["Body"].read()
        answered = time.monotonic()
        runtime.close()
    return {
        "start_to_ping": up - started,
        "load_to_first_answer": answered - loading,
        "start_to_first_answer": answered - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    artifact = find_artifact(MODEL)
    rows: dict[str, list[dict[str, float]]] = {"plain": [], "endpoint": []}
    for _ in range(args.runs):
        rows["plain"].append(plain(artifact))
        rows["endpoint"].append(endpoint(artifact))
    print(f"{artifact.name}, {args.runs} runs each, alternating; seconds, median (min-max)")

    def cell(name: str, key: str) -> str:
        values = [row[key] for row in rows[name]]
        return f"{statistics.median(values):6.2f} ({min(values):.2f}-{max(values):.2f})"

    print(f"{'harness':<10}{'measure':<24}{'seconds'}")
    print(f"{'plain':<10}{'start_to_ready':<24}{cell('plain', 'start_to_ready')}")
    print(f"{'plain':<10}{'start_to_first_answer':<24}{cell('plain', 'start_to_first_answer')}")
    print(f"{'endpoint':<10}{'start_to_ping':<24}{cell('endpoint', 'start_to_ping')}")
    print(f"{'endpoint':<10}{'load_to_first_answer':<24}{cell('endpoint', 'load_to_first_answer')}")
    print(
        f"{'endpoint':<10}{'start_to_first_answer':<24}"
        f"{cell('endpoint', 'start_to_first_answer')}"
    )


if __name__ == "__main__":
    main()
