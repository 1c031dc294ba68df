"""The `build-env` command: one argument parser for `mmepack build-env` and the builder PEX.

The Pants plugin runs the environment builder as its own narrow PEX (`main` below) rather than
the whole CLI, so Pants' cache key for an environment covers only the requirements, the build
options and this subpackage's code: editing other parts of mmepack never rebuilds environments,
and models with identical requirements share one build. `mmepack build-env` is the same command
mounted in the full CLI; both get their arguments from `add_build_env_arguments`, so they cannot
drift apart.

Every default lives in the library (`mmepack.environment.request`, `mmepack.triton.target`);
the options here only name them, so a caller that passes nothing gets the library's choice.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mmepack import passthrough
from mmepack.environment.build import build_environment
from mmepack.environment.builders import BUILDER_KINDS
from mmepack.environment.cache import EnvCache
from mmepack.environment.request import DEFAULT_BUILDER, DEFAULT_PYTHON, EnvOptions, EnvRequest
from mmepack.errors import MmepackError
from mmepack.names import REQUIREMENTS_FILE, STUB_NAME
from mmepack.redact import redact
from mmepack.triton.target import DEFAULT_STUB_PYTHON, DEFAULT_TRITON_VERSION, TargetServer
from mmepack_contract import ERROR_PREFIX


def add_env_options(parser: argparse.ArgumentParser) -> None:
    """How to build environments: shared by `build-env` and `package`."""
    parser.add_argument(
        "--python", default=DEFAULT_PYTHON, help=f"environment Python (default {DEFAULT_PYTHON})"
    )
    parser.add_argument(
        "--builder",
        choices=BUILDER_KINDS,
        default=DEFAULT_BUILDER,
        help="auto: conda if found, else portable; conda: conda only; portable: no conda "
        f"(default {DEFAULT_BUILDER})",
    )
    parser.add_argument("--conda", help="conda, mamba or micromamba executable to use")
    parser.add_argument(
        "--triton-version",
        default=DEFAULT_TRITON_VERSION,
        help=f"Triton server version the artifact is for (default {DEFAULT_TRITON_VERSION})",
    )
    parser.add_argument(
        "--stub-python",
        default=DEFAULT_STUB_PYTHON,
        help=f"Python of that server's own stub (default {DEFAULT_STUB_PYTHON})",
    )
    parser.add_argument(
        "--stub-dir",
        type=Path,
        help=f"folder of 3.X/{STUB_NAME} built by the target release (default: nvidia-pytriton's)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="environment cache (default: $MMEPACK_ENV_CACHE or ~/.cache/mmepack/envs)",
    )


def add_build_env_arguments(parser: argparse.ArgumentParser) -> None:
    """Every argument of `build-env`, for the CLI's subcommand and the builder PEX alike."""
    parser.add_argument("--requirements", type=Path, required=True, help=REQUIREMENTS_FILE)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--stub-output", type=Path, help=f"where to write {STUB_NAME} if needed")
    parser.add_argument(
        "--report", type=Path, help="write a JSON report of the build here (schema: BuildReport)"
    )
    parser.add_argument("--label", default="", help="model name for messages")
    add_env_options(parser)


def options_from_args(args: argparse.Namespace) -> EnvOptions:
    return EnvOptions(
        builder=args.builder,
        conda=args.conda,
        target=TargetServer(args.triton_version, args.stub_python, args.stub_dir),
    )


def cache_from_args(args: argparse.Namespace) -> EnvCache | None:
    return EnvCache(args.cache_dir) if args.cache_dir else None


def run_build_env(args: argparse.Namespace) -> int:
    build_environment(
        EnvRequest(args.requirements, args.python, args.label),
        args.output,
        options=options_from_args(args),
        stub_output=args.stub_output,
        cache=cache_from_args(args),
        report=args.report,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The builder PEX's entry point: `mmepack build-env` without the rest of the CLI."""
    parser = argparse.ArgumentParser(
        prog="mmepack build-env", description="Build, prove and cache a Python environment."
    )
    add_build_env_arguments(parser)
    args = parser.parse_args(argv)
    try:
        # Under Pants, the machine's variables come from a file, not the environment.
        passthrough.apply()
        return run_build_env(args)
    except MmepackError as exc:
        print(f"{ERROR_PREFIX} {redact(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
