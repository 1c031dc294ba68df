"""The package rule's own check: a DVC-tracking model without the DVC configuration is named."""

from __future__ import annotations

# pytest runs these tests from its own tool resolve; pants-plugins holds no pytest requirement.
import pytest  # pants: no-infer-dep
from pants.engine.addresses import Address

from mmepack_pants.environment import MmepackBuildError
from mmepack_pants.package import _require_dvc_config

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
