"""`mmepack dev MODEL_DIR`: the command line of the dev loop.

Kept apart from the loop itself: the loop needs the server packages (nvidia-pytriton,
tritonclient, ONNX Runtime for the local ONNX stand-in), which the CLI PEX leaves out to stay
small, so the CLI imports it only when the command runs and says where to find it otherwise.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

from mmepack.environment.cache import EnvCache
from mmepack.errors import MmepackError
from mmepack.extras import require_serve
from mmepack.names import CASES_GLOB


def _cmd_dev(args: argparse.Namespace) -> int:
    require_serve("dev", f"./pants run src/mmepack/dev/__main__.py -- {args.model_dir}")
    try:
        from mmepack.dev.loop import DevLoop, stop_on_sigterm  # pants: no-infer-dep
    except ImportError as exc:
        raise MmepackError(
            f"`mmepack dev` needs nvidia-pytriton, tritonclient[http] and onnxruntime-gpu, which "
            f"this installation (e.g. the CLI PEX) lacks ({exc}); from a checkout run "
            f"`./pants run src/mmepack/dev/__main__.py -- {args.model_dir}`"
        ) from None
    from mmepack.environment.command import options_from_args
    from mmepack.files import scratch_dir
    from mmepack.model.build_file import model_python

    model_dir: Path = args.model_dir
    if not model_dir.is_dir():
        raise MmepackError(f"{model_dir}: no such model directory; give e.g. models/<name>")
    with scratch_dir("dev") as workdir, stop_on_sigterm():
        loop = DevLoop(
            model_dir,
            workdir,
            cases_glob=args.cases,
            python=model_python(model_dir, args.python),
            env_options=options_from_args(args),
            env_cache=EnvCache(args.cache_dir) if args.cache_dir else None,
            isolate=not args.no_isolation,
        )
        stopped = False
        try:
            loop.start(timeout=args.startup_timeout)
            return loop.watch(max_seconds=args.max_seconds)
        except KeyboardInterrupt:
            stopped = True
            return 0
        finally:
            # A second Ctrl-C must not cut the clean-up short (the kernel would still end the
            # server, but the scratch folder would wait for the next run).
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                loop.close()
            finally:
                signal.signal(signal.SIGINT, previous)
            if stopped:
                print("mmepack dev: stopped; the server and its stubs are gone", flush=True)


def add_dev_command(commands: Any) -> None:
    """Add `dev` to a `add_subparsers()` result."""
    from mmepack.environment.command import add_env_options

    dev = commands.add_parser(
        "dev",
        help="watch a model directory: on each save, reload the changed steps on a local "
        "Triton and rerun the model's cases (not the production route: see `./pants test`)",
    )
    dev.add_argument("model_dir", type=Path, help="e.g. models/screen_detector")
    dev.add_argument(
        "--cases",
        default=CASES_GLOB,
        metavar="GLOB",
        help=f"case files, relative to the model directory (default: {CASES_GLOB})",
    )
    dev.add_argument(
        "--startup-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long the server may take to start and load the model (default: 300)",
    )
    dev.add_argument(
        "--max-seconds",
        type=float,
        metavar="SECONDS",
        help="stop watching after this long (default: until Ctrl-C)",
    )
    dev.add_argument(
        "--no-isolation",
        action="store_true",
        help="run the server without a private PID namespace (stubs may then outlive a "
        "SIGKILL of the loop)",
    )
    add_env_options(dev)
    dev.set_defaults(run=_cmd_dev, python=None)
