"""The builder's report as the plugin reads it: through the contract's strict reader, which
stops on another contract version naming both, and the lines logged say where the environment
came from."""

from __future__ import annotations

import json

# pytest runs these tests from its own tool resolve; pants-plugins holds no pytest requirement.
import pytest  # pants: no-infer-dep

from mmepack_contract import CONTRACT_VERSION, ENV_REPORT_SCHEMA
from mmepack_contract.reports import ContractError, EnvReport
from mmepack_pants.env_report import report_lines

REPORT = {
    "contract": CONTRACT_VERSION,
    "schema": ENV_REPORT_SCHEMA,
    "label": "",
    "python_version": "3.12.1",
    "archive": "python_env.tar.gz",
    "archive_bytes": 51_200_000,
    "stub": "triton_python_backend_stub",
    "triton_version": "2.51.0",
    "server_stub_python": "3.10",
    "cache_hit": False,
    "cache_entry": "d76a742e295c",
    "builder": "portable:cpython-3.12.1",
    "proven_imports": ["numpy", "PIL"],
    "proven_with_triton": "2.51.0",
    "removed_bytes": 28_000_000,
    "largest_packages": {"numpy": 22_400_000, "numpy.libs": 38_100_000},
}


def test_report_round_trips() -> None:
    report = EnvReport.from_json(json.dumps(REPORT))
    assert report.stub == "triton_python_backend_stub"
    assert report.largest_packages == {"numpy": 22_400_000, "numpy.libs": 38_100_000}
    assert json.loads(report.to_json()) == REPORT


@pytest.mark.parametrize(
    "changed, message",
    [
        ({**REPORT, "surprise": True}, r"unknown fields \['surprise'\] and lacks fields \[\]"),
        ({k: v for k, v in REPORT.items() if k != "stub"}, r"lacks fields \['stub'\]"),
        (
            {**REPORT, "schema": ENV_REPORT_SCHEMA + 1},
            rf"field 'schema' is {ENV_REPORT_SCHEMA + 1}, expected {ENV_REPORT_SCHEMA}",
        ),
        ([REPORT], "expected a JSON object"),
    ],
)
def test_schema_drift_is_an_error(changed: object, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        EnvReport.from_json(json.dumps(changed))


@pytest.mark.parametrize("library", [CONTRACT_VERSION + 1, None])
def test_a_library_of_another_contract_stops_the_plugin_naming_both_versions(
    library: object,
) -> None:
    """A report from a newer (or a pre-contract) library: even with fields this plugin knows,
    it is refused before any is read, and the message names both contract versions and the
    fix."""
    data = {**REPORT, "contract": library} if library else {**REPORT}
    if library is None:
        del data["contract"]
    with pytest.raises(ContractError) as caught:
        EnvReport.from_json(json.dumps(data), "build-env-report.json")
    message = str(caught.value)
    theirs = str(library) if library else "none (older than contract 1)"
    assert message.startswith("build-env-report.json: field 'contract' is ")
    assert f"the mmepack library that wrote it speaks contract version {theirs}" in message
    assert f"the mmepack-pants plugin speaks contract version {CONTRACT_VERSION}" in message
    assert "install the mmepack-pants plugin and the mmepack library at the same version" in message


def test_lines_for_a_fresh_build_a_cache_hit_and_a_pants_cache_replay() -> None:
    fresh = EnvReport.from_json(json.dumps(REPORT))
    assert report_lines(fresh, from_pants_cache=False) == [
        "slimmed: removed 28.0 MB; largest packages: numpy.libs 38.1 MB, numpy 22.4 MB",
        "proven: Triton 2.51.0 imported numpy, PIL",
        "environment ready: python_env.tar.gz (51.2 MB, Python 3.12.1, built now); ships the "
        "Python 3.12 stub (Triton 2.51.0's own runs 3.10)",
    ]
    hit = EnvReport.from_json(json.dumps({**REPORT, "cache_hit": True, "stub": None}))
    assert report_lines(hit, from_pants_cache=False) == [
        "environment ready: python_env.tar.gz (51.2 MB, Python 3.12.1, mmepack's cache "
        "d76a742e295c)"
    ]
    replay = report_lines(fresh, from_pants_cache=True)
    assert len(replay) == 1 and "Pants' cache" in replay[0] and "built now" not in replay[0]
