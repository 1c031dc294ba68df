"""`pants package` for `triton_model` targets: three cached steps, each an `mmepack` command.

1. build-env: build, slim, conda-pack and prove the Python steps' environment, and pick the
   `triton_python_backend_stub` the `[triton-server]` target needs; keyed only on requirements.txt
   and the build options, so editing a config or model.py never rebuilds it.
2. package: pull the DVC weights, verify their md5s, and write the MME tar.
Each step is a Pants process, so unchanged inputs are answered from Pants' cache; behind it,
mmepack's own content-addressed environment cache serves other runs and other checkouts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
from pants.base.build_root import BuildRoot
from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.addresses import Address
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import (
    AddPrefix,
    Digest,
    DigestSubset,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
    Snapshot,
)
from pants.engine.internals.session import RunId
from pants.engine.process import FallibleProcessResult, ProcessResultMetadata
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    SourcesField,
    Targets,
    TransitiveTargets,
    TransitiveTargetsRequest,
)
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from mmepack_pants.cli import EnvBuilderRequest, MmepackCliRequest
from mmepack_pants.subsystem import MmepackSubsystem, TritonServerSubsystem
from mmepack_pants.target_types import (
    TritonModelOutputDirField,
    TritonModelPythonVersionField,
    TritonModelSourcesField,
)

logger = logging.getLogger(__name__)

_ENV_FILE = "python_env.tar.gz"
_STUB_FILE = "triton_python_backend_stub"
_OUT_DIR = "__mmepack_out"
_PIP_CACHE = ".cache/mmepack-pip"


class MmepackBuildError(Exception):
    """A build step failed; the message is mmepack's own explanation."""


@dataclass(frozen=True)
class TritonModelPackageFieldSet(PackageFieldSet):
    required_fields = (TritonModelSourcesField,)

    sources: TritonModelSourcesField
    python_version: TritonModelPythonVersionField
    output_dir: TritonModelOutputDirField


def _failure(address: Address, step: str, result: FallibleProcessResult) -> MmepackBuildError:
    stderr = result.stderr.decode(errors="replace").strip()
    lines = [line for line in stderr.splitlines() if line.startswith("mmepack: error:")]
    detail = stderr if not lines else stderr[stderr.index(lines[0]) :]
    return MmepackBuildError(f"{address}: {step} failed:\n{detail}")


def _report(address: Address, result: FallibleProcessResult, run_id: RunId) -> None:
    """Relay the builder's summary (size, largest packages, proof, cache hit or not), which Pants
    would otherwise swallow for a process that succeeded."""
    lines = [
        line[len("mmepack: ") :]
        for line in result.stderr.decode(errors="replace").splitlines()
        if line.startswith("mmepack: ") and not line.startswith("mmepack:   ")
    ]
    if result.metadata.source(run_id) != ProcessResultMetadata.Source.RAN:
        lines = [f"reused from Pants' cache, as first reported: {line}" for line in lines[-1:]]
    for line in lines:
        logger.info(f"{address}: {line}")


@rule(desc="Package a Triton model for SageMaker MME", level=LogLevel.DEBUG)
async def package_triton_model(
    field_set: TritonModelPackageFieldSet,
    subsystem: MmepackSubsystem,
    target_server: TritonServerSubsystem,
    build_root: BuildRoot,
    run_id: RunId,
) -> BuiltPackage:
    address = field_set.address
    model_dir = address.spec_path
    transitive, env_vars = await MultiGet(
        Get(TransitiveTargets, TransitiveTargetsRequest([address])),
        Get(EnvironmentVars, EnvironmentVarsRequest(subsystem.env_passthrough)),
    )
    cli = await Get(VenvPex, MmepackCliRequest())
    sources = await Get(
        SourceFiles,
        SourceFilesRequest(t.get(SourcesField) for t in transitive.closure),
    )
    python_version = field_set.python_version.value or subsystem.python_version
    requirements = os.path.join(model_dir, "requirements.txt")

    target_args = [
        f"--python={python_version}",
        f"--triton-version={target_server.version}",
        f"--stub-python={target_server.stub_python}",
    ]
    if target_server.stub_dir:
        target_args.append(f"--stub-dir={os.path.join(build_root.path, target_server.stub_dir)}")

    inputs = [sources.snapshot.digest]
    env_args: list[str] = []
    if requirements in sources.snapshot.files:
        # The environment depends on requirements.txt alone: moved to the sandbox root and built
        # with no model-specific argument, models with identical requirements make identical
        # processes, which Pants runs once and caches across runs.
        requirements_only = await Get(
            Digest, DigestSubset(sources.snapshot.digest, PathGlobs([requirements]))
        )
        requirements_digest, builder = await MultiGet(
            Get(Digest, RemovePrefix(requirements_only, model_dir)),
            Get(VenvPex, EnvBuilderRequest()),
        )
        env_result = await Get(
            FallibleProcessResult,
            VenvPexProcess(
                builder,
                argv=[
                    "--requirements=requirements.txt",
                    f"--output={_ENV_FILE}",
                    f"--stub-output={_STUB_FILE}",
                    f"--builder={subsystem.builder.value}",
                    *([f"--conda={subsystem.conda}"] if subsystem.conda else []),
                    *target_args,
                ],
                description=f"Build, prove and cache the Python {python_version} environment "
                f"for {address}",
                input_digest=requirements_digest,
                output_files=[_ENV_FILE, _STUB_FILE],
                extra_env={
                    **env_vars,
                    "PIP_CACHE_DIR": _PIP_CACHE,
                    # Pants points pip at /dev/null for its own resolves; the environment is
                    # installed the way this machine's pip is configured (index, certificates).
                    "PIP_CONFIG_FILE": env_vars.get("PIP_CONFIG_FILE", ""),
                },
                append_only_caches={"mmepack_pip": _PIP_CACHE},
                level=LogLevel.INFO,
            ),
        )
        if env_result.exit_code != 0:
            raise _failure(address, "building the Python environment", env_result)
        _report(address, env_result, run_id)
        inputs.append(env_result.output_digest)
        env_snapshot = await Get(Snapshot, Digest, env_result.output_digest)
        env_args = [f"--env={_ENV_FILE}"]
        if _STUB_FILE in env_snapshot.files:
            env_args.append(f"--stub={_STUB_FILE}")

    package_input = await Get(Digest, MergeDigests(inputs))
    result = await Get(
        FallibleProcessResult,
        VenvPexProcess(
            cli,
            argv=[
                "package",
                model_dir,
                "--pull",
                "--repo-root=.",
                f"--output-dir={_OUT_DIR}",
                *target_args,
                *env_args,
            ],
            description=f"Package {address} for SageMaker MME",
            input_digest=package_input,
            output_directories=[_OUT_DIR],
            extra_env=dict(env_vars),
            level=LogLevel.INFO,
        ),
    )
    if result.exit_code != 0:
        raise _failure(address, "packaging", result)
    output = await Get(Digest, RemovePrefix(result.output_digest, _OUT_DIR))
    snapshot = await Get(Snapshot, AddPrefix(output, field_set.output_dir.value or "mme"))
    return BuiltPackage(
        snapshot.digest,
        tuple(BuiltPackageArtifact(path) for path in snapshot.files),
    )


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, TritonModelPackageFieldSet),
    ]
