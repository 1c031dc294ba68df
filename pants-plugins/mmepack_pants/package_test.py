"""The package rule's own checks: a DVC-tracking model without the DVC configuration is named,
a local remote's objects are found by content, with no path to the checkout, and a failed
build leaves no earlier artifact of the model in dist/, also when the failure comes from the
separate rule that does the work."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict

# pytest runs these tests from its own tool resolve; pants-plugins holds no pytest requirement.
import pytest  # pants: no-infer-dep
from pants.base.build_root import BuildRoot
from pants.core.util_rules.distdir import DistDir
from pants.engine.addresses import Address
from pants.engine.fs import DigestContents, FileContent
from pants.engine.internals.session import RunId
from pants.testutil.rule_runner import MockGet, run_rule_with_mocks

from mmepack_contract import CONTRACT_VERSION, PACKAGE_REPORT_FILE, PACKAGE_REPORT_SCHEMA
from mmepack_pants.engine import (
    PackagedModel,
    PassthroughRequest,
    PassthroughWritten,
    TritonModelPackageFieldSet,
)
from mmepack_pants.environment import MmepackBuildError
from mmepack_pants.package import (
    _MD5,
    _object_globs,
    _relay_size_report,
    _relay_weights_line,
    _require_dvc_config,
    artifact_names,
    package_triton_model,
    read_package_report,
    remove_stale_artifacts,
)
from mmepack_pants.target_types import TritonModelTarget

ADDRESS = Address("models/foreign", target_name="foreign")


def test_missing_dvc_dependency_names_the_fix() -> None:
    files = ("models/foreign/model_version.txt", "models/foreign/net/1/model.onnx.dvc")
    with pytest.raises(MmepackBuildError) as caught:
        _require_dvc_config(ADDRESS, files, "//:dvc")
    message = str(caught.value)
    assert "models/foreign/net/1/model.onnx.dvc tracks weights" in message
    assert 'add dependencies=["//:dvc"]' in message
    assert "models/foreign/BUILD" in message


def test_dvc_dependency_present_or_no_weights_passes() -> None:
    tracked = ("models/foreign/net/1/model.onnx.dvc", ".dvc/config")
    _require_dvc_config(ADDRESS, tracked, "//:dvc")
    _require_dvc_config(ADDRESS, ("models/foreign/model_version.txt",), "//:dvc")


def test_remote_objects_are_named_by_content_not_by_checkout() -> None:
    dvc_file = "outs:\n- md5: 6785ca37c681a417b05284b30c68ad6d\n  size: 4087\n  path: model.onnx\n"
    listing = '[{"md5": "0123456789abcdef0123456789abcdef", "relpath": "a.bin"}]'
    folder = "outs:\n- md5: 89abcdef0123456789abcdef01234567.dir\n  path: weights\n"
    found = {m for text in (dvc_file, listing, folder) for m in _MD5.findall(text)}
    assert found == {
        "6785ca37c681a417b05284b30c68ad6d",
        "0123456789abcdef0123456789abcdef",
        "89abcdef0123456789abcdef01234567.dir",
    }
    # Repository-relative globs: the same in every clone, so the same cache key.
    assert _object_globs({"6785ca37c681a417b05284b30c68ad6d"}) == [
        "**/files/md5/67/85ca37c681a417b05284b30c68ad6d"
    ]


def _model(root: Path, version: str = "2") -> None:
    model = root / "models" / "adder"
    for step in ("adder_ens", "adder_step"):
        (model / step).mkdir(parents=True)
    (model / "adder_ens" / "config.pbtxt").write_text('name: "adder_ens"\nplatform: "ensemble"\n')
    (model / "adder_step" / "config.pbtxt").write_text('name: "adder_step"\nbackend: "python"\n')
    (model / "model_version.txt").write_text(f"{version}\n")


def test_failed_build_removes_only_this_models_earlier_artifacts(tmp_path: Path) -> None:
    _model(tmp_path)
    dist = tmp_path / "dist" / "mme"
    dist.mkdir(parents=True)
    for name in ("adder_2.tar.gz", "adder_ens_2.tar.gz", "adder_1.tar.gz", "other_2.tar.gz"):
        (dist / name).write_bytes(b"earlier build")
    assert artifact_names(tmp_path, "models/adder") == ["adder_2.tar.gz", "adder_ens_2.tar.gz"]
    removed = remove_stale_artifacts(tmp_path, Path("dist/mme"), "models/adder")
    assert removed == [Path("dist/mme/adder_2.tar.gz"), Path("dist/mme/adder_ens_2.tar.gz")]
    # Another version's artifact and another model's are not this build's to remove.
    assert sorted(p.name for p in dist.iterdir()) == ["adder_1.tar.gz", "other_2.tar.gz"]
    assert remove_stale_artifacts(tmp_path, Path("dist/mme"), "models/adder") == []


def test_unreadable_version_names_nothing(tmp_path: Path) -> None:
    _model(tmp_path, version="../../etc")
    assert artifact_names(tmp_path, "models/adder") == []
    assert artifact_names(tmp_path, "models/missing") == []


def test_build_error_from_the_work_rule_removes_the_earlier_artifact(tmp_path: Path) -> None:
    # build_triton_model returns mmepack's error as a value: raised, it would reach this rule
    # wrapped by the engine, and the message would not say what was removed.
    _model(tmp_path)
    dist = tmp_path / "dist" / "mme"
    dist.mkdir(parents=True)
    (dist / "adder_2.tar.gz").write_bytes(b"earlier build")
    field_set = TritonModelPackageFieldSet.create(TritonModelTarget({}, Address("models/adder")))
    failed = PackagedModel(None, None, None, error="models/adder: packaging failed: no ensemble")
    with BuildRoot().temporary(str(tmp_path)), pytest.raises(MmepackBuildError) as caught:
        run_rule_with_mocks(
            package_triton_model,
            rule_args=[field_set, RunId(1), DistDir(relpath=Path("dist")), BuildRoot()],
            mock_gets=[
                MockGet(
                    PassthroughWritten, (PassthroughRequest,), lambda _: PassthroughWritten(())
                ),
                MockGet(
                    output_type=PackagedModel,
                    input_types=(TritonModelPackageFieldSet,),
                    mock=lambda _: failed,
                ),
            ],
        )
    message = str(caught.value)
    assert message.startswith("models/adder: packaging failed: no ensemble\n")
    assert "Removed dist/mme/adder_2.tar.gz, the artifact of an earlier build" in message
    assert not (dist / "adder_2.tar.gz").exists()


def _report(**changes: Any) -> Dict[str, Any]:
    """A package report as `mmepack package --report` writes it (tests/test_package_report.py
    holds the library's own output to this plugin's reader)."""
    report: Dict[str, Any] = {
        "schema": PACKAGE_REPORT_SCHEMA,
        "contract": CONTRACT_VERSION,
        "mmepack_version": "0.2.0",
        "model": "adder_ens",
        "version": "2",
        "artifacts": [
            {
                "path": "__mmepack_out/adder_ens_2.tar.gz",
                "name": "adder_ens_2.tar.gz",
                "bytes": 1234,
                "sha256": "0" * 64,
            }
        ],
        "weights": {
            "pulled": False,
            "message": "model 'adder_ens': weights from the DVC cache /c, nothing downloaded",
            "downloaded_objects": 0,
            "downloaded_bytes": 0,
            "files": [],
        },
        "size": {"message": "size of adder_ens_2.tar.gz: 1.2 KB, ...", "parts": {}},
        "warnings": ["adder_ens_2.tar.gz: the Python environment is 97% of the artifact"],
    }
    report.update(changes)
    return report


def _contents(report: Dict[str, Any]) -> DigestContents:
    return DigestContents([FileContent(PACKAGE_REPORT_FILE, json.dumps(report).encode())])


def test_the_report_is_relayed_as_the_output_lines_were(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mmepack_pants.package")
    report = read_package_report(ADDRESS, _contents(_report()))
    assert report.artifacts[0].name == "adder_ens_2.tar.gz"
    _relay_weights_line(ADDRESS, report, reused=False)
    _relay_weights_line(ADDRESS, report, reused=True)
    _relay_size_report(ADDRESS, report)
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert said == [
        (
            logging.INFO,
            f"{ADDRESS}: model 'adder_ens': weights from the DVC cache /c, nothing downloaded",
        ),
        (
            logging.INFO,
            f"{ADDRESS}: reused from Pants' cache, as first reported: model 'adder_ens': weights "
            "from the DVC cache /c, nothing downloaded",
        ),
        (logging.INFO, f"{ADDRESS}: size of adder_ens_2.tar.gz: 1.2 KB, ..."),
        (
            logging.WARNING,
            f"{ADDRESS}: adder_ens_2.tar.gz: the Python environment is 97% of the artifact",
        ),
    ]


def test_no_pull_no_weights_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mmepack_pants.package")
    weights: Dict[str, Any] = {"pulled": None, "message": None, "files": []}
    report = read_package_report(ADDRESS, _contents(_report(weights=weights, warnings=[])))
    _relay_weights_line(ADDRESS, report, reused=False)
    _relay_size_report(ADDRESS, report)
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_another_contract_version_stops_the_build_naming_both() -> None:
    newer = _report(contract=CONTRACT_VERSION + 1, mmepack_version="9.0.0")
    with pytest.raises(MmepackBuildError) as caught:
        read_package_report(ADDRESS, _contents(newer))
    message = str(caught.value)
    assert message.startswith(f"{ADDRESS}: {PACKAGE_REPORT_FILE}: field 'contract' is")
    assert (
        f"the mmepack library that wrote it speaks contract version {CONTRACT_VERSION + 1}"
        in message
    )
    assert f"the mmepack-pants plugin speaks contract version {CONTRACT_VERSION}" in message
    assert "at the same version" in message


def test_a_tool_that_wrote_no_report_is_named() -> None:
    with pytest.raises(MmepackBuildError, match=f"wrote no {PACKAGE_REPORT_FILE}"):
        read_package_report(ADDRESS, DigestContents([]))


def test_a_malformed_report_is_named() -> None:
    with pytest.raises(MmepackBuildError, match="field 'artifacts' is missing"):
        bad = _report()
        del bad["artifacts"]
        read_package_report(ADDRESS, _contents(bad))
    with pytest.raises(MmepackBuildError, match="not JSON"):
        read_package_report(ADDRESS, DigestContents([FileContent(PACKAGE_REPORT_FILE, b"{")]))
