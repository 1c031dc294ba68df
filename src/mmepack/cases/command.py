"""`mmepack check-cases`, `test-cases` and `record-cases`: the command line of model cases.

Kept apart from `mmepack.cli` like the endpoint command: running cases needs the server
packages (nvidia-pytriton, ONNX Runtime for the local stand-in), which the CLI PEX leaves out to
stay small. `check-cases` needs none of them. The Pants test rule runs the `cases` PEX
(`python -m mmepack.cases`), which carries them; `mmepack` run from a full installation has
all three commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmepack.cases.load import load_cases
from mmepack.errors import MmepackError
from mmepack.extras import require_serve
from mmepack.names import CASES_GLOB


def _cases_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cases",
        default=CASES_GLOB,
        metavar="GLOB",
        help=f"case files, relative to the model directory (default: {CASES_GLOB})",
    )


def _cmd_check(args: argparse.Namespace) -> int:
    cases = load_cases(args.model_dir, args.cases, require_expected=not args.inputs_only)
    print(f"mmepack: {len(cases)} case(s) of {args.model_dir} fit the model's config")
    return 0


def _server_import_error(exc: ImportError) -> MmepackError:
    return MmepackError(
        f"running cases needs nvidia-pytriton, tritonclient[http], onnxruntime-gpu and pytest, "
        f"which this installation (e.g. the CLI PEX) lacks ({exc}); from a checkout run "
        "`./pants run src/mmepack/cases/__main__.py -- ...`, or `./pants test` on the model"
    )


def _cmd_test(args: argparse.Namespace) -> int:
    require_serve("test-cases", "./pants run src/mmepack/cases/__main__.py -- test-cases ...")
    try:
        from mmepack.cases.run import run_cases  # pants: no-infer-dep
    except ImportError as exc:
        raise _server_import_error(exc) from None
    return run_cases(
        args.artifact,
        args.model_dir,
        args.cases,
        junit_xml=args.junit_xml,
        startup_timeout=args.startup_timeout,
        budgets=args.budget,
        capacity_loads=args.capacity_loads,
    )


def _cmd_record(args: argparse.Namespace) -> int:
    require_serve("record-cases", "./pants run src/mmepack/cases/__main__.py -- record-cases ...")
    try:
        from mmepack.cases.record import format_report, record_cases  # pants: no-infer-dep
    except ImportError as exc:
        raise _server_import_error(exc) from None
    report = record_cases(
        args.artifact,
        args.model_dir,
        args.cases,
        accept=args.accept,
        startup_timeout=args.startup_timeout,
    )
    text, code = format_report(report, args.accept)
    print(text, flush=True)
    return code


def add_cases_commands(commands: Any) -> None:
    """Add the three commands to a `add_subparsers()` result."""
    check = commands.add_parser(
        "check-cases",
        help="check a model's case files against its config, without a server",
    )
    check.add_argument("model_dir", type=Path)
    _cases_option(check)
    check.add_argument(
        "--inputs-only",
        action="store_true",
        help="accept cases without expected values (what record-cases fills in)",
    )
    check.set_defaults(run=_cmd_check)

    for name, helptext, run in (
        ("test-cases", "run a model's case files against its packaged artifact", _cmd_test),
        (
            "record-cases",
            "write the artifact's answers into the case files as expected values",
            _cmd_record,
        ),
    ):
        parser = commands.add_parser(name, help=helptext)
        parser.add_argument("artifact", type=Path, help="e.g. dist/mme/<model>_<version>.tar.gz")
        parser.add_argument("model_dir", type=Path, help="e.g. models/screen_detector")
        _cases_option(parser)
        parser.add_argument(
            "--startup-timeout",
            type=float,
            default=300.0,
            metavar="SECONDS",
            help="how long the artifact may take to load (default: 300)",
        )
        if name == "test-cases":
            parser.add_argument("--junit-xml", type=Path, help="also write a JUnit XML report")
            parser.add_argument(
                "--budget",
                action="append",
                metavar="KEY=VALUE",
                help="a capacity budget over the defaults (cold_load_s=45, the rest unset): "
                "cold_load_s, host_memory_mb, gpu_memory_mb, shm_mb, disk_mb; repeat; "
                "`KEY=` unsets one",
            )
            parser.add_argument(
                "--capacity-loads",
                type=int,
                default=1,
                metavar="N",
                help="load the artifact N times (1 to 10) for the spread of its cold load "
                "(default: 1, which adds nothing to the test's time)",
            )
        else:
            parser.add_argument(
                "--accept",
                action="store_true",
                help="overwrite expected values that differ from the model's answer",
            )
        parser.set_defaults(run=run)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mmepack.cases COMMAND ...`: the mmepack CLI, from the PEX that can serve."""
    from mmepack.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
