"""Publish under races, faults and hostile input, against a real moto S3 server on loopback."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mmepack.cli import main
from mmepack.errors import MmepackError
from mmepack.publish.provenance import build_provenance
from mmepack.publish.s3 import make_client, promote, publish_artifact
from tests.test_publish import (  # noqa: F401 - fixtures
    SECRET_KEY,
    THRESHOLD,
    MiB,
    _artifact,
    _aws_env,
    _get,
    _keys,
    _publish,
    _start_moto,
    _stop,
    buckets,
    s3,
    s3_server,
)

KEY = "mme/demo_1.tar.gz"
MANIFEST = KEY + ".manifest.json"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _race(
    paths: list[Path], publish_one: Callable[[Path, Any], Any], *, hold: str
) -> dict[Path, str]:
    """Publish each path from its own thread and client; all wait at a barrier just before
    their first write (`hold`), so all have seen the key absent before any of them writes."""
    barrier = threading.Barrier(len(paths), timeout=30)
    outcomes: dict[Path, str] = {}

    def run(path: Path) -> None:
        client = make_client()
        waited = [False]

        def wait_once(**_: Any) -> None:
            if not waited[0]:
                waited[0] = True
                barrier.wait()

        client.meta.events.register(f"before-call.s3.{hold}", wait_once)
        try:
            outcomes[path] = publish_one(path, client).status
        except MmepackError as exc:
            assert "won the race" in str(exc) and "bump model_version.txt" in str(exc)
            outcomes[path] = "refused"

    threads = [threading.Thread(target=run, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a publisher hung"
    return outcomes


@pytest.fixture(scope="module")
def serial_s3_server() -> Iterator[str]:
    """moto serving one request at a time, so each conditional write is atomic as in S3."""
    process, url = _start_moto(serial=True)
    try:
        yield url
    finally:
        _stop(process)


@pytest.fixture
def serial_s3(serial_s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    _aws_env(monkeypatch, tmp_path, serial_s3_server)
    client = make_client()
    client.create_bucket(Bucket="race-production")
    return client


def test_racing_publishers_exactly_one_wins(serial_s3: Any, tmp_path: Path) -> None:
    s3, production = serial_s3, "race-production"
    rounds = 20
    for number in range(rounds):
        prefix = f"race{number}"
        multipart = number % 4 == 3  # every fourth round races multipart completions
        size = 6 * MiB if multipart else 50_000
        paths = [
            _artifact(tmp_path / f"{number}-{side}", f"{number}-{side}".encode(), size=size)
            for side in ("a", "b")
        ]
        hold = "CreateMultipartUpload" if multipart else "PutObject"

        def publish_one(path: Path, client: Any) -> Any:
            return publish_artifact(
                path,
                production,
                prefix,
                provenance=build_provenance(path, commit=f"commit-{path.parent.name}"),
                protect_existing=True,
                multipart_threshold=THRESHOLD,
                client=client,
                echo=lambda _: None,
            )

        outcomes = _race(paths, publish_one, hold=hold)
        statuses = sorted(outcomes.values())
        assert statuses == ["refused", "uploaded"], f"round {number}: {statuses}"
        winner = next(p for p, status in outcomes.items() if status == "uploaded")
        key = f"{prefix}/demo_1.tar.gz"
        stored = _get(s3, production, key)
        assert stored == winner.read_bytes(), f"round {number}: stored bytes are the winner's"
        manifest = json.loads(_get(s3, production, key + ".manifest.json"))
        assert manifest["sha256"] == hashlib.sha256(stored).hexdigest()
        assert manifest["git_commit"] == f"commit-{winner.parent.name}"
        head = s3.head_object(Bucket=production, Key=key)
        assert head["Metadata"]["mmepack-sha256"] == manifest["sha256"]
    assert not s3.list_multipart_uploads(Bucket=production).get("Uploads")


def test_racing_publishers_of_same_bytes_one_uploads_one_unchanged(
    serial_s3: Any, tmp_path: Path
) -> None:
    s3, production = serial_s3, "race-production"
    first = _artifact(tmp_path / "a", b"same", size=50_000)
    second = tmp_path / "b" / first.name
    second.parent.mkdir()
    second.write_bytes(first.read_bytes())
    outcomes = _race(
        [first, second],
        lambda path, client: _publish(path, production, protect=True, client=client, echo=print),
        hold="PutObject",
    )
    assert sorted(outcomes.values()) == ["unchanged", "uploaded"]
    manifest = json.loads(_get(s3, production, MANIFEST))
    assert manifest["sha256"] == _sha(first)


def test_file_changed_during_multipart_upload_stores_nothing(
    s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    staging, _ = buckets
    path = _artifact(tmp_path, b"v1")
    checked_sha = _sha(path)
    sent = [0]

    def rewrite_tail(amount: int) -> None:
        sent[0] += amount
        if sent[0] >= THRESHOLD and sent[0] - amount < THRESHOLD:  # after the first part
            with path.open("r+b") as handle:
                handle.seek(-200_000, os.SEEK_END)
                handle.write(os.urandom(1000))

    with pytest.raises(MmepackError) as info:
        _publish(path, staging, callback=rewrite_tail)
    assert "changed while it was being published" in str(info.value)
    assert checked_sha in str(info.value)
    assert _keys(s3, staging) == []
    assert not s3.list_multipart_uploads(Bucket=staging).get("Uploads")


def test_file_changed_between_check_and_single_put_stores_nothing(
    s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    _, production = buckets
    path = _artifact(tmp_path, b"v1", size=50_000)
    other = _artifact(tmp_path / "other", b"v2", size=50_000)
    client = make_client()

    def swap(**_: Any) -> None:  # runs after the check and hash, before the upload
        path.write_bytes(other.read_bytes())

    client.meta.events.register("before-call.s3.HeadBucket", swap)
    with pytest.raises(MmepackError, match="changed while it was being published"):
        publish_artifact(
            path,
            production,
            "mme",
            provenance={},
            protect_existing=True,
            client=client,
            echo=lambda _: None,
        )
    assert _keys(s3, production) == []


def _tar_gz(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 1) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size if kind == tarfile.REGTYPE else 0
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = "/etc/passwd"
    return info


CONFIG = _member("demo/config.pbtxt")


@pytest.mark.parametrize(
    "case, expected",
    [
        ("random bytes", "not a gzip file"),
        ("truncated", "not a complete gzip tar"),
        ("gzip of text", "not a complete gzip tar"),
        ("dotdot member", "leaves the artifact's folder"),
        ("absolute member", "does not have a plain relative name"),
        ("symlink member", "is a link"),
        ("hardlink member", "is a link"),
        ("device member", "is a device or FIFO"),
        ("fifo member", "is a device or FIFO"),
        ("file at root", "sits at the tar's root"),
        ("folder without config", "has no config.pbtxt"),
        ("other model inside", "SageMaker would load model 'other'"),
        ("two ensembles", "2 configs matching SageMaker's ensemble pattern"),
        ("duplicate member", "appears twice"),
    ],
)
def test_publish_refuses_what_is_not_an_artifact(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, case: str, expected: str
) -> None:
    staging, _ = buckets
    path = tmp_path / "demo_1.tar.gz"
    good = _artifact(tmp_path / "good", b"v1", size=10_000)
    if case == "random bytes":
        path.write_bytes(os.urandom(5000))
    elif case == "truncated":
        path.write_bytes(good.read_bytes()[:-3000])
    elif case == "gzip of text":
        import gzip

        path.write_bytes(gzip.compress(b"hello, not a tar" * 100))
    else:
        members = {
            "dotdot member": [CONFIG, _member("demo/../../evil")],
            "absolute member": [CONFIG, _member("/etc/cron.d/evil")],
            "symlink member": [CONFIG, _member("demo/link", tarfile.SYMTYPE)],
            "hardlink member": [CONFIG, _member("demo/link", tarfile.LNKTYPE)],
            "device member": [CONFIG, _member("demo/dev", tarfile.CHRTYPE)],
            "fifo member": [CONFIG, _member("demo/pipe", tarfile.FIFOTYPE)],
            "file at root": [CONFIG, _member("evil.sh")],
            "folder without config": [CONFIG, _member("demo_step/1/model.py")],
            "other model inside": [_member("other/config.pbtxt")],
            "two ensembles": [CONFIG, _member("demo_b/config.pbtxt")],
            "duplicate member": [CONFIG, CONFIG],
        }[case]
        data = b'platform: "ensemble"' if case == "two ensembles" else b"x"
        for member in members:
            member.size = len(data) if member.isreg() else 0
        _tar_gz(path, members, data)
    with pytest.raises(MmepackError) as info:
        _publish(path, staging)
    assert expected in str(info.value)
    assert str(path) in str(info.value)
    assert _keys(s3, staging) == []


def test_cli_refuses_truncated_artifact_without_traceback(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    staging, _ = buckets
    good = _artifact(tmp_path / "good", b"v1", size=10_000)
    path = tmp_path / "demo_1.tar.gz"
    path.write_bytes(good.read_bytes()[:-100])
    argv = ["publish", str(path), "--branch", "x", "--staging-bucket", staging]
    assert main([*argv, "--commit", "c"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mmepack: error: ") and "Traceback" not in err
    assert _keys(s3, staging) == []


class StallingProxy:
    """A loopback TCP proxy to the S3 server that stops reading from the client once it has
    forwarded `stall_after` bytes of requests: a link that stops reading mid-upload."""

    def __init__(self, target: str, stall_after: int) -> None:
        host, port = target.rsplit("//", 1)[1].split(":")
        self.target = (host, int(port))
        self.stall_after = stall_after
        self.forwarded = 0
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, request: bool) -> None:
        source.settimeout(0.2)
        while not self.stop.is_set():
            if request and self.forwarded >= self.stall_after:
                time.sleep(0.05)  # stop reading: the client's send buffer fills and blocks
                continue
            try:
                data = source.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            if request:
                self.forwarded += len(data)
            try:
                sink.sendall(data)
            except OSError:
                break
        for sock in (source, sink):
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture
def stalling_proxy(s3_server: str) -> Iterator[StallingProxy]:
    proxy = StallingProxy(s3_server, stall_after=3 * MiB)
    try:
        yield proxy
    finally:
        proxy.close()


def test_upload_stall_fails_within_the_bounded_time(
    s3: Any,
    buckets: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stalling_proxy: StallingProxy,
) -> None:
    staging, _ = buckets
    path = _artifact(tmp_path, b"v1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", stalling_proxy.url)
    monkeypatch.setenv("MMEPACK_S3_READ_TIMEOUT", "2")
    monkeypatch.setenv("MMEPACK_S3_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    started = time.monotonic()
    with pytest.raises(MmepackError) as info:
        _publish(path, staging)
    elapsed = time.monotonic() - started
    # Two attempts of at most 2 s silence each, plus backoff and the first 3 MiB.
    assert elapsed < 30, elapsed
    assert stalling_proxy.forwarded >= 3 * MiB, "the stall happened mid-upload"
    assert "cannot reach S3" in str(info.value)
    assert "was not changed" in str(info.value)
    assert _keys(s3, staging) == []


def test_credentials_in_any_form_are_redacted(
    s3: Any,
    s3_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = "FQoGZXIvYXdzEXAMPLESESSIONTOKEN0123456789"
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://admin:hunter2-pass@127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    path = _artifact(tmp_path, b"v1", size=1000)
    argv = ["publish", str(path), "--branch", "x", "--staging-bucket", "bucket", "--commit", "c"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("mmepack: error: ") and "Traceback" not in err
    assert "cannot reach S3" in err
    for secret in ("hunter2-pass", "admin:", token, SECRET_KEY):
        assert secret not in err, secret

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "not a url :// at all")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "mmepack: error: cannot configure the S3 client" in err and "Traceback" not in err

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)
    monkeypatch.setenv("MMEPACK_S3_READ_TIMEOUT", "soon")
    assert main(argv) == 1
    assert "MMEPACK_S3_READ_TIMEOUT" in capsys.readouterr().err


def test_promote_only_if_absent_in_production(
    s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    staging, production = buckets
    staged = _artifact(tmp_path / "a", b"staged", size=6 * MiB)
    _publish(staged, staging)
    client = make_client()

    def publish_first(**_: Any) -> None:  # a production publish lands while promote copies
        client.meta.events.unregister("before-call.s3.CompleteMultipartUpload", publish_first)
        other = _artifact(tmp_path / "b", b"other", size=10_000)
        _publish(other, production, protect=True)

    client.meta.events.register("before-call.s3.CompleteMultipartUpload", publish_first)
    with pytest.raises(MmepackError, match="bump model_version.txt"):
        promote("demo", "1", staging, production, "mme", client=client)
    assert _get(s3, production, KEY) == (tmp_path / "b" / "demo_1.tar.gz").read_bytes()
    manifest = json.loads(_get(s3, production, MANIFEST))
    assert manifest["sha256"] == _sha(tmp_path / "b" / "demo_1.tar.gz")
    assert not s3.list_multipart_uploads(Bucket=production).get("Uploads")
