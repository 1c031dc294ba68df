"""The local multi-model endpoint against a real Triton 2.51 and boto3's own client.

Four endpoints, each started once per module (real servers on two shared cores are slow):

- `endpoint`: every model artifact of the repository plus a second version of the example with
  the same step names but another threshold, and a broken artifact; the runtime API, load
  failures and the server surviving them.
- `small_endpoint`: capacity 2, three tiny artifacts; eviction and reload with timings.
- `py312_endpoint`: a server whose own stub runs the environments' Python (3.12); shipped
  bytecode keeps a second version's load from reloading the first one's steps.
- a `mmepack endpoint` process killed outright; nothing it started survives.

Every wait is bounded.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from botocore.exceptions import ClientError
from PIL import Image

from mmepack.build import package_model
from mmepack.endpoint import LoadFailed, LocalEndpoint
from mmepack.endpoint import cli as endpoint_cli
from mmepack.endpoint import model_hash
from mmepack.endpoint.server import find_descendant
from mmepack.environment.request import EnvOptions
from mmepack.testing import find_artifact
from mmepack.testing.endpoint_client import BINARY_JSON, runtime_client
from mmepack.triton.target import TargetServer
from tests.demo_models import write_ensemble_model

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "screen_detector"
# The second example (models/risk_score), a tabular model loaded beside the first.
TABULAR = "risk_score"
SAFE_RECORD = '{"amount": 42.5, "account_age_days": 900, "country_mismatch": false}'
RISKY_RECORD = (
    '{"amount": 4200, "account_age_days": 3, "failed_logins_24h": 4, "txn_count_1h": 9, '
    '"country_mismatch": true, "credit_utilization": 0.95}'
)
THRESHOLD_LINE = b'value: { string_value: "0.5" }'


# --- helpers ---------------------------------------------------------------------------------


def repository_artifacts() -> list[Path]:
    """The packaged artifact of every model directory of the repository."""
    models = sorted(p.parent.name for p in (REPO_ROOT / "models").glob("*/model_version.txt"))
    assert EXAMPLE in models and TABULAR in models, f"model files not in the sandbox: {models}"
    return [find_artifact(model) for model in models]


def rewrite_artifact(
    source: Path,
    target: Path,
    replace: dict[str, Callable[[bytes], bytes]] | None = None,
    drop: Callable[[str], bool] = lambda _: False,
) -> Path:
    """A copy of an artifact with some members edited or left out (a test-made version)."""
    replace = replace or {}
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(source, "r:gz") as src, tarfile.open(target, "w:gz") as dst:
        for member in src:
            if drop(member.name):
                continue
            if member.isfile():
                data = src.extractfile(member).read()  # type: ignore[union-attr]
                if member.name in replace:
                    data = replace[member.name](data)
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
            else:
                dst.addfile(member)
    return target


def png(color: tuple[int, int, int] = (200, 190, 180)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, format="PNG")
    return buffer.getvalue()


def image_request(images: list[bytes], outputs: list[str]) -> tuple[bytes, str]:
    tensor = httpclient.InferInput("IMAGE_BYTES", [len(images), 1], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_).reshape(-1, 1))
    body, size = httpclient.InferenceServerClient.generate_request_body(
        [tensor], outputs=[httpclient.InferRequestedOutput(o) for o in outputs]
    )
    return body, f"{BINARY_JSON};json-header-size={size}"


def risk_request(records: list[str]) -> tuple[bytes, str]:
    tensor = httpclient.InferInput("FEATURES_JSON", [len(records), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([r.encode() for r in records], np.object_).reshape(-1, 1))
    body, size = httpclient.InferenceServerClient.generate_request_body(
        [tensor], outputs=[httpclient.InferRequestedOutput(o) for o in ("DECISION", "REASON_CODES")]
    )
    return body, f"{BINARY_JSON};json-header-size={size}"


def double_request(data: np.ndarray) -> tuple[bytes, str]:
    tensor = httpclient.InferInput("IN", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    body, size = httpclient.InferenceServerClient.generate_request_body([tensor])
    return body, f"{BINARY_JSON};json-header-size={size}"


def invoke(runtime: Any, endpoint: LocalEndpoint, target: str, body: bytes, ctype: str) -> Any:
    """invoke_endpoint, exactly as a production caller writes it; the parsed Triton result."""
    try:
        reply = runtime.invoke_endpoint(
            EndpointName=endpoint.name, TargetModel=target, ContentType=ctype, Body=body
        )
    except ClientError as exc:
        pytest.fail(
            f"{target}: invoke failed: {exc.response.get('OriginalMessage') or exc}\n"
            f"server said:\n{endpoint.server.log_errors()}"
        )
    header = reply["ContentType"].split("json-header-size=")
    result = httpclient.InferenceServerClient.parse_response_body(
        reply["Body"].read(), header_length=int(header[1]) if len(header) == 2 else None
    )
    result.headers = reply["ResponseMetadata"]["HTTPHeaders"]
    return result


def package_demo(root: Path, version: str, **kwargs: Any) -> Path:
    model_dir = write_ensemble_model(root / f"demo-{version}", version=version, **kwargs)
    return model_dir


# --- the repository's artifacts, two versions together, failures ------------------------------


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("artifacts")
    found = {p.name: p for p in repository_artifacts()}
    example = next(p for name, p in found.items() if name.startswith(f"{EXAMPLE}_"))
    # Version 2 of the example: the same step names, a threshold of 0 (every image a screen).
    v2 = rewrite_artifact(
        example,
        root / f"{EXAMPLE}_2000.tar.gz",
        replace={
            f"{EXAMPLE}_postprocess/config.pbtxt": lambda text: text.replace(
                THRESHOLD_LINE, b'value: { string_value: "0.0" }'
            )
        },
    )
    broken_dir = write_ensemble_model(root / "broken-src", name="broken")
    # Fails only when the step starts, as a missing import does in production.
    (broken_dir / "broken_double" / "1" / "model.py").write_text(
        "raise ImportError('weights_loader is broken')\n"
    )
    broken = package_model(broken_dir, root / "dist").path
    return {**found, v2.name: v2, broken.name: broken}


@pytest.fixture(scope="module")
def endpoint(artifacts: dict[str, Path]) -> Iterator[LocalEndpoint]:
    with LocalEndpoint(list(artifacts.values()), name="proof", log=None) as started:
        yield started


@pytest.fixture(scope="module")
def runtime(endpoint: LocalEndpoint) -> Iterator[Any]:
    client = runtime_client(endpoint.url)
    yield client
    client.close()


def test_every_artifact_and_two_versions_answer_on_one_endpoint(
    endpoint: LocalEndpoint, runtime: Any, artifacts: dict[str, Path]
) -> None:
    assert endpoint.server.isolated, endpoint.server.isolation_problem
    assert endpoint.namespacing
    paper = png()
    labels = {}
    for target in sorted(artifacts):
        if target.startswith("broken_"):
            continue
        if target.startswith(f"{TABULAR}_"):
            # The tabular example beside the vision one: JSON in, decision and reasons out.
            result = invoke(runtime, endpoint, target, *risk_request([RISKY_RECORD]))
            assert bytes(result.as_numpy("DECISION")[0, 0]) == b"decline", target
            assert bytes(result.as_numpy("REASON_CODES")[0, 0]) == b"COUNTRY_MISMATCH"
            assert result.headers["x-mmepack-modelcachehit"] == "0", target
            continue
        assert target.startswith(f"{EXAMPLE}_"), f"add a request for {target} to this test"
        body, ctype = image_request([paper], ["LABEL", "SCREEN_PROBABILITY"])
        result = invoke(runtime, endpoint, target, body, ctype)
        labels[target] = bytes(result.as_numpy("LABEL")[0, 0]).decode()
        assert result.headers["x-mmepack-modelcachehit"] == "0", target  # loaded on first invoke
    # Both examples stay loaded together (co-residence) and each still answers.
    tabular = next(t for t in artifacts if t.startswith(f"{TABULAR}_"))
    assert tabular in endpoint.loaded(), endpoint.loaded()
    again = invoke(runtime, endpoint, tabular, *risk_request([SAFE_RECORD, RISKY_RECORD]))
    assert again.headers["x-mmepack-modelcachehit"] == "1"
    decisions = [bytes(d).decode() for d in again.as_numpy("DECISION")[:, 0]]
    assert decisions == ["approve", "decline"], decisions
    v1 = next(t for t in labels if t != f"{EXAMPLE}_2000.tar.gz")
    # Each version ran its own postprocess step: namespacing kept them apart.
    assert labels[v1] == "document" and labels[f"{EXAMPLE}_2000.tar.gz"] == "screen", labels
    assert set(labels) <= set(endpoint.loaded())
    again = invoke(runtime, endpoint, v1, *image_request([paper], ["LABEL"]))
    assert again.headers["x-mmepack-modelcachehit"] == "1"
    assert again.headers["x-mmepack-modelloadingwaittime"] == "0"


def test_an_endpoint_without_auto_complete_serves_the_example_with_fewer_stubs() -> None:
    """README "Cold loads: the endpoint's auto-complete setting": with the container variable
    SAGEMAKER_TRITON_ADDITIONAL_ARGS=--disable-auto-complete-config, the example's configs are
    complete enough to load as they are, it answers the same, and Triton starts one stub per
    instance, none to auto-complete a config (each of those is followed by a one-second sleep in
    python_backend's StubLauncher::UpdateHealth)."""
    example = find_artifact(EXAMPLE)
    environ = {"SAGEMAKER_TRITON_ADDITIONAL_ARGS": "--disable-auto-complete-config"}
    with LocalEndpoint([example], name="no-autocomplete", log=None, environ=environ) as strict:
        client = runtime_client(strict.url)
        try:
            result = invoke(client, strict, example.name, *image_request([png()], ["LABEL"]))
        finally:
            client.close()
        log = strict.server.log_path.read_text(encoding="utf-8", errors="replace")
    assert bytes(result.as_numpy("LABEL")[0, 0]).decode() == "document"
    # The server's own record of its options and of what it told the Python backend.
    assert '\\"auto-complete-config\\":\\"false\\"' in log
    stubs = log.count("Starting Python backend stub")
    instances = log.count(
        "TRITONBACKEND_ModelInstanceInitialize: instance initialization successful"
    )
    assert stubs == instances >= 3, (stubs, instances)


def test_label_alone_and_every_subset_of_outputs(
    endpoint: LocalEndpoint, runtime: Any, artifacts: dict[str, Path]
) -> None:
    """The ensemble-output pitfall: each non-empty subset must answer (Triton 2.51)."""
    target = next(t for t in artifacts if t.startswith(f"{EXAMPLE}_") and "2000" not in t)
    outputs = ["LABEL", "SCREEN_PROBABILITY", "LOGITS"]
    for mask in range(1, 8):
        wanted = [o for i, o in enumerate(outputs) if mask & (1 << i)]
        result = invoke(runtime, endpoint, target, *image_request([png()], wanted))
        for name in wanted:
            assert result.as_numpy(name) is not None, (wanted, name)


def test_json_body_and_a_model_error_keep_the_container_status(
    endpoint: LocalEndpoint, runtime: Any, artifacts: dict[str, Path]
) -> None:
    target = next(t for t in artifacts if t.startswith(f"{EXAMPLE}_") and "2000" not in t)
    request = {
        "inputs": [
            {"name": "IMAGE_BYTES", "shape": [1, 1], "datatype": "BYTES", "data": ["no image"]}
        ]
    }
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(
            EndpointName=endpoint.name,
            TargetModel=target,
            ContentType="application/json",
            Body=json.dumps(request),
        )
    error: Any = raised.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 400
    assert "cannot decode image" in error["OriginalMessage"]


def test_load_failures_answer_like_sagemaker_and_the_endpoint_keeps_serving(
    endpoint: LocalEndpoint, runtime: Any, artifacts: dict[str, Path]
) -> None:
    broken = next(t for t in artifacts if t.startswith("broken_"))
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(
            EndpointName=endpoint.name, TargetModel=broken, ContentType=BINARY_JSON, Body=b"{}"
        )
    error: Any = raised.value.response
    assert (error["Error"]["Code"], error["OriginalStatusCode"]) == ("ModelError", 400)
    assert "broken_double" in error["OriginalMessage"], error["OriginalMessage"]
    assert broken not in endpoint.loaded()

    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(
            EndpointName=endpoint.name,
            TargetModel="nothing_1.tar.gz",
            ContentType=BINARY_JSON,
            Body=b"{}",
        )
    missing: Any = raised.value.response
    assert missing["OriginalStatusCode"] == 404
    assert "offered:" in missing["OriginalMessage"]

    # A malformed load request (it aborts the 2.51 server) never reaches Triton.
    log_before = len(endpoint.server.log_text())
    with pytest.raises(LoadFailed) as refused:
        endpoint.cache.send_load(broken, b'{"model_name": "abc", "url": ')
    assert refused.value.status == 400 and "refused before Triton" in refused.value.message
    assert "/models" not in endpoint.server.log_text()[log_before:]
    assert endpoint.server.running()
    # Seen on Triton 2.51: after any failed load the container's /ping answers 400 for the rest
    # of the server's life (strict readiness counts the failed model), while invokes of other
    # models keep working. On SageMaker a failing ping marks the instance unhealthy.
    assert endpoint.server.request("GET", "/ping", timeout=10).status == 400

    # Registering what is already registered: SageMaker's front end answers 409.
    target = next(t for t in artifacts if t.startswith(f"{EXAMPLE}_") and "2000" not in t)
    endpoint.load(target)
    folder = endpoint.cache.folder_of(target)
    with pytest.raises(LoadFailed) as conflict:
        endpoint.cache.send_load(
            target, json.dumps({"model_name": model_hash(target), "url": str(folder)}).encode()
        )
    assert conflict.value.status == 409, conflict.value.message

    result = invoke(runtime, endpoint, target, *image_request([png()], ["LABEL"]))
    assert bytes(result.as_numpy("LABEL")[0, 0]) == b"document"
    summary = endpoint.summary()
    assert summary["LoadFailures"] >= 2 and summary["Invocations"] >= 3


def test_wrong_endpoint_name_and_missing_target_model(
    endpoint: LocalEndpoint, runtime: Any
) -> None:
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName="other", ContentType=BINARY_JSON, Body=b"{}")
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName=endpoint.name, ContentType=BINARY_JSON, Body=b"{}")
    assert "TargetModel" in raised.value.response["Error"]["Message"]


# --- capacity: least recently used out, reload on demand -------------------------------------


@pytest.fixture(scope="module")
def small_artifacts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("small")
    return [package_model(package_demo(root, version), root / "dist").path for version in "123"]


def test_capacity_two_evicts_least_recently_used_and_reloads(small_artifacts: list[Path]) -> None:
    a, b, c = (p.name for p in small_artifacts)
    data = np.array([[1.0, -2.5]], dtype=np.float32)
    with LocalEndpoint(small_artifacts, max_models=2, log=None) as small:
        runtime = runtime_client(small.url)
        try:
            timings: dict[str, list[tuple[str, float]]] = {}

            def call(target: str) -> None:
                started = time.monotonic()
                result = invoke(runtime, small, target, *double_request(data))
                np.testing.assert_array_equal(result.as_numpy("OUT"), data * 2)
                hit = result.headers["x-mmepack-modelcachehit"]
                timings.setdefault(target, []).append((hit, time.monotonic() - started))

            call(a)
            call(b)
            assert small.loaded() == [a, b]
            call(a)  # a is now the most recently used
            call(c)  # full: b goes
            assert small.loaded() == [a, c]
            call(b)  # b reloads; a goes
            assert small.loaded() == [c, b]
            assert [hit for hit, _ in timings[a]] == ["0", "1"]
            assert [hit for hit, _ in timings[b]] == ["0", "0"]
            unloads = [e for e in small.metrics.events if e.kind == "unload"]
            assert [(e.target_model, e.reason) for e in unloads] == [
                (b, "capacity"),
                (a, "capacity"),
            ]
            hit_time = timings[a][1][1]
            miss_times = [t for target in (a, b, c) for hit, t in timings[target] if hit == "0"]
            print(f"capacity-2 endpoint: cache hit {hit_time:.3f} s, loads {miss_times}")
            assert hit_time < min(miss_times), (hit_time, miss_times)
            summary = small.summary()
            assert summary["ModelCacheHit"]["Sum"] == 1 and summary["Invocations"] == 5
            assert (
                summary["LoadedModelCount"] == 2
                and summary["ModelUnloadingTime"]["SampleCount"] == 2
            )
        finally:
            runtime.close()


# --- bytecode: a second version's load does not reload the first one's steps -----------------


@pytest.fixture(scope="module")
def env_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Demo artifacts whose step runs in the example's packed 3.12 environment, on a server
    whose own stub is 3.12 (so no custom stub ships): two with bytecode, two without."""
    root = tmp_path_factory.mktemp("env")
    example = next(p for p in repository_artifacts() if p.name.startswith(f"{EXAMPLE}_"))
    env = root / "python_env.tar.gz"
    with tarfile.open(example, "r:gz") as tar:
        # The example ships its one environment as a plain tar in the ensemble's folder.
        member = tar.extractfile(f"{EXAMPLE}/python_env.tar")
        assert member is not None
        env.write_bytes(gzip.compress(member.read(), compresslevel=1, mtime=0))
    options = EnvOptions(target=TargetServer(stub_python="3.12"))
    made: dict[str, Path] = {}
    for version in ("1", "2", "3", "4"):
        result = package_model(
            package_demo(root, version, env=True),
            root / "dist",
            env_archive=env,
            python="3.12",
            env_options=options,
        )
        assert "demo_double/1/__pycache__/model.cpython-312.pyc" in result.members
        assert "demo_double/triton_python_backend_stub" not in result.members
        made[version] = result.path
    for version in ("3", "4"):  # the control: the same artifacts without their bytecode
        stripped = rewrite_artifact(
            made[version], root / "stripped" / made[version].name, drop=lambda n: "__pycache__" in n
        )
        made[version] = stripped
    return made


def _step_loads(endpoint: LocalEndpoint, target: str, since: int) -> int:
    marker = f"{model_hash(target)}/model::demo_double'"
    return sum(
        1
        for line in endpoint.server.log_text()[since:].splitlines()
        if "successfully loaded" in line and marker in line
    )


def test_shipped_bytecode_keeps_other_versions_loaded(env_artifacts: dict[str, Path]) -> None:
    v1, v2, v3, v4 = (env_artifacts[v].name for v in "1234")
    with LocalEndpoint(list(env_artifacts.values()), stub_python="3.12", log=None) as py312:
        py312.load(v1)
        before = len(py312.server.log_text())
        py312.load(v2)
        assert _step_loads(py312, v2, before) == 1
        assert _step_loads(py312, v1, before) == 0, "loading v2 reloaded v1's step"
        assert not list(py312.cache.folder_of(v1).rglob("model.cpython-312.pyc.*"))

        # Control: without shipped bytecode the stub writes __pycache__ while v3 loads, so
        # v4's load reloads v3's step. The check above can fail.
        py312.load(v3)
        before = len(py312.server.log_text())
        py312.load(v4)
        assert _step_loads(py312, v3, before) == 1, "the control did not reload v3"
        assert _step_loads(py312, v1, before) == 0


# --- nothing outlives a killed owner ---------------------------------------------------------


# `mmepack endpoint` as its own process; the import keeps Pants' dependency inference honest.
_ENDPOINT_MAIN = f"import sys; from {endpoint_cli.__name__} import main; sys.exit(main())"


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" not in status.read_text()
    except OSError:
        return False


def test_cli_answers_not_ready_while_loading_and_dies_with_its_owner(
    small_artifacts: list[Path],
) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    owner = subprocess.Popen(
        [
            *(sys.executable, "-c", _ENDPOINT_MAIN, "--port=0"),
            *("--not-ready-after=0.01", str(small_artifacts[0])),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert owner.stderr is not None
        url = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not url:
            line = owner.stderr.readline()
            if not line:
                break
            if " at http://127.0.0.1:" in line:
                url = line.rsplit(" at ", 1)[1].strip()
        if not url:
            owner.kill()
            pytest.fail(f"the endpoint did not start:\n{owner.communicate(timeout=30)[1]}")
        runtime = runtime_client(url)
        data = np.array([[3.0, 4.0]], dtype=np.float32)
        body, ctype = double_request(data)
        attempts: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                reply = runtime.invoke_endpoint(
                    EndpointName="local",
                    TargetModel=small_artifacts[0].name,
                    ContentType=ctype,
                    Body=body,
                )
                attempts.append("200")
                break
            except ClientError as exc:
                attempts.append(exc.response["Error"]["Code"])
                time.sleep(0.5)
        runtime.close()
        # --not-ready-after 0.01: SageMaker's answer while the model loads, then the model.
        assert attempts[0] == "ModelNotReadyException", attempts
        assert attempts[-1] == "200" and set(attempts[:-1]) == {"ModelNotReadyException"}
        assert reply["ResponseMetadata"]["HTTPStatusCode"] == 200
        server = find_descendant(owner.pid, "tritonserver", depth=6)
        assert server is not None
        stubs = [
            int(proc.name)
            for proc in Path("/proc").iterdir()
            if proc.name.isdigit() and _parent(int(proc.name)) == server
        ]
        assert stubs, "no Python stub was running"
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=20)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in [server, *stubs]):
            time.sleep(0.2)
        assert not any(_alive(p) for p in [server, *stubs]), "server or stub outlived its owner"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=20)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1
