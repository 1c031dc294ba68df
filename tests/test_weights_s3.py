"""Weights from an S3 DVC remote, through `mmepack pull-weights`, against a real S3 endpoint on
loopback (a moto server subprocess whose request log is counted).

The repository is made with real `dvc` commands and pushed once per module; each test works on
its own copy and its own DVC cache, so no test sees another's downloads.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mmepack.cli import main
from mmepack.model.weights import file_md5
from tests.moto_s3 import (
    ACCESS_KEY,
    SECRET_KEY,
    Moto,
    aws_env,
    create_bucket,
    refused_port,
    start_moto,
    stop,
)

BUCKET = "mmepack-weights"
WEIGHT = "models/alpha/alpha_onnx/1/model.onnx"


def _dvc(cwd: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "dvc", "-q", *args], cwd=cwd, check=True, env=env, timeout=120
    )


def _dvc_add(root: Path, path: str, push: bool = False) -> None:
    """`dvc add` (and `dvc push`) in this process: a DVC subprocess costs seconds of imports."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        repo.add(str(root / path))
        if push:
            repo.push(targets=[str(root / f"{path}.dvc")])


def _edit_config(root: Path, old: str, new: str) -> None:
    config = root / ".dvc" / "config"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))


def _onnx_model(root: Path, name: str) -> Path:
    """A one-model directory whose weights are DVC-tracked (configs need not load here)."""
    model = root / "models" / name
    (model / f"{name}_onnx" / "1").mkdir(parents=True)
    (model / "model_version.txt").write_text("1\n")
    (model / f"{name}_onnx" / "config.pbtxt").write_text(
        f'name: "{name}_onnx"\nbackend: "onnxruntime"\nmax_batch_size: 0\n'
        'input [{ name: "X" data_type: TYPE_FP32 dims: [1] }]\n'
        'output [{ name: "Y" data_type: TYPE_FP32 dims: [1] }]\n'
    )
    return model


@dataclass
class Remote:
    moto: Moto
    repo: Path  # pushed, without local copies or DVC cache: what a clean clone holds
    env: dict[str, str]
    md5: str


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    base = tmp_path_factory.mktemp("s3remote")
    moto = start_moto(base / "moto.log")
    try:
        env = aws_env(base, moto.url)
        create_bucket(moto.url, BUCKET)
        repo = base / "repo"
        _onnx_model(repo, "alpha")
        (repo / WEIGHT).write_bytes(os.urandom(300_000))
        md5 = file_md5(repo / WEIGHT)
        _dvc(repo, env, "init", "--no-scm")
        _dvc(repo, env, "remote", "add", "-d", "storage", f"s3://{BUCKET}/dvc")
        _dvc(repo, env, "add", WEIGHT)
        _dvc(repo, env, "push")
        shutil.rmtree(repo / ".dvc" / "cache")
        (repo / WEIGHT).unlink()
        yield Remote(moto, repo, env, md5)
    finally:
        stop(moto.process)


@pytest.fixture
def clone(remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the pushed repository, with the AWS environment of the remote set."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in remote.env.items():
        monkeypatch.setenv(name, value)
    root = tmp_path / "clone"
    shutil.copytree(remote.repo, root)
    return root


def _pull(
    root: Path, model: str, cache: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    capsys.readouterr()  # only this command's output
    code = main(
        [
            "pull-weights",
            str(root / "models" / model),
            f"--repo-root={root}",
            f"--dvc-cache={cache}",
        ]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _only_error(err: str) -> str:
    """The one `mmepack: error:` message; no traceback and no DVC chatter around it."""
    assert "Traceback" not in err
    assert err.startswith("mmepack: error: "), err
    return err


def _cache_litter(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


def test_pull_downloads_once_and_a_second_model_shares_the_object(
    remote: Remote, clone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "dvc-cache"
    before = remote.moto.object_gets(BUCKET)
    code, out, err = _pull(clone, "alpha", cache, capsys)
    assert code == 0, err
    assert file_md5(clone / WEIGHT) == remote.md5
    assert "downloaded 1 object(s), 300000 bytes, from DVC remote 'storage'" in out
    assert remote.moto.object_gets(BUCKET) == before + 1

    # A second model tracking the same object, pulled after: served by the shared cache.
    _onnx_model(clone, "beta")
    beta_weight = clone / "models/beta/beta_onnx/1"
    shutil.copy(clone / WEIGHT.replace("model.onnx", "model.onnx.dvc"), beta_weight)
    code, out, err = _pull(clone, "beta", cache, capsys)
    assert code == 0, err
    assert file_md5(beta_weight / "model.onnx") == remote.md5
    assert "nothing downloaded" in out
    assert remote.moto.object_gets(BUCKET) == before + 1


def test_only_the_models_own_files_are_pulled(
    remote: Remote, clone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _onnx_model(clone, "gamma")
    (clone / "models/gamma/gamma_onnx/1/model.onnx").write_bytes(b"gamma weights")
    _dvc_add(clone, "models/gamma/gamma_onnx/1/model.onnx", push=True)
    (clone / "models/gamma/gamma_onnx/1/model.onnx").unlink()
    code, _, err = _pull(clone, "gamma", tmp_path / "cache", capsys)
    assert code == 0, err
    assert (clone / "models/gamma/gamma_onnx/1/model.onnx").read_bytes() == b"gamma weights"
    assert not (clone / WEIGHT).exists()  # alpha's weights were not pulled


def test_object_missing_from_remote_fails_even_with_a_local_copy(
    remote: Remote, clone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = clone / "models/alpha/alpha_onnx/1/extra.onnx"
    local.write_bytes(b"added but never pushed")
    _dvc_add(clone, "models/alpha/alpha_onnx/1/extra.onnx")
    cache = tmp_path / "cache"
    code, _, err = _pull(clone, "alpha", cache, capsys)
    assert code == 1
    message = _only_error(err)
    assert "model 'alpha_onnx': cannot pull " in message and "extra.onnx" in message
    assert "extra.onnx.dvc" in message and f"DVC remote 'storage' (s3://{BUCKET}/dvc)" in message
    assert "does not hold these objects; `dvc push` them" in message
    assert local.read_bytes() == b"added but never pushed"
    assert not (clone / WEIGHT).exists()  # nothing half-done in the working tree


def test_local_copy_that_differs_from_its_record_is_reported_as_such(
    remote: Remote, clone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (clone / WEIGHT).write_bytes(b"edited by hand")
    gets = remote.moto.object_gets(BUCKET)
    code, _, err = _pull(clone, "alpha", tmp_path / "cache", capsys)
    assert code == 1
    message = _only_error(err)
    assert f"{clone / WEIGHT} differs from its DVC record" in message
    assert f"`mmepack add-weights {clone / WEIGHT}` (or `dvc add" in message
    assert (clone / WEIGHT).read_bytes() == b"edited by hand"  # never overwritten
    assert remote.moto.object_gets(BUCKET) == gets


def test_missing_bucket_names_the_remote(
    remote: Remote, clone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_config(clone, f"s3://{BUCKET}/dvc", "s3://no-such-bucket-x/dvc")
    cache = tmp_path / "cache"
    code, _, err = _pull(clone, "alpha", cache, capsys)
    assert code == 1
    message = _only_error(err)
    assert "model.onnx.dvc" in message and "(s3://no-such-bucket-x/dvc)" in message
    assert f"its bucket does not exist at {remote.moto.url}" in message
    assert _cache_litter(cache) == []


def test_wrong_credentials_are_one_clear_error(
    remote: Remote,
    clone: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong_secret = "WrongSecretForMmepackTests0123456789abcd"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong_secret)
    # A server that checks every request's keys (moto's IAM knows none of them).
    strict = start_moto(tmp_path / "strict.log", {"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", strict.url)
        cache = tmp_path / "cache"
        code, _, err = _pull(clone, "alpha", cache, capsys)
    finally:
        stop(strict.process)
    assert code == 1
    message = _only_error(err)
    assert "model 'alpha_onnx': cannot pull " in message and "model.onnx.dvc" in message
    assert f"DVC remote 'storage' (s3://{BUCKET}/dvc)" in message
    assert f"the remote at {strict.url} rejected the credentials" in message
    assert wrong_secret not in message and ACCESS_KEY not in message
    assert _cache_litter(cache) == []


def test_endpoint_down_is_one_clear_error(
    clone: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with refused_port() as port:
        down = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", down)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        cache = tmp_path / "cache"
        started = time.monotonic()
        code, _, err = _pull(clone, "alpha", cache, capsys)
    assert time.monotonic() - started < 90
    assert code == 1
    message = _only_error(err)
    assert f"cannot reach the remote's endpoint at {down}" in message
    assert "model.onnx.dvc" in message and "DVC remote 'storage'" in message
    assert _cache_litter(cache) == []


def test_stalled_endpoint_ends_within_the_read_timeout(
    remote: Remote,
    clone: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Accepts connections and never answers: a stalled S3 endpoint.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{server.getsockname()[1]}")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        _edit_config(clone, f"s3://{BUCKET}/dvc", f"s3://{BUCKET}/dvc\n    read_timeout = 1")
        cache = tmp_path / "cache"
        started = time.monotonic()
        code, _, err = _pull(clone, "alpha", cache, capsys)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()
    assert code == 1
    assert elapsed < 60, f"a stalled endpoint held the pull for {elapsed:.0f} s"
    message = _only_error(err)
    assert "stopped answering" in message and "read_timeout" in message
    assert _cache_litter(cache) == []


def test_remote_kind_without_its_plugin_names_what_to_add(
    remote: Remote, clone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = clone / ".dvc" / "config"
    config.write_text(config.read_text().replace(f"s3://{BUCKET}/dvc", "gs://team-bucket/dvc"))
    code, _, err = _pull(clone, "alpha", tmp_path / "cache", capsys)
    assert code == 1
    message = _only_error(err)
    assert "DVC remote 'storage' (gs://team-bucket/dvc) needs the DVC plugin 'dvc-gs'" in message
    assert "3rdparty/python/requirements.txt" in message
