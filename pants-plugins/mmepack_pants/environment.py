"""The environment build as its own rule: `PythonEnvRequest` -> `PythonEnv`.

The package rule awaits this the way Pants' docker and helm backends await their build rules,
so the goal rule stays short. The process runs mmepack's narrow builder PEX on the model's
requirements.txt and requirements.lock alone, moved to the sandbox root and with no
model-specific argument: models with identical requirements make identical processes, which
Pants runs once and caches across runs. What the builder did comes back in its JSON report
(`env_report.py`), not from its log; the package rule logs it.

Engine calls (Get/MultiGet) are confined to `build_python_env`; everything else here is plain
functions of option values, so a port to call-by-name touches one function.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple

from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
from pants.engine.addresses import Address
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import (
    Digest,
    DigestContents,
    DigestSubset,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
)
from pants.engine.internals.session import RunId
from pants.engine.process import FallibleProcessResult, ProcessResultMetadata
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.logging import LogLevel

from mmepack_pants.cli import EnvBuilderRequest
from mmepack_pants.env_report import REPORT_FILE, EnvReport, EnvReportError
from mmepack_pants.passthrough import APPEND_ONLY_CACHES, process_env
from mmepack_pants.subsystem import MmepackSubsystem, TritonServerSubsystem

# File names inside the builder's sandbox; the library's defaults are the same names, but the
# plugin states them because it must list a process's output files before it runs.
ENV_FILE = "python_env.tar.gz"
STUB_FILE = "triton_python_backend_stub"
REQUIREMENTS_FILE = "requirements.txt"
LOCK_FILE = "requirements.lock"
_PIP_CACHE = ".cache/mmepack-pip"
# The library's progress log, in its environment cache folder (mmepack.names.PROGRESS_LOG).
PROGRESS_LOG = "progress.log"
# What `progress_log_path` reads: no credential among them.
PROGRESS_LOG_VARIABLES = ("MMEPACK_ENV_CACHE", "XDG_CACHE_HOME", "HOME")


class MmepackBuildError(Exception):
    """A build step failed; the message is mmepack's own explanation."""


def failure(address: Address, step: str, result: FallibleProcessResult) -> MmepackBuildError:
    stderr = result.stderr.decode(errors="replace").strip()
    lines = [line for line in stderr.splitlines() if line.startswith("mmepack: error:")]
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
    """Where the builder appends its progress lines: the environment cache folder, found as
    `mmepack.environment.cache.default_cache_root` finds it, from the process's variables."""
    if env.get("MMEPACK_ENV_CACHE"):
        root = env["MMEPACK_ENV_CACHE"]
    else:
        base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or "~", ".cache")
        root = os.path.join(base, "mmepack", "envs")
    return os.path.join(root, PROGRESS_LOG)


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


@dataclass(frozen=True)
class PythonEnvRequest:
    """Build the environment of the model at `model_dir`, whose files are in `sources`."""

    address: Address
    model_dir: str
    sources: Digest
    # `--python` and the target-server options, from `target_args`.
    target_args: Tuple[str, ...]


@dataclass(frozen=True)
class PythonEnv:
    """`python_env.tar.gz` and, when the target server needs one, the stub, at the root; with
    what to tell the user about the build, which the package rule logs (`report`).

    The rule that makes this does not depend on the run's id, so pantsd keeps it across runs
    instead of re-running it for every model on each `package`; whether the builder ran in the
    current run is decided where it is logged, from `metadata`.
    """

    digest: Digest
    stub: bool
    # EnvReport.lines for a builder that ran in this run, and for one answered from Pants' cache.
    lines_if_ran: Tuple[str, ...]
    lines_if_cached: Tuple[str, ...]
    # Not part of equality, as in Pants' own ProcessResult: it names the run that made it.
    metadata: ProcessResultMetadata = field(compare=False, hash=False)
    # The environment's Python as its build report states it (e.g. 3.12.1), for the package step.
    python_version: Optional[str] = None

    def report(self, run_id: RunId) -> Tuple[str, ...]:
        """The lines to log in the run `run_id`."""
        if self.metadata.source(run_id) == ProcessResultMetadata.Source.RAN:
            return self.lines_if_ran
        return self.lines_if_cached


@rule(desc="Build a Python backend environment", level=LogLevel.DEBUG)
async def build_python_env(
    request: PythonEnvRequest,
    subsystem: MmepackSubsystem,
    target_server: TritonServerSubsystem,
) -> PythonEnv:
    requirements_only = await Get(
        Digest,
        DigestSubset(
            request.sources,
            PathGlobs(
                [
                    os.path.join(request.model_dir, REQUIREMENTS_FILE),
                    # The pinned versions and hashes the environment is installed from.
                    os.path.join(request.model_dir, LOCK_FILE),
                ]
            ),
        ),
    )
    requirements, stubs, builder, env_vars = await MultiGet(
        Get(Digest, RemovePrefix(requirements_only, request.model_dir)),
        Get(Digest, PathGlobs(stub_dir_globs(target_server))),
        Get(VenvPex, EnvBuilderRequest()),
        # Only for the description, which is in no cache key: where the progress log is.
        Get(EnvironmentVars, EnvironmentVarsRequest(PROGRESS_LOG_VARIABLES)),
    )
    builder_input = await Get(Digest, MergeDigests([requirements, stubs]))
    result = await Get(
        FallibleProcessResult,
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
    report_contents, env = await MultiGet(
        Get(DigestContents, DigestSubset(result.output_digest, PathGlobs([REPORT_FILE]))),
        Get(Digest, DigestSubset(result.output_digest, PathGlobs([ENV_FILE, STUB_FILE]))),
    )
    report = _read_report(request.address, report_contents)
    return PythonEnv(
        env,
        stub=report.stub is not None,
        lines_if_ran=tuple(report.lines(from_pants_cache=False)),
        lines_if_cached=tuple(report.lines(from_pants_cache=True)),
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
        return EnvReport.from_json(contents[0].content.decode())
    except EnvReportError as exc:
        raise MmepackBuildError(f"{address}: {exc}") from None


def rules():
    return collect_rules()
