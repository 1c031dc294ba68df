"""Unit tests of the load test's parts: bounds, mix, payloads, stats, recommendation, policy, and
the requests the driver sends to a real endpoint (botocore's Stubber, no network)."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
import sys
import tarfile
import types
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from mmepack.errors import MmepackError
from mmepack.loadtest import cli as loadtest_cli
from mmepack.loadtest.driver import (
    COLD_LEVEL,
    NOT_READY,
    Driver,
    FirstRequestFailed,
    LevelRun,
    Outcome,
    RuntimeInvoker,
    Sample,
    runtime_client,
)
from mmepack.loadtest.payload import (
    BINARY_JSON,
    Request,
    artifact_input_types,
    case_requests,
    read_payload,
)
from mmepack.loadtest.plan import LoadPlan, MixPicker, Share, parse_levels, parse_mix
from mmepack.loadtest.recommend import (
    PREDEFINED_METRIC,
    SCALABLE_DIMENSION,
    apply_calls,
    recommend,
    resource_id,
    scaling_policy,
)
from mmepack.loadtest.report import level_line, level_row
from mmepack.loadtest.stats import LevelStats, percentile, summarize
from tests.demo_models import ENSEMBLE_CONFIG, PYTHON_CONFIG, write_ensemble_model

# --- plan and mix ------------------------------------------------------------------------------


def test_levels_are_sorted_unique_and_bounded() -> None:
    assert parse_levels("4,1,2,2") == (1, 2, 4)
    with pytest.raises(MmepackError, match="whole numbers"):
        parse_levels("1,two")
    mix = (Share("a_1.tar.gz", 1),)
    with pytest.raises(MmepackError, match="outside 1..64"):
        LoadPlan(levels=(1, 65), seconds_per_level=1, max_requests=1, mix=mix)
    with pytest.raises(MmepackError, match="--seconds"):
        LoadPlan(levels=(1,), seconds_per_level=0, max_requests=1, mix=mix)
    with pytest.raises(MmepackError, match="--seconds"):
        LoadPlan(levels=(1,), seconds_per_level=601, max_requests=1, mix=mix)
    with pytest.raises(MmepackError, match="--max-requests"):
        LoadPlan(levels=(1,), seconds_per_level=1, max_requests=0, mix=mix)
    with pytest.raises(MmepackError, match="no TargetModel"):
        LoadPlan(levels=(1,), seconds_per_level=1, max_requests=1, mix=())


def test_mix_follows_the_shares_exactly() -> None:
    mix = parse_mix(["a_1.tar.gz=3", "b_1.tar.gz=1", "c_1.tar.gz"])
    assert mix == (Share("a_1.tar.gz", 3), Share("b_1.tar.gz", 1), Share("c_1.tar.gz", 1))
    picker = MixPicker(mix)
    picks = [picker.next() for _ in range(500)]
    assert [picks.count(t) for t in ("a_1.tar.gz", "b_1.tar.gz", "c_1.tar.gz")] == [300, 100, 100]
    # Every window of one cycle holds each model's share: a short level stays mixed.
    assert sorted(picks[:5]) == ["a_1.tar.gz"] * 3 + ["b_1.tar.gz", "c_1.tar.gz"]
    for bad in (["a_1.tar.gz=0"], ["a_1.tar.gz=x"], ["=2"], ["a_1.tar.gz", "a_1.tar.gz=2"]):
        with pytest.raises(MmepackError, match="--mix"):
            parse_mix(bad)


# --- payloads ----------------------------------------------------------------------------------


def _json_part(request: Request) -> dict[str, Any]:
    assert request.content_type.startswith(f"{BINARY_JSON};json-header-size=")
    size = int(request.content_type.rsplit("=", 1)[1])
    return dict(json.loads(request.body[:size]))


def test_payload_takes_datatypes_from_the_model_and_encodes_binary(tmp_path: Path) -> None:
    payload = tmp_path / "p.json"
    payload.write_text(json.dumps({"inputs": {"IN": [[1.5, 2.5], [3.0, 4.0]]}}))
    request = read_payload(payload, {"IN": "FP32"})
    header = _json_part(request)
    (tensor,) = header["inputs"]
    assert tensor["name"] == "IN" and tensor["datatype"] == "FP32" and tensor["shape"] == [2, 2]
    assert tensor["parameters"]["binary_data_size"] == 16
    data = np.frombuffer(request.body[-16:], dtype=np.float32)
    assert data.tolist() == [1.5, 2.5, 3.0, 4.0]
    assert "outputs" not in header  # every output: a subset can deadlock an ensemble


def test_payload_bytes_from_text_base64_and_files(tmp_path: Path) -> None:
    (tmp_path / "img.bin").write_bytes(b"\x89PNG-file")
    payload = tmp_path / "p.json"
    items = ["text", {"b64": base64.b64encode(b"\x00raw").decode()}, {"file": "img.bin"}]
    payload.write_text(json.dumps({"inputs": {"B": {"datatype": "BYTES", "values": [items]}}}))
    request = read_payload(payload)
    (tensor,) = _json_part(request)["inputs"]
    assert tensor["shape"] == [1, 3] and tensor["datatype"] == "BYTES"
    # BYTES travel as 4-byte little-endian length + bytes, each item in order.
    blob = b"".join(
        len(b).to_bytes(4, "little") + b for b in (b"text", b"\x00raw", b"\x89PNG-file")
    )
    assert request.body.endswith(blob)


@pytest.mark.parametrize(
    "document, known, message",
    [
        ({"inputs": {"IN": [[1.0]]}}, None, "no datatype for input 'IN'"),
        ({"inputs": {"X": [[1.0]]}}, {"IN": "FP32"}, r"inputs \['X'\] are not inputs"),
        ({"inputs": {}}, None, "expected an object"),
        ({"inputs": {"IN": {"values": [1], "datatype": "FP99"}}}, None, "not one of"),
        ({"inputs": {"IN": {"values": [1.0], "datatype": "FP32", "shape": [3]}}}, None, "fit FP32"),
        (
            {"inputs": {"B": {"values": [[{"file": "none.bin"}]], "datatype": "BYTES"}}},
            None,
            "none",
        ),
        ({"inputs": {"IN": {"data": [1.0], "datatype": "FP32"}}}, None, "needs 'values'"),
        ({"inputs": {"IN": [1.0]}, "outputs": "OUT"}, {"IN": "FP32"}, "list of output names"),
    ],
)
def test_payload_errors_name_the_file_and_input(
    tmp_path: Path, document: Any, known: dict[str, str] | None, message: str
) -> None:
    payload = tmp_path / "p.json"
    payload.write_text(json.dumps(document))
    with pytest.raises(MmepackError, match=message) as caught:
        read_payload(payload, known)
    assert str(payload) in str(caught.value)


def test_input_types_come_from_the_model_sagemaker_loads(tmp_path: Path) -> None:
    artifact = tmp_path / "demo_1.tar.gz"
    configs = {
        "demo/config.pbtxt": ENSEMBLE_CONFIG.format(name="demo", step="demo_double"),
        "demo_double/config.pbtxt": PYTHON_CONFIG.format(name="demo_double", extra="").replace(
            "TYPE_FP32 dims: [ 2 ] }} ]\noutput", "TYPE_STRING dims: [ 2 ] }} ]\noutput"
        ),
        "nested/deeper/config.pbtxt": 'name: "x" platform: "ensemble"',
    }
    with tarfile.open(artifact, "w:gz") as tar:
        for name, text in configs.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert artifact_input_types(artifact) == {"IN": "FP32"}


def test_requests_come_from_the_models_test_cases_and_take_turns(tmp_path: Path) -> None:
    """The cases loader types and shapes each case from the model's config; a case that
    expects an error is not load; a model's cases alternate."""
    model_dir = write_ensemble_model(tmp_path / "demo")
    cases = model_dir / "tests" / "cases"
    cases.mkdir(parents=True)
    (cases / "a.json").write_text(json.dumps({"inputs": {"IN": {"values": [1, 2]}}}))
    (cases / "b.json").write_text(
        json.dumps({"inputs": {"IN": {"values": [[3, 4], [5, 6]]}}, "expected": {}})
    )
    (cases / "c.json").write_text(
        json.dumps({"inputs": {"IN": {"values": [7, 8]}}, "expected_error": {"contains": "boom"}})
    )
    requests = case_requests(model_dir)
    assert [Path(r.source).name for r in requests] == ["a.json", "b.json"]
    first, second = (_json_part(r)["inputs"][0] for r in requests)
    assert first["shape"] == [1, 2] and first["datatype"] == "FP32"  # batch of one added
    assert second["shape"] == [2, 2]
    assert np.frombuffer(requests[1].body[-16:], dtype=np.float32).tolist() == [3, 4, 5, 6]

    sent: list[bytes] = []

    def record(target: str, request: Request) -> Outcome:
        sent.append(request.body)
        return Outcome("ok")

    plan = LoadPlan(
        levels=(1,), seconds_per_level=30, max_requests=5, mix=(Share("demo_1.tar.gz", 1),)
    )
    Driver(record, {"demo_1.tar.gz": requests}, plan, progress=None).run_level(1)
    assert sent == [requests[i % 2].body for i in range(5)]
    (cases / "a.json").write_text(json.dumps({"inputs": {"IN": {"values": [1, 2, 3]}}}))
    with pytest.raises(MmepackError, match="a.json"):
        case_requests(model_dir)


# --- stats and recommendation ------------------------------------------------------------------


def test_percentile_matches_numpy_linear() -> None:
    rng = np.random.default_rng(7)
    for n in (1, 2, 7, 100, 1001):
        values = rng.exponential(50.0, n).tolist()
        for q in (0, 50, 90, 99, 100):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert math.isnan(percentile([], 50))


def _sample(
    latency_ms: float, outcome: str = "ok", cold: bool = False, target: str = "a"
) -> Sample:
    return Sample(2, target, 0.0, latency_ms / 1000, outcome, cold, None)


def test_summary_keeps_cold_loads_out_of_the_percentiles() -> None:
    samples = [_sample(float(ms)) for ms in range(10, 110, 10)]  # 10..100 ms, warm
    samples += [_sample(20000.0, cold=True, target="b")]  # a model load inside the level
    samples += [_sample(5.0, "ModelError"), _sample(5.0, "Timeout"), _sample(6.0, "ModelError")]
    stats = summarize(LevelRun(2, tuple(samples), elapsed_s=2.0))
    assert stats.requests == 14 and stats.ok == 11 and stats.warm == 10 and stats.cold == 1
    assert stats.errors == {"ModelError": 2, "Timeout": 1}
    assert stats.error_rate == pytest.approx(3 / 14)
    assert stats.throughput_per_s == pytest.approx(11 / 2.0)
    assert stats.p50_ms == pytest.approx(55.0) and stats.max_ms == pytest.approx(100.0)
    assert stats.p99_ms == pytest.approx(99.1)
    assert stats.cold_max_ms == pytest.approx(20000.0)
    assert stats.by_target == {"a": 13, "b": 1}


def _level(concurrency: int, per_s: float, p99: float, errors: int = 0) -> LevelStats:
    return LevelStats(
        concurrency=concurrency,
        requests=100,
        ok=100 - errors,
        errors={"ModelError": errors} if errors else {},
        elapsed_s=10.0,
        throughput_per_s=per_s,
        warm=100 - errors,
        p50_ms=p99 / 2,
        p90_ms=p99 * 0.8,
        p99_ms=p99,
        max_ms=p99,
        cold=0,
        cold_max_ms=math.nan,
    )


def test_recommendation_is_the_fastest_level_under_the_target_less_the_margin() -> None:
    levels = [_level(1, 10, 80), _level(2, 18, 120), _level(4, 30, 190), _level(8, 31, 400)]
    chosen = recommend(levels, p99_target_ms=200, margin=0.2, instances=2)
    assert chosen.chosen is not None and chosen.chosen.concurrency == 4
    assert chosen.measured_per_instance_per_minute == pytest.approx(30 * 60 / 2)
    assert chosen.target_value == math.floor(900 * 0.8) == 720
    # A level with errors is not chosen unless errors are allowed.
    with_errors = [_level(1, 10, 80), _level(2, 18, 120, errors=1)]
    assert recommend(with_errors, p99_target_ms=200, margin=0).target_value == 600
    allowed = recommend(with_errors, p99_target_ms=200, margin=0, max_error_rate=0.05)
    assert allowed.target_value == 18 * 60
    # Nothing meets the objective: no number, and the reason lists what each level did.
    none = recommend(levels, p99_target_ms=50, margin=0.2)
    assert none.chosen is None and none.target_value is None
    assert "concurrency 8: p99 400 ms" in none.reason
    with pytest.raises(ValueError):
        recommend(levels, p99_target_ms=200, margin=1.0)


def test_policy_and_apply_calls_are_valid_application_autoscaling_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The printed boto3 code, run against a stubbed client: botocore checks every parameter
    against the service's own model, and the stubber checks the values."""
    recommendation = recommend([_level(4, 30, 190)], p99_target_ms=200, margin=0.25)
    code = apply_calls(
        recommendation,
        endpoint_name="prod-mme",
        variant="AllTraffic",
        min_capacity=2,
        max_capacity=6,
    )
    rid = resource_id("prod-mme", "AllTraffic")
    assert rid == "endpoint/prod-mme/variant/AllTraffic"
    client = boto3.client(
        "application-autoscaling",
        region_name="eu-west-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    with Stubber(client) as stub:
        stub.add_response(
            "register_scalable_target",
            {},
            {
                "ServiceNamespace": "sagemaker",
                "ResourceId": rid,
                "ScalableDimension": SCALABLE_DIMENSION,
                "MinCapacity": 2,
                "MaxCapacity": 6,
            },
        )
        stub.add_response(
            "put_scaling_policy",
            {"PolicyARN": "arn:aws:autoscaling:policy"},
            {
                "PolicyName": "prod-mme-AllTraffic-invocations-per-instance",
                "ServiceNamespace": "sagemaker",
                "ResourceId": rid,
                "ScalableDimension": SCALABLE_DIMENSION,
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": scaling_policy(1350),
            },
        )
        fake_boto3 = types.ModuleType("boto3")
        fake_boto3.client = lambda *_a, **_k: client  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "boto3", fake_boto3)
        exec(compile(code, "apply_calls", "exec"), {})
        stub.assert_no_pending_responses()
    policy = scaling_policy(1350)
    assert policy["PredefinedMetricSpecification"] == {"PredefinedMetricType": PREDEFINED_METRIC}
    assert recommendation.target_value == math.floor(30 * 60 * 0.75) == 1350


# --- the real-endpoint path: the requests it builds ----------------------------------------------


def test_real_endpoint_requests_through_stubber(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "stub")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "stub")
    client = runtime_client(
        endpoint_url=None, region="eu-west-1", timeout=5.0, local=False, max_connections=4
    )
    assert client.meta.endpoint_url == "https://runtime.sagemaker.eu-west-1.amazonaws.com"
    assert (
        client.meta.config.retries["total_max_attempts"] == 1
    )  # every error is counted, not retried
    bodies = {
        "a_1.tar.gz": Request(b"body-a", f"{BINARY_JSON};json-header-size=3", "a.json"),
        "b_1.tar.gz": Request(b"body-b", "application/json", "b.json"),
    }
    requests = {target: [body] for target, body in bodies.items()}
    plan = LoadPlan(
        levels=(1,),
        seconds_per_level=30,
        max_requests=4,
        mix=(Share("a_1.tar.gz", 1), Share("b_1.tar.gz", 1)),
    )

    def expect(target: str) -> dict[str, Any]:
        return {
            "EndpointName": "prod-mme",
            "TargetModel": target,
            "ContentType": bodies[target].content_type,
            "Body": bodies[target].body,
        }

    def ok() -> dict[str, Any]:
        return {"Body": StreamingBody(io.BytesIO(b"{}"), 2), "ContentType": "application/json"}

    with Stubber(client) as stub:
        # First request per model (cold phase), then the level: a, b, a, b by the 1:1 mix.
        stub.add_response("invoke_endpoint", ok(), expect("a_1.tar.gz"))
        stub.add_response("invoke_endpoint", ok(), expect("b_1.tar.gz"))
        stub.add_response("invoke_endpoint", ok(), expect("a_1.tar.gz"))
        stub.add_client_error(
            "invoke_endpoint", "ModelError", "boom", 424, expected_params=expect("b_1.tar.gz")
        )
        stub.add_client_error(
            "invoke_endpoint",
            "ModelNotReadyException",
            "loading",
            429,
            expected_params=expect("a_1.tar.gz"),
        )
        stub.add_response("invoke_endpoint", ok(), expect("b_1.tar.gz"))
        driver = Driver(RuntimeInvoker(client, "prod-mme"), requests, plan, progress=None)
        cold, runs = driver.sweep()
        stub.assert_no_pending_responses()
    # SageMaker says nothing of its cache: the first request per model is taken as cold.
    assert [(s.level, s.target, s.outcome, s.cold) for s in cold] == [
        (COLD_LEVEL, "a_1.tar.gz", "ok", True),
        (COLD_LEVEL, "b_1.tar.gz", "ok", True),
    ]
    (run,) = runs
    assert [(s.target, s.outcome, s.cold) for s in run.samples] == [
        ("a_1.tar.gz", "ok", False),
        ("b_1.tar.gz", "ModelError", False),
        ("a_1.tar.gz", "ModelNotReadyException", False),
        ("b_1.tar.gz", "ok", False),
    ]
    assert [s.detail for s in run.samples] == ["", "boom", "loading", ""]
    stats = summarize(run)
    assert stats.errors == {"ModelError": 1, "ModelNotReadyException": 1} and stats.ok == 2


def test_level_stops_at_its_time_bound() -> None:
    """A slow endpoint and a generous count: the level ends by time, each caller after at most
    the one request it had in flight."""
    import time

    def slow(target: str, request: Request) -> Outcome:
        time.sleep(0.05)
        return Outcome("ok")

    plan = LoadPlan(
        levels=(3,), seconds_per_level=0.5, max_requests=100_000, mix=(Share("a_1.tar.gz", 1),)
    )
    driver = Driver(slow, {"a_1.tar.gz": [Request(b"", "x", "x")]}, plan, progress=None)
    started = time.monotonic()
    run = driver.run_level(3)
    took = time.monotonic() - started
    assert 0.5 <= took < 2.0
    assert 3 <= len(run.samples) <= 3 * (0.5 / 0.05 + 1)
    assert run.stuck_callers == 0
    assert max(s.offset_s for s in run.samples) - min(s.offset_s for s in run.samples) < 0.5


# --- the command line: local means loopback ------------------------------------------------------


def test_local_mode_refuses_a_non_loopback_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert loadtest_cli.is_loopback_url("http://127.0.0.1:8080")
    assert loadtest_cli.is_loopback_url("http://localhost:8080")
    assert loadtest_cli.is_loopback_url("http://[::1]:8080")
    assert not loadtest_cli.is_loopback_url("https://runtime.sagemaker.eu-west-1.amazonaws.com")
    assert not loadtest_cli.is_loopback_url("http://10.0.0.5:8080")
    code = loadtest_cli.main(
        ["--endpoint-url", "http://10.0.0.5:8080", "--target-model", "a_1.tar.gz", "--p99-ms", "1"]
    )
    assert code == 1
    assert "loopback only; add --real" in capsys.readouterr().err
    assert loadtest_cli.main(["--real", "--p99-ms", "1"]) == 1
    assert "--real needs --endpoint-name" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--margin", "1", "--margin: expected a fraction"),
        ("--instances", "0", "--instances: expected 1 or more"),
        ("--max-error-rate", "2", "--max-error-rate"),
        ("--p99-ms", "0", "--p99-ms: expected milliseconds"),
        ("--min-capacity", "5", "--min-capacity 5 / --max-capacity 4"),
    ],
)
def test_unusable_numbers_are_refused_before_anything_starts(
    option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--endpoint-url", "http://127.0.0.1:9", "--target-model", "a_1.tar.gz"]
    argv += ["--p99-ms", "100", option, value]
    assert loadtest_cli.main(argv) == 1
    assert message in capsys.readouterr().err


def test_mmepack_command_line_has_loadtest(capsys: pytest.CaptureFixture[str]) -> None:
    from mmepack import cli

    assert cli.main(["loadtest", "--p99-ms", "100"]) == 1
    assert "mmepack: error: nothing to test" in capsys.readouterr().err


# --- issue 27: a model that never loaded, and a sweep that never found its knee ------------------


def test_a_failed_first_request_stops_the_sweep_with_its_whole_error() -> None:
    cause = "failed to load 'a': " + "x" * 400 + " THE CAUSE"
    calls: list[str] = []

    def invoke(target: str, request: Request) -> Outcome:
        calls.append(target)
        if target == "a_1.tar.gz":
            return Outcome("ModelError", detail=cause)
        return Outcome("ok")

    plan = LoadPlan(
        levels=(1, 2),
        seconds_per_level=5,
        max_requests=10,
        mix=(Share("a_1.tar.gz", 1), Share("b_1.tar.gz", 1)),
    )
    requests = {t: [Request(b"", "x", "x")] for t in ("a_1.tar.gz", "b_1.tar.gz")}
    driver = Driver(invoke, requests, plan, progress=None)
    with pytest.raises(FirstRequestFailed) as failed:
        driver.sweep()
    assert calls == ["a_1.tar.gz", "b_1.tar.gz"]  # the first requests only: no level ran
    assert failed.value.samples[0].detail == cause  # whole, not cut at 300 characters
    told = loadtest_cli.first_request_failure(failed.value.samples, {})
    assert "the first request to a_1.tar.gz failed (ModelError), so no level was run" in told
    assert told.rstrip().splitlines()[-2].endswith("THE CAUSE") and "b_1.tar.gz" not in told
    loaded = loadtest_cli.first_request_failure(failed.value.samples, {"a_1.tar.gz": "no weights"})
    assert "a_1.tar.gz never loaded on the endpoint" in loaded and "no weights" in loaded


def test_a_model_still_loading_is_asked_again_a_bounded_number_of_times() -> None:
    answers = iter([Outcome(NOT_READY, detail="loading"), Outcome(NOT_READY), Outcome("ok")])
    plan = LoadPlan(levels=(1,), seconds_per_level=1, max_requests=1, mix=(Share("a", 1),))
    driver = Driver(
        lambda t, r: next(answers), {"a": [Request(b"", "x", "x")]}, plan, progress=None
    )
    assert [s.outcome for s in driver.first_requests()] == ["ok"]
    never = Driver(
        lambda t, r: Outcome(NOT_READY), {"a": [Request(b"", "x", "x")]}, plan, progress=None
    )
    with pytest.raises(FirstRequestFailed):
        never.sweep()


def test_best_level_last_says_the_knee_was_not_reached() -> None:
    rising = [_level(1, 10, 80), _level(2, 18, 120), _level(4, 30, 150)]
    rec = recommend(rising, p99_target_ms=200, margin=0.2)
    assert rec.chosen is not None and rec.chosen.concurrency == 4 and not rec.knee_reached
    assert "Concurrency 4 was the highest level offered, so the knee was not reached" in rec.reason
    assert "raise the concurrency, e.g. --concurrency 4,8,16" in rec.reason
    assert "--max-requests" not in rec.reason
    capped = [*rising[:2], dataclasses.replace(rising[2], hit_max_requests=True)]
    assert "that level ended at --max-requests (100 requests in 10.0 s)" in (
        recommend(capped, p99_target_ms=200, margin=0.2).reason
    )
    knee = recommend([*rising, _level(8, 29, 190)], p99_target_ms=200, margin=0.2)
    assert knee.knee_reached and "highest level offered" not in knee.reason
    over = recommend([*rising, _level(8, 40, 400)], p99_target_ms=200, margin=0.2)
    assert over.knee_reached and over.chosen is not None and over.chosen.concurrency == 4


def test_levels_report_the_servers_latency_beside_the_clients() -> None:
    samples = [
        Sample(2, "a", 0.0, ms / 1000, "ok", False, None, "", server / 1000)
        for ms, server in ((50, 5), (60, 6), (70, 30))
    ]
    stats = summarize(LevelRun(2, tuple(samples), elapsed_s=1.0, hit_max_requests=True))
    assert stats.p50_ms == pytest.approx(60) and stats.server_p50_ms == pytest.approx(6)
    assert stats.server_p99_ms == pytest.approx(29.52) and stats.hit_max_requests
    line = level_line(stats)
    assert "client p50 60.0 ms" in line and "server (ModelLatency) p50 6.0 ms" in line
    assert "(ended at --max-requests)" in line
    row = level_row(stats)
    assert row["server_p50_ms"] == 6.0 and row["hit_max_requests"] == 1
    unknown = summarize(LevelRun(1, (Sample(1, "a", 0.0, 0.05, "ok", False, None),), 1.0))
    assert math.isnan(unknown.server_p50_ms)
    assert "server time not reported by this endpoint" in level_line(unknown)
