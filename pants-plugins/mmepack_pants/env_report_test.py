"""The plugin's reader of the builder's report: the schema round-trips, drift is an error, and
the lines logged say where the environment came from."""

from __future__ import annotations

import json

# pytest runs these tests from its own tool resolve; pants-plugins holds no pytest requirement.
import pytest  # pants: no-infer-dep

from mmepack_pants.env_report import REPORT_SCHEMA, EnvReport, EnvReportError

REPORT = {
    "schema": REPORT_SCHEMA,
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
    assert json.loads(json.dumps(report.__dict__)) == REPORT


@pytest.mark.parametrize(
    "changed, message",
    [
        ({**REPORT, "surprise": True}, r"unknown fields \['surprise'\], missing fields \[\]"),
        ({k: v for k, v in REPORT.items() if k != "stub"}, r"missing fields \['stub'\]"),
        ({**REPORT, "schema": REPORT_SCHEMA + 1}, r"field 'schema' is 2, expected 1"),
        ([REPORT], "expected a JSON object"),
    ],
)
def test_schema_drift_is_an_error(changed: object, message: str) -> None:
    with pytest.raises(EnvReportError, match=message):
        EnvReport.from_json(json.dumps(changed))


def test_lines_for_a_fresh_build_a_cache_hit_and_a_pants_cache_replay() -> None:
    fresh = EnvReport.from_json(json.dumps(REPORT))
    assert fresh.lines(from_pants_cache=False) == [
        "slimmed: removed 28.0 MB; largest packages: numpy.libs 38.1 MB, numpy 22.4 MB",
        "proven: Triton 2.51.0 imported numpy, PIL",
        "environment ready: python_env.tar.gz (51.2 MB, Python 3.12.1, built now); ships the "
        "Python 3.12 stub (Triton 2.51.0's own runs 3.10)",
    ]
    hit = EnvReport.from_json(json.dumps({**REPORT, "cache_hit": True, "stub": None}))
    assert hit.lines(from_pants_cache=False) == [
        "environment ready: python_env.tar.gz (51.2 MB, Python 3.12.1, mmepack's cache "
        "d76a742e295c)"
    ]
    replay = fresh.lines(from_pants_cache=True)
    assert len(replay) == 1 and "Pants' cache" in replay[0] and "built now" not in replay[0]
