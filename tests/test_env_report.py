"""The builder's JSON report: the library's schema and its strict reader, which is the
contract's (mmepack_contract.reports), the one the Pants plugin reads the same file with."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from mmepack.environment.build import build_environment, progress_log
from mmepack.environment.cache import EnvCache, EnvKey
from mmepack.environment.command import main as build_env_main
from mmepack.environment.report import REPORT_SCHEMA, BuildReport
from mmepack.environment.request import EnvOptions, EnvRequest
from mmepack.errors import MmepackError
from mmepack.triton.target import TargetServer
from mmepack_contract import CONTRACT_VERSION


def _report(**changes: Any) -> BuildReport:
    report = BuildReport(
        contract=CONTRACT_VERSION,
        schema=REPORT_SCHEMA,
        label="demo",
        python_version="3.12.1",
        archive="python_env.tar.gz",
        archive_bytes=53_200_000,
        stub="triton_python_backend_stub",
        triton_version="2.51.0",
        server_stub_python="3.10",
        cache_hit=False,
        cache_entry="d76a742e295c",
        builder="portable:cpython-3.12.1",
        proven_imports=["numpy", "PIL"],
        proven_with_triton="2.51.0",
        removed_bytes=28_000_000,
        largest_packages={"numpy.libs": 38_100_000, "numpy": 22_400_000},
    )
    return dataclasses.replace(report, **changes)


def test_report_round_trips_through_json_and_a_file(tmp_path: Path) -> None:
    report = _report()
    assert BuildReport.from_json(report.to_json()) == report
    report.write(tmp_path / "out" / "report.json")
    assert BuildReport.read(tmp_path / "out" / "report.json") == report
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.json"]  # no partial left


def test_unknown_or_missing_field_or_other_schema_is_an_error() -> None:
    data = json.loads(_report().to_json())
    with pytest.raises(MmepackError, match=r"r.json: .*unknown fields \['surprise'\]"):
        BuildReport.from_json(json.dumps({**data, "surprise": 1}), "r.json")
    del data["cache_hit"]
    with pytest.raises(MmepackError, match=r"lacks fields \['cache_hit'\]"):
        BuildReport.from_json(json.dumps(data))
    with pytest.raises(MmepackError, match=rf"field 'schema' is 9, expected {REPORT_SCHEMA}"):
        BuildReport.from_json(_report(schema=9).to_json())
    with pytest.raises(MmepackError, match=r"r.json:1: not JSON"):
        BuildReport.from_json("{", "r.json")


def test_another_contract_is_an_error_naming_both_versions() -> None:
    data = json.loads(_report().to_json())
    with pytest.raises(
        MmepackError, match=rf"contract version {CONTRACT_VERSION + 1}, this mmepack"
    ):
        BuildReport.from_json(json.dumps({**data, "contract": CONTRACT_VERSION + 1}), "r.json")


def _fake_conda(tmp_path: Path) -> Path:
    conda = tmp_path / "bin" / "micromamba"
    conda.parent.mkdir()
    conda.write_text("#!/bin/sh\nexit 1\n")
    conda.chmod(0o755)
    return conda


def test_builder_writes_the_report_on_a_cache_hit(tmp_path: Path) -> None:
    """The real build path, answered by a stored entry (no pip): the report says what happened
    and names the files written, and the CLI entry point writes the same report."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy<2\n")
    conda = _fake_conda(tmp_path)
    cache = EnvCache(tmp_path / "cache")
    key = EnvKey.of("numpy<2\n", "3.11", f"conda:{conda.name}:conda-forge:python=3.11")
    staging = cache.staging(key)
    (staging / "python_env.tar.gz").write_bytes(b"packed environment")
    manifest = {"python_version": "3.11.7", "builder": "conda:micromamba", "removed_bytes": 5}
    proof = {"proven_imports": ["numpy"], "proven_tensor_types": ["TYPE_FP32"]}
    cache.store(key, staging / "python_env.tar.gz", {**manifest, **proof})
    options = EnvOptions(builder="conda", conda=str(conda), target=TargetServer(stub_python="3.11"))

    output = tmp_path / "out" / "python_env.tar.gz"
    built = build_environment(
        EnvRequest(requirements, "3.11", "demo"),
        output,
        options=options,
        cache=cache,
        report=tmp_path / "out" / "report.json",
        log=lambda _: None,
    )
    report = BuildReport.read(tmp_path / "out" / "report.json")
    assert report == built.report
    assert report.cache_hit and report.stub is None and report.label == "demo"
    assert report.archive == str(output) and report.archive_bytes == len(b"packed environment")
    assert report.python_version == "3.11.7" and report.proven_imports == ["numpy"]
    assert report.cache_entry == cache.entry(key).name[:12]
    # What Pants would hold back until the process ends is in the cache's progress log already.
    progress = (cache.root / "progress.log").read_text()
    assert "[demo, Python 3.11, pid " in progress and "environment ready" in progress

    code = build_env_main(
        [
            f"--requirements={requirements}",
            f"--output={tmp_path / 'cli' / 'env.tar.gz'}",
            f"--report={tmp_path / 'cli' / 'report.json'}",
            f"--cache-dir={cache.root}",
            "--python=3.11",
            "--builder=conda",
            f"--conda={conda}",
            "--stub-python=3.11",
        ]
    )
    assert code == 0
    from_cli = BuildReport.read(tmp_path / "cli" / "report.json")
    assert dataclasses.replace(from_cli, archive=report.archive, label="demo") == report


def test_progress_log_appends_starts_over_when_big_and_never_fails_the_build(
    tmp_path: Path,
) -> None:
    shown: list[str] = []
    path = tmp_path / "cache" / "progress.log"
    with progress_log(shown.append, path, "[m]") as log:
        log("Collecting numpy<2")
    with progress_log(shown.append, path, "[m]") as log:
        log("Installing collected packages: numpy")
    lines = path.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "[m] Collecting numpy<2",
        "[m] Installing collected packages: numpy",
    ]
    assert shown == ["Collecting numpy<2", "Installing collected packages: numpy"]
    path.write_text("x" * (2 << 20))
    with progress_log(shown.append, path, "[m]") as log:
        log("fresh")
    assert path.read_text().endswith("[m] fresh\n") and path.stat().st_size < 100
    blocked = tmp_path / "file"
    blocked.write_text("")
    with progress_log(shown.append, blocked / "progress.log", "[m]") as log:
        log("still shown")
    assert shown[-1] == "still shown"
