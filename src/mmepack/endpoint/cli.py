"""`mmepack endpoint ARTIFACT...`: serve artifacts on a local multi-model endpoint until Ctrl-C.

Owns the command's options and what it prints: where to point boto3 and curl, one line per
invoke with its CloudWatch-style figures, and a summary when it stops. Kept apart from
`mmepack.cli` so the main command table only gains one line.

When the Triton server dies on its own (a crash, an OOM kill), the command says so at once,
removes everything it made and exits 1: a local endpoint is for tests, where a server death is a
finding to report, not something to paper over by restarting it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmepack.errors import MmepackError
from mmepack.extras import require_serve

DEFAULT_PORT = 8080


def run_endpoint(args: argparse.Namespace) -> int:
    require_serve("endpoint", "./pants run src/mmepack/endpoint/__main__.py -- ARTIFACT...")
    from mmepack.endpoint import LocalEndpoint

    try:
        endpoint = LocalEndpoint(
            list(args.artifacts),
            name=args.name,
            port=args.port,
            max_models=args.max_models,
            max_resident_mb=args.max_resident_mb,
            namespacing=False if args.no_namespacing else None,
            isolate=not args.no_isolation,
            stub_python=args.stub_python,
            not_ready_after=args.not_ready_after,
        )
    except (ValueError, OSError) as exc:
        raise MmepackError(str(exc)) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with endpoint:
        names = endpoint.source.names()
        print(
            f"mmepack: endpoint '{endpoint.name}' ({endpoint.describe()}) at {endpoint.url}\n"
            f"mmepack: TargetModels: {', '.join(names) or 'none'}\n"
            + (
                f"mmepack: container API (ping, models) on the Unix socket "
                f"{endpoint.server.socket_path}\n"
                if endpoint.server.isolated
                else ""
            )
            + "mmepack: models load on their first invoke; press Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        try:
            while endpoint.failure is None and not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
    # After the stop: no invoke line comes after the summary, and it counts every invoke.
    summary: dict[str, Any] = endpoint.summary()
    print("mmepack: summary " + json.dumps(summary, sort_keys=True), file=sys.stderr, flush=True)
    if endpoint.failure is not None:
        raise MmepackError("the endpoint stopped because its Triton server died (see above)")
    return 0


def add_endpoint_command(commands: Any) -> None:
    """Register `endpoint` on the main parser's subcommands."""
    parser = commands.add_parser(
        "endpoint",
        help="serve artifacts on a local SageMaker-style multi-model endpoint until Ctrl-C",
    )
    add_endpoint_arguments(parser)
    parser.set_defaults(run=run_endpoint)


def add_endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "artifacts",
        type=Path,
        nargs="+",
        metavar="ARTIFACT",
        help="<model>_<version>.tar.gz files (TargetModel = file name) or folders of them",
    )
    parser.add_argument("--name", default="local", help="EndpointName callers use")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"runtime API port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--max-models", type=int, help="keep at most this many loaded (least recently used out)"
    )
    parser.add_argument(
        "--max-resident-mb",
        type=float,
        help="unload least recently used models while the server and its stubs use more memory",
    )
    parser.add_argument(
        "--no-namespacing",
        action="store_true",
        help="start Triton with --model-namespacing=false (SAGEMAKER_TRITON_DISABLE_MODEL_"
        "NAMESPACING does the same)",
    )
    parser.add_argument(
        "--no-isolation",
        action="store_true",
        help="no private network namespace: Triton's SageMaker port then binds 0.0.0.0",
    )
    parser.add_argument(
        "--stub-python", help="Python of the server's own stub (default: this interpreter's)"
    )
    parser.add_argument(
        "--not-ready-after",
        type=float,
        default=60.0,
        help="seconds an invoke waits for its model's load before ModelNotReadyException",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m mmepack.endpoint` and its `./pants run` (see __main__.py)."""
    parser = argparse.ArgumentParser(
        prog="mmepack-endpoint", description="local SageMaker-style multi-model endpoint"
    )
    add_endpoint_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_endpoint(args)
    except MmepackError as exc:
        print(f"mmepack: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
