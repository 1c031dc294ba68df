"""The mmepack programs (the CLI, the environment builder and the case runner) as PEXes the
rules run."""

from __future__ import annotations

from dataclasses import dataclass

from pants.backend.python.target_types import EntryPoint
from pants.backend.python.util_rules.pex import PexRequest, VenvPex
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.engine.addresses import UnparsedAddressInputs
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import Targets
from pants.util.logging import LogLevel

from mmepack_pants.subsystem import MmepackSubsystem, ModelCasesSubsystem


@dataclass(frozen=True)
class MmepackCliRequest:
    """The full mmepack CLI, built from `[mmepack].cli`."""


@dataclass(frozen=True)
class EnvBuilderRequest:
    """Only the environment builder, built from `[mmepack].env_builder`, so that environment
    builds are cached independently of the rest of mmepack."""


@dataclass(frozen=True)
class CasesRunnerRequest:
    """The CLI with the server packages, built from `[model-cases].runner`, to run test cases."""


@dataclass(frozen=True)
class _ProgramRequest:
    address: str
    option: str
    module: str
    function: str


@rule(desc="Build the mmepack command line", level=LogLevel.DEBUG)
async def build_mmepack_cli(_: MmepackCliRequest, subsystem: MmepackSubsystem) -> VenvPex:
    return await Get(
        VenvPex, _ProgramRequest(subsystem.cli, "[mmepack].cli", "mmepack.cli", "main")
    )


@rule(desc="Build the mmepack environment builder", level=LogLevel.DEBUG)
async def build_env_builder(_: EnvBuilderRequest, subsystem: MmepackSubsystem) -> VenvPex:
    return await Get(
        VenvPex,
        _ProgramRequest(
            subsystem.env_builder, "[mmepack].env_builder", "mmepack.environment.command", "main"
        ),
    )


@rule(desc="Build the mmepack case runner", level=LogLevel.DEBUG)
async def build_cases_runner(_: CasesRunnerRequest, subsystem: ModelCasesSubsystem) -> VenvPex:
    return await Get(
        VenvPex,
        _ProgramRequest(subsystem.runner, "[model-cases].runner", "mmepack.cases.command", "main"),
    )


@rule(level=LogLevel.DEBUG)
async def build_program(request: _ProgramRequest) -> VenvPex:
    targets = await Get(
        Targets,
        UnparsedAddressInputs(
            [request.address], owning_address=None, description_of_origin=request.option
        ),
    )
    pex_request = await Get(
        PexRequest,
        PexFromTargetsRequest(
            [t.address for t in targets],
            output_filename=f"{request.module}.pex",
            internal_only=True,
            main=EntryPoint(request.module, request.function),
            description=request.module,
        ),
    )
    return await Get(VenvPex, PexRequest, pex_request)


def rules():
    return collect_rules()
