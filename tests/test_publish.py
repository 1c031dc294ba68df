"""S3 publishing against a real S3 endpoint on loopback (a moto server subprocess)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmepack.artifact.env_layout import EnvLayout
from mmepack.build import package_model
from mmepack.cli import main
from mmepack.errors import MmepackError
from mmepack.publish.provenance import build_provenance, git_dirty, weights_md5s
from mmepack.publish.s3 import choose_bucket, current_branch, make_client, promote, publish_artifact
from mmepack.publish.tested import write_test_record
from tests.demo_models import write_ensemble_model, write_env_archive
from tests.moto_s3 import refused_port

ACCESS_KEY = "AKIAMMEPACKTESTKEY01"
SECRET_KEY = "mmepack-test-secret-0123456789abcdefSECRET"
MiB = 1024 * 1024
THRESHOLD = 5 * MiB  # S3's smallest part size: an 11 MiB artifact goes up in 3 parts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# moto's own launcher with one change: one request at a time. moto checks `If-None-Match: *`
# and then stores the object without a lock (moto/s3/responses.py), so two conditional writes
# that overlap inside a threaded moto can both pass, which real S3 (atomic per key) never allows.
_SERIAL_MOTO = """
import sys
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple
run_simple(sys.argv[1], int(sys.argv[2]), DomainDispatcherApplication(create_backend_app),
           threaded=False)
"""


def _start_moto(
    extra_env: dict[str, str] | None = None, *, serial: bool = False
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # The child sees this interpreter's modules also when the tests run from a PEX (Pants).
    path = os.pathsep.join(p for p in sys.path if p)
    env = {**os.environ, "PYTHONPATH": path, **(extra_env or {})}
    process = subprocess.Popen(
        (
            [sys.executable, "-c", _SERIAL_MOTO, "127.0.0.1", str(port)]
            if serial
            else [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        ),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"moto server on {url} did not start")
            time.sleep(0.1)
    return process, url


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    process, url = _start_moto()
    try:
        yield url
    finally:
        _stop(process)


def _aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_") or name in {
            "GITHUB_REF_NAME",
            "CI_COMMIT_BRANCH",
            "BRANCH_NAME",
            "GITHUB_SHA",
            "CI_COMMIT_SHA",
            "GIT_COMMIT",
        }:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    _aws_env(monkeypatch, tmp_path, s3_server)
    return make_client()


@pytest.fixture
def buckets(s3: Any) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:12]
    staging, production = f"staging-{suffix}", f"production-{suffix}"
    for bucket in (staging, production):
        s3.create_bucket(Bucket=bucket)
    return staging, production


class Calls:
    """Counts the S3 operations a client makes, through botocore's event hooks."""

    def __init__(self, client: Any) -> None:
        self.names: list[str] = []
        client.meta.events.register("before-call.s3.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)

    def count(self, *names: str) -> int:
        return sum(1 for name in self.names if name in names)


WRITES = ("PutObject", "UploadPart", "CreateMultipartUpload", "CopyObject", "UploadPartCopy")


def _artifact(directory: Path, seed: bytes, size: int = 11 * MiB, name: str = "demo_1") -> Path:
    """A valid one-model artifact of about `size` bytes (an incompressible weight file)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.tar.gz"
    model = name.rsplit("_", 1)[0]
    files = {
        f"{model}/config.pbtxt": f'name: "{model}"\nbackend: "python"\n'.encode(),
        f"{model}/1/model.py": b"# demo\n",
        f"{model}/1/weights.bin": hashlib.shake_256(seed).digest(size),
    }
    with tarfile.open(path, "w:gz") as tar:
        for folder in (f"{model}", f"{model}/1"):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _get(s3: Any, bucket: str, key: str) -> bytes:
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def _keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def _publish(path: Path, bucket: str, *, protect: bool = False, **kwargs: Any) -> Any:
    provenance = build_provenance(path, commit="0123abc")
    # What the CLI adds after a passing test run of these bytes; `promote` requires it.
    provenance["tested"] = {"passed": True, "sha256": provenance["sha256"], "cases": ["c"]}
    return publish_artifact(
        path,
        bucket,
        "mme",
        provenance=provenance,
        protect_existing=protect,
        multipart_threshold=THRESHOLD,
        **kwargs,
    )


def test_client_uses_endpoint_variable_and_retries(s3: Any, s3_server: str) -> None:
    # botocore reads AWS_ENDPOINT_URL_S3 itself; publish passes no endpoint_url.
    assert s3.meta.endpoint_url == s3_server
    # A bounded number of attempts and bounded timeouts: a stalled network fails.
    assert s3.meta.config.retries == {"total_max_attempts": 4, "mode": "standard"}
    assert (s3.meta.config.connect_timeout, s3.meta.config.read_timeout) == (10.0, 30.0)


def test_client_uses_generic_endpoint_variable(
    s3: Any, s3_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    assert make_client().meta.endpoint_url == s3_server


def test_first_publish_uploads_object_manifest_and_metadata(
    s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    staging, _ = buckets
    path = _artifact(tmp_path, b"v1")
    client = make_client()
    calls = Calls(client)
    result = _publish(path, staging, client=client)

    assert result.status == "uploaded"
    assert result.key == "mme/demo_1.tar.gz"
    assert calls.count("UploadPart") == 3, "the 11 MiB artifact goes up in 3 multipart parts"
    assert _keys(s3, staging) == ["mme/demo_1.tar.gz", "mme/demo_1.tar.gz.manifest.json"]
    data = _get(s3, staging, "mme/demo_1.tar.gz")
    assert data == path.read_bytes() and _sha(data) == result.sha256
    head = s3.head_object(Bucket=staging, Key="mme/demo_1.tar.gz")
    assert head["Metadata"]["mmepack-sha256"] == _sha(data)
    assert head["Metadata"]["mmepack-model"] == "demo"
    assert head["Metadata"]["mmepack-model-version"] == "1"
    assert head["Metadata"]["mmepack-git-commit"] == "0123abc"
    manifest = json.loads(_get(s3, staging, "mme/demo_1.tar.gz.manifest.json"))
    assert manifest["sha256"] == _sha(data)
    assert (manifest["model"], manifest["version"], manifest["git_commit"]) == (
        "demo",
        "1",
        "0123abc",
    )
    assert manifest["mmepack_version"] and manifest["dvc_weights_md5"] == {}
    assert not s3.list_multipart_uploads(Bucket=staging).get("Uploads")


def test_small_artifact_single_part_checksum_verified(
    s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    staging, _ = buckets
    path = _artifact(tmp_path, b"small", size=100_000)
    _publish(path, staging)
    head = s3.head_object(Bucket=staging, Key="mme/demo_1.tar.gz", ChecksumMode="ENABLED")
    assert (
        head["ChecksumSHA256"]
        == base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()
    )


def test_republish_same_bytes_is_a_no_op(s3: Any, buckets: tuple[str, str], tmp_path: Path) -> None:
    _, production = buckets
    path = _artifact(tmp_path, b"v1")
    _publish(path, production, protect=True)
    before = s3.head_object(Bucket=production, Key="mme/demo_1.tar.gz")
    time.sleep(1.1)  # LastModified has one-second resolution
    client = make_client()
    calls = Calls(client)
    result = _publish(path, production, protect=True, client=client)
    after = s3.head_object(Bucket=production, Key="mme/demo_1.tar.gz")

    assert result.status == "unchanged"
    assert calls.count(*WRITES) == 0
    assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"])


def test_production_refuses_different_content(
    s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    _, production = buckets
    first = _artifact(tmp_path / "a", b"v1")
    _publish(first, production, protect=True)
    second = _artifact(tmp_path / "b", b"v1-edited")
    with pytest.raises(MmepackError) as info:
        _publish(second, production, protect=True)
    message = str(info.value)
    assert "model 'demo' version 1" in message
    assert "bump model_version.txt" in message
    assert _get(s3, production, "mme/demo_1.tar.gz") == first.read_bytes()
    assert _keys(s3, production) == ["mme/demo_1.tar.gz", "mme/demo_1.tar.gz.manifest.json"]


def test_staging_overwrite_is_allowed_and_reported(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    staging, _ = buckets
    _publish(_artifact(tmp_path / "a", b"v1"), staging)
    second = _artifact(tmp_path / "b", b"v1-edited")
    result = _publish(second, staging)

    assert result.status == "replaced"
    assert "replaced" in capsys.readouterr().out
    assert _get(s3, staging, "mme/demo_1.tar.gz") == second.read_bytes()
    manifest = json.loads(_get(s3, staging, "mme/demo_1.tar.gz.manifest.json"))
    assert manifest["sha256"] == _sha(second.read_bytes())


def test_promote_copies_exact_bytes_and_manifest(
    s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    staging, production = buckets
    path = _artifact(tmp_path, b"v1")
    _publish(path, staging)
    result = promote("demo", "1", staging, production, "mme", multipart_threshold=THRESHOLD)

    assert result.status == "promoted"
    assert _get(s3, production, "mme/demo_1.tar.gz") == path.read_bytes()
    assert _get(s3, production, "mme/demo_1.tar.gz.manifest.json") == _get(
        s3, staging, "mme/demo_1.tar.gz.manifest.json"
    )
    head = s3.head_object(Bucket=production, Key="mme/demo_1.tar.gz")
    assert head["Metadata"]["mmepack-sha256"] == _sha(path.read_bytes())

    again = promote("demo", "1", staging, production, "mme")
    assert again.status == "unchanged"

    # Staging moves on with other bytes under the same version: production keeps its copy.
    _publish(_artifact(tmp_path / "b", b"v1-edited"), staging)
    with pytest.raises(MmepackError, match="bump model_version.txt"):
        promote("demo", "1", staging, production, "mme")
    assert _get(s3, production, "mme/demo_1.tar.gz") == path.read_bytes()


def test_promote_of_unpublished_version_explains(s3: Any, buckets: tuple[str, str]) -> None:
    staging, production = buckets
    with pytest.raises(MmepackError, match="not in staging"):
        promote("demo", "7", staging, production, "mme")


def test_dry_run_touches_nothing(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    staging, _ = buckets
    path = _artifact(tmp_path, b"v1")
    client = make_client()
    calls = Calls(client)
    result = _publish(path, staging, dry_run=True, client=client)

    assert result.status == "dry-run"
    assert calls.names == []
    assert _keys(s3, staging) == []
    out = capsys.readouterr().out
    assert "would upload" in out
    # A dry run reads nothing from S3, so it must not claim to know what the key holds.
    assert "existing object" not in out
    assert "S3 was not read" in out


class Interrupted(Exception):
    """Stands for a kill or a lost link in the middle of an upload."""


def test_interrupted_upload_leaves_nothing_and_retry_succeeds(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging, _ = buckets
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore retries the broken part; keep it short
    path = _artifact(tmp_path, b"v1")
    sent = [0]

    def interrupt(amount: int) -> None:
        sent[0] += amount
        if sent[0] > THRESHOLD:  # after the first part
            raise Interrupted(f"link lost (secret {SECRET_KEY})")

    with pytest.raises(MmepackError) as info:
        _publish(path, staging, callback=interrupt)
    assert f"s3://{staging}/mme/demo_1.tar.gz was not changed." in str(info.value)
    assert SECRET_KEY not in str(info.value)
    assert _keys(s3, staging) == [], "no object, no manifest, no temporary key"
    assert not s3.list_multipart_uploads(Bucket=staging).get("Uploads")

    result = _publish(path, staging)
    assert result.status == "uploaded"
    assert _get(s3, staging, "mme/demo_1.tar.gz") == path.read_bytes()


def test_failure_before_completion_leaves_nothing(
    s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    staging, _ = buckets
    path = _artifact(tmp_path, b"v1")
    client = make_client()

    def fail_complete(**_: Any) -> None:
        raise Interrupted("killed just before completing the upload")

    client.meta.events.register("before-call.s3.CompleteMultipartUpload", fail_complete)
    with pytest.raises(MmepackError, match="killed just before(.|\n)*was not changed"):
        _publish(path, staging, client=client)
    assert _keys(s3, staging) == []
    assert not s3.list_multipart_uploads(Bucket=staging).get("Uploads")


def test_server_killed_mid_upload_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    process, url = _start_moto()
    try:
        _aws_env(monkeypatch, tmp_path, url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
        make_client().create_bucket(Bucket="doomed")
        path = _artifact(tmp_path, b"v1")
        sent = [0]

        def kill_server(amount: int) -> None:
            sent[0] += amount
            if sent[0] > THRESHOLD and process.poll() is None:
                process.kill()
                process.wait()

        with pytest.raises(MmepackError) as info:
            _publish(path, "doomed", callback=kill_server)
        message = str(info.value)
        assert f"cannot reach S3 at {url}" in message
        assert "s3://doomed/mme/demo_1.tar.gz was not changed." in message
        assert SECRET_KEY not in message
    finally:
        _stop(process)


def test_missing_manifest_is_written_by_the_next_publish(
    s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    staging, _ = buckets
    path = _artifact(tmp_path, b"v1")  # multipart: PutObject is only the manifest's
    client = make_client()

    def fail_manifest(**_: Any) -> None:
        raise Interrupted("killed before the manifest")

    client.meta.events.register("before-call.s3.PutObject", fail_manifest)
    with pytest.raises(MmepackError, match="in place but its manifest is not"):
        _publish(path, staging, client=client)
    assert _keys(s3, staging) == ["mme/demo_1.tar.gz"]

    assert _publish(path, staging).status == "unchanged"
    manifest = json.loads(_get(s3, staging, "mme/demo_1.tar.gz.manifest.json"))
    assert manifest["sha256"] == _sha(path.read_bytes())


def test_missing_bucket_is_a_clear_error(s3: Any, buckets: tuple[str, str], tmp_path: Path) -> None:
    path = _artifact(tmp_path, b"v1", size=1000)
    with pytest.raises(MmepackError) as info:
        _publish(path, "no-such-bucket-mmepack")
    assert "bucket 'no-such-bucket-mmepack' does not exist" in str(info.value)
    staging, production = buckets
    with pytest.raises(MmepackError) as info:
        promote("demo", "1", "no-such-staging-mmepack", production, "mme")
    assert "bucket 'no-such-staging-mmepack' does not exist" in str(info.value)


def test_unreachable_endpoint_is_a_clear_error(
    s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _artifact(tmp_path, b"v1", size=1000)
    with refused_port() as port, pytest.raises(MmepackError) as info:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # fail fast; the default is 5
        _publish(path, "any-bucket")
    assert "cannot reach S3 at http://127.0.0.1:" in str(info.value)
    assert SECRET_KEY not in str(info.value)


def test_wrong_credentials_are_a_clear_error_without_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # With INITIAL_NO_AUTH_ACTION_COUNT=0 moto checks every request's access key against its IAM.
    process, url = _start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        _aws_env(monkeypatch, tmp_path, url)
        path = _artifact(tmp_path, b"v1", size=1000)
        for call in (
            lambda: _publish(path, "some-bucket"),
            lambda: promote("demo", "1", "some-staging", "some-production", "mme"),
        ):
            with pytest.raises(MmepackError) as info:
                call()
            message = str(info.value)
            assert "rejected the credentials" in message
            assert SECRET_KEY not in message and ACCESS_KEY not in message
    finally:
        _stop(process)


def test_choose_bucket() -> None:
    assert choose_bucket("main", "stage", "prod") == "prod"
    assert choose_bucket("feature/x", "stage", "prod") == "stage"
    assert choose_bucket(None, "stage", "prod") == "stage"
    with pytest.raises(MmepackError, match="MMEPACK_PRODUCTION_BUCKET"):
        choose_bucket("main", "stage", None)


def test_current_branch_order(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_REF_NAME", "CI_COMMIT_BRANCH", "BRANCH_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BRANCH_NAME", "jenkins-branch")
    assert current_branch() == "jenkins-branch"
    monkeypatch.setenv("CI_COMMIT_BRANCH", "gitlab-branch")
    assert current_branch() == "gitlab-branch"
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    assert current_branch() == "main"
    assert current_branch("override") == "override"


def _weights_model(root: Path, payload: bytes, recorded: bytes) -> tuple[Path, Path]:
    """A model dir with one DVC-tracked weight file and an artifact holding `payload` for it."""
    model_dir = root / "models" / "demo"
    weight = model_dir / "demo_classifier" / "1" / "model.onnx"
    weight.parent.mkdir(parents=True)
    md5 = hashlib.md5(recorded, usedforsecurity=False).hexdigest()
    (weight.parent / "model.onnx.dvc").write_text(
        f"outs:\n- md5: {md5}\n  size: {len(recorded)}\n  path: model.onnx\n"
    )
    artifact = root / "dist" / "demo_1.tar.gz"
    artifact.parent.mkdir()
    members = {
        "demo/config.pbtxt": b'name: "demo"\nplatform: "ensemble"\n',
        "demo_classifier/config.pbtxt": b'name: "demo_classifier"\nbackend: "onnxruntime"\n',
        "demo_classifier/1/model.onnx": payload,
    }
    with tarfile.open(artifact, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return model_dir, artifact


def test_provenance_records_checked_dvc_md5s(tmp_path: Path) -> None:
    model_dir, artifact = _weights_model(tmp_path, b"weights", b"weights")
    expected = hashlib.md5(b"weights", usedforsecurity=False).hexdigest()
    assert weights_md5s(artifact, model_dir) == {"demo_classifier/1/model.onnx": expected}
    record = build_provenance(artifact, model_dir=model_dir, commit="c0ffee")
    assert record["dvc_weights_md5"] == {"demo_classifier/1/model.onnx": expected}
    assert record["sha256"] == _sha(artifact.read_bytes())


def test_provenance_refuses_weights_that_differ_from_dvc(tmp_path: Path) -> None:
    model_dir, artifact = _weights_model(tmp_path, b"other weights", b"weights")
    with pytest.raises(MmepackError, match="built from other weights"):
        weights_md5s(artifact, model_dir)


def test_cli_publish_and_promote(
    s3: Any,
    buckets: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    staging, production = buckets
    model_dir, artifact = _weights_model(tmp_path, b"weights", b"weights")
    monkeypatch.setenv("MMEPACK_STAGING_BUCKET", staging)
    monkeypatch.setenv("MMEPACK_PRODUCTION_BUCKET", production)
    monkeypatch.setenv("MMEPACK_S3_PREFIX", "mme/")
    monkeypatch.setenv("GITHUB_SHA", "feedbeef")
    models_root = str(model_dir.parent)

    argv = ["publish", str(artifact), "--branch", "feature", "--models-root", models_root]
    # A passing test run of these bytes (what `mmepack test-cases` writes), for `promote`.
    write_test_record(artifact, passed=True, cases=["c"], exit_code=0)
    assert main([*argv, "--dry-run"]) == 0
    assert _keys(s3, staging) == []
    # What `./pants publish` passes from its build root (its sandbox has no git): the flag wins
    # over GITHUB_SHA's "CI checked this commit out, so the tree is clean".
    assert main([*argv, "--commit", "c0mm1t", "--git-dirty", "true"]) == 0
    assert "staging bucket" in capsys.readouterr().out
    manifest = json.loads(_get(s3, staging, "mme/demo_1.tar.gz.manifest.json"))
    assert manifest["git_commit"] == "c0mm1t"
    assert manifest["git_dirty"] is True
    assert list(manifest["dvc_weights_md5"]) == ["demo_classifier/1/model.onnx"]

    assert main(["promote", "demo", "1"]) == 0
    assert _get(s3, production, "mme/demo_1.tar.gz") == artifact.read_bytes()

    # main publishes to production, where the promoted bytes already are: a no-op.
    assert main(["publish", str(artifact), "--branch", "main", "--models-root", models_root]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert (
        main(["publish", str(artifact), "--branch", "b", "--staging-bucket", "no-such-bucket-x"])
        == 1
    )
    assert "does not exist" in capsys.readouterr().err


def test_provenance_records_each_packed_environment(tmp_path: Path) -> None:
    model_dir = write_ensemble_model(tmp_path / "demo", env=True)
    env = write_env_archive(tmp_path / "python_env.tar.gz")
    artifact = package_model(model_dir, tmp_path / "dist", env_archive=env).path
    record = build_provenance(artifact, model_dir=model_dir, commit="c0ffee")
    # The artifact's one environment, as shipped: the plain tar inside its gzip.
    assert record["python_env_sha256"] == {
        "demo/python_env.tar": hashlib.sha256(gzip.decompress(env.read_bytes())).hexdigest()
    }
    before = package_model(
        model_dir, tmp_path / "before", env_archive=env, layout=EnvLayout.PER_STEP
    ).path
    assert build_provenance(before, model_dir=model_dir, commit="c0ffee")["python_env_sha256"] == {
        "demo_double/python_env.tar.gz": hashlib.sha256(env.read_bytes()).hexdigest()
    }
    assert record["lock_sha256"] is None and record["seed_python"] is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [("dist/mme/*.tar.gz", "no file matches this pattern"), ("dist/demo_1.tar.gz", "no such")],
)
def test_missing_artifact_is_named_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str, expected: str
) -> None:
    code = main(["publish", str(tmp_path / given), "--branch=main", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"mmepack: error: {tmp_path / given}: {expected}")
    assert "not an mmepack artifact name" not in err
    assert "Traceback" not in err


def test_git_dirty_follows_the_working_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT"):
        monkeypatch.delenv(variable, raising=False)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.txt").write_text("a")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    assert git_dirty(tmp_path) is False
    (tmp_path / "a.txt").write_text("changed")
    assert git_dirty(tmp_path) is True
    monkeypatch.setenv("GITHUB_SHA", "ci-sha")  # CI checked that commit out
    assert git_dirty(tmp_path) is False


def test_manifest_records_git_dirty(tmp_path: Path) -> None:
    path = _artifact(tmp_path, b"v1")
    assert build_provenance(path, commit="c", dirty=True)["git_dirty"] is True
    assert build_provenance(path, commit="c", dirty=False)["git_dirty"] is False


# --------------------------------------------------------------------------- tested bytes only


def _main_publish(artifact: Path, production: str, *extra: str) -> list[str]:
    return [
        "publish",
        str(artifact),
        "--branch=main",
        f"--production-bucket={production}",
        "--prefix=mme/",
        "--commit=c0ffee",
        "--git-dirty=false",
        f"--test-records={artifact.parent / 'no-records-here'}",
        *extra,
    ]


def test_production_refuses_bytes_without_a_passing_test_record(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, production = buckets
    artifact = _artifact(tmp_path / "a", b"v1", size=10_000)
    assert main(_main_publish(artifact, production)) == 1
    err = capsys.readouterr().err
    assert f"{artifact}: refusing to publish to production: no passing test run" in err
    assert f"`mmepack test-cases {artifact} <model dir>`" in err and "--untested=" in err
    assert _keys(s3, production) == []

    # A failed run, or a passing run of other bytes, is no record of these.
    write_test_record(artifact, passed=False, cases=["c"], exit_code=1)
    assert main(_main_publish(artifact, production)) == 1
    other = _artifact(tmp_path / "b", b"v1-other", size=10_000)
    write_test_record(other, passed=True, cases=["c"], exit_code=0)
    (tmp_path / "b" / "demo_1.tar.gz.tested.json").replace(
        tmp_path / "a" / "demo_1.tar.gz.tested.json"
    )
    assert main(_main_publish(artifact, production)) == 1
    assert _keys(s3, production) == []
    capsys.readouterr()

    # The passing record of these exact bytes lets them through, and the manifest says so.
    write_test_record(artifact, passed=True, cases=["c"], exit_code=0)
    report = tmp_path / "report.json"
    assert main(_main_publish(artifact, production, f"--report={report}")) == 0
    manifest = json.loads(_get(s3, production, "mme/demo_1.tar.gz.manifest.json"))
    assert manifest["tested"]["passed"] is True
    assert manifest["tested"]["sha256"] == _sha(artifact.read_bytes())
    assert json.loads(report.read_text())["results"][0]["status"] == "uploaded"

    # Publishing the same bytes again: the report says "unchanged", which `./pants publish` shows.
    assert main(_main_publish(artifact, production, f"--report={report}")) == 0
    assert json.loads(report.read_text())["results"][0]["status"] == "unchanged"


def test_untested_override_is_loud_and_written_into_the_manifest(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, production = buckets
    artifact = _artifact(tmp_path, b"v1", size=10_000)
    assert main(_main_publish(artifact, production, "--untested=hotfix INC-42")) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "NO passing test run" in err and "hotfix INC-42" in err
    manifest = json.loads(_get(s3, production, "mme/demo_1.tar.gz.manifest.json"))
    assert manifest["tested"] == {
        "passed": False,
        "override": True,
        "reason": "hotfix INC-42",
        "sha256": _sha(artifact.read_bytes()),
    }


def test_promote_refuses_untested_staging_bytes_unless_overridden(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    staging, production = buckets
    artifact = _artifact(tmp_path, b"v1", size=10_000)
    argv = ["publish", str(artifact), "--branch=feature", f"--staging-bucket={staging}"]
    assert main([*argv, "--prefix=mme/", f"--test-records={tmp_path / 'none'}"]) == 0
    promote_argv = [
        "promote",
        "demo",
        "1",
        f"--staging-bucket={staging}",
        f"--production-bucket={production}",
        "--prefix=mme/",
    ]
    assert main(promote_argv) == 1
    assert "records no passing test run of these bytes" in capsys.readouterr().err
    assert _keys(s3, production) == []

    # Tested since: publishing the same bytes to staging again carries the record to the
    # manifest (the object itself is unchanged), and promote accepts it.
    write_test_record(artifact, passed=True, cases=["c"], exit_code=0)
    assert main([*argv, "--prefix=mme/"]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main(promote_argv) == 0
    manifest = json.loads(_get(s3, production, "mme/demo_1.tar.gz.manifest.json"))
    assert manifest["tested"]["passed"] is True


def test_promote_override_is_recorded_in_the_production_manifest(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    staging, production = buckets
    artifact = _artifact(tmp_path, b"v1", size=10_000)
    argv = ["publish", str(artifact), "--branch=feature", f"--staging-bucket={staging}"]
    assert main([*argv, "--prefix=mme/", f"--test-records={tmp_path / 'none'}"]) == 0
    code = main(
        [
            "promote",
            "demo",
            "1",
            f"--staging-bucket={staging}",
            f"--production-bucket={production}",
            "--prefix=mme/",
            "--untested=rollback",
        ]
    )
    assert code == 0
    assert "WARNING" in capsys.readouterr().err
    manifest = json.loads(_get(s3, production, "mme/demo_1.tar.gz.manifest.json"))
    assert manifest["tested"]["override"] is True and manifest["tested"]["reason"] == "rollback"
