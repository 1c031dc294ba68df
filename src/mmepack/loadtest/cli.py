"""`mmepack loadtest`: sweep offered load on an endpoint, recommend the autoscaling target.

Three ways to point it, one driver:

- artifacts: starts a local multi-model endpoint with them (loopback only) and tests it;
- `--endpoint-url http://127.0.0.1:PORT`: an endpoint already running (`mmepack endpoint`);
  loopback only, unless `--real` is given;
- `--real --endpoint-name NAME`: a real SageMaker endpoint, with the standard AWS credentials.

Exit status: 0 with a recommendation, 2 when no level met the latency objective (the report is
written either way), 3 when a model's first request failed (typically: the model never loaded),
so no level ran and no report is written (the error is printed whole), 1 for bad input.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mmepack.errors import MmepackError
from mmepack.extras import require_serve
from mmepack.names import ARTIFACT_SUFFIX
from mmepack.redact import redact

DEFAULT_OUT = Path("dist/loadtest")
EXIT_NO_RECOMMENDATION = 2
EXIT_FIRST_REQUEST_FAILED = 3
EXIT_STATUS_HELP = (
    "exit status: 0 a recommendation; 2 no level met the objective (report written); 3 a "
    "model's first request failed, e.g. it never loaded (no level run, error printed whole); 1 "
    "bad input"
)


def first_request_failure(samples: Sequence[Any], load_errors: dict[str, str]) -> str:
    """What to print when a model's first request failed: each failure whole, said as a load
    failure where the endpoint recorded one (the local endpoint does), never as a capacity
    problem, since no load was offered."""
    parts = []
    for sample in samples:
        if sample.ok:
            continue
        if sample.target in load_errors:
            parts.append(
                f"{sample.target} never loaded on the endpoint, so no level was run; the load "
                f"error, whole:\n{load_errors[sample.target]}"
            )
        else:
            parts.append(
                f"the first request to {sample.target} failed ({sample.outcome}), so no level was "
                "run (every request would fail the same way); if the model did not load, the "
                "endpoint's log (CloudWatch for SageMaker) has its load error. The error, "
                f"whole:\n{sample.detail or '(no message)'}"
            )
    return "loadtest: " + "\n".join(parts) + "\nFix the model or the request and run again."


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cases_map(items: list[str], targets: list[str]) -> dict[str, Path]:
    """`--cases MODEL_DIR` for the targets of that model (`<model>_<version>.tar.gz`),
    `--cases TARGET=MODEL_DIR` for one."""
    chosen: dict[str, Path] = {}
    for item in items:
        left, sep, right = item.partition("=")
        if sep and left.endswith(ARTIFACT_SUFFIX):
            if left not in targets:
                raise MmepackError(f"--cases: {left!r} is not among the tested models {targets}")
            chosen[left] = Path(right)
            continue
        model_dir = Path(item)
        matched = [t for t in targets if t.startswith(f"{model_dir.resolve().name}_")]
        if not matched:
            raise MmepackError(
                f"--cases {item}: no tested model is an artifact of {model_dir.resolve().name!r} "
                f"(tested: {targets}); name it: --cases TARGET_MODEL={item}"
            )
        for target in matched:
            chosen.setdefault(target, model_dir)
    return chosen


def _payload_map(items: list[str], targets: list[str]) -> dict[str, Path]:
    """`--payload FILE` for every target, `--payload TARGET=FILE` for one."""
    common: Path | None = None
    per_target: dict[str, Path] = {}
    for item in items:
        left, sep, right = item.partition("=")
        if sep and left.endswith(ARTIFACT_SUFFIX):
            per_target[left] = Path(right)
        elif common is None:
            common = Path(item)
        else:
            raise MmepackError(
                f"--payload: two payload files for every model ({common}, {item}); give one, or "
                "name the model: --payload screen_detector_1.tar.gz=payload.json"
            )
    unknown = sorted(set(per_target) - set(targets))
    if unknown:
        raise MmepackError(f"--payload: {unknown} are not among the tested models {targets}")
    missing = [t for t in targets if t not in per_target and common is None]
    if missing:
        raise MmepackError(
            f"no requests for {missing}: give --cases MODEL_DIR (the model's test cases), "
            "--payload FILE (every model) or --payload TARGET_MODEL=FILE; a payload file holds "
            '{"inputs": {"<name>": [...]}}'
        )
    chosen: dict[str, Path] = {}
    for target in targets:
        path = per_target.get(target) or common
        if path is not None:
            chosen[target] = path
    return chosen


def _check_numbers(args: argparse.Namespace) -> None:
    """Option values the recommendation cannot use, refused before anything starts."""
    if not args.p99_ms > 0:
        raise MmepackError(f"--p99-ms: expected milliseconds above 0, got {args.p99_ms}")
    if not 0 <= args.margin < 1:
        raise MmepackError(
            f"--margin: expected a fraction in [0, 1) such as 0.2, got {args.margin}"
        )
    if not 0 <= args.max_error_rate <= 1:
        raise MmepackError(
            f"--max-error-rate: expected a fraction in [0, 1] such as 0.01, got "
            f"{args.max_error_rate}"
        )
    if args.instances < 1:
        raise MmepackError(f"--instances: expected 1 or more, got {args.instances}")
    if not 1 <= args.min_capacity <= args.max_capacity:
        raise MmepackError(
            f"--min-capacity {args.min_capacity} / --max-capacity {args.max_capacity}: expected "
            "1 <= min <= max"
        )


def run_loadtest(args: argparse.Namespace) -> int:
    from mmepack.endpoint.artifacts import ArtifactSource
    from mmepack.loadtest.driver import Driver, FirstRequestFailed, RuntimeInvoker, runtime_client
    from mmepack.loadtest.payload import Request, artifact_input_types, case_requests, read_payload
    from mmepack.loadtest.plan import MAX_CONCURRENCY, LoadPlan, Share, parse_levels, parse_mix
    from mmepack.loadtest.recommend import LOCAL_CAVEAT, apply_calls, recommend
    from mmepack.loadtest.report import RunInfo, level_line, write_report
    from mmepack.loadtest.stats import cold_loads, summarize

    if args.artifacts:
        # Artifacts mean a local endpoint; an --endpoint-url or --real run needs no server.
        require_serve(
            "loadtest", "./pants run src/mmepack/loadtest/__main__.py -- ARTIFACT... [OPTIONS]"
        )
    _check_numbers(args)
    artifacts: list[Path] = list(args.artifacts or [])
    if args.real and artifacts:
        raise MmepackError("--real tests a deployed endpoint: give no artifacts with it")
    if args.real and not args.endpoint_name:
        raise MmepackError("--real needs --endpoint-name (the SageMaker endpoint to test)")
    if not args.real and not artifacts and not args.endpoint_url:
        raise MmepackError(
            "nothing to test: give artifacts (a local endpoint is started with them), "
            "--endpoint-url http://127.0.0.1:PORT (a running `mmepack endpoint`) or --real"
        )
    if not args.real and args.endpoint_url and not is_loopback_url(args.endpoint_url):
        raise MmepackError(
            f"--endpoint-url {args.endpoint_url}: the local mode talks to loopback only; add "
            "--real to load test a deployed endpoint on purpose"
        )
    if artifacts and args.endpoint_url:
        raise MmepackError("give artifacts or --endpoint-url, not both")

    source = ArtifactSource.of(artifacts) if artifacts else None
    offered = source.names() if source else []
    mix = parse_mix(args.mix) if args.mix else ()
    if not mix:
        names = list(args.target_model or offered)
        mix = tuple(Share(t, 1.0) for t in dict.fromkeys(names))
    targets = [s.target for s in mix]
    if source is not None:
        unknown = [t for t in targets if t not in offered]
        if unknown:
            raise MmepackError(
                f"--mix/--target-model: {unknown} are not among the artifacts given ({offered})"
            )
    plan = LoadPlan(
        levels=parse_levels(args.concurrency),
        seconds_per_level=args.seconds,
        max_requests=args.max_requests,
        mix=mix,
        request_timeout=args.request_timeout,
    )
    case_dirs = _cases_map(args.cases or [], targets)
    payload_files = _payload_map(args.payload or [], [t for t in targets if t not in case_dirs])
    requests: dict[str, list[Request]] = {}
    for target, model_dir in case_dirs.items():
        requests[target] = case_requests(model_dir)
    for target, path in payload_files.items():
        types = artifact_input_types(source.find(target)) if source else None
        requests[target] = [read_payload(path, types)]
    sources = {t: str(p) for t, p in {**payload_files, **case_dirs}.items()}
    local = not args.real

    def drive(
        url: str | None, name: str, described: str, load_errors: Callable[[], dict[str, str]]
    ) -> int:
        client = runtime_client(
            endpoint_url=url,
            region=args.region,
            timeout=args.request_timeout,
            local=local,
            max_connections=MAX_CONCURRENCY,
        )
        try:
            driver = Driver(RuntimeInvoker(client, name), requests, plan)
            cold_samples, runs = driver.sweep()
        except FirstRequestFailed as failed:
            message = first_request_failure(failed.samples, load_errors())
            print(f"mmepack: error: {message}", file=sys.stderr)
            return EXIT_FIRST_REQUEST_FAILED
        finally:
            client.close()
        levels = [summarize(run) for run in runs]
        for level in levels:
            print(f"mmepack: loadtest: {level_line(level)}")
        recommendation = recommend(
            levels,
            p99_target_ms=args.p99_ms,
            margin=args.margin,
            instances=args.instances,
            max_error_rate=args.max_error_rate,
        )
        code = apply_calls(
            recommendation,
            endpoint_name=name,
            variant=args.variant,
            min_capacity=args.min_capacity,
            max_capacity=args.max_capacity,
        )
        caveat = LOCAL_CAVEAT if local else None
        paths = write_report(
            args.out,
            RunInfo(
                endpoint=described,
                endpoint_name=name,
                variant=args.variant,
                local=local,
                mix={s.target: s.weight for s in mix},
                seconds_per_level=plan.seconds_per_level,
                max_requests=plan.max_requests,
                payloads={t: f"{sources[t]} ({len(requests[t])} request bodies)" for t in targets},
            ),
            cold_samples,
            [s for run in runs for s in run.samples],
            levels,
            cold_loads(cold_samples),
            recommendation,
            code,
            caveat,
        )
        print(f"mmepack: loadtest: {recommendation.reason}")
        if caveat:
            print(f"mmepack: loadtest: {caveat}")
        if recommendation.target_value is not None:
            print("mmepack: loadtest: apply it with (not run here):\n" + code)
        for kind, path in paths.items():
            print(f"mmepack: loadtest: {kind}: {path}")
        return 0 if recommendation.target_value is not None else EXIT_NO_RECOMMENDATION

    if artifacts:
        from mmepack.endpoint import LocalEndpoint

        try:
            endpoint = LocalEndpoint(artifacts, name=args.endpoint_name or "local", log=None)
        except (ValueError, OSError) as exc:
            raise MmepackError(str(exc)) from None
        with endpoint:
            return drive(
                endpoint.url,
                endpoint.name,
                endpoint.describe(),
                lambda: endpoint.metrics.load_failures(),
            )
    if args.real:
        where = (
            redact(args.endpoint_url or "")
            or f"SageMaker Runtime ({args.region or 'default region'})"
        )
        return drive(args.endpoint_url, args.endpoint_name, f"SageMaker endpoint via {where}", dict)
    return drive(
        args.endpoint_url,
        args.endpoint_name or "local",
        f"local endpoint at {redact(args.endpoint_url or '')}",
        dict,
    )


def add_loadtest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "artifacts",
        type=Path,
        nargs="*",
        metavar="ARTIFACT",
        help="<model>_<version>.tar.gz files or folders: a local endpoint is started with them",
    )
    parser.add_argument(
        "--payload",
        action="append",
        metavar="[TARGET_MODEL=]FILE",
        help='JSON {"inputs": {"<input name>": data}}; repeat with TARGET_MODEL= for each model',
    )
    parser.add_argument(
        "--cases",
        action="append",
        metavar="[TARGET_MODEL=]MODEL_DIR",
        help="send the model's test cases (MODEL_DIR/tests/cases/*.json) to its artifacts",
    )
    parser.add_argument(
        "--mix",
        action="append",
        metavar="TARGET_MODEL=SHARE",
        help="traffic share of a model (repeat; default: equal shares of every artifact)",
    )
    parser.add_argument(
        "--target-model", action="append", help="a TargetModel to test (repeat; equal shares)"
    )
    parser.add_argument(
        "--concurrency",
        default="1,2,4,8",
        help="levels of offered load: concurrent callers, comma-separated (default 1,2,4,8)",
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="time bound of each level (default 10)"
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=2000,
        help="request bound of each level (default 2000)",
    )
    parser.add_argument(
        "--request-timeout", type=float, default=60.0, help="seconds per request (default 60)"
    )
    parser.add_argument(
        "--p99-ms", type=float, required=True, help="latency objective: p99 of warm requests, ms"
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=0.2,
        help="safety margin taken off the measured rate (default 0.2 = 20%%)",
    )
    parser.add_argument(
        "--max-error-rate",
        type=float,
        default=0.0,
        help="largest share of failed requests a level may have to be chosen (default 0)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="instances behind the endpoint during the test (default 1)",
    )
    parser.add_argument("--endpoint-name", help="EndpointName (default 'local' locally)")
    parser.add_argument(
        "--endpoint-url",
        help="runtime API URL: a running local endpoint (loopback), or with --real an override",
    )
    parser.add_argument(
        "--real",
        action="store_true",
        help="test a deployed SageMaker endpoint (standard AWS credentials and region)",
    )
    parser.add_argument("--region", help="AWS region for --real (default: AWS configuration)")
    parser.add_argument(
        "--variant", default="AllTraffic", help="production variant (default AllTraffic)"
    )
    parser.add_argument("--min-capacity", type=int, default=1, help="policy MinCapacity")
    parser.add_argument("--max-capacity", type=int, default=4, help="policy MaxCapacity")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"report folder (default {DEFAULT_OUT})",
    )


def add_loadtest_command(commands: Any) -> None:
    """Register `loadtest` on the main parser's subcommands."""
    parser = commands.add_parser(
        "loadtest",
        help="sweep load on an endpoint and recommend its autoscaling target",
        epilog=EXIT_STATUS_HELP,
    )
    add_loadtest_arguments(parser)
    parser.set_defaults(run=run_loadtest)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m mmepack.loadtest` and its `./pants run` (see __main__.py)."""
    parser = argparse.ArgumentParser(
        prog="mmepack-loadtest",
        description="load test an endpoint, recommend its scaling target",
        epilog=EXIT_STATUS_HELP,
    )
    add_loadtest_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_loadtest(args)
    except MmepackError as exc:
        print(f"mmepack: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mmepack: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
