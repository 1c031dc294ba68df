"""`pants package` for `triton_model` targets: three cached steps, each an `mmepack` command.

1. build-env: conda-pack the Python steps' environment; keyed only on requirements.txt, so
   editing a config or model.py never rebuilds it.
2. package: pull the DVC weights, verify their md5s, and write the MME tar.
Each step is a Pants process, so unchanged inputs are answered from Pants' cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
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
from pants.engine.process import FallibleProcessResult
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
from mmepack_pants.subsystem import MmepackSubsystem
from mmepack_pants.target_types import (
    TritonModelOutputDirField,
    TritonModelPythonVersionField,
    TritonModelSourcesField,
)

_ENV_FILE = "python_env.tar.gz"
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


@rule(desc="Package a Triton model for SageMaker MME", level=LogLevel.DEBUG)
async def package_triton_model(
    field_set: TritonModelPackageFieldSet, subsystem: MmepackSubsystem
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
                    f"--python={python_version}",
                ],
                description=f"Build Python {python_version} environment for {address}",
                input_digest=requirements_digest,
                output_files=[_ENV_FILE],
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
        inputs.append(env_result.output_digest)
        env_args = [f"--env={_ENV_FILE}"]

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
