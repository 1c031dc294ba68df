"""Same commit, same bytes: the example model packaged twice, as two fresh CI runners would.

Two checkouts at different paths, each with its own empty environment cache, pip cache and DVC
cache, package models/screen_detector through the CLI from its committed requirements.lock. The
environments and the artifacts must have identical sha256s, and publishing the second artifact
to production (branch main, a real moto S3 server) after the first must report "unchanged".
A real change is still refused, and the refusal names the member that changed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mmepack.cli import main
from mmepack.environment.lock import read_lock
from mmepack.files import file_hexdigest
from mmepack.names import ENV_ARCHIVE
from mmepack.publish.provenance import environment_sha256s
from mmepack.publish.tested import write_test_record
from tests.test_publish import buckets, s3, s3_server  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[1]
MODEL = "screen_detector"
ARTIFACT = f"{MODEL}_1.tar.gz"
STEP_MODEL = f"{MODEL}_preprocess/1/model.py"


def _checkout(root: Path) -> Path:
    """The files a CI runner has: the model (without its tests), DVC's config and remote."""
    source = REPO / "models" / MODEL
    shutil.copytree(
        source,
        root / "models" / MODEL,
        ignore=shutil.ignore_patterns("tests", "BUILD", "__pycache__", "model.onnx"),
    )
    (root / ".dvc").mkdir(parents=True)
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    # tests/data holds a copy of the example's weights (see tests/BUILD); it must be the one
    # the example records.
    record = (source / "screen_detector_classifier/1/model.onnx.dvc").read_text()
    md5 = record.split("md5: ")[1].split()[0]
    copy = REPO / "tests/data/example-dvc-remote/files/md5" / md5[:2] / md5[2:]
    assert copy.is_file(), (
        f"{copy} is missing: the example's weights changed; copy the object of md5 {md5} "
        "from the DVC remote (or dvc-remote/) there"
    )
    shutil.copytree(REPO / "tests/data/example-dvc-remote", root / "dvc-remote")
    return root / "models" / MODEL


def _package(root: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> Path:
    monkeypatch.setenv("PIP_CACHE_DIR", str(scratch / "pip-cache"))
    # Pants hides the machine's pip configuration (index, certificates) from its processes; the
    # builder is meant to use it, as it does when the plugin runs it.
    monkeypatch.delenv("PIP_CONFIG_FILE", raising=False)
    code = main(
        [
            "package",
            str(root / "models" / MODEL),
            "--pull",
            f"--repo-root={root}",
            f"--output-dir={scratch / 'dist'}",
            "--python=3.12",
            f"--cache-dir={scratch / 'env-cache'}",
            f"--dvc-cache={scratch / 'dvc-cache'}",
            *extra,
        ]
    )
    assert code == 0
    return scratch / "dist" / ARTIFACT


def _publish(artifact: Path, root: Path, buckets: tuple[str, str]) -> int:
    staging, production = buckets
    # Production takes only tested bytes; this test is about reproducibility, so it records a
    # passing run of each artifact as its cases would (tests/test_publish.py tests the gate).
    write_test_record(artifact, passed=True, cases=["reproducible"], exit_code=0)
    return main(
        [
            "publish",
            str(artifact),
            "--branch=main",
            f"--staging-bucket={staging}",
            f"--production-bucket={production}",
            f"--models-root={root / 'models'}",
            "--commit=" + "0" * 40,
        ]
    )


def test_two_cold_builds_give_the_same_bytes_and_publish_is_a_no_op(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    s3: Any,  # noqa: F811
    buckets: tuple[str, str],  # noqa: F811
) -> None:
    roots = [tmp_path / "runner-a" / "checkout", tmp_path / "runner-b" / "elsewhere" / "repo"]
    artifacts = []
    for root in roots:
        _checkout(root)
        artifacts.append(_package(root, root.parent / "scratch", monkeypatch))
    first, second = artifacts

    envs = [environment_sha256s(a) for a in artifacts]
    assert len(envs[0]) == 1  # one environment, shared by both Python steps
    assert envs[0] == envs[1]
    cached = [
        json.loads(m.read_text())["sha256"]
        for root in roots
        for m in (root.parent / "scratch" / "env-cache").glob("*/manifest.json")
    ]
    assert len(cached) == 2 and cached[0] == cached[1]
    # The artifact carries the cached archive's tar (its gzip bytes spliced in, not redone).
    archive = next((roots[0].parent / "scratch" / "env-cache").glob(f"*/{ENV_ARCHIVE}"))
    assert file_hexdigest(archive, "sha256") == cached[0]
    shipped = hashlib.sha256(gzip.decompress(archive.read_bytes())).hexdigest()
    assert next(iter(envs[0].values())) == shipped
    assert file_hexdigest(first, "sha256") == file_hexdigest(second, "sha256")

    capsys.readouterr()
    assert _publish(first, roots[0], buckets) == 0
    assert "uploaded" in capsys.readouterr().out
    assert _publish(second, roots[1], buckets) == 0
    assert f"{ARTIFACT} unchanged" in capsys.readouterr().out

    manifest = json.loads(
        s3.get_object(Bucket=buckets[1], Key=f"{ARTIFACT}.manifest.json")["Body"].read()
    )
    lock = read_lock(roots[0] / "models" / MODEL / "requirements.lock")
    assert manifest["lock_sha256"] == lock.sha256
    assert manifest["seed_python"].startswith("3.12.")

    # A real change (one step's code) is still refused, and the refusal says what changed.
    step = roots[1] / "models" / MODEL / STEP_MODEL
    step.write_text(step.read_text() + "\n# a real change\n")
    env = next((roots[1].parent / "scratch" / "env-cache").glob(f"*/{ENV_ARCHIVE}"))
    changed = _package(roots[1], roots[1].parent / "changed", monkeypatch, f"--env={env}")
    capsys.readouterr()
    assert _publish(changed, roots[1], buckets) == 1
    error = capsys.readouterr().err
    assert "already exists with different content" in error
    # The step ships its bytecode (artifact.bytecode), which changes with its source.
    step_pyc = f"{STEP_MODEL.rsplit('/', 1)[0]}/__pycache__/model.cpython-312.pyc"
    assert f"changed (2): {step_pyc}, {STEP_MODEL}\n" in error
