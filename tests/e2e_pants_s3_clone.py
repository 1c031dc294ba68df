"""`./pants package` in a clean git clone whose only DVC remote is an S3 bucket (moto on loopback).

Cost: several minutes and real Pants runs (a fresh build root, pantsd off). It is therefore not
in `./pants test ::`; run it from a checkout with the dev venv:

    PYTHONPATH=src:. python -m pytest -p no:cacheprovider tests/e2e_pants_s3_clone.py

It clones HEAD of the checkout it sits in, so commit first. Every Pants run is bounded by
PANTS_TIMEOUT_S; the whole file by the sum of three such runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.moto_s3 import aws_env, create_bucket, start_moto, stop

CHECKOUT = Path(__file__).resolve().parents[1]
BUCKET = "mmepack-team-weights"
WEIGHT = "models/screen_detector/screen_detector_classifier/1/model.onnx"
PANTS_TIMEOUT_S = 900


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _git(cwd: Path, env: dict[str, str], *args: str) -> None:
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd, env)


def _dvc(cwd: Path, env: dict[str, str], *args: str) -> None:
    _run([sys.executable, "-m", "dvc", "-q", *args], cwd, env)


def _pants(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["./pants", "--no-pantsd", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=PANTS_TIMEOUT_S,
        check=False,
    )


def _member_md5(artifact: Path, member: str) -> str:
    with tarfile.open(artifact) as tar:
        handle = tar.extractfile(member)
        assert handle is not None
        return hashlib.md5(handle.read(), usedforsecurity=False).hexdigest()


def _twin_model(root: Path) -> None:
    """A second model tracking the example's weights with the same .dvc record."""
    twin = root / "models" / "twin"
    (twin / "twin" / "1").mkdir(parents=True)
    (twin / "BUILD").write_text('triton_model(name="twin", dependencies=["//:dvc"])\n')
    (twin / "model_version.txt").write_text("1\n")
    config = (root / "models/screen_detector/screen_detector_classifier/config.pbtxt").read_text()
    (twin / "twin" / "config.pbtxt").write_text(
        config.replace('name: "screen_detector_classifier"', 'name: "twin"')
    )
    shutil.copy(root / f"{WEIGHT}.dvc", twin / "twin" / "1" / "model.onnx.dvc")


def test_clean_clone_packages_from_s3_once_and_refuses_wrong_credentials(
    tmp_path: Path,
) -> None:
    moto = start_moto(tmp_path / "moto.log")
    try:
        env = {**aws_env(tmp_path, moto.url), "MMEPACK_DVC_CACHE": str(tmp_path / "dvc-cache")}
        env.pop("PYTHONPATH", None)  # Pants runs its own interpreter
        create_bucket(moto.url, BUCKET)
        expected = (CHECKOUT / f"{WEIGHT}.dvc").read_text().split("md5: ")[1].split()[0]

        # A team member switches the repository to S3, pushes the weights and commits.
        team = tmp_path / "team"
        _git(tmp_path, env, "clone", "-q", str(CHECKOUT), str(team))
        shutil.rmtree(team / "dvc-remote")
        (team / ".dvc" / "config").write_text(
            f"[core]\n    analytics = false\n    remote = storage\n"
            f"['remote \"storage\"']\n    url = s3://{BUCKET}/dvc\n"
        )
        object_path = CHECKOUT / "dvc-remote/files/md5" / expected[:2] / expected[2:]
        shutil.copy(object_path, team / WEIGHT)
        _dvc(team, env, "add", WEIGHT)
        _dvc(team, env, "push")
        _twin_model(team)
        _git(team, env, "add", "-A")
        _git(team, env, "commit", "-q", "-m", "weights on S3; a twin model")

        # Everyone else: a clean clone, whose only remote is the bucket.
        clone = tmp_path / "clone"
        _git(tmp_path, env, "clone", "-q", str(team), str(clone))
        assert not (clone / "dvc-remote").exists() and not (clone / WEIGHT).exists()

        first = _pants(clone, env, "package", "models/screen_detector:screen_detector")
        assert first.returncode == 0, first.stderr[-6000:]
        assert "dvc-remote" not in first.stderr  # no unmatched-glob warning for //:dvc
        artifact = clone / "dist/mme/screen_detector_1.tar.gz"
        assert _member_md5(artifact, "screen_detector_classifier/1/model.onnx") == expected
        assert moto.object_gets(BUCKET) == 1
        assert "downloaded 1 object(s), 4087 bytes, from DVC remote 'storage'" in first.stderr

        second = _pants(clone, env, "package", "models/twin:twin")
        assert second.returncode == 0, second.stderr[-6000:]
        assert _member_md5(clone / "dist/mme/twin_1.tar.gz", "twin/1/model.onnx") == expected
        assert moto.object_gets(BUCKET) == 1  # the second model downloaded nothing
        assert "model 'twin': weights from the DVC cache" in second.stderr

        # Wrong credentials, with an empty DVC cache so the remote must be asked.
        (clone / "dist/mme/twin_1.tar.gz").unlink()
        strict = start_moto(tmp_path / "strict.log", {"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
        try:
            wrong = {
                **env,
                "AWS_ENDPOINT_URL_S3": strict.url,
                "AWS_SECRET_ACCESS_KEY": "WrongSecretForMmepackE2E0123456789abcdef",
                "MMEPACK_DVC_CACHE": str(tmp_path / "empty-dvc-cache"),
            }
            third = _pants(clone, wrong, "package", "models/twin:twin")
        finally:
            stop(strict.process)
        assert third.returncode != 0
        assert "mmepack: error: model 'twin': cannot pull " in third.stderr
        assert "twin/1/model.onnx.dvc" in third.stderr
        assert f"DVC remote 'storage' (s3://{BUCKET}/dvc)" in third.stderr
        assert "rejected the credentials" in third.stderr
        assert "Traceback" not in third.stderr and "WrongSecret" not in third.stderr
        assert not (clone / "dist/mme/twin_1.tar.gz").exists()
    finally:
        stop(moto.process)


if __name__ == "__main__":
    sys.exit(pytest.main(["-p", "no:cacheprovider", __file__, *sys.argv[1:]]))
