"""The environment build as its own rule: `PythonEnvRequest` -> `PythonEnv`.

The package rule awaits this the way Pants' docker and helm backends await their build rules,
so the goal rule stays short. The process runs mmepack's narrow builder PEX on the model's
requirements.txt and requirements.lock alone, moved to the sandbox root and with no
model-specific argument: models with identical requirements make identical processes, which
Pants runs once and caches across runs. What the builder did comes back in its JSON report
(`mmepack_contract.reports`), not from its log; the package rule logs it.

Its engine calls go through `engine.py`; everything else here is plain functions of option
values.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Tuple

from pants.backend.python.util_rules.pex import VenvPexProcess
from pants.engine.addresses import Address
from pants.engine.fs import DigestContents, PathGlobs
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import collect_rules, rule
from pants.util.logging import LogLevel

from mmepack_contract import (
    ENV_ARCHIVE,
    ENV_CACHE_VARIABLE,
    ERROR_PREFIX,
    LOCK_FILE,
    PROGRESS_LOG,
    REQUIREMENTS_FILE,
    STUB_NAME,
)
from mmepack_contract.paths import env_cache_root
from mmepack_contract.reports import ContractError, EnvReport
from mmepack_pants import engine
from mmepack_pants.engine import PythonEnv, PythonEnvRequest
from mmepack_pants.env_report import REPORT_FILE, report_lines
from mmepack_pants.passthrough import APPEND_ONLY_CACHES, process_env
from mmepack_pants.subsystem import MmepackSubsystem, TritonServerSubsystem

# Inside the builder's sandbox the files keep the library's names (mmepack_contract), which the
# plugin must list as a process's output files before it runs.
ENV_FILE = ENV_ARCHIVE
STUB_FILE = STUB_NAME
_PIP_CACHE = ".cache/mmepack-pip"
# What `progress_log_path` reads (mmepack_contract.paths.env_cache_root): no credential.
PROGRESS_LOG_VARIABLES = (ENV_CACHE_VARIABLE, "XDG_CACHE_HOME", "HOME")


class MmepackBuildError(Exception):
    """A build step failed; the message is mmepack's own explanation."""


def failure(address: Address, step: str, result: FallibleProcessResult) -> MmepackBuildError:
    stderr = result.stderr.decode(errors="replace").strip()
    lines = [line for line in stderr.splitlines() if line.startswith(ERROR_PREFIX)]
    detail = stderr if not lines else stderr[stderr.index(lines[0]) :]
    return MmepackBuildError(f"{address}: {step} failed:\n{detail}")


def target_args(
    python_version: Optional[str], target_server: TritonServerSubsystem
) -> Tuple[str, ...]:
    """The environment's Python and the target server, for the builder and the packager alike;
    only what the user set, so every default is the library's. A relative `stub_dir` stays
    relative (its files are copied into the sandbox, see `stub_dir_globs`): an absolute path to
    the checkout would give every clone its own cache keys."""
    args = []
    if python_version:
        args.append(f"--python={python_version}")
    if target_server.version:
        args.append(f"--triton-version={target_server.version}")
    if target_server.stub_python:
        args.append(f"--stub-python={target_server.stub_python}")
    if target_server.stub_dir:
        args.append(f"--stub-dir={target_server.stub_dir}")
    return tuple(args)


def stub_dir_globs(target_server: TritonServerSubsystem) -> Tuple[str, ...]:
    """The files of a `stub_dir` inside the repository, for the sandbox; none for an absolute
    folder, which every clone names the same way."""
    stub_dir = target_server.stub_dir
    if not stub_dir or os.path.isabs(stub_dir):
        return ()
    return (os.path.join(stub_dir, "**"),)


def builder_args(subsystem: MmepackSubsystem) -> Tuple[str, ...]:
    args = []
    if subsystem.builder is not None:
        args.append(f"--builder={subsystem.builder.value}")
    if subsystem.conda:
        args.append(f"--conda={subsystem.conda}")
    return tuple(args)


def progress_log_path(env: Mapping[str, str]) -> str:
    """Where the builder appends its progress lines: the environment cache folder, found by
    the library's own rule (mmepack_contract.paths), from the process's variables."""
    return os.path.join(env_cache_root(env, env.get("HOME") or "~"), PROGRESS_LOG)


def build_description(address: Address, python: Optional[str], env: Mapping[str, str]) -> str:
    """What the user sees while the builder runs: Pants shows a running process's description
    (the dynamic UI's line with its timer, or the periodic "Long running tasks" log line without
    a terminal) but none of its output until it ends. So it says what is happening, how long it
    usually takes, and where pip's progress can be followed meanwhile."""
    return (
        f"Build, prove and cache the Python {python or 'default'} environment for {address} "
        "(pip installs requirements.lock, then conda-pack and a proof under Triton: about a "
        "minute when no cache has it; follow pip with `tail -f "
        f"{progress_log_path(env)}`)"
    )


@rule(desc="Build a Python backend environment", level=LogLevel.DEBUG)
async def build_python_env(
    request: PythonEnvRequest,
    subsystem: MmepackSubsystem,
    target_server: TritonServerSubsystem,
) -> PythonEnv:
    requirements_only = await engine.subset(
        request.sources,
        PathGlobs(
            [
                os.path.join(request.model_dir, REQUIREMENTS_FILE),
                # The pinned versions and hashes the environment is installed from.
                os.path.join(request.model_dir, LOCK_FILE),
            ]
        ),
    )
    requirements, stubs, builder, env_vars = await engine.env_builder_inputs(
        requirements_only,
        request.model_dir,
        PathGlobs(stub_dir_globs(target_server)),
        # Only for the description, which is in no cache key: where the progress log is.
        PROGRESS_LOG_VARIABLES,
    )
    builder_input = await engine.merge([requirements, stubs])
    result = await engine.run(
        VenvPexProcess(
            builder,
            argv=[
                f"--requirements={REQUIREMENTS_FILE}",
                f"--output={ENV_FILE}",
                f"--stub-output={STUB_FILE}",
                f"--report={REPORT_FILE}",
                *builder_args(subsystem),
                *request.target_args,
            ],
            description=build_description(
                request.address, _python_arg(request.target_args), env_vars
            ),
            input_digest=builder_input,
            output_files=[ENV_FILE, STUB_FILE, REPORT_FILE],
            # The machine's variables (pip's index, proxies, PATH, HOME) reach the builder
            # outside its cache key (passthrough.py); these constants are all the key holds.
            extra_env=process_env(
                {
                    "PIP_CACHE_DIR": _PIP_CACHE,
                    # Pants points pip at /dev/null for its own resolves; the environment is
                    # installed the way this machine's pip is configured (index, certificates),
                    # or with the passed-through PIP_CONFIG_FILE, which wins over this.
                    "PIP_CONFIG_FILE": "",
                }
            ),
            append_only_caches={"mmepack_pip": _PIP_CACHE, **APPEND_ONLY_CACHES},
            level=LogLevel.INFO,
        ),
    )
    if result.exit_code != 0:
        raise failure(request.address, "building the Python environment", result)
    report_contents, env = await engine.env_builder_outputs(
        result.output_digest, PathGlobs([REPORT_FILE]), PathGlobs([ENV_FILE, STUB_FILE])
    )
    report = _read_report(request.address, report_contents)
    return PythonEnv(
        env,
        stub=report.stub is not None,
        lines_if_ran=tuple(report_lines(report, from_pants_cache=False)),
        lines_if_cached=tuple(report_lines(report, from_pants_cache=True)),
        metadata=result.metadata,
        python_version=report.python_version,
    )


def _python_arg(target_args: Tuple[str, ...]) -> Optional[str]:
    for arg in target_args:
        if arg.startswith("--python="):
            return arg[len("--python=") :]
    return None


def _read_report(address: Address, contents: DigestContents) -> EnvReport:
    if len(contents) != 1:
        raise MmepackBuildError(f"{address}: the environment builder wrote no {REPORT_FILE}")
    try:
        return EnvReport.from_json(contents[0].content.decode(), REPORT_FILE)
    except ContractError as exc:
        raise MmepackBuildError(f"{address}: {exc}") from None


def rules():
    return collect_rules()
