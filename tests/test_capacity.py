"""What a model costs an endpoint, measured by its test run on a real Triton, budgeted, carried
into the published manifest (moto S3) and planned onto instance types by `mmepack capacity`.

Bounded: two small demo artifacts, three test runs (three server starts), one moto server.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmepack.build import package_model
from mmepack.capacity.instances import GIB, INSTANCE_TYPES
from mmepack.capacity.measure import SHM_DEFAULT_BYTES
from mmepack.capacity.plan import USABLE_FRACTION
from mmepack.cli import main
from tests.demo_models import write_ensemble_model
from tests.moto_s3 import ACCESS_KEY, SECRET_KEY, start_moto

STARTUP = ["--startup-timeout", "120"]
CASE = {"inputs": {"IN": {"values": [1.5, -2]}}, "expected": {"OUT": {"values": [3, -4]}}}


def _model(root: Path, name: str) -> tuple[Path, Path]:
    model_dir = write_ensemble_model(root / name, name=name)
    (model_dir / "tests" / "cases").mkdir(parents=True)
    (model_dir / "tests" / "cases" / "one.json").write_text(json.dumps(CASE))
    return model_dir, package_model(model_dir, root / "dist" / "mme").path


def _record(artifact: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        artifact.with_name(artifact.name + ".capacity.json").read_text()
    )
    return data


@pytest.fixture(scope="module")
def tested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two demo models, each tested once on the local endpoint within generous budgets."""
    root = tmp_path_factory.mktemp("capacity")
    first_dir, first = _model(root, "first")
    second_dir, second = _model(root, "second")
    outputs = []
    for model_dir, artifact, loads in ((first_dir, first, "2"), (second_dir, second, "1")):
        code = main(
            [
                "test-cases",
                str(artifact),
                str(model_dir),
                "--capacity-loads",
                loads,
                "--budget",
                "host_memory_mb=100000",
                *STARTUP,
            ]
        )
        outputs.append(code)
    yield {
        "root": root,
        "first": (first_dir, first),
        "second": (second_dir, second),
        "codes": outputs,
    }


def test_a_test_run_records_what_the_model_costs(tested: dict[str, Any]) -> None:
    assert tested["codes"] == [0, 0]  # within budget: both pass
    _, artifact = tested["first"]
    record = _record(artifact)
    assert record["sha256"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
    loads = record["cold_load_s"]
    assert len(loads["samples"]) == 2 and all(s > 0 for s in loads["samples"])
    assert loads["min"] <= loads["median"] <= loads["max"]
    assert record["first_answer_s"] >= loads["samples"][0]
    host = record["host_memory"]
    assert "PSS" in host["method"] and host["stub_processes"] >= 1
    assert record["host_memory_bytes"] > 0 and host["stub_bytes"] > 0
    shm = record["shm"]
    assert shm["python_instances"] == host["stub_processes"]
    assert shm["default_byte_size"] == SHM_DEFAULT_BYTES
    assert shm["needed_bytes"] >= shm["python_instances"] * SHM_DEFAULT_BYTES
    assert 0 < record["disk_bytes"] and record["archive_bytes"] == artifact.stat().st_size
    # No GPU on these machines: null, and said why.
    assert record["gpu_memory_bytes"] is None and "CPU" in record["gpu_note"]
    assert record["machine"]["cores"] == os.cpu_count() and record["machine"]["cpu"]
    assert record["server"]["release"].startswith("Triton 2.")
    assert record["within_budget"] is True and record["budgets"]["cold_load_s"] == 45.0


def test_a_model_over_its_budgets_fails_with_the_numbers(
    tested: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, artifact = tested["second"]
    capsys.readouterr()
    code = main(
        [
            "test-cases",
            str(artifact),
            str(model_dir),
            "--budget",
            "cold_load_s=0.001",
            "--budget",
            "host_memory_mb=0.001",
            *STARTUP,
        ]
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert "second_cases.py::test_case[one] PASSED" in out
    assert "second_cases.py::test_capacity FAILED" in out
    assert "cold load to first answer" in out and "over its budget of 0.001 s" in out
    assert "host memory (PSS)" in out and "over its budget of 0.001 MB" in out
    assert "raise cold_load_s" in out and "raise host_memory_mb" in out
    record = _record(artifact)
    assert record["within_budget"] is False and len(record["budget_failures"]) == 2
    measured = record["host_memory_bytes"] / (1024 * 1024)
    assert f"host memory (PSS) {measured:.3f} MB" in out
    # The record of this run replaced the passing one: a later publish carries these figures.
    main(["test-cases", str(artifact), str(model_dir), *STARTUP])
    assert _record(artifact)["within_budget"] is True


def test_unknown_budget_key_is_refused(
    tested: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, artifact = tested["second"]
    code = main(["test-cases", str(artifact), str(model_dir), "--budget", "ram=3"])
    err = capsys.readouterr().err
    assert code == 1 and "--budget: expected KEY=NUMBER" in err and "host_memory_mb" in err


def test_publish_carries_the_capacity_block(
    tested: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import boto3

    moto = start_moto(tmp_path / "moto.log")
    try:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                monkeypatch.delenv(name)
        for name, value in {
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_ENDPOINT_URL_S3": moto.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }.items():
            monkeypatch.setenv(name, value)
        s3 = boto3.client("s3")
        staging, production = f"staging-{uuid.uuid4().hex[:8]}", f"prod-{uuid.uuid4().hex[:8]}"
        for bucket in (staging, production):
            s3.create_bucket(Bucket=bucket)
        _, artifact = tested["first"]
        record = _record(artifact)
        code = main(
            [
                "publish",
                str(artifact),
                "--branch=feature-x",
                f"--staging-bucket={staging}",
                f"--production-bucket={production}",
                "--prefix=mme/",
                "--commit=abc123",
                "--git-dirty=false",
            ]
        )
        assert code == 0
        manifest = json.loads(
            s3.get_object(Bucket=staging, Key=f"mme/{artifact.name}.manifest.json")["Body"].read()
        )
        capacity = manifest["capacity"]
        assert capacity["cold_load_s"] == record["cold_load_s"]
        assert capacity["host_memory_bytes"] == record["host_memory_bytes"]
        assert capacity["machine"] == record["machine"]
        assert capacity["server"]["release"] == record["server"]["release"]
        # `mmepack capacity` reads the bucket's manifests as it reads dist/.
        capsys.readouterr()
        code = main(
            [
                "capacity",
                "--bucket",
                staging,
                "--prefix",
                "mme/",
                "--instance-type",
                "ml.g5.xlarge",
                "--json",
            ]
        )
        planned = json.loads(capsys.readouterr().out)
        assert planned["order"] == [artifact.name] and planned["resident"] == [artifact.name]
        assert planned["shm_total"] == record["shm"]["needed_bytes"]
        assert code == 0
    finally:
        moto.process.terminate()
        moto.process.wait(timeout=30)


def test_capacity_counts_recomputed_from_the_records(
    tested: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    dist = tested["root"] / "dist"
    first, second = _record(tested["first"][1]), _record(tested["second"][1])
    capsys.readouterr()
    code = main(
        [
            "capacity",
            str(dist),
            "--instance-type",
            "ml.g5.xlarge",
            "--mix",
            f"{second['artifact']}=3",
            "--mix",
            f"{first['artifact']}=1",
            "--json",
        ]
    )
    plan = json.loads(capsys.readouterr().out)
    assert code == 0
    g5 = INSTANCE_TYPES["ml.g5.xlarge"]
    baseline = max(r["host_memory"]["server_baseline_bytes"] for r in (first, second))
    host_cap = int(g5.memory_bytes * USABLE_FRACTION) - baseline
    assert plan["usable"]["host_memory"] == host_cap
    both = first["host_memory_bytes"] + second["host_memory_bytes"]
    assert plan["fits"]["host_memory"] == (2 if both <= host_cap else 1)
    disk = sum(r["disk_bytes"] + r["archive_bytes"] for r in (first, second))
    assert plan["fits"]["disk"] == (2 if disk <= g5.disk_bytes else 1)
    assert plan["order"] == [second["artifact"], first["artifact"]]
    assert plan["evicted_first"] == [first["artifact"], second["artifact"]]
    assert plan["shm_total"] == first["shm"]["needed_bytes"] + second["shm"]["needed_bytes"]
    # An instance type of our own whose memory holds the busier model and half the other:
    # only the busier one stays resident; the other is the one evicted.
    memory = baseline + second["host_memory_bytes"] + first["host_memory_bytes"] // 2
    code = main(
        [
            "capacity",
            str(dist),
            "--instance-type",
            "ml.custom",
            f"--memory-gb={memory / USABLE_FRACTION / GIB + 1e-9}",
            "--gpu-memory-gb=0",
            "--disk-gb=1",
            "--mix",
            f"{second['artifact']}=3",
            "--mix",
            f"{first['artifact']}=1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"resident at once: 1 of 2 ({second['artifact']})" in out
    assert "fit by host memory: 1, by GPU memory: n/a (no GPU), by disk: 2" in out
    assert "SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE=" in out


def test_capacity_refuses_an_unknown_instance_without_figures(
    tested: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["capacity", str(tested["root"] / "dist"), "--instance-type", "ml.z9.huge"])
    err = capsys.readouterr().err
    assert code == 1 and "not in mmepack's table" in err and "--memory-gb" in err


def test_a_record_of_other_bytes_is_not_carried(tmp_path: Path) -> None:
    from mmepack.capacity.record import capacity_block, write_capacity

    artifact = tmp_path / "dist" / "x_1.tar.gz"
    artifact.parent.mkdir()
    artifact.write_bytes(b"first bytes")
    write_capacity(
        artifact, {"host_memory_bytes": 1}, server={}, machine={}, budgets={}, failures=[]
    )
    sha = hashlib.sha256(b"first bytes").hexdigest()
    block = capacity_block(artifact, sha)
    assert block is not None and block["host_memory_bytes"] == 1 and "sha256" not in block
    artifact.write_bytes(b"rebuilt bytes")
    assert capacity_block(artifact, hashlib.sha256(b"rebuilt bytes").hexdigest()) is None
