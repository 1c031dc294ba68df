"""The package step in one pass, and its JSON report (issue 28): validation hands the parsed
model to packaging, facts the environment's build report states are not looked for again, and
`mmepack package --report` writes what the Pants plugin reads instead of scraping the output.
The plugin's reader is the contract's (`mmepack_contract.reports.PackageReport`, which the plugin
imports inside Pants), fed the library's own report, so the two sides cannot drift apart
unnoticed."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

import mmepack_contract as contract
from mmepack.artifact.env_layout import EnvLayout
from mmepack.artifact.gzip_member import SpliceableGzipWriter, inspect_gzip, inspect_gzip_reading
from mmepack.artifact.report import package_report
from mmepack.artifact.unused_requirements import environment_distributions, read_environment
from mmepack.artifact.writer import PackageResult, read_members
from mmepack.build import package_model
from mmepack.cli import main
from mmepack.model import repository
from mmepack.model.weights import PullResult, TrackedFile
from mmepack.triton.target import TargetServer
from mmepack_contract.reports import ContractError, PackageReport
from tests.demo_models import write_ensemble_model, write_env_archive

RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"


def _package_with_report(tmp_path: Path) -> tuple[dict, str, Path]:
    model = write_ensemble_model(tmp_path / "m", env=True)
    env = write_env_archive(tmp_path / "env.tar.gz")
    report = tmp_path / contract.PACKAGE_REPORT_FILE
    code = main(
        [
            "package",
            str(model),
            f"--output-dir={tmp_path / 'dist'}",
            f"--env={env}",
            f"--report={report}",
        ]
    )
    assert code == 0
    return json.loads(report.read_text(encoding="utf-8")), report.read_text(), tmp_path / "dist"


def test_package_writes_a_report_of_what_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _, dist = _package_with_report(tmp_path)
    stdout = capsys.readouterr().out.splitlines()
    (artifact,) = dist.glob("*.tar.gz")
    assert data["schema"] == contract.PACKAGE_REPORT_SCHEMA
    assert data["contract"] == contract.CONTRACT_VERSION
    assert (data["model"], data["version"]) == ("demo", "1")
    assert data["artifacts"] == [
        {
            "path": artifact.as_posix(),
            "name": artifact.name,
            "bytes": artifact.stat().st_size,
            "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
        }
    ]
    # The same message people read on stdout, without its `mmepack: `.
    assert f"mmepack: {data['size']['message']}" in stdout
    parts = data["size"]["parts"]
    assert sum(p["bytes"] for p in parts.values()) == data["size"]["total_bytes"]
    assert data["size"]["total_bytes"] == artifact.stat().st_size
    assert data["weights"] == {
        "pulled": None,
        "message": None,
        "downloaded_objects": 0,
        "downloaded_bytes": 0,
        "files": [],
    }
    assert data["warnings"] == []


def test_the_plugin_reads_the_library_report(tmp_path: Path) -> None:
    data, text, dist = _package_with_report(tmp_path)
    read = PackageReport.from_json(text)
    (artifact,) = read.artifacts
    assert artifact.name == "demo_1.tar.gz" and artifact.bytes == data["artifacts"][0]["bytes"]
    assert artifact.sha256 == data["artifacts"][0]["sha256"]
    assert read.size_message == data["size"]["message"]
    assert read.weights_message is None and read.weights_pulled is None
    assert read.warnings == ()


@pytest.mark.parametrize("version", [contract.CONTRACT_VERSION + 1, 1, None])
def test_the_plugin_stops_on_another_contract_version_naming_both(
    tmp_path: Path, version: int | None
) -> None:
    data, _, _ = _package_with_report(tmp_path)
    data["contract"] = version
    with pytest.raises(ContractError) as caught:
        PackageReport.from_json(json.dumps(data))
    message = str(caught.value)
    theirs = "none (older than contract 1)" if version is None else str(version)
    assert f"the mmepack library that wrote it speaks contract version {theirs}" in message
    assert (
        f"the mmepack-pants plugin speaks contract version {contract.CONTRACT_VERSION}" in message
    )


def test_the_plugin_refuses_a_report_missing_what_it_relays(tmp_path: Path) -> None:
    data, _, _ = _package_with_report(tmp_path)
    del data["size"]["message"]
    with pytest.raises(ContractError, match="'size.message' is missing"):
        PackageReport.from_json(json.dumps(data))


def test_the_weights_say_per_file_what_came_from_the_remote(tmp_path: Path) -> None:
    pulled = TrackedFile(tmp_path / "a.dvc", tmp_path / "a.onnx", "a" * 32, 10)
    cached = TrackedFile(tmp_path / "b.dvc", tmp_path / "b.onnx", "b" * 32, 20)
    pull = PullResult("local folder x", 1, 10, tmp_path / "cache", frozenset({"a" * 32}))
    result = PackageResult(
        tmp_path / "m_1.tar.gz", "m", "1", (), weights=(pulled, cached), pull=pull
    )
    weights = package_report(result)["weights"]
    assert weights["pulled"] is True
    assert weights["message"].startswith("model 'm': downloaded 1 object(s), 10 bytes")
    assert [(f["bytes"], f["downloaded"]) for f in weights["files"]] == [(10, True), (20, False)]


def test_validation_hands_the_parsed_model_to_packaging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before issue 28 each config was parsed three times per package (validation, the
    # packager's own read, and once more to find the previous artifact's name).
    model = write_ensemble_model(tmp_path / "m", env=True)
    env = write_env_archive(tmp_path / "env.tar.gz")
    read: list[Path] = []
    original = repository.read_triton_model

    def counting(folder: Path) -> repository.TritonModel:
        read.append(folder)
        return original(folder)

    monkeypatch.setattr(repository, "read_triton_model", counting)
    monkeypatch.setattr("mmepack.validate.checks.read_triton_model", counting)
    package_model(model, tmp_path / "dist", env_archive=env)
    assert sorted(f.name for f in read) == ["demo", "demo_double"]


def test_the_environment_python_comes_from_its_build_report(tmp_path: Path) -> None:
    # The stand-in archive holds no lib/python3.X/: opened to look, it tells nothing, so the
    # steps get no bytecode; the Python its build report states compiles them, unopened.
    model = write_ensemble_model(tmp_path / "m", env=True)
    env = write_env_archive(tmp_path / "env.tar.gz")
    unknown = package_model(model, tmp_path / "a", env_archive=env, layout=EnvLayout.SHARED_TAR)
    assert not any(m.endswith(".pyc") for m in read_members(unknown.path))
    stated = package_model(model, tmp_path / "b", env_archive=env, env_python=f"{RUNNING}.0")
    compiled = [m for m in read_members(stated.path) if m.endswith(".pyc")]
    assert compiled == [f"demo_double/1/__pycache__/model.cpython-{RUNNING.replace('.', '')}.pyc"]


def _dist_info(name: str, module: str) -> dict[str, bytes]:
    info = f"lib/python3.12/site-packages/{name}-1.0.dist-info"
    return {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{info}/top_level.txt": f"{module}\n".encode(),
    }


def test_one_inflate_checks_the_splice_and_reads_the_environment(tmp_path: Path) -> None:
    # Before issue 28 the environment was inflated three times per package: for the splice
    # check, for its Python (bytecode) and for its distributions (the size warning).
    files = {"lib/python3.12/os.py": b"#\n", "bin/activate": b"#\n", **_dist_info("regex", "regex")}
    env = write_env_archive(tmp_path / "env.tar.gz", files)
    facts, contents = inspect_gzip_reading(env, read_environment)
    assert facts == inspect_gzip(env) and facts.splice is not None
    assert contents is not None and contents.python == "3.12"
    assert contents.distributions["regex"].modules == ["regex"]
    assert contents.distributions == environment_distributions(env)
    # Not in the splice shape (plain gzip): the caller is told to read it itself.
    plain = tmp_path / "plain.tar.gz"
    plain.write_bytes(gzip.compress(gzip.decompress(env.read_bytes())))
    facts, contents = inspect_gzip_reading(plain, read_environment)
    assert facts.splice is None and contents is None
    # Spliceable gzip whose content is no tar: the splice facts still hold, nothing is read.
    odd = tmp_path / "odd.gz"
    with odd.open("wb") as out, SpliceableGzipWriter(out, 6) as writer:
        writer.write(b"not a tar" * 1000)
    facts, contents = inspect_gzip_reading(odd, read_environment)
    assert facts == inspect_gzip(odd) and facts.splice is not None and contents is None


def test_the_size_warning_reads_what_the_writer_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = write_ensemble_model(tmp_path / "m", env=True)
    (model / "requirements.txt").write_text("regex\n")
    files = {"bin/activate": b"#\n", "blob": os.urandom(400_000), **_dist_info("regex", "re")}
    env = write_env_archive(tmp_path / "env.tar.gz", files)

    def second_pass(_: Path) -> None:
        raise AssertionError("the environment was decompressed again")

    monkeypatch.setattr("mmepack.build.environment_distributions", second_pass)
    # The server's own stub Python: no stub ships, so the environment dominates the artifact.
    python = TargetServer().stub_python
    result = package_model(model, tmp_path / "dist", env_archive=env, python=python)
    assert result.unused_requirements == ("regex",)
