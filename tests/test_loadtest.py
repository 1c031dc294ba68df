"""`mmepack loadtest` against a real local multi-model endpoint (Triton 2.51, boto3's client).

A short, bounded sweep; the report's numbers are checked against what the endpoint itself
recorded (its per-invoke CloudWatch figures, kept server-side) and against the raw samples.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmepack.build import package_model
from mmepack.endpoint import LocalEndpoint
from mmepack.loadtest import cli as loadtest_cli
from mmepack.loadtest.stats import percentile
from mmepack.testing import find_artifact
from tests.demo_models import write_ensemble_model

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "screen_detector"
PAYLOAD = REPO_ROOT / "models" / EXAMPLE / "tests" / "loadtest_payload.json"
LEVELS = (1, 2)
MAX_REQUESTS = 12
SECONDS = 3.0


@pytest.fixture(scope="module")
def demo_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    model_dir = write_ensemble_model(root / "demo", name="demo")
    return package_model(model_dir, root / "dist").path


@pytest.fixture(scope="module")
def endpoint(demo_artifact: Path) -> Iterator[LocalEndpoint]:
    with LocalEndpoint([find_artifact(EXAMPLE), demo_artifact], name="bench", log=None) as ep:
        yield ep


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_sweep_report_matches_what_the_endpoint_served(
    endpoint: LocalEndpoint, demo_artifact: Path, tmp_path: Path
) -> None:
    example = find_artifact(EXAMPLE).name
    demo_payload = tmp_path / "demo.json"
    demo_payload.write_text(
        json.dumps({"inputs": {"IN": {"datatype": "FP32", "values": [[1, 2]]}}})
    )
    before = len(endpoint.metrics.invokes)
    out = tmp_path / "report"
    code = loadtest_cli.main(
        [
            "--endpoint-url",
            endpoint.url,
            "--endpoint-name",
            endpoint.name,
            "--mix",
            f"{example}=3",
            "--mix",
            f"{demo_artifact.name}=1",
            "--payload",
            str(PAYLOAD),
            "--payload",
            f"{demo_artifact.name}={demo_payload}",
            "--concurrency",
            ",".join(map(str, LEVELS)),
            "--seconds",
            str(SECONDS),
            "--max-requests",
            str(MAX_REQUESTS),
            "--p99-ms",
            "60000",
            "--margin",
            "0.25",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    served = endpoint.metrics.invokes[before:]
    summary = json.loads((out / "summary.json").read_text())
    samples = _read_csv(out / "samples.csv")

    # Every request the report counts reached the endpoint, and nothing else did.
    reported = len(summary["cold_loads"]) + sum(lv["requests"] for lv in summary["levels"])
    assert reported == len(samples) == len(served)
    assert Counter(s["target"] for s in samples) == Counter(i.target_model for i in served)
    assert all(i.status == 200 for i in served)
    assert all(s["outcome"] == "ok" for s in samples)

    # The first request per model is its cold load, as the endpoint saw it (a cache miss),
    # with the endpoint's own load wait; the sweep after it is warm.
    cold = [s for s in samples if s["level"] == "0"]
    assert [c["target"] for c in cold] == [example, demo_artifact.name]
    misses = {i.target_model: i for i in served if not i.ModelCacheHit}
    assert set(misses) == {example, demo_artifact.name}
    for row in cold:
        assert row["cold"] == "1"
        waited_ms = misses[row["target"]].ModelLoadingWaitTime / 1000
        assert float(row["load_wait_ms"]) == pytest.approx(waited_ms, abs=0.01)
        assert float(row["latency_ms"]) >= waited_ms
    assert all(s["cold"] == "0" for s in samples if s["level"] != "0")

    # Each level kept its bounds and its 3:1 mix; the statistics follow from the raw samples.
    levels = {row["concurrency"]: row for row in _read_csv(out / "levels.csv")}
    assert sorted(int(c) for c in levels) == list(LEVELS)
    for level in summary["levels"]:
        rows = [s for s in samples if s["level"] == str(level["concurrency"])]
        assert len(rows) == level["requests"] <= MAX_REQUESTS
        assert level["elapsed_s"] <= SECONDS + 60  # one request in flight may overrun
        by_target = Counter(s["target"] for s in rows)
        assert by_target == Counter(level["by_target"])
        if level["requests"] == MAX_REQUESTS:
            assert by_target[example] == 3 * by_target[demo_artifact.name]
        latencies = [float(s["latency_ms"]) for s in rows]
        for q in (50, 90, 99):
            assert level[f"p{q}_ms"] == pytest.approx(percentile(latencies, q), abs=0.06)
        assert level["throughput_per_s"] == pytest.approx(
            level["ok"] / level["elapsed_s"], rel=1e-3
        )
        assert levels[str(level["concurrency"])]["requests"] == str(level["requests"])

    # Issue 27 item 4: the server's own time (the endpoint's ModelLatency) beside the client's,
    # per request and per level; the client's includes it, so it is never larger.
    model_latency = sorted(i.ModelLatency / 1000 for i in served)
    assert sorted(float(s["server_latency_ms"]) for s in samples) == pytest.approx(
        model_latency, abs=0.001
    )
    for level in summary["levels"]:
        rows = [s for s in samples if s["level"] == str(level["concurrency"])]
        server_ms = [float(s["server_latency_ms"]) for s in rows]
        assert level["server_p50_ms"] == pytest.approx(percentile(server_ms, 50), abs=0.06)
        assert level["server_p99_ms"] == pytest.approx(percentile(server_ms, 99), abs=0.06)
        assert all(float(s["server_latency_ms"]) <= float(s["latency_ms"]) for s in rows)

    # The recommendation: the fastest level (all pass a 60 s p99), less the 25 % margin.
    rec = summary["recommendation"]
    best = max(summary["levels"], key=lambda lv: lv["throughput_per_s"])
    assert rec["chosen_concurrency"] == best["concurrency"]
    assert rec["target_value"] == math.floor(best["throughput_per_s"] * 60 * 0.75)
    assert rec["policy"]["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert summary["local"] is True and "only show the method" in summary["caveat"]
    # Best level last: the knee was not reached, and the reason says to raise the concurrency.
    assert rec["knee_reached"] == (best["concurrency"] != max(LEVELS))
    assert ("raise the concurrency" in rec["reason"]) == (best["concurrency"] == max(LEVELS))

    png = (out / "latency_throughput.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and f"{rec['target_value']}" in page
    assert "endpoint/bench/variant/AllTraffic" in page


def test_artifacts_mode_starts_its_own_endpoint_and_says_when_nothing_qualifies(
    demo_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given artifacts, the command serves them itself; requests come from the model's test
    cases (mmepack.cases). A p99 objective no level can meet gives no number, exit status 2,
    and a report all the same."""
    model_dir = demo_artifact.parents[1] / "demo"
    cases = model_dir / "tests" / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    (cases / "pair.json").write_text(json.dumps({"inputs": {"IN": {"values": [[1.0, 2.0]]}}}))
    (cases / "two.json").write_text(json.dumps({"inputs": {"IN": {"values": [[3, 4], [5, 6]]}}}))
    out = tmp_path / "report"
    code = loadtest_cli.main(
        [
            str(demo_artifact),
            "--cases",
            str(model_dir),
            "--concurrency",
            "1",
            "--seconds",
            "1",
            "--max-requests",
            "5",
            "--p99-ms",
            "0.001",
            "--out",
            str(out),
        ]
    )
    assert code == loadtest_cli.EXIT_NO_RECOMMENDATION
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recommendation"]["target_value"] is None
    assert summary["cold_loads"][0]["outcome"] == "ok"
    assert 1 <= summary["levels"][0]["requests"] <= 5 and summary["levels"][0]["errors"] == 0
    printed = capsys.readouterr().out
    assert "no level kept p99 under 0.001 ms" in printed
    assert (out / "report.html").is_file() and (out / "latency_throughput.png").is_file()
    assert summary["payloads"] == {demo_artifact.name: f"{model_dir} (2 request bodies)"}


def test_reloads_inside_the_sweep_are_cold_not_warm_latency(
    demo_artifact: Path, tmp_path: Path
) -> None:
    """A capacity-1 endpoint and two models taking turns (one caller): every request of the
    level finds its model evicted and loads it again. Each is counted cold, with the endpoint's
    own load wait, and none enters the warm percentiles."""
    other = package_model(write_ensemble_model(tmp_path / "other", name="other"), tmp_path).path
    payload = tmp_path / "p.json"
    payload.write_text(json.dumps({"inputs": {"IN": {"datatype": "FP32", "values": [[1, 2]]}}}))
    out = tmp_path / "report"
    with LocalEndpoint([demo_artifact, other], max_models=1, log=None) as small:
        code = loadtest_cli.main(
            [
                "--endpoint-url",
                small.url,
                "--target-model",
                demo_artifact.name,
                "--target-model",
                other.name,
                "--payload",
                str(payload),
                "--concurrency",
                "1",
                "--seconds",
                "120",
                "--max-requests",
                "4",
                "--p99-ms",
                "60000",
                "--out",
                str(out),
            ]
        )
        served = list(small.metrics.invokes)
    assert code == loadtest_cli.EXIT_NO_RECOMMENDATION  # no warm request to judge p99 by
    (level,) = json.loads((out / "summary.json").read_text())["levels"]
    assert level["requests"] == 4 and level["ok"] == 4
    assert level["cold"] == 4 and level["warm"] == 0 and level["p99_ms"] is None
    assert [i.ModelCacheHit for i in served] == [0] * 6  # 2 first requests + 4 reloads
    rows = [s for s in _read_csv(out / "samples.csv") if s["level"] == "1"]
    waits = [i.ModelLoadingWaitTime / 1000 for i in served[2:]]
    assert [float(s["load_wait_ms"]) for s in rows] == pytest.approx(waits, abs=0.01)
    assert level["cold_max_ms"] == pytest.approx(max(float(s["latency_ms"]) for s in rows), 0.01)


BROKEN_STEP = """
raise RuntimeError("broken on purpose: " + "the import path of this step is long. " * 12
                   + "THE CAUSE: a missing weights file")
"""


def test_a_model_that_never_loads_stops_the_test_with_its_whole_load_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 27 item 3: the sweep ran every level against a model that never loaded, advised
    "lower the load, raise the target or use a larger instance" and exited 2, with the load
    error cut before its cause. Now nothing is swept, the load error is printed whole and the
    exit status is its own."""
    model_dir = write_ensemble_model(tmp_path / "broken", name="broken")
    (model_dir / "broken_double" / "1" / "model.py").write_text(BROKEN_STEP)
    artifact = package_model(model_dir, tmp_path / "dist").path
    payload = tmp_path / "p.json"
    payload.write_text(json.dumps({"inputs": {"IN": {"datatype": "FP32", "values": [[1, 2]]}}}))
    out = tmp_path / "report"
    code = loadtest_cli.main(
        [
            str(artifact),
            "--payload",
            str(payload),
            "--concurrency",
            "1,2",
            "--seconds",
            "2",
            "--max-requests",
            "5",
            "--p99-ms",
            "60000",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == loadtest_cli.EXIT_FIRST_REQUEST_FAILED == 3
    assert "broken_1.tar.gz never loaded on the endpoint, so no level was run" in captured.err
    assert "THE CAUSE: a missing weights file" in captured.err
    assert "lower the load" not in captured.err + captured.out
    assert "concurrency 1" not in captured.err + captured.out  # no level was run
    assert not out.exists()
